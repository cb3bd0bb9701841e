"""Print a job's logs; --follow polls and prints only what is new, then exits with the job's outcome.

With --connector HOST:PORT (or the 'connector' setting) the lines come from a Flyte connector's
GetTaskLogs stream (every page), and --follow polls GetTaskLogs and GetTask until the task ends.
"""

from __future__ import annotations

from typing import Annotated

import typer

from perianctl.commands.common import ConnectorOption, LastOption, connector_target, make_client, resolve_job_ids, run


def logs(
    ctx: typer.Context,
    job_id: Annotated[str | None, typer.Argument(help="Job id (or @last).", show_default=False)] = None,
    last: bool = LastOption,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new output until the job ends.")] = False,
    tail: Annotated[int | None, typer.Option("--tail", min=0, help="Only the last N lines to start with.")] = None,
    interval: Annotated[float, typer.Option("--interval", min=0.1, help="Seconds between polls with --follow.")] = 2.0,
    output: Annotated[str, typer.Option("--output", "-o", help="text or json (NDJSON lines).")] = "text",
    connector: str | None = ConnectorOption,
) -> None:
    from perianctl.errors import UsageError

    if output not in ("text", "json"):
        raise UsageError(f"invalid output format '{output}' (choose: text, json)")
    ids = resolve_job_ids(ctx, [job_id] if job_id else None, last=last)
    if len(ids) != 1:
        raise UsageError("logs takes exactly one job")
    target = connector_target(ctx, connector)
    if target:
        code = run(_logs_via_connector(target, ids[0], follow=follow, tail=tail, interval=interval,
                                       as_json=output == "json"))
    else:
        code = run(_logs(ctx, ids[0], follow=follow, tail=tail, interval=interval, as_json=output == "json"))
    if code:
        raise typer.Exit(code)


def new_output(previous: str, current: str) -> tuple[str, bool]:
    """What to print given the logs seen before and now: ``(text, rewritten)``.

    PERIAN has no log stream, only the whole text on each poll. Normally ``current`` extends
    ``previous``; if the server truncated or rotated the text we find the longest tail of what we
    printed inside the new text and continue after it, and only if that fails do we print it all
    again (``rewritten=True`` so the caller can say so).
    """
    if current.startswith(previous):
        return current[len(previous):], False
    for size in (4096, 1024, 256, 64):
        anchor = previous[-size:]
        if len(anchor) >= 16:
            index = current.rfind(anchor)
            if index >= 0:
                return current[index + len(anchor):], False
    return current, True


async def _logs(ctx: typer.Context, job_id: str, *, follow: bool, tail: int | None, interval: float,
                as_json: bool) -> int:
    import asyncio
    import json
    import sys

    from perianctl.errors import UnavailableError
    from perianctl.flyte.phase import exit_code_for_status
    from perianctl.perian.status import is_terminal
    from perianctl.redact import scrub
    from perianctl.ui.console import info, warn

    def emit(text: str) -> None:
        if not text:
            return
        if as_json:
            for line in text.splitlines():
                sys.stdout.write(json.dumps({"job_id": job_id, "line": scrub(line)}) + "\n")
        else:
            sys.stdout.write(scrub(text))
        sys.stdout.flush()

    printed = ""
    first = True
    errors_seen = 0
    async with make_client(ctx) as client:
        while True:
            try:
                job = await client.get_job(job_id)
            except UnavailableError as exc:
                if not follow:
                    raise
                errors_seen += 1
                warn(f"{exc.message}; retrying")
                await asyncio.sleep(interval)
                continue
            current = job.logs or ""
            if first and tail is not None:
                lines = current.splitlines(keepends=True)
                emit("".join(lines[-tail:]) if tail else "")
                printed = current
            else:
                chunk, rewritten = new_output(printed, current)
                if rewritten and printed:
                    info("-- the server rewrote the log text; printing it again --")
                emit(chunk)
                printed = current
            first = False
            if not follow or is_terminal(job.status):
                if printed and not printed.endswith("\n") and not as_json:
                    sys.stdout.write("\n")
                if follow:
                    info(f"job {job_id} finished: {job.status}" + (f" ({errors_seen} transient API errors)" if errors_seen else ""))
                    code = exit_code_for_status(job.status)
                    return int(code) if code is not None else 0
                return 0
            await asyncio.sleep(interval)


async def _logs_via_connector(target: str, job_id: str, *, follow: bool, tail: int | None, interval: float,
                              as_json: bool) -> int:
    """GetTaskLogs (all pages) as text; with ``follow``, again until GetTask says the task ended."""
    import asyncio
    import json
    import sys

    from perianctl.errors import UnavailableError
    from perianctl.flyte.grpc_client import get_via_connector, logs_via_connector
    from perianctl.redact import scrub
    from perianctl.ui.console import info, warn

    def emit(text: str) -> None:
        if not text:
            return
        if as_json:
            for line in text.splitlines():
                sys.stdout.write(json.dumps({"job_id": job_id, "line": scrub(line)}) + "\n")
        else:
            sys.stdout.write(scrub(text))
        sys.stdout.flush()

    printed = ""
    first = True
    while True:
        try:
            # The status first: logs read after a terminal status are complete.
            status = await get_via_connector(target, job_id) if follow else None
            lines = await logs_via_connector(target, job_id)
        except UnavailableError as exc:
            if not follow:
                raise
            warn(f"{exc.message}; retrying")
            await asyncio.sleep(interval)
            continue
        current = "".join(line + "\n" for line in lines)
        if first and tail is not None:
            emit("".join(line + "\n" for line in lines[-tail:]) if tail else "")
        else:
            chunk, rewritten = new_output(printed, current)
            if rewritten and printed:
                info("-- the connector sent different log text; printing it again --")
            emit(chunk)
        printed = current
        first = False
        if status is None:
            return 0
        if status.terminal:
            info(f"job {job_id} finished: {status.phase_name}" + (f" ({status.message})" if status.message else ""))
            return status.exit_code or 0
        await asyncio.sleep(interval)
