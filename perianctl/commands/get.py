"""Show jobs: PERIAN status, Flyte phase, image, instance, times, price, error (--history: transitions).

With --connector HOST:PORT (or the 'connector' setting) each job is asked through a Flyte connector's
GetTask, exactly as flytepropeller asks it: the Flyte phase, message, log links and custom_info.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from perianctl.commands.common import (
    ConnectorOption,
    LastOption,
    OutputOption,
    ProtocolOption,
    connector_target,
    make_client,
    options,
    resolve_job_ids,
    run,
)

if TYPE_CHECKING:
    from perianctl.connector.grpc_client import TaskStatus
    from perianctl.errors import PerianctlError
    from perianctl.perian.models import JobView
    from perianctl.ui.output import OutputFormat


def get(
    ctx: typer.Context,
    job_ids: Annotated[list[str] | None, typer.Argument(help="Job ids, unique prefixes of them, or @last.", show_default=False)] = None,
    last: bool = LastOption,
    history: Annotated[bool, typer.Option("--history", help="Show observed status transitions.")] = False,
    output: str = OutputOption,
    connector: str | None = ConnectorOption,
    protocol: str | None = ProtocolOption,
) -> None:
    from perianctl.ui.console import error
    from perianctl.ui.output import parse_format

    fmt = parse_format(output)
    target = connector_target(ctx, connector, protocol)
    ids = resolve_job_ids(ctx, job_ids, last=last, api=not target)
    failures: list[PerianctlError]
    if target:
        statuses, failures = _fetch_via_connector(target, ids)
        _record_connector_observations(statuses)
        if history:
            _show_history(ids, fmt)
        elif statuses or not failures:  # nothing on stdout when every id failed (no "[]" beside an error)
            show_task_statuses(statuses, fmt, single=len(ids) == 1)
    else:
        jobs, failures = run(_fetch(ctx, ids), status="waiting for PERIAN")
        record_observations(ctx, jobs)
        if history:
            _show_history(ids, fmt)
        elif jobs or not failures:
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


def _fetch_via_connector(target: str, ids: list[str]) -> tuple[list[TaskStatus], list[PerianctlError]]:
    from dataclasses import replace

    from perianctl.connector.grpc_client import TaskStatus, get_many_via_connector
    from perianctl.errors import PerianctlError
    from perianctl.journal import open_journal

    prefixes: dict[str, str] = {}
    try:  # the output prefix lets the connector report a failed task's error.pb message
        with open_journal() as journal:
            for job_id in ids:
                record = journal.get(job_id)
                if record is not None and record.output_prefix:
                    prefixes[job_id] = record.output_prefix
    except PerianctlError:
        pass
    results = run(get_many_via_connector(target, ids, output_prefixes=prefixes), status=f"waiting for connector {target}")
    statuses: list[TaskStatus] = []
    failures: list[PerianctlError] = []
    for job_id, result in zip(ids, results, strict=True):
        if isinstance(result, TaskStatus):
            statuses.append(result if result.job_id else replace(result, job_id=job_id))
        else:
            failures.append(result)
    return statuses, failures


def _record_connector_observations(statuses: list[TaskStatus]) -> None:
    """Connector answers go into the journal too (when they name PERIAN's status), for --history."""
    from perianctl.errors import PerianctlError
    from perianctl.journal import Observation, open_journal

    observations = [Observation(s.job_id, s.perian_status, s.phase_name, s.message)
                    for s in statuses if s.job_id and s.perian_status]
    if not observations:
        return
    try:
        with open_journal() as journal:
            journal.observe_many(observations)
    except PerianctlError:
        pass


def task_status_record(status: TaskStatus) -> dict[str, object]:
    """What ``get --connector -o json`` prints for one GetTask answer."""
    return {
        "id": status.job_id,
        "phase": status.phase_name,
        "status": status.perian_status,
        "message": status.message,
        "log_links": [{"name": link.name, "uri": link.uri} for link in status.log_links],
        "custom_info": status.custom_info,
    }


def show_task_statuses(statuses: list[TaskStatus], fmt: OutputFormat, *, single: bool) -> None:
    from perianctl.ui.console import write_out
    from perianctl.ui.jobs import cost_record_text
    from perianctl.ui.output import OutputFormat, emit_data, emit_table

    if fmt in (OutputFormat.json, OutputFormat.yaml):
        records = [task_status_record(s) for s in statuses]
        emit_data(records[0] if single and records else records, fmt)
    elif fmt is OutputFormat.name:
        for status in statuses:
            write_out(status.job_id or "")
    elif statuses:
        wide = fmt is OutputFormat.wide
        columns = ["ID", "PHASE", "STATUS", "MESSAGE"]
        if wide:
            columns += ["INSTANCE", "STARTED", "DONE", "COST", "LOG"]
        rows = []
        for s in statuses:
            row = [s.job_id or "-", s.phase_name, s.perian_status or "-", s.message or ""]
            if wide:
                info = s.custom_info
                row += [str(info.get("instance_type_id") or "-"), str(info.get("started_at") or "-"),
                        str(info.get("done_at") or "-"), cost_record_text(info.get("cost")),
                        s.log_links[0].uri if s.log_links else "-"]
            rows.append(row)
        emit_table(columns, rows)


def record_observations(ctx: typer.Context, jobs: list[JobView]) -> None:
    """Every status we see goes into the journal, so ``--history`` fills up as people look."""
    from perianctl.flyte.phase import status_to_phase
    from perianctl.journal import Observation, open_journal_best_effort

    if not jobs:
        return
    observations = []
    for job in jobs:
        if job.id:
            info = status_to_phase(job.status, errors=job.errors)
            observations.append(Observation(job.id, job.status, info.phase.name, info.message))
    with open_journal_best_effort() as journal:
        if journal is not None:
            journal.observe_many(observations, api_url=options(ctx).settings().api_url)


def show_jobs(jobs: list[JobView], fmt: OutputFormat, *, single: bool) -> None:
    from perianctl.ui.console import write_out
    from perianctl.ui.jobs import TABLE_COLUMNS, TABLE_FIT, WIDE_COLUMNS, WIDE_FIT, job_record, job_row
    from perianctl.ui.output import OutputFormat, emit_data, emit_table

    if fmt in (OutputFormat.json, OutputFormat.yaml):
        records = [job_record(job) for job in jobs]
        emit_data(records[0] if single and records else records, fmt)
    elif fmt is OutputFormat.name:
        for job in jobs:
            write_out(job.id or "")
    elif jobs:
        wide = fmt is OutputFormat.wide
        emit_table(WIDE_COLUMNS if wide else TABLE_COLUMNS, [job_row(job, wide=wide) for job in jobs],
                   fit=WIDE_FIT if wide else TABLE_FIT)


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
