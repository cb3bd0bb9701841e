"""List jobs: server-side pages (newest first), filtered by status, or the local journal (--local)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from perianctl.commands.common import OutputOption, make_client, run

if TYPE_CHECKING:
    from perianctl.perian.models import JobView, PaginationMetadata
    from perianctl.ui.output import OutputFormat


def list_jobs(
    ctx: typer.Context,
    status: Annotated[
        list[str] | None,
        typer.Option("--status", "-s", help="Only jobs in this PERIAN status (repeatable, or comma-separated)."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="Jobs per page.")] = 25,
    page: Annotated[int, typer.Option("--page", min=1, help="Page number (server-side pagination).")] = 1,
    all_pages: Annotated[bool, typer.Option("--all", "-A", help="Follow every page.")] = False,
    local: Annotated[bool, typer.Option("--local", help="List jobs from the local journal instead.")] = False,
    output: str = OutputOption,
) -> None:
    from perianctl.commands.get import record_observations, show_jobs
    from perianctl.ui.output import parse_format

    fmt = parse_format(output)
    statuses = _parse_statuses(status)
    if local:
        _list_local(fmt, limit, statuses)
        return
    jobs, pagination = run(_fetch(ctx, limit=limit, page=page, all_pages=all_pages, statuses=statuses),
                             status="waiting for PERIAN")
    record_observations(ctx, jobs)
    show_jobs(jobs, fmt, single=False)
    _footer(pagination, len(jobs), page, all_pages=all_pages)


def _parse_statuses(values: list[str] | None) -> set[str] | None:
    from perianctl.errors import UsageError
    from perianctl.perian.status import WorkloadStatus, parse_status

    if not values:
        return None
    wanted: set[str] = set()
    for raw in values:
        for item in filter(None, (part.strip() for part in raw.split(","))):
            status = parse_status(item)
            if status is None:
                raise UsageError(
                    f"unknown status '{item}' (choose from: {', '.join(s.value for s in WorkloadStatus)})"
                )
            wanted.add(status.value)
    return wanted


async def _fetch(
    ctx: typer.Context, *, limit: int, page: int, all_pages: bool, statuses: set[str] | None
) -> tuple[list[JobView], PaginationMetadata | None]:
    async with make_client(ctx) as client:
        if all_pages:
            jobs = [job async for job in client.iter_jobs(page_size=limit)]
            pagination = None
        else:
            result = await client.list_jobs(limit=limit, page=page)
            jobs, pagination = result.jobs, result.pagination
    if statuses:
        jobs = [job for job in jobs if job.status in statuses]
    return jobs, pagination


def _footer(pagination: PaginationMetadata | None, shown: int, page: int, *, all_pages: bool) -> None:
    from perianctl.ui.console import info

    if all_pages or pagination is None:
        info(f"{shown} job(s)")
        return
    text = f"page {pagination.current_page}/{pagination.total_pages} · {pagination.total_items} job(s) in total"
    if pagination.next_page:
        text += f" · next: --page {pagination.next_page}"
    info(text)


def _list_local(fmt: OutputFormat, limit: int, statuses: set[str] | None) -> None:
    from datetime import UTC, datetime

    from perianctl.journal import open_journal
    from perianctl.ui.console import write_out
    from perianctl.ui.output import OutputFormat, emit_data, emit_table

    with open_journal() as journal:
        rows = journal.jobs(limit=limit)
    if statuses:
        rows = [r for r in rows if r.last_status in statuses]

    def stamp(at: float | None) -> str:
        return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if at else "-"

    if fmt in (OutputFormat.json, OutputFormat.yaml):
        emit_data(
            [{"id": r.job_id, "profile": r.profile, "api_url": r.api_url, "name": r.name, "image": r.image,
              "source": r.source, "via": r.via, "submitted_at": stamp(r.submitted_at),
              "last_status": r.last_status, "last_seen": stamp(r.last_seen)} for r in rows],
            fmt,
        )
    elif fmt is OutputFormat.name:
        for r in rows:
            write_out(r.job_id)
    else:
        emit_table(
            ("ID", "NAME", "LAST STATUS", "SUBMITTED", "VIA", "PROFILE"),
            [[r.job_id, r.name or "-", r.last_status or "-", stamp(r.submitted_at), r.via or "-",
              r.profile or "-"] for r in rows],
        )
