"""Offers (instance types with their price per hour) and budgets, shared by ``offers``, ``submit`` and the connector.

PERIAN's instance-type search orders by *unit* price, and unit prices are per granularity (a
per-second price is 3,600 times smaller than the same rate per hour), so "cheapest" here means
cheapest per hour (:attr:`perianctl.perian.pricing.Rate.per_hour`), sorted on our side. A price
cap is a cap per hour for the same reason; it cannot be sent as PERIAN's ``price.unit_price``
filter.

A budget (``max_cost``) becomes the job's ``timeout_seconds``: the longest runtime whose bill
stays within it, in whole billed units of the chosen instance type
(:meth:`~perianctl.perian.pricing.Rate.max_seconds`), or the job's own timeout if that is shorter.
Both limits only mean something for a known instance type, so the request then names the chosen
type (``instance_type_id``) and turns ``auto_failover_instance_type`` off: a fail-over could land
on a type with another price.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from perianctl.errors import BudgetError, NoOfferError, UsageError
from perianctl.perian import models as m
from perianctl.perian.pricing import Rate, money, rate_of, rate_text

if TYPE_CHECKING:
    from perianctl.perian.client import PerianClient

SEARCH_PAGE = 100
SEARCH_PAGES = 3
"""How much of PERIAN's answer is read to find the cheapest per hour (it may order by unit price)."""


def parse_amount(value: Any, what: str) -> Decimal | None:
    """A positive money amount from a flag or a template value (number or decimal text); ``None`` if unset."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise UsageError(f"{what} must be an amount such as 2.50, got {value!r}")
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise UsageError(f"{what} must be an amount such as 2.50, got {value!r}") from None
    if not amount.is_finite() or amount <= 0 or abs(amount.adjusted()) > 12:
        raise UsageError(f"{what} must be a positive amount such as 2.50, got {value!r}")
    return amount


@dataclass(frozen=True)
class Budget:
    """Money limits of one job: a cap per hour on the instance price and/or a total budget."""

    max_price_per_hour: Decimal | None = None
    max_cost: Decimal | None = None

    def __bool__(self) -> bool:
        return self.max_price_per_hour is not None or self.max_cost is not None


@dataclass(frozen=True)
class Offer:
    """An instance type and its price; ``rate`` is ``None`` when PERIAN sent no usable price."""

    instance: m.InstanceTypeView

    @property
    def rate(self) -> Rate | None:
        return rate_of(self.instance.price)

    @property
    def id(self) -> str:
        return self.instance.id or ""

    @property
    def provider(self) -> str:
        return self.instance.provider_name or "-"

    @property
    def provider_short(self) -> str:
        return str((self.instance.provider or {}).get("name_short") or "")

    @property
    def region(self) -> str:
        name, location = self.instance.region_name, self.instance.location
        return f"{name} ({location})" if name and location else str(name or location or "-")

    @property
    def available(self) -> bool | None:
        return self.instance.available

    @property
    def accelerator_name(self) -> str | None:
        """The GPU's display name (``A100 80GB``), else its catalogue name."""
        types = (self.instance.accelerator or {}).get("accelerator_types") or []
        first = types[0] if types and isinstance(types[0], dict) else {}
        name = first.get("display_name") or first.get("name")
        return str(name) if name else None

    def accelerator_text(self) -> str:
        count = self.instance.accelerator_count
        return f"{count}×{self.accelerator_name or 'GPU'}" if count else "-"

    def sort_key(self) -> tuple[int, Decimal, str]:
        rate = self.rate
        return (rate is None, rate.per_hour if rate is not None else Decimal(0), self.instance.name or self.id)

    def describe(self) -> str:
        """``1A100.22V (DataCrunch, Helsinki (FI)) at 1.29 EUR/h``."""
        return f"{self.instance.name or self.id} ({self.provider}, {self.region}) at {rate_text(self.rate)}"

    def record(self) -> dict[str, Any]:
        """The machine form (``offers -o json``, ``submit --dry-run``)."""
        rate = self.rate
        return {
            "id": self.id,
            "name": self.instance.name,
            "provider": self.provider,
            "provider_short": self.provider_short or None,
            "region": self.instance.region_name,
            "country": self.instance.location,
            "cores": self.instance.cores,
            "ram_gb": self.instance.ram_gb,
            "accelerators": self.instance.accelerator_count,
            "accelerator": self.accelerator_name,
            "accelerator_types": self.instance.accelerator_names,
            "per_hour": str(rate.per_hour) if rate else None,
            "currency": rate.currency if rate else None,
            "unit_price": str(rate.unit_price) if rate else None,
            "granularity": rate.granularity if rate else None,
            "available": self.available,
        }


