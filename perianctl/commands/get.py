"""Show jobs: PERIAN status, Flyte phase, image, instance, times, price, error (--history: transitions)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from perianctl.commands.common import LastOption, OutputOption, make_client, options, resolve_job_ids, run

if TYPE_CHECKING:
    from perianctl.errors import PerianctlError
    from perianctl.perian.models import JobView
    from perianctl.ui.output import OutputFormat


def get(
    ctx: typer.Context,
    job_ids: Annotated[list[str] | None, typer.Argument(help="Job ids (or @last).", show_default=False)] = None,
    last: bool = LastOption,
    history: Annotated[bool, typer.Option("--history", help="Show observed status transitions.")] = False,
    output: str = OutputOption,
) -> None:
    from perianctl.ui.console import error
    from perianctl.ui.output import parse_format

    fmt = parse_format(output)
    ids = resolve_job_ids(ctx, job_ids, last=last)
    jobs, failures = run(_fetch(ctx, ids))
    record_observations(ctx, jobs)
    if history:
        _show_history(ids, fmt)
    else:
        show_jobs(jobs, fmt, single=len(ids) == 1)
    if failures:
        for exc in failures[:-1]:
            error(exc.message)
        raise failures[-1]


async def _fetch(ctx: typer.Context, ids: list[str]) -> tuple[list[JobView], list[PerianctlError]]:
    import asyncio

    from perianctl.errors import PerianctlError

    async with make_client(ctx) as client:
        results = await asyncio.gather(*(client.get_job(job_id) for job_id in ids), return_exceptions=True)
    jobs: list[JobView] = []
    failures: list[PerianctlError] = []
    for result in results:
        if isinstance(result, PerianctlError):
            failures.append(result)
        elif isinstance(result, BaseException):
            raise result
        else:
            jobs.append(result)
    return jobs, failures


def record_observations(ctx: typer.Context, jobs: list[JobView]) -> None:
    """Every status we see goes into the journal, so ``--history`` fills up as people look."""
    from perianctl.flyte.phase import status_to_phase
    from perianctl.journal import Observation, open_journal

    if not jobs:
        return
    observations = []
    for job in jobs:
        if job.id:
            info = status_to_phase(job.status, errors=job.errors)
            observations.append(Observation(job.id, job.status, info.phase.name, info.message))
    with open_journal() as journal:
        journal.observe_many(observations, api_url=options(ctx).settings().api_url)


def show_jobs(jobs: list[JobView], fmt: OutputFormat, *, single: bool) -> None:
    from perianctl.ui.console import write_out
    from perianctl.ui.jobs import TABLE_COLUMNS, WIDE_COLUMNS, job_record, job_row
    from perianctl.ui.output import OutputFormat, emit_data, emit_table

    if fmt in (OutputFormat.json, OutputFormat.yaml):
        records = [job_record(job) for job in jobs]
        emit_data(records[0] if single and records else records, fmt)
    elif fmt is OutputFormat.name:
        for job in jobs:
            write_out(job.id or "")
    elif jobs:
        wide = fmt is OutputFormat.wide
        emit_table(WIDE_COLUMNS if wide else TABLE_COLUMNS, [job_row(job, wide=wide) for job in jobs])


def _show_history(ids: list[str], fmt: OutputFormat) -> None:
    from datetime import UTC, datetime

    from perianctl.journal import open_journal
    from perianctl.ui.output import OutputFormat, emit_data, emit_table

    with open_journal() as journal:
        rows = [t for job_id in ids for t in journal.history(job_id)]

    def stamp(at: float) -> str:
        return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    if fmt in (OutputFormat.json, OutputFormat.yaml):
        emit_data(
            [{"job_id": t.job_id, "at": stamp(t.at), "status": t.status, "phase": t.phase, "message": t.message}
             for t in rows],
            fmt,
        )
        return
    emit_table(
        ("JOB", "TIME", "STATUS", "PHASE", "MESSAGE"),
        [[t.job_id, stamp(t.at), t.status, t.phase or "-", t.message or ""] for t in rows],
    )
