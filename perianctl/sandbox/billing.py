"""The sandbox's billing: a bill built from the jobs it ran, credits that run down, usage limits.

Routes (the ``perian`` SDK 0.5.3's perian/api/billing_api.py; shapes from its ``Bill``, ``BillItem``,
``RemainingCreditsResponse``, ``ListOrganizationUsageLimitResponse``,
``SetOrganizationUsageLimitResponse``, ``CreditTopUpResponse``):

``GET /billing/generate?organization=&currency=EUR&start_time=&end_time=``
    One ``BillItem`` per job that ran, at the price and granularity of its instance type, cost
    computed by :mod:`perianctl.perian.pricing` (unit price × whole billed units) from the same
    millisecond ``started_at``/``done_at`` its JobView shows, so a client that computes the cost
    from the job gets the figure on the bill. A job belongs to the window that contains its end (a
    job is billed once, when it ends); a job still running appears in the window that contains
    *now*, billed to now, with ``done_at`` = now (the SDK requires a ``done_at``). The window
    defaults to last month, as the SDK documents. Naive datetimes (perian-cli sends them) are UTC.
    ``currency`` USD or CHF converts at fixed sandbox rates (:data:`EXCHANGE_RATES`).
``GET /billing/remaining-credits``
    ``original_amount`` = ``--credits`` (default :data:`DEFAULT_CREDITS` EUR) plus top-ups;
    ``current_amount`` = that minus everything billed so far, running jobs included (to now).
``GET`` / ``PUT /billing/limit``
    Usage limits, one per ``duration_type`` (Day, Week, Month, Year; calendar periods in UTC);
    ``usage`` is what was billed in the current period.
``POST /billing/top-up``
    Adds the amount at once (there is no payment in a sandbox); ``payment_url`` is a sandbox
    receipt page.

Rules the real API leaves open, chosen here (documented in README):

* **Creation is refused** (HTTP 400, :data:`DETAIL_INSUFFICIENT_CREDITS`) when the remaining
  credits cannot pay one billed unit of the chosen instance type, and
  (:data:`DETAIL_USAGE_LIMIT_REACHED`) when an enabled usage limit's period usage has reached it.
* **When credits run out** (remaining ≤ 0) every job that has not ended is stopped and ends as
  ``ServerError`` with :data:`OUT_OF_CREDITS_ERROR` in ``errors`` -- the platform stopped it, it
  is not the user's cancel. A usage limit only blocks new jobs; it does not stop running ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr

from perianctl.perian.pricing import Rate, decimal_text, rate
from perianctl.perian.status import WorkloadStatus
from perianctl.sandbox import wire
from perianctl.sandbox.store import BillingRow, JobStore, JobUpdate
from perianctl.sandbox.strict import ServableJSONResponse as JSONResponse

if TYPE_CHECKING:
    from perianctl.sandbox.catalogue import InstanceType
    from perianctl.sandbox.runtimes.base import Runtime

log = logging.getLogger("perianctl.sandbox.billing")

DEFAULT_CREDITS = Decimal("10000")
"""Credits of a sandbox started without ``--credits`` (EUR): plenty for demos and load tests."""
CURRENCY = "EUR"
EXCHANGE_RATES: dict[str, Decimal] = {"EUR": Decimal(1), "USD": Decimal("1.08"), "CHF": Decimal("0.95")}
"""Fixed sandbox exchange rates from EUR (a bill in USD or CHF is converted at these)."""
DURATION_TYPES = ("Day", "Week", "Month", "Year")
BILLING_FILE = "billing.json"
ENFORCE_INTERVAL = 0.2
"""Seconds between checks whether credits have run out (wall clock)."""
CREATE_CHECK_MAX_AGE = 0.1
"""A create's credit check may use ledger state this old (s): a burst of creates then costs one
read of the open jobs per tenth of a second, not one per create. Running jobs are still costed to
the moment of the check; only a start or end in the last 0.1 s may be seen late."""

DETAIL_INSUFFICIENT_CREDITS = "You have insufficient credits to create a new Job."
DETAIL_USAGE_LIMIT_REACHED = "The usage limit of your organization has been reached."
DETAIL_DATE_ORDER = "Start date must be before end date"
DETAIL_CREDITS_RETRIEVED = "Remaining credits information retrieved successfully"
OUT_OF_CREDITS_ERROR = (
    "The job was stopped because the organization ran out of credits (insufficient credits); "
    "top up the credits and submit it again."
)


class BillingError(Exception):
    """A billing refusal answered with the PERIAN envelope (400) or FastAPI's 422 shape."""

    def __init__(self, status_code: int, detail: Any) -> None:
        super().__init__(str(detail))
        self.status_code = status_code
        self.detail = detail