def with_availability(
    requirements: m.InstanceTypeQueryInput | None, *, available_only: bool, granularity: str | None = None
) -> m.InstanceTypeQueryInput:
    query = requirements.model_copy(deep=True) if requirements is not None else m.InstanceTypeQueryInput()
    if available_only:
        query.availability = m.AvailabilityQueryInput(available=True)
    if granularity:
        query.billing_granularity = granularity
    return query


async def find_offers(
    client: PerianClient,
    requirements: m.InstanceTypeQueryInput | None,
    *,
    max_price_per_hour: Decimal | None = None,
    available_only: bool = False,
    granularity: str | None = None,
) -> list[Offer]:
    """Matching instance types, cheapest per hour first (unpriced ones last, or left out under a cap)."""
    query = with_availability(requirements, available_only=available_only, granularity=granularity)
    offers: list[Offer] = []
    for page in range(1, SEARCH_PAGES + 1):
        paging: dict[str, Any] = {"page": page} if page > 1 else {}
        found = await client.search_instance_types(query, limit=SEARCH_PAGE, **paging)
        offers.extend(Offer(t) for t in found)
        if len(found) < SEARCH_PAGE:
            break
    if available_only:
        offers = [o for o in offers if o.available is not False]
    wanted = (requirements.provider.name_short or "").strip().lower() if requirements and requirements.provider else ""
    # PERIAN's instance-type search drops ``provider`` (its query view, the ``perian`` SDK 0.5.3's
    # perian/models/instance_typer_query_view.py, has no such field): filter here.
    if wanted:
        offers = [o for o in offers if o.provider_short.lower() == wanted]
    if max_price_per_hour is not None:
        offers = [o for o in offers if (r := o.rate) is not None and r.per_hour <= max_price_per_hour]
    return sorted(offers, key=Offer.sort_key)


async def choose_offer(
    client: PerianClient,
    requirements: m.InstanceTypeQueryInput | None,
    *,
    instance_type_id: str | None = None,
    max_price_per_hour: Decimal | None = None,
) -> Offer:
    """The instance type a job would get: ``instance_type_id``'s, else the cheapest match per hour."""
    if instance_type_id:
        found = await client.get_instance_type(instance_type_id)
        if found is None:
            raise NoOfferError(f"no instance type {instance_type_id}")
        offer = Offer(found)
        if max_price_per_hour is not None:
            rate = offer.rate
            if rate is None:
                raise NoOfferError(
                    f"instance type {instance_type_id} has no usable price to compare with "
                    f"--max-price-per-hour {max_price_per_hour}"
                )
            if rate.per_hour > max_price_per_hour:
                raise NoOfferError(
                    f"instance type {offer.describe()} costs more than {max_price_per_hour} {rate.currency}/h"
                )
        return offer
    offers = await find_offers(client, requirements, max_price_per_hour=max_price_per_hour)
    if not offers:
        if max_price_per_hour is not None:
            cheapest = await find_offers(client, requirements)
            hint = (
                f"the cheapest match is {cheapest[0].describe()}"
                if cheapest
                else "no instance type matches the requirements at any price"
            )
            raise NoOfferError(
                f"no instance type matching the requirements costs at most {max_price_per_hour} per hour",
                hint=hint + "; see 'perianctl offers'",
            )
        raise NoOfferError("no instance type matches the requirements", hint="see 'perianctl offers'")
    available = [o for o in offers if o.available is not False]  # what PERIAN would give now, if any
    return (available or offers)[0]


def budget_seconds(offer: Offer, max_cost: Decimal) -> int:
    """The runtime ``max_cost`` buys on ``offer``: whole billed units (:meth:`Rate.max_seconds`)."""
    rate = offer.rate
    if rate is None:
        raise BudgetError(
            f"instance type {offer.instance.name or offer.id} has no usable price: "
            "a budget cannot be turned into a time limit"
        )
    if rate.unit_price <= 0:
        raise BudgetError(f"instance type {offer.describe()} is free: a budget does not limit it")
    seconds = rate.max_seconds(max_cost)
    if seconds <= 0:
        raise BudgetError(
            f"a budget of {max_cost} {rate.currency} does not buy one billed unit of "
            f"{offer.describe()} ({money(rate.unit_price)} {rate.currency} per {rate.granularity})"
        )
    return seconds


