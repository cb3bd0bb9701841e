"""Instance types matching the resource flags (the same flags as 'submit'), cheapest per hour first: provider, region, CPU/RAM, accelerator, price per hour, billing granularity, availability."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from perianctl.commands.common import make_client, output_option, run

if TYPE_CHECKING:
    from perianctl.perian.offers import Offer

COLUMNS = ("PROVIDER", "REGION", "INSTANCE TYPE", "CPU", "RAM", "ACCELERATOR", "PER HOUR", "BILLED", "AVAILABLE")
WIDE_EXTRA = ("UNIT PRICE", "ID")


def offers(
    ctx: typer.Context,
    cores: Annotated[int | None, typer.Option("--cores", min=1, help="CPU cores (at least).")] = None,
    memory: Annotated[int | None, typer.Option("--memory", min=1, help="RAM in GB (at least).")] = None,
    accelerators: Annotated[
        int | None, typer.Option("--accelerators", min=0, help="Number of GPUs (at least).")
    ] = None,
    accelerator_type: Annotated[
        str | None,
        typer.Option("--accelerator-type", help="GPU type, e.g. A100, H100, L4 (see 'perianctl accelerators')."),
    ] = None,
    country_code: Annotated[
        str | None, typer.Option("--country-code", help="Two-letter country code, e.g. DE.")
    ] = None,
    provider: Annotated[str | None, typer.Option("--provider", help="Provider short name, e.g. ovh.")] = None,
    max_price_per_hour: Annotated[
        str | None,
        typer.Option("--max-price-per-hour", metavar="AMOUNT", help="Only types that cost at most this per hour."),
    ] = None,
    available: Annotated[bool, typer.Option("--available", help="Only types the provider can give now.")] = False,
    granularity: Annotated[
        str | None,
        typer.Option(
            "--billing-granularity", help="Only types billed PER_SECOND, PER_MINUTE, PER_10_MINUTES or PER_HOUR."
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Show at most this many (the cheapest).")] = 20,
    output: Annotated[
        str, output_option("table", "wide", "json", "yaml", "name", about=" (name: instance type ids)")
    ] = "table",
) -> None:
    from perianctl.errors import UsageError
    from perianctl.flyte.translate import JobOverrides, requirements_for
    from perianctl.perian.offers import find_offers, parse_amount
    from perianctl.perian.pricing import GRANULARITY_SECONDS
    from perianctl.ui.output import parse_format

    fmt = parse_format(output)
    cap = parse_amount(max_price_per_hour, "--max-price-per-hour")
    if granularity is not None:
        granularity = granularity.strip().upper().replace("-", "_")
        if granularity not in GRANULARITY_SECONDS:
            raise UsageError(
                f"invalid --billing-granularity '{granularity}' (choose: {', '.join(GRANULARITY_SECONDS)})"
            )
    requirements = requirements_for(
        JobOverrides(
            cores=cores,
            memory=memory,
            accelerators=accelerators,
            accelerator_type=accelerator_type,
            country_code=country_code,
            provider=provider,
        )
    )

    async def fetch() -> list[Offer]:
        async with make_client(ctx) as client:
            return await find_offers(
                client, requirements, max_price_per_hour=cap, available_only=available, granularity=granularity
            )

    found = run(fetch())
    show_offers(found[:limit], fmt, total=len(found))


def show_offers(found: list[Offer], fmt: object, *, total: int) -> None:
    from perianctl.perian.pricing import money
    from perianctl.ui.console import info, write_out
    from perianctl.ui.output import OutputFormat, emit_data, emit_table

    if fmt in (OutputFormat.json, OutputFormat.yaml):
        assert isinstance(fmt, OutputFormat)
        emit_data([o.record() for o in found], fmt)
        return
    if fmt is OutputFormat.name:
        for o in found:
            write_out(o.id)
        return
    if not found:
        info("no instance type matches (try fewer requirements, or a higher --max-price-per-hour)")
        return
    wide = fmt is OutputFormat.wide
    rows = []
    for o in found:
        rate = o.rate
        available = {True: "yes", False: "no", None: "-"}[o.available]
        ram = o.instance.ram_gb
        row = [
            o.provider,
            o.region,
            o.instance.name or "-",
            str(o.instance.cores or "-"),
            f"{ram:g} GB" if ram is not None else "-",
            o.accelerator_text(),
            f"{money(rate.per_hour)} {rate.currency}" if rate else "-",
            rate.granularity if rate else "-",
            available,
        ]
        if wide:
            row += [f"{rate.unit_price} {rate.currency}" if rate else "-", o.id]
        rows.append(row)
    emit_table(COLUMNS + WIDE_EXTRA if wide else COLUMNS, rows)
    if total > len(found):
        info(f"{len(found)} of {total} matching types shown (cheapest first; --limit shows more)")