def millis(timestamp: float) -> int:
    """Epoch seconds → whole milliseconds, truncated exactly as :func:`wire.iso` shows them."""
    moment = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    return int(moment.replace(microsecond=0).timestamp()) * 1000 + moment.microsecond // 1000


def iso_ms(ms: int) -> str:
    return wire.iso(ms / 1000) or ""


@dataclass(frozen=True)
class Charge:
    """One started job as billing sees it: its rate and its run, in the JobView's milliseconds."""

    job_id: str
    org: str
    rate: Rate
    started_ms: int
    done_ms: int | None

    def end_ms(self, now_ms: int) -> int:
        return self.done_ms if self.done_ms is not None else max(now_ms, self.started_ms)

    def seconds(self, now_ms: int) -> float:
        return (self.end_ms(now_ms) - self.started_ms) / 1000

    def cost(self, now_ms: int) -> Decimal:
        return self.rate.cost(self.seconds(now_ms))


def _charge(row: BillingRow) -> Charge | None:
    """The row's charge; ``None`` (not billed) for a job without a usable price or sane timestamps,
    which only an odd record stored by an older sandbox can be."""
    try:
        text = {k: v if isinstance(v, str) else None for k, v in (("g", row.granularity), ("c", row.currency))}
        found = rate(row.unit_price, text["g"], text["c"])
        if found is None:
            return None
        done = millis(row.done_at) if row.terminal and row.done_at is not None else None
        return Charge(row.id, row.org, found, millis(row.started_at), done)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


class Ledger:
    """Costs of every started job, kept incrementally: ended jobs are settled once.

    Each :meth:`refresh` reads only the jobs from the oldest one still open onwards (see
    :meth:`JobStore.billing_rows`), so checking credits on every create stays cheap.
    """

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._from_seq = 0
        self._settled: dict[str, Charge] = {}
        self._settled_total: dict[str, Decimal] = {}
        self._open: dict[str, Charge] = {}
        self._refreshed_at = float("-inf")

    def refresh(self, max_age: float = 0.0) -> None:
        """Read what changed since the last refresh (skipped if that was less than ``max_age`` s ago)."""
        with self._lock:
            now = time.monotonic()
            if max_age > 0 and now - self._refreshed_at < max_age:
                return
            self._refreshed_at = now
            rows, next_seq = self.store.billing_rows(self._from_seq)
            still_open: dict[str, Charge] = {}
            for row in rows:
                if row.id in self._settled:
                    continue
                charge = _charge(row)
                if charge is None:
                    continue
                if charge.done_ms is not None:
                    self._settled[row.id] = charge
                    total = self._settled_total.get(row.org, Decimal(0))
                    self._settled_total[row.org] = total + charge.cost(charge.done_ms)
                else:
                    still_open[row.id] = charge
            self._open = still_open
            self._from_seq = max(self._from_seq, next_seq)

    def spent(self, org: str, now_ms: int) -> Decimal:
        """Everything billed to ``org`` so far, running jobs to ``now_ms``."""
        with self._lock:
            running = sum((c.cost(now_ms) for c in self._open.values() if c.org == org), Decimal(0))
            return self._settled_total.get(org, Decimal(0)) + running

    def charges(self, org: str) -> list[Charge]:
        with self._lock:
            return [c for c in (*self._settled.values(), *self._open.values()) if c.org == org]

    def running(self, org: str) -> int:
        with self._lock:
            return sum(1 for c in self._open.values() if c.org == org)


