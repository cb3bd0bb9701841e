"""Cancel jobs (idempotent): an already finished job is reported, not an error (unless --strict).

With --connector HOST:PORT (or the 'connector' setting) the cancel is a DeleteTask sent to a Flyte
connector, as flytepropeller sends it on abort; the connector treats finished or unknown jobs as
done, so this always succeeds when the connector answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from perianctl.commands.common import (
    ConnectorOption,
    LastOption,
    ProtocolOption,
    connector_target,
    options,
    output_option,
    resolve_job_ids,
    run,
    stdin_is_tty,
    warn_unreadable,
)

if TYPE_CHECKING:
    from perianctl.jobs.operations import CancelOutcome
    from perianctl.ui.output import OutputFormat


def delete(
    ctx: typer.Context,
    job_ids: Annotated[
        list[str] | None, typer.Argument(help="Job ids, unique prefixes of them, or @last.", show_default=False)
    ] = None,
    last: bool = LastOption,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Fail (exit 1) if a job had already finished.")] = False,
    ignore_not_found: Annotated[
        bool, typer.Option("--ignore-not-found", help="Treat unknown job ids as already gone (exit 0).")
    ] = False,
    output: Annotated[
        str | None,
        output_option(
            "json",
            "yaml",
            "name",
            about=": each job's outcome on stdout (default: one message per job on stderr)",
        ),
    ] = None,
    connector: str | None = ConnectorOption,
    protocol: str | None = ProtocolOption,
) -> None:
    from perianctl.errors import ExitCode, NotFoundError, PerianctlError, UsageError
    from perianctl.ui.output import OutputFormat, parse_format

    # Only what delete prints: no table (the outcome is one message per job), so no table/wide.
    fmt = parse_format(output, allowed=(OutputFormat.json, OutputFormat.yaml, OutputFormat.name)) if output else None
    target = connector_target(ctx, connector, protocol)
    ids = resolve_job_ids(ctx, job_ids, last=last, api=not target)
    if target and strict:
        raise UsageError(
            "--strict cannot be used with --connector: DeleteTask does not say whether the job had already finished"
        )
    if not yes:
        if not stdin_is_tty():
            raise UsageError(
                f"refusing to cancel {len(ids)} job(s) without confirmation: stdin is not a terminal",
                hint="pass --yes to cancel non-interactively",
            )
        noun = ids[0] if len(ids) == 1 else f"{len(ids)} jobs"
        if not typer.confirm(f"Cancel {noun}?", default=False, err=True):
            from perianctl.errors import DeclinedError

            raise DeclinedError(
                f"not confirmed: nothing was cancelled ({noun} keeps running)"
                if len(ids) == 1
                else f"not confirmed: none of the {noun} was cancelled"
            )
    from perianctl.jobs.operations import cancel_jobs

    outcomes = run(
        cancel_jobs(options(ctx).settings(), ids, connector=target, on_unreadable=warn_unreadable),
        status=f"waiting for connector {target}" if target else "waiting for PERIAN",
    )
    _report(outcomes, fmt)
    for outcome in outcomes:
        if outcome.result == "error":
            failure = PerianctlError(f"job {outcome.job_id}: {outcome.message}")
            failure.exit_code = ExitCode(outcome.exit_code or ExitCode.ERROR)
            raise failure
    for outcome in outcomes:
        if outcome.result == "not_found" and not ignore_not_found:
            raise NotFoundError(f"job {outcome.job_id} not found", hint="--ignore-not-found treats it as gone")
    if strict and any(o.result == "already_done" for o in outcomes):
        raise PerianctlError("some jobs had already finished (--strict)")


def _report(outcomes: list[CancelOutcome], fmt: OutputFormat | None) -> None:
    from perianctl.ui.console import info, write_out
    from perianctl.ui.output import OutputFormat, emit_data

    if fmt in (OutputFormat.json, OutputFormat.yaml):
        emit_data([{"id": o.job_id, "result": o.result, "message": o.message} for o in outcomes], fmt)
        return
    for outcome in outcomes:
        if outcome.result == "cancelled":
            if fmt is OutputFormat.name:
                write_out(outcome.job_id)
            info(f"job {outcome.job_id}: cancel requested")
        elif outcome.result == "already_done":
            info(f"job {outcome.job_id}: already finished; nothing to cancel")
        elif outcome.result == "delete_sent":
            if fmt is OutputFormat.name:
                write_out(outcome.job_id)
            info(f"job {outcome.job_id}: {outcome.message} (cancelled if it was still running)")
