"""List jobs: server-side pages (newest first), filtered by status, or the local journal (--local)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from perianctl.commands.common import OutputOption, make_client, options, run

if TYPE_CHECKING:
    from perianctl.perian.models import JobView, PaginationMetadata
    from perianctl.ui.output import OutputFormat


def list_jobs(
    ctx: typer.Context,
    status: Annotated[
        list[str] | None,
        typer.Option("--status", "-s", help="Only jobs in this PERIAN status (repeatable, or comma-separated)."),
    ] = None,
    limit: Annotated[
        int,
        typer.Option("--limit", "-n", min=1, max=1000, help="Jobs per page (with --status: matching jobs per page)."),
    ] = 25,
    page: Annotated[
        int,
        typer.Option(
            "--page", min=1, help="Page number (with --status: page of the matches; with --local: page of the journal)."
        ),
    ] = 1,
    all_pages: Annotated[
        bool, typer.Option("--all", "-A", help="Every page (with --local: the whole journal).")
    ] = False,
    local: Annotated[bool, typer.Option("--local", help="List jobs from the local journal instead.")] = False,
    output: str = OutputOption,
    connector: Annotated[
        str | None,
        typer.Option(
            "--connector",
            metavar="HOST:PORT",
            hidden=True,
            help="Not possible: the connector protocol has no list call (exit 2).",
        ),
    ] = None,
) -> None:
    from perianctl.jobs.observations import record_views
    from perianctl.ui.console import warn
    from perianctl.ui.jobs import show_jobs
    from perianctl.ui.output import parse_format

    if connector and connector.strip():
        # Only the flag: the 'connector' setting is the default of the job commands that can use
        # one, and list never could, so a profile with a connector still lists from the API.
        from perianctl.jobs.backend import no_list_error

        raise no_list_error()
    fmt = parse_format(output)
    statuses = _parse_statuses(status)
    if local:
        _list_local(fmt, limit=limit, page=page, all_pages=all_pages, statuses=statuses)
        return
    found = run(
        _fetch(ctx, limit=limit, page=page, all_pages=all_pages, statuses=statuses), status="waiting for PERIAN"
    )
    record_views(found.jobs, api_url=options(ctx).settings().api_url, warn=warn)
    show_jobs(found.jobs, fmt, single=False)
    _footer(found, page, all_pages=all_pages, statuses=statuses)


MATCH_PAGE_SIZE = 100
MAX_MATCH_PAGES = 10
"""With --status, at most this many API pages of MATCH_PAGE_SIZE jobs (newest first) are searched for
matches (a note on stderr says when the bound was hit); --all searches every page."""


@dataclass
class _Found:
    jobs: list[JobView]
    pagination: PaginationMetadata | None = None
    scanned: int = 0
    bound_hit: bool = False
    more: bool = False
    """With a filter: at least one more match exists after these (next --page)."""


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
                raise UsageError(f"unknown status '{item}' (choose from: {', '.join(s.value for s in WorkloadStatus)})")
            wanted.add(status.value)
    return wanted


async def _fetch(ctx: typer.Context, *, limit: int, page: int, all_pages: bool, statuses: set[str] | None) -> _Found:
    async with make_client(ctx) as client:
        if all_pages:
            jobs = [job async for job in client.iter_jobs(page_size=limit if not statuses else MATCH_PAGE_SIZE)]
            return _Found([job for job in jobs if not statuses or job.status in statuses], scanned=len(jobs))
        if not statuses:
            result = await client.list_jobs(limit=limit, page=page)
            return _Found(result.jobs, result.pagination, scanned=len(result.jobs))
        # A filter applies to every page, not just the one fetched: search page after page (newest
        # first) until this --page of matches is full, within a bound.
        skip, scanned = (page - 1) * limit, 0
        matches: list[JobView] = []
        async for job in client.iter_jobs(page_size=MATCH_PAGE_SIZE, max_pages=MAX_MATCH_PAGES):
            scanned += 1
            if job.status in statuses:
                if skip:
                    skip -= 1
                    continue
                if len(matches) == limit:
                    return _Found(matches, scanned=scanned, more=True)
                matches.append(job)
        return _Found(matches, scanned=scanned, bound_hit=scanned >= MAX_MATCH_PAGES * MATCH_PAGE_SIZE)


def _footer(found: _Found, page: int, *, all_pages: bool, statuses: set[str] | None) -> None:
    from perianctl.ui.console import info

    shown = len(found.jobs)
    if not shown:
        what = f"no jobs match --status {','.join(sorted(statuses))}" if statuses else "no jobs"
        if statuses:
            what += f" (searched {found.scanned} job(s)" + (f", page {page} of the matches" if page > 1 else "") + ")"
        elif found.pagination is not None and page > 1:
            what += f" on page {page} (of {found.pagination.total_pages})"
        info(what)
    elif statuses:
        text = f"{shown} matching job(s) · searched {found.scanned} job(s)"
        if found.more:
            text += f" · next: --page {page + 1}"
        info(text)
    elif all_pages or found.pagination is None:
        info(f"{shown} job(s)")
    else:
        pagination = found.pagination
        text = f"page {pagination.current_page}/{pagination.total_pages} · {pagination.total_items} job(s) in total"
        if pagination.next_page:
            text += f" · next: --page {pagination.next_page}"
        info(text)
    if found.bound_hit:
        info(
            f"note: only the newest {found.scanned} jobs ({MAX_MATCH_PAGES} pages) were searched for matches; "
            "--all searches every page"
        )


def _list_local(fmt: OutputFormat, *, limit: int, page: int, all_pages: bool, statuses: set[str] | None) -> None:
    from datetime import UTC, datetime

    from perianctl.journal import open_journal
    from perianctl.ui.console import info, write_out
    from perianctl.ui.output import OutputFormat, emit_data, emit_table

    with open_journal() as journal:
        rows = journal.jobs(
            limit=None if all_pages else limit, offset=0 if all_pages else (page - 1) * limit, statuses=statuses
        )
        total = journal.count(statuses=statuses)

    def stamp(at: float | None) -> str:
        return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if at else "-"

    if fmt in (OutputFormat.json, OutputFormat.yaml):
        emit_data(
            [
                {
                    "id": r.job_id,
                    "profile": r.profile,
                    "api_url": r.api_url,
                    "name": r.name,
                    "image": r.image,
                    "source": r.source,
                    "via": r.via,
                    "submitted_at": stamp(r.submitted_at),
                    "last_status": r.last_status,
                    "last_seen": stamp(r.last_seen),
                }
                for r in rows
            ],
            fmt,
        )
    elif fmt is OutputFormat.name:
        for r in rows:
            write_out(r.job_id)
    elif rows:
        emit_table(
            ("ID", "NAME", "LAST STATUS", "SUBMITTED", "VIA", "PROFILE"),
            [
                [r.job_id, r.name or "-", r.last_status or "-", stamp(r.submitted_at), r.via or "-", r.profile or "-"]
                for r in rows
            ],
        )
    if not rows:
        what = (
            f"no jobs in the journal match --status {','.join(sorted(statuses))}"
            if statuses
            else "no jobs in the journal"
        )
        info(what + (f" on page {page}" if page > 1 and total and not all_pages else ""))
    elif all_pages:
        info(f"{len(rows)} job(s) in the journal")
    else:
        pages = max(1, (total + limit - 1) // limit)
        text = f"page {page}/{pages} · {total} job(s) in the journal"
        if page < pages:
            text += f" · next: --page {page + 1}"
        info(text)
