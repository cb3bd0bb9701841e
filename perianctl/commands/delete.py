"""Cancel jobs (idempotent): an already finished job is reported, not an error (unless --strict)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer

from perianctl.commands.common import LastOption, OutputOption, make_client, resolve_job_ids, run, stdin_is_tty


@dataclass
class _Outcome:
    job_id: str
    result: str  # cancelled | already_done | not_found | error
    message: str


def delete(
    ctx: typer.Context,
    job_ids: Annotated[list[str] | None, typer.Argument(help="Job ids (or @last).", show_default=False)] = None,
    last: bool = LastOption,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Fail (exit 1) if a job had already finished.")] = False,
    ignore_not_found: Annotated[
        bool, typer.Option("--ignore-not-found", help="Treat unknown job ids as already gone (exit 0).")
    ] = False,
    output: str = OutputOption,
) -> None:
    from perianctl.errors import ExitCode, NotFoundError, PerianctlError, UsageError
    from perianctl.ui.output import parse_format

    fmt = parse_format(output)
    ids = resolve_job_ids(ctx, job_ids, last=last)
    if not yes:
        if not stdin_is_tty():
            raise UsageError(
                f"refusing to cancel {len(ids)} job(s) without confirmation: stdin is not a terminal",
                hint="pass --yes to cancel non-interactively",
            )
        noun = ids[0] if len(ids) == 1 else f"{len(ids)} jobs"
        if not typer.confirm(f"Cancel {noun}?", default=False, err=True):
            raise typer.Exit(int(ExitCode.ERROR))
    outcomes = run(_cancel_all(ctx, ids))
    _report(outcomes, fmt)
    for outcome in outcomes:
        if outcome.result == "error":
            raise PerianctlError(f"job {outcome.job_id}: {outcome.message}")
    for outcome in outcomes:
        if outcome.result == "not_found" and not ignore_not_found:
            raise NotFoundError(f"job {outcome.job_id} not found", hint="--ignore-not-found treats it as gone")
    if strict and any(o.result == "already_done" for o in outcomes):
        raise PerianctlError("some jobs had already finished (--strict)")


async def _cancel_all(ctx: typer.Context, ids: list[str]) -> list[_Outcome]:
    import asyncio

    async with make_client(ctx) as client:
        return list(await asyncio.gather(*(_cancel_one(client, job_id) for job_id in ids)))


async def _cancel_one(client: object, job_id: str) -> _Outcome:
    from perianctl.errors import NotFoundError, PerianctlError
    from perianctl.perian.client import PerianClient

    assert isinstance(client, PerianClient)
    try:
        result = await client.cancel_job(job_id)
    except NotFoundError:
        return _Outcome(job_id, "not_found", "no such job")
    except PerianctlError as exc:
        return _Outcome(job_id, "error", exc.message)
    if result.already_done:
        return _Outcome(job_id, "already_done", "already finished; nothing to cancel")
    return _Outcome(job_id, "cancelled", "cancel requested")


def _report(outcomes: list[_Outcome], fmt: object) -> None:
    from perianctl.ui.console import info, write_out
    from perianctl.ui.output import OutputFormat, emit_data

    if fmt in (OutputFormat.json, OutputFormat.yaml):
        assert isinstance(fmt, OutputFormat)
        emit_data([{"id": o.job_id, "result": o.result, "message": o.message} for o in outcomes], fmt)
        return
    for outcome in outcomes:
        if outcome.result == "cancelled":
            if fmt is OutputFormat.name:
                write_out(outcome.job_id)
            info(f"job {outcome.job_id}: cancel requested")
        elif outcome.result == "already_done":
            info(f"job {outcome.job_id}: already finished; nothing to cancel")