def period(duration_type: str, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The calendar period (UTC) of a usage limit that contains ``now``."""
    day = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if duration_type == "Day":
        return day, day + dt.timedelta(days=1)
    if duration_type == "Week":
        start = day - dt.timedelta(days=day.weekday())
        return start, start + dt.timedelta(days=7)
    if duration_type == "Month":
        start = day.replace(day=1)
        return start, (start + dt.timedelta(days=32)).replace(day=1)
    start = day.replace(month=1, day=1)
    return start, start.replace(year=start.year + 1)


def last_month(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The SDK's documented default window: the beginning to the end of last month."""
    this_month = now.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = (this_month - dt.timedelta(days=1)).replace(day=1)
    return start, this_month - dt.timedelta(microseconds=1)


class Billing:
    """Credits, top-ups and usage limits of one sandbox; the ledger reads its job store.

    Top-ups and usage limits persist in ``<state-dir>/billing.json``, so a restarted sandbox keeps
    its balance (the spending itself is recomputed from the jobs database).
    """

    def __init__(
        self, state_dir: Path, organization: str, credits: Decimal | None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.organization = organization
        self.path = state_dir / BILLING_FILE
        self.credits = DEFAULT_CREDITS if credits is None else credits
        self.clock = clock
        self.ledger: Ledger | None = None
        self._task: asyncio.Task[None] | None = None
        self._data: dict[str, Any] = {"top_ups": [], "usage_limits": {}}
        try:
            loaded = json.loads(self.path.read_text())
        except (OSError, ValueError):
            loaded = None
        if isinstance(loaded, dict):
            self._data.update(
                {k: loaded[k] for k in ("top_ups", "usage_limits") if isinstance(loaded.get(k), type(self._data[k]))}
            )

    # ------------------------------------------------------------------ life cycle

    def attach(self, store: JobStore) -> None:
        self.ledger = Ledger(store)
        self.ledger.refresh()

    async def start(self, runtime: Runtime) -> None:
        self._task = asyncio.get_running_loop().create_task(self._enforce(runtime), name="sandbox-billing")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.ledger = None

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(self._data, handle, indent=1)
        os.replace(tmp, self.path)

    def _ledger(self, max_age: float = 0.0) -> Ledger:
        if self.ledger is None:
            raise BillingError(503, "The sandbox is starting or stopping")
        self.ledger.refresh(max_age)
        return self.ledger

    # ------------------------------------------------------------------ credits

    def original(self) -> Decimal:
        return self.credits + sum((Decimal(str(t["amount"])) for t in self._data["top_ups"]), Decimal(0))

    def remaining(self, org: str, now_ms: int | None = None, *, max_age: float = 0.0) -> Decimal:
        now_ms = millis(self.clock()) if now_ms is None else now_ms
        return self.original() - self._ledger(max_age).spent(org, now_ms)

    def top_up(self, amount: Decimal) -> str:
        top_up_id = str(uuid.uuid4())
        self._data["top_ups"].append({"id": top_up_id, "amount": decimal_text(amount), "at": wire.iso(self.clock())})
        self._save()
        return top_up_id

    def receipt(self, top_up_id: str) -> dict[str, Any] | None:
        return next((t for t in self._data["top_ups"] if t.get("id") == top_up_id), None)

    # ------------------------------------------------------------------ usage limits

    def usage(self, org: str, start: dt.datetime, end: dt.datetime, now_ms: int, *, max_age: float = 0.0) -> Decimal:
        low, high = _window_ms(start, end)
        charges = self._ledger(max_age).charges(org)
        return sum((c.cost(now_ms) for c in charges if low <= c.end_ms(now_ms) <= high), Decimal(0))

    def usage_limits(self, org: str) -> list[dict[str, Any]]:
        now_ms = millis(self.clock())
        now = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC)
        out = []
        for duration_type in DURATION_TYPES:
            limit = self._data["usage_limits"].get(duration_type)
            if not isinstance(limit, dict):
                continue
            start, end = period(duration_type, now)
            out.append(
                {
                    **self._limit_view(limit, start, end),
                    "usage": decimal_text(self.usage(org, start, end - dt.timedelta(microseconds=1), now_ms)),
                }
            )
        return out

    @staticmethod
    def _limit_view(limit: dict[str, Any], start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
        return {
            "start_time": _iso(start),
            "end_time": _iso(end),
            "amount": limit["amount"],
            "currency": limit["currency"],
            "duration_type": limit["duration_type"],
            "is_enabled": bool(limit["is_enabled"]),
        }

    def set_usage_limit(self, amount: Decimal, currency: str, duration_type: str, enabled: bool) -> dict[str, Any]:
        limit = {
            "amount": decimal_text(amount),
            "currency": currency,
            "duration_type": duration_type,
            "is_enabled": enabled,
        }
        self._data["usage_limits"][duration_type] = limit
        self._save()
        start, end = period(duration_type, dt.datetime.fromtimestamp(self.clock(), dt.UTC))
        return self._limit_view(limit, start, end)

    # ------------------------------------------------------------------ the rules

    def check_create(self, org: str, itype: InstanceType) -> None:
        """Refuse a new job that the credits or an enabled usage limit cannot pay for."""
        now_ms = millis(self.clock())
        if self.remaining(org, now_ms, max_age=CREATE_CHECK_MAX_AGE) < itype.rate.cost(1):
            raise BillingError(400, DETAIL_INSUFFICIENT_CREDITS)
        now = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC)
        for duration_type, limit in self._data["usage_limits"].items():
            if not isinstance(limit, dict) or not limit.get("is_enabled"):
                continue
            start, end = period(duration_type, now)
            usage = self.usage(org, start, end - dt.timedelta(microseconds=1), now_ms, max_age=CREATE_CHECK_MAX_AGE)
            if usage >= Decimal(str(limit["amount"])):
                raise BillingError(400, DETAIL_USAGE_LIMIT_REACHED)

    def stop_if_out_of_credits(self, runtime: Runtime) -> int:
        """End every open job once the credits are used up; returns how many were stopped."""
        now = self.clock()
        if self.remaining(self.organization, millis(now)) > 0:
            return 0
        store = self._ledger(max_age=float("inf")).store
        stopped = 0
        for row in store.non_terminal():
            ended = store.update(
                JobUpdate(
                    row.id,
                    status=WorkloadStatus.SERVER_ERROR.value,
                    at=now,
                    errors=OUT_OF_CREDITS_ERROR,
                    append_logs="[sandbox] the organization ran out of credits; stopping the job\n",
                )
            )
            if ended:
                stopped += 1
                with contextlib.suppress(Exception):  # stop the work; its own end is refused now
                    runtime.cancel(row)
        if stopped:
            log.warning("billing: the credits of %s are used up; stopped %d job(s)", self.organization, stopped)
        return stopped

    async def _enforce(self, runtime: Runtime) -> None:
        while True:
            await asyncio.sleep(ENFORCE_INTERVAL)
            try:
                if self.ledger is not None:
                    self.stop_if_out_of_credits(runtime)
            except Exception:  # the check must go on whatever one round did
                log.exception("billing: credit check failed")

    # ------------------------------------------------------------------ the bill

    def bill(self, org: str, start: dt.datetime, end: dt.datetime, currency: str) -> dict[str, Any]:
        now_ms = millis(self.clock())
        low, high = _window_ms(start, end)
        exchange = EXCHANGE_RATES[currency]
        items = []
        total = Decimal(0)
        for charge in sorted(self._ledger().charges(org), key=lambda c: (c.end_ms(now_ms), c.job_id)):
            end_ms = charge.end_ms(now_ms)
            if not low <= end_ms <= high:
                continue
            original = charge.cost(now_ms)
            price = original * exchange
            total += price
            items.append(
                {
                    "workload_id": charge.job_id,
                    "price": decimal_text(price),
                    "currency": currency,
                    "original_price": decimal_text(original),
                    "original_currency": charge.rate.currency,
                    "exchange_rate": decimal_text(exchange),
                    "granularity": charge.rate.granularity,
                    "workload_type": "Job",
                    "started_at": iso_ms(charge.started_ms),
                    "done_at": iso_ms(end_ms),
                }
            )
        return {
            "organization_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"perian-sandbox-org:{org}")),
            "start_time": _iso(start),
            "end_time": _iso(end),
            "total_price": decimal_text(total),
            "currency": currency,
            "margin_multiplier": "1",
            "items": items,
        }


def _iso(moment: dt.datetime) -> str:
    return wire.iso(moment.timestamp()) or ""


def _window_ms(start: dt.datetime, end: dt.datetime) -> tuple[int, int]:
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def parse_moment(value: str | None, name: str) -> dt.datetime | None:
    """A query datetime: ISO 8601 with or without offset (naive = UTC), as the SDK formats it."""
    if value is None or not value.strip():
        return None
    text = value.strip().replace(" ", "+") if "T" in value else value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BillingError(
            422,
            [{"type": "datetime_from_date_parsing", "loc": ["query", name], "msg": "Input should be a valid datetime"}],
        ) from None
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
    if not 1970 < moment.year < 9999:  # outside, epoch arithmetic overflows; no bill lives there
        raise BillingError(
            422,
            [
                {
                    "type": "datetime_range",
                    "loc": ["query", name],
                    "msg": "Input should be a datetime between the years 1971 and 9998",
                }
            ],
        )
    return moment


MAX_AMOUNT = Decimal("1000000000")
"""Largest amount (EUR) a usage limit, a top-up or ``--credits`` may be: far above any real bill."""


def _decimal(value: Any, name: str) -> Decimal:
    try:
        amount = Decimal(str(value)) if value is not None and not isinstance(value, bool) else None
    except (InvalidOperation, ValueError):
        amount = None
    if amount is None or not amount.is_finite() or not 0 <= amount <= MAX_AMOUNT:
        raise BillingError(
            422,
            [
                {
                    "type": "decimal_parsing",
                    "loc": ["body", name],
                    "msg": f"Input should be an amount between 0 and {MAX_AMOUNT}",
                }
            ],
        )
    return amount.quantize(Decimal("0.000001"))  # a millionth of a euro: finer than any unit price


def _currency(value: Any) -> str:
    text = str(value).strip() if value is not None else CURRENCY
    for known in EXCHANGE_RATES:
        if text.upper() == known:
            return known
    raise BillingError(400, f"Unknown currency (the sandbox knows {', '.join(EXCHANGE_RATES)})")


class UsageLimitBody(BaseModel):
    """``UsageLimitRequest``: ``limit`` is a number or decimal text, as in the SDK's ``Limit`` union."""

    model_config = ConfigDict(extra="allow")

    limit: StrictStr | StrictInt | StrictFloat
    currency: StrictStr
    duration_type: StrictStr
    is_enabled: StrictBool


class TopUpBody(BaseModel):
    """``CreditTopUpRequest``: ``amount`` is a number or decimal text (the SDK's ``Amount`` union)."""

    model_config = ConfigDict(extra="allow")

    amount: StrictStr | StrictInt | StrictFloat


# --------------------------------------------------------------------------- routes


def register_billing_routes(app: FastAPI, billing: Billing, authenticate: Callable[..., str]) -> None:
    """The ``/billing/*`` routes and the sandbox's top-up receipt page."""

    @app.exception_handler(BillingError)
    async def _billing_error(_request: Request, exc: BillingError) -> JSONResponse:
        if exc.status_code == 422:
            return JSONResponse({"detail": exc.detail}, status_code=422)
        return JSONResponse(wire.failure(exc.status_code, str(exc.detail)), status_code=exc.status_code)

    @app.get("/billing/generate", tags=["billing"])
    async def generate_bill(
        organization: str | None = None,
        currency: str | None = None,
        start_time: str | None = None,
        end_time: str | None = None,
        org: str = Depends(authenticate),
    ) -> JSONResponse:
        from perianctl.perian import models as m

        if organization is not None and organization.strip() and organization.strip() != org:
            raise BillingError(400, m.DETAIL_ORG_NOT_FOUND)
        chosen = _currency(currency)
        start, end = parse_moment(start_time, "start_time"), parse_moment(end_time, "end_time")
        if start is None or end is None:
            default_start, default_end = last_month(dt.datetime.fromtimestamp(billing.clock(), dt.UTC))
            start, end = start or default_start, end or default_end
        if start > end:
            raise BillingError(400, DETAIL_DATE_ORDER)
        return JSONResponse(billing.bill(org, start, end, chosen))

    @app.get("/billing/remaining-credits", tags=["billing"])
    async def remaining_credits(org: str = Depends(authenticate)) -> JSONResponse:
        now = billing.clock()
        current = billing.remaining(org, millis(now))
        return JSONResponse(
            wire.success(detail=DETAIL_CREDITS_RETRIEVED)
            | {
                "current_amount": decimal_text(current),
                "currency": CURRENCY,
                "original_amount": decimal_text(billing.original()),
                "last_calculated": wire.iso(now),
            }
        )

    @app.get("/billing/limit", tags=["billing"])
    async def get_usage_limits(org: str = Depends(authenticate)) -> JSONResponse:
        return JSONResponse(wire.success(usage_limits=billing.usage_limits(org)))

    @app.put("/billing/limit", tags=["billing"])
    async def set_usage_limit(body: UsageLimitBody, _org: str = Depends(authenticate)) -> JSONResponse:
        amount = _decimal(body.limit, "limit")
        currency = _currency(body.currency)
        if currency != CURRENCY:
            raise BillingError(400, f"The sandbox keeps usage limits in {CURRENCY}")
        duration = next((d for d in DURATION_TYPES if d.lower() == body.duration_type.strip().lower()), None)
        if duration is None:
            raise BillingError(
                422,
                [
                    {
                        "type": "enum",
                        "loc": ["body", "duration_type"],
                        "msg": f"Input should be {', '.join(DURATION_TYPES)}",
                    }
                ],
            )
        usage_limit = billing.set_usage_limit(amount, currency, duration, body.is_enabled)
        return JSONResponse(wire.success(usage_limit=usage_limit))

    @app.post("/billing/top-up", tags=["billing"])
    async def top_up(body: TopUpBody, request: Request, _org: str = Depends(authenticate)) -> JSONResponse:
        top_up_id = billing.top_up(_decimal(body.amount, "amount"))
        url = str(request.base_url).rstrip("/") + f"/_sandbox/top-up/{top_up_id}"
        return JSONResponse(wire.success(payment_url=url))

    @app.get(
        "/_sandbox/top-up/{top_up_id}",
        tags=["sandbox"],
        responses={
            404: {"description": "No such top-up", "content": {"application/json": {"schema": {"type": "object"}}}}
        },
    )
    async def top_up_receipt(top_up_id: str) -> JSONResponse:
        receipt = billing.receipt(top_up_id)
        if receipt is None:
            return JSONResponse(wire.failure(404, "No such top-up"), status_code=404)
        return JSONResponse({"status": "paid", **receipt})
