"""PERIAN billing semantics, in one place: every view, the connector and the sandbox's bill use this.

A PERIAN price (``PriceData``) is a *unit price* in a *billing granularity*: ``unit_price`` is what one
unit of ``granularity`` costs (``PER_SECOND``, ``PER_MINUTE``, ``PER_10_MINUTES``, ``PER_HOUR``). A run of
``seconds`` is billed in whole units, rounded up (a started unit is a billed unit), and at least one unit
once the job has run at all. So for a 1,200 s job at unit price 1.0 ``PER_10_MINUTES`` the bill is
2 units × 1.0 = 2.00, and the rate shown to people is 6.00 per hour.

Money stays ``Decimal`` end to end (the API sends amounts as decimal strings); ``None`` means "not a
price we can use" (missing, ``Undefined`` currency or granularity, not a finite number), and callers
show "-" rather than guess. ``UNDEFINED`` granularity is not treated as per hour: a wrong figure is
worse than none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from perianctl.perian.status import is_terminal

GRANULARITY_SECONDS: dict[str, int] = {
    "PER_SECOND": 1,
    "PER_MINUTE": 60,
    "PER_10_MINUTES": 600,
    "PER_HOUR": 3600,
}
"""Length of one billed unit, by PERIAN ``BillingGranularity``."""

GRANULARITY_SUFFIX: dict[str, str] = {
    "PER_SECOND": "/s",
    "PER_MINUTE": "/min",
    "PER_10_MINUTES": "/10min",
    "PER_HOUR": "/h",
}

_HOUR = Decimal(3600)


@dataclass(frozen=True)
class Rate:
    """A usable price: ``unit_price`` per unit of ``granularity`` in ``currency``."""

    unit_price: Decimal
    granularity: str
    currency: str

    @property
    def unit_seconds(self) -> int:
        return GRANULARITY_SECONDS[self.granularity]

    @property
    def per_hour(self) -> Decimal:
        """The rate people compare offers by: cost of one hour of running."""
        return self.unit_price * _HOUR / self.unit_seconds

    def billed_units(self, seconds: float) -> int:
        """Whole units billed for ``seconds`` of runtime: rounded up, at least one once started."""
        if not math.isfinite(seconds) or seconds <= 0:
            return 0
        return max(1, math.ceil(seconds / self.unit_seconds - 1e-9))

    def cost(self, seconds: float) -> Decimal:
        """What ``seconds`` of runtime is billed: unit price × billed units."""
        return self.unit_price * self.billed_units(seconds)

    def max_seconds(self, budget: Decimal) -> int:
        """The longest runtime whose bill stays within ``budget``: whole units only, 0 if not even one fits."""
        if self.unit_price <= 0:
            raise ValueError("a free instance type has no budget limit")
        units = int(budget // self.unit_price)
        return max(0, units) * self.unit_seconds


def rate(unit_price: object, granularity: str | None, currency: str | None) -> Rate | None:
    """A :class:`Rate` from wire values, or ``None`` when they do not make a usable price."""
    if granularity not in GRANULARITY_SECONDS or not currency or currency == "Undefined":
        return None
    if unit_price is None or isinstance(unit_price, bool):
        return None
    try:
        unit = Decimal(str(unit_price))
    except (InvalidOperation, ValueError):
        return None
    if not unit.is_finite() or unit < 0 or abs(unit.adjusted()) > 18:  # "NaN", "-1", "1e999999": not a price
        return None
    return Rate(unit, granularity, currency)


def rate_of(price: object) -> Rate | None:
    """The :class:`Rate` of a ``PriceData``-like object (``unit_price``/``granularity``/``currency``)."""
    if price is None:
        return None
    return rate(
        getattr(price, "unit_price", None), getattr(price, "granularity", None), getattr(price, "currency", None)
    )


def rate_text(r: Rate | None) -> str:
    """The rate people compare by, e.g. ``1.29 EUR/h``; ``-`` without a usable price."""
    return f"{money(r.per_hour)} {r.currency}/h" if r is not None else "-"


@dataclass(frozen=True)
class JobCost:
    """What a job has cost so far (running) or in the end (finished), by PERIAN billing semantics.

    ``seconds`` is the billed runtime: ``started_at`` to ``done_at`` (to *now* while the job runs;
    0 before it starts). ``final`` once the job ended: the figure no longer grows. Until then it is
    an estimate of the cost to date. Either way it is computed from the job's price and timestamps,
    not read from the bill (``perianctl billing`` shows that).
    """

    rate: Rate
    seconds: float
    final: bool

    @property
    def amount(self) -> Decimal:
        return self.rate.cost(self.seconds)

    @property
    def billed_units(self) -> int:
        return self.rate.billed_units(self.seconds)

    def record(self) -> dict[str, Any]:
        """The machine form: the same dict in ``get -o json``, watch events and the connector's custom_info."""
        return {
            "amount": str(self.amount),
            "currency": self.rate.currency,
            "final": self.final,
            "estimate": not self.final,
            "billed_seconds": round(self.seconds, 3),
            "billed_units": self.billed_units,
            "unit_price": str(self.rate.unit_price),
            "granularity": self.rate.granularity,
            "per_hour": str(self.rate.per_hour),
        }


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def runtime_seconds(job: Any, now: datetime | None = None) -> float | None:
    """A ``JobView``-like job's runtime, the one billing counts: ``started_at`` to ``done_at`` once it
    ended (its ``updated_at``, PERIAN's last change, when ``done_at`` is missing), to ``now`` while it
    runs; ``None`` before it started or when the end is unknown. Views and the connector all use this.
    """
    start = _aware(getattr(job, "started_at", None))
    if start is None:
        return None
    if is_terminal(getattr(job, "status", None)):
        end = _aware(getattr(job, "done_at", None)) or _aware(getattr(job, "updated_at", None))
    else:
        end = _aware(now) if now is not None else datetime.now(UTC)
    return max(0.0, (end - start).total_seconds()) if end is not None else None


def job_cost(job: Any, now: datetime | None = None) -> JobCost | None:
    """The :class:`JobCost` of a ``JobView``-like object, or ``None`` without a usable price.

    A job that never started costs nothing (0 units); one whose runtime is unknown (finished, but
    neither ``done_at`` nor ``updated_at``) has no known cost.
    """
    r = rate_of(getattr(job, "price", None))
    if r is None:
        return None
    finished = is_terminal(getattr(job, "status", None))
    if getattr(job, "started_at", None) is None:
        return JobCost(r, 0.0, finished)
    seconds = runtime_seconds(job, now)
    return JobCost(r, seconds, finished) if seconds is not None else None


def money(amount: Decimal) -> str:
    """An amount for people: cents from 1 up, four places below (a per-second GPU is fractions of a cent)."""
    places = Decimal("0.01") if abs(amount) >= 1 else Decimal("0.0001")
    return str(amount.quantize(places))


def decimal_text(amount: Decimal) -> str:
    """An amount as the API writes it: plain decimal text, no exponent, no trailing zeros ("0.0008", "12")."""
    if amount == 0:
        return "0"
    return format(amount.normalize(), "f")
