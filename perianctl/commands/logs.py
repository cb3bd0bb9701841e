"""Print a job's logs; --follow polls and prints only what is new, then exits with the job's outcome."""

from __future__ import annotations

from typing import Annotated

import typer

from perianctl.commands.common import LastOption, make_client, resolve_job_ids, run


def logs(
    ctx: typer.Context,
    job_id: Annotated[str | None, typer.Argument(help="Job id (or @last).", show_default=False)] = None,
    last: bool = LastOption,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new output until the job ends.")] = False,
    tail: Annotated[int | None, typer.Option("--tail", min=0, help="Only the last N lines to start with.")] = None,
    interval: Annotated[float, typer.Option("--interval", min=0.1, help="Seconds between polls with --follow.")] = 2.0,
    output: Annotated[str, typer.Option("--output", "-o", help="text or json (NDJSON lines).")] = "text",
) -> None:
    from perianctl.errors import UsageError

    if output not in ("text", "json"):
        raise UsageError(f"invalid output format '{output}' (choose: text, json)")
    ids = resolve_job_ids(ctx, [job_id] if job_id else None, last=last)
    if len(ids) != 1:
        raise UsageError("logs takes exactly one job")
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
