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
    options,
    resolve_job_ids,
    run,
    warn_unreadable,
)

if TYPE_CHECKING:
    from perianctl.ui.output import OutputFormat


def get(
    ctx: typer.Context,
    job_ids: Annotated[
        list[str] | None, typer.Argument(help="Job ids, unique prefixes of them, or @last.", show_default=False)
    ] = None,
    last: bool = LastOption,
    history: Annotated[bool, typer.Option("--history", help="Show observed status transitions.")] = False,
    output: str = OutputOption,
    connector: str | None = ConnectorOption,
    protocol: str | None = ProtocolOption,
) -> None:
    from perianctl.jobs.operations import get_jobs
    from perianctl.ui.console import error, warn
    from perianctl.ui.jobs import show_jobs
    from perianctl.ui.output import parse_format

    fmt = parse_format(output)
    target = connector_target(ctx, connector, protocol)
    ids = resolve_job_ids(ctx, job_ids, last=last, api=not target)
    fetched = run(
        get_jobs(options(ctx).settings(), ids, connector=target, warn=warn, on_unreadable=warn_unreadable),
        status=f"waiting for connector {target}" if target else "waiting for PERIAN",
    )
    if history:
        _show_history(ids, fmt)
    elif fetched.jobs or not fetched.failures:  # nothing on stdout when every id failed (no "[]" beside an error)
        show_jobs(fetched.jobs, fmt, single=len(ids) == 1)
    if fetched.failures:
        for exc in fetched.failures[:-1]:
            error(exc.message)
        raise fetched.failures[-1]


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
            [
                {"job_id": t.job_id, "at": stamp(t.at), "status": t.status, "phase": t.phase, "message": t.message}
                for t in rows
            ],
            fmt,
        )
        return
    emit_table(
        ("JOB", "TIME", "STATUS", "PHASE", "MESSAGE"),
        [[t.job_id, stamp(t.at), t.status, t.phase or "-", t.message or ""] for t in rows],
    )