@dataclass(frozen=True)
class Plan:
    """What the budget decided for one job."""

    offer: Offer
    timeout_seconds: int | None
    budget_seconds: int | None
    budget: Budget

    def describe(self) -> str:
        text = f"instance type {self.offer.describe()}"
        rate = self.offer.rate
        if self.budget.max_cost is not None and self.budget_seconds is not None and rate is not None:
            units = self.budget_seconds // rate.unit_seconds
            text += (
                f"; budget {self.budget.max_cost} {rate.currency} buys {units} × {rate.granularity} "
                f"= {self.budget_seconds} s"
            )
            if self.timeout_seconds is not None and self.timeout_seconds < self.budget_seconds:
                text += f" (the job's own timeout, {self.timeout_seconds} s, is shorter and stays)"
            else:
                text += " → timeout_seconds"
        return text

    def record(self) -> dict[str, Any]:
        return {
            "instance_type": self.offer.record(),
            "max_price_per_hour": str(self.budget.max_price_per_hour) if self.budget.max_price_per_hour else None,
            "max_cost": str(self.budget.max_cost) if self.budget.max_cost else None,
            "budget_seconds": self.budget_seconds,
            "timeout_seconds": self.timeout_seconds,
        }


async def plan_budget(client: PerianClient, request: m.CreateJobRequest, budget: Budget) -> Plan:
    """Choose the instance type for ``request`` under ``budget`` and work out its timeout."""
    offer = await choose_offer(
        client,
        request.requirements,
        instance_type_id=request.instance_type_id,
        max_price_per_hour=budget.max_price_per_hour,
    )
    seconds = budget_seconds(offer, budget.max_cost) if budget.max_cost is not None else None
    timeout = request.timeout_seconds
    if seconds is not None:
        timeout = seconds if timeout is None else min(timeout, seconds)
    return Plan(offer, timeout, seconds, budget)


def apply_plan(request: m.CreateJobRequest, plan: Plan) -> m.CreateJobRequest:
    """``request`` pinned to the planned instance type, without fail-over, with the planned timeout."""
    return request.model_copy(
        update={
            "instance_type_id": plan.offer.id,
            "auto_failover_instance_type": False,
            "timeout_seconds": plan.timeout_seconds,
        }
    )


async def check_credits(client: PerianClient, max_cost: Decimal, currency: str) -> str | None:
    """Refuse (:class:`BudgetError`) a budget the remaining credits or an enabled usage limit cannot cover.

    Returns a warning instead when PERIAN cannot say (billing endpoints refused or unavailable, or
    amounts in another currency): the budget still limits the job through its timeout.
    """
    from perianctl.errors import PerianctlError

    try:
        credits = await client.remaining_credits()
        limits = await client.get_usage_limits()
    except PerianctlError as exc:
        return f"cannot check credits and usage limits for the budget: {exc.message}"
    skipped: list[str] = []
    left = _amount(credits.current_amount)
    if left is not None:
        if (credits.currency or currency) != currency:
            skipped.append(f"remaining credits are in {credits.currency}")
        elif left < max_cost:
            raise BudgetError(
                f"the budget {max_cost} {currency} exceeds the remaining credits ({money(left)} {currency})",
                hint="lower --max-cost, or top up (see 'perianctl billing')",
            )
    for limit in limits:
        amount, used = _amount(limit.amount), _amount(limit.usage) or Decimal(0)
        if not limit.is_enabled or amount is None:
            continue
        if (limit.currency or currency) != currency:
            skipped.append(f"the {limit.duration_type} usage limit is in {limit.currency}")
            continue
        if amount - used < max_cost:
            raise BudgetError(
                f"the budget {max_cost} {currency} exceeds what the usage limit leaves this {limit.duration_type} "
                f"({money(amount - used)} of {money(amount)} {currency})",
                hint="lower --max-cost, or raise the limit ('perianctl billing --set-limit AMOUNT')",
            )
    return f"not compared with the budget: {'; '.join(skipped)}" if skipped else None


def _amount(value: str | None) -> Decimal | None:
    try:
        amount = Decimal(str(value)) if value not in (None, "") else None
    except InvalidOperation:
        return None
    return amount if amount is not None and amount.is_finite() else None
