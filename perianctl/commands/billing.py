"""The bill for a period (one line per job; default: the last 7 days, like 'perian billing get'), remaining credits, and the usage limit (--set-limit sets it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from perianctl.commands.common import make_client, output_option, run

if TYPE_CHECKING:
    import datetime as dt

    from perianctl.perian import models as m

DEFAULT_WINDOW = "7d"


def billing(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="WHEN",
            help="Start: a date/time (2026-11-01, 2026-11-01T08:00Z) or a duration ago (7d, 12h) [default: 7d].",
        ),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", metavar="WHEN", help="End, same forms [default: now].")
    ] = None,
    currency: Annotated[str, typer.Option("--currency", help="Bill currency: EUR, USD or CHF.")] = "EUR",
    set_limit: Annotated[
        str | None,
        typer.Option(
            "--set-limit", metavar="AMOUNT", help="Set the usage limit for --limit-period to AMOUNT, then show it."
        ),
    ] = None,
    limit_period: Annotated[
        str, typer.Option("--limit-period", help="Period of the limit --set-limit sets: Day, Week, Month or Year.")
    ] = "Month",
    output: Annotated[str, output_option("table", "json", "yaml")] = "table",
) -> None:
    import datetime as dt

    from perianctl.errors import UsageError
    from perianctl.perian.offers import parse_amount
    from perianctl.ui.output import OutputFormat, parse_format

    fmt = parse_format(output, allowed=[OutputFormat.table, OutputFormat.json, OutputFormat.yaml])
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start = parse_moment(since or DEFAULT_WINDOW, now, what="--since")
    end = parse_moment(until, now, what="--until") if until else now
    if start >= end:
        raise UsageError(f"--since ({start.isoformat()}) must be before --until ({end.isoformat()})")
    currency = currency.strip().upper()
    if currency not in ("EUR", "USD", "CHF"):
        raise UsageError(f"invalid --currency '{currency}' (choose: EUR, USD, CHF)")
    period = limit_period.strip().capitalize()
    if period not in ("Day", "Week", "Month", "Year"):
        raise UsageError(f"invalid --limit-period '{limit_period}' (choose: Day, Week, Month, Year)")
    new_limit = parse_amount(set_limit, "--set-limit")

    async def fetch() -> tuple[m.Bill, m.RemainingCredits | None, list[m.UsageLimit] | None, list[str]]:
        from perianctl.errors import ApiError

        problems: list[str] = []
        async with make_client(ctx) as client:
            if new_limit is not None:
                await client.set_usage_limit(new_limit, duration_type=period, currency="EUR")
            bill = await client.generate_bill(start, end, currency=currency)
            credits: m.RemainingCredits | None = None
            limits: list[m.UsageLimit] | None = None
            try:
                credits = await client.remaining_credits()
            except ApiError as exc:  # the bill is what was asked for; the rest is best effort
                problems.append(f"remaining credits unavailable: {exc.message}")
            try:
                limits = await client.get_usage_limits()
            except ApiError as exc:
                problems.append(f"usage limits unavailable: {exc.message}")
            return bill, credits, limits, problems

    bill, credits, limits, problems = run(fetch())
    show(bill_record(bill, start, end, credits, limits), fmt)
    from perianctl.ui.console import warn

    for problem in problems:
        warn(problem)


def parse_moment(text: str, now: dt.datetime, *, what: str) -> dt.datetime:
    """``2026-11-01``, ``2026-11-01T08:00:00Z`` (naive = UTC), or a duration ago (``7d``, ``12h``)."""
    import datetime as dt

    from perianctl.errors import UsageError
    from perianctl.timeparse import parse_duration

    value = text.strip()
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            return now - dt.timedelta(seconds=parse_duration(value, what=what))
        except UsageError:
            raise UsageError(
                f"invalid {what} '{text}': expected a date/time such as 2026-11-01 or "
                "2026-11-01T08:00Z, or a duration ago such as 7d or 12h"
            ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _iso(value: dt.datetime | None) -> str | None:
    import datetime as dt

    if value is None:
        return None
    value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def bill_record(
    bill: m.Bill,
    start: dt.datetime,
    end: dt.datetime,
    credits: m.RemainingCredits | None,
    limits: list[m.UsageLimit] | None,
) -> dict[str, Any]:
    """The machine form (``-o json``): the period, one item per workload, the total, credits, limits."""
    items = [
        {
            "job_id": item.workload_id,
            "type": item.workload_type,
            "started_at": _iso(item.started_at),
            "done_at": _iso(item.done_at),
            "granularity": item.granularity,
            "cost": item.price,
            "currency": item.currency or bill.currency,
            "original_cost": item.original_price,
            "original_currency": item.original_currency,
        }
        for item in sorted(bill.items, key=lambda i: (_iso(i.done_at) or "", i.workload_id or ""))
    ]
    return {
        "since": _iso(start),
        "until": _iso(end),
        "currency": bill.currency,
        "total": bill.total_price,
        "items": items,
        "remaining_credits": None
        if credits is None
        else {
            "current": credits.current_amount,
            "original": credits.original_amount,
            "currency": credits.currency,
            "last_calculated": credits.last_calculated,
        },
        "usage_limits": None
        if limits is None
        else [
            {
                "period": limit.duration_type,
                "amount": limit.amount,
                "currency": limit.currency,
                "enabled": limit.is_enabled,
                "used": limit.usage,
                "period_start": _iso(limit.start_time),
                "period_end": _iso(limit.end_time),
            }
            for limit in limits
        ],
    }


def _money(value: Any, currency: Any) -> str:
    from decimal import Decimal, InvalidOperation

    from perianctl.perian.pricing import money

    if value in (None, ""):
        return "-"
    try:
        return f"{money(Decimal(str(value)))} {currency or ''}".strip()
    except InvalidOperation:
        return str(value)


def show(record: dict[str, Any], fmt: object) -> None:
    from perianctl.ui.console import write_out as info  # the summary is data too: stdout
    from perianctl.ui.output import OutputFormat, emit_data, emit_table

    if fmt in (OutputFormat.json, OutputFormat.yaml):
        assert isinstance(fmt, OutputFormat)
        emit_data(record, fmt)
        return
    info(f"bill {record['since']} → {record['until']}")
    if record["items"]:
        emit_table(
            ("JOB", "TYPE", "STARTED", "DONE", "BILLED", "COST"),
            [
                [
                    i["job_id"] or "-",
                    i["type"] or "-",
                    i["started_at"] or "-",
                    i["done_at"] or "-",
                    i["granularity"] or "-",
                    _money(i["cost"], i["currency"]),
                ]
                for i in record["items"]
            ],
        )
    else:
        info("no jobs billed in this period")
    info(f"total: {_money(record['total'], record['currency'])} ({len(record['items'])} job(s))")
    credits = record["remaining_credits"]
    if credits is not None:
        info(
            f"remaining credits: {_money(credits['current'], credits['currency'])} of "
            f"{_money(credits['original'], credits['currency'])}"
        )
    for limit in record["usage_limits"] or []:
        state = "enabled" if limit["enabled"] else "disabled"
        info(
            f"usage limit: {_money(limit['amount'], limit['currency'])} per {limit['period']} ({state}); "
            f"used {_money(limit['used'], limit['currency'])} this period"
        )
    if record["usage_limits"] == []:
        info("usage limit: none set ('--set-limit AMOUNT' sets one)")
