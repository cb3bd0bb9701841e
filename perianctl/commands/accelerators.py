"""The accelerator (GPU) catalogue: the names 'submit --accelerator-type' and 'offers --accelerator-type' accept, memory, and the cheapest offer per hour for one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from perianctl.commands.common import make_client, output_option, run

if TYPE_CHECKING:
    from perianctl.perian.models import AcceleratorTypeView
    from perianctl.perian.offers import Offer

COLUMNS = ("NAME", "GPU", "VENDOR", "MEMORY", "OFFERS", "FROM PER HOUR")


def accelerators(
    ctx: typer.Context,
    output: Annotated[str, output_option("table", "json", "yaml", "name")] = "table",
    prices: Annotated[
        bool,
        typer.Option(
            "--prices/--no-prices",
            help="Count the offers with each accelerator and show the cheapest (one more API request).",
        ),
    ] = True,
) -> None:
    from perianctl.ui.output import OutputFormat, parse_format

    fmt = parse_format(output, allowed=[OutputFormat.table, OutputFormat.json, OutputFormat.yaml, OutputFormat.name])

    async def fetch() -> tuple[list[AcceleratorTypeView], list[Offer]]:
        from perianctl.perian import models as m
        from perianctl.perian.offers import find_offers

        async with make_client(ctx) as client:
            catalogue = await client.list_accelerator_types()
            found: list[Offer] = []
            if prices and fmt is not OutputFormat.name:
                query = m.InstanceTypeQueryInput(accelerator=m.AcceleratorQueryInput(no=1))
                found = await find_offers(client, query)
            return catalogue, found

    catalogue, found = run(fetch())
    show(catalogue, found, fmt, prices=prices)


def _summary(catalogue: list[AcceleratorTypeView], found: list[Offer]) -> list[dict[str, Any]]:
    """One record per accelerator type, with the offers (cheapest per hour first) that carry it."""
    records = []
    for accel in sorted(catalogue, key=lambda a: (a.vendor or "", a.name or "")):
        names = {accel.name, accel.display_name} - {None}
        mine = [o for o in found if o.accelerator_name in names or set(o.instance.accelerator_names) & names]
        cheapest = mine[0].rate if mine else None
        memory = accel.memory or {}
        records.append(
            {
                "name": accel.name,
                "display_name": accel.display_name,
                "vendor": accel.vendor,
                "memory_gb": memory.get("size"),
                "id": accel.id,
                "offers": len(mine),
                "cheapest_per_hour": str(cheapest.per_hour) if cheapest else None,
                "currency": cheapest.currency if cheapest else None,
                "cheapest_instance_type": mine[0].id if mine else None,
            }
        )
    return records


def show(catalogue: list[AcceleratorTypeView], found: list[Offer], fmt: object, *, prices: bool) -> None:
    from decimal import Decimal

    from perianctl.perian.pricing import money
    from perianctl.ui.console import write_out
    from perianctl.ui.output import OutputFormat, emit_data, emit_table

    if fmt is OutputFormat.name:
        for accel in catalogue:
            write_out(accel.name or "")
        return
    records = _summary(catalogue, found)
    if fmt in (OutputFormat.json, OutputFormat.yaml):
        assert isinstance(fmt, OutputFormat)
        if not prices:
            for record in records:
                for key in ("offers", "cheapest_per_hour", "currency", "cheapest_instance_type"):
                    record.pop(key)
        emit_data(records, fmt)
        return
    rows = []
    for r in records:
        cheapest = f"{money(Decimal(r['cheapest_per_hour']))} {r['currency']}" if r["cheapest_per_hour"] else "-"
        rows.append(
            [
                r["name"] or "-",
                r["display_name"] or "-",
                r["vendor"] or "-",
                f"{r['memory_gb']} GB" if r["memory_gb"] else "-",
                str(r["offers"]) if prices else "-",
                cheapest if prices else "-",
            ]
        )
    emit_table(COLUMNS, rows)
