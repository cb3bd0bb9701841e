"""Print a job's logs; --follow polls and prints only what is new, then exits with the job's outcome.

With --connector HOST:PORT (or the 'connector' setting) the lines come from a Flyte connector's
GetTaskLogs stream (every page), and --follow polls GetTaskLogs and GetTask until the task ends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

import typer

from perianctl.commands.common import (
    ConnectorOption,
    IntervalOption,
    LastOption,
    ProtocolOption,
    connector_target,
    make_client,
    output_option,
    resolve_job_ids,
    run,
)

T = TypeVar("T")


def logs(
    ctx: typer.Context,
    job_id: Annotated[str | None, typer.Argument(help="Job id, a unique prefix of one, or @last.", show_default=False)] = None,
    last: bool = LastOption,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new output until the job ends.")] = False,
    tail: Annotated[int | None, typer.Option("--tail", min=0, help="Only the last N lines to start with.")] = None,
    interval: float = IntervalOption,
    output: Annotated[str, output_option("text", "json", about=" (json: NDJSON lines)")] = "text",
    connector: str | None = ConnectorOption,
    protocol: str | None = ProtocolOption,
) -> None:
    from perianctl.errors import UsageError

    if output not in ("text", "json"):
        raise UsageError(f"invalid output format '{output}' (choose: text, json)")
    target = connector_target(ctx, connector, protocol)
    ids = resolve_job_ids(ctx, [job_id] if job_id else None, last=last, api=not target)
    if len(ids) != 1:
        raise UsageError("logs takes exactly one job")
    if target:
        code = run(_logs_via_connector(target, ids[0], follow=follow, tail=tail, interval=interval,
                                       as_json=output == "json"))
    else:
        code = run(_logs(ctx, ids[0], follow=follow, tail=tail, interval=interval, as_json=output == "json"),
                   status=None if follow else "waiting for PERIAN")
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


@dataclass
class _Follow:
    """What the API and the connector log loops share: retries while following, ``--tail`` on the
    first poll, and printing only what is new in the whole log text each poll returns."""

    job_id: str
    follow: bool
    tail: int | None
    interval: float
    as_json: bool
    rewritten_note: str
    printed: str = ""
    first: bool = True
    errors_seen: int = 0
    waiting_said: str | None = None

    def waiting(self, status: str) -> None:
        """With --follow, before the job has written anything: ``waiting for job X (Queued)`` on stderr,
        once per status, so a queued job does not look like a hang."""
        from perianctl.ui.console import info

        if self.follow and not self.printed and status != self.waiting_said:
            self.waiting_said = status
            info(f"waiting for job {self.job_id} ({status}); nothing logged yet")

    async def fetch(self, get: Callable[[], Awaitable[T]]) -> T:
        """``get()``; with --follow, an unavailable server is retried every ``interval`` (with a warning)."""
        import asyncio

        from perianctl.errors import UnavailableError
        from perianctl.ui.console import warn

        while True:
            try:
                return await get()
            except UnavailableError as exc:
                if not self.follow:
                    raise
                self.errors_seen += 1
                warn(f"{exc.message}; retrying")
                await asyncio.sleep(self.interval)

    def show(self, current: str, lines: list[str] | None = None) -> None:
        """Print what ``current`` (the whole log text now) adds to what was printed; on the first call
        with --tail, only its last lines (``lines``: ``current`` split after each line end, if the
        caller has it so already)."""
        from perianctl.ui.console import info

        if self.first and self.tail is not None:
            if lines is None:
                lines = current.splitlines(keepends=True)
            self.emit("".join(lines[-self.tail:]) if self.tail else "")
        else:
            chunk, rewritten = new_output(self.printed, current)
            if rewritten and self.printed:
                info(self.rewritten_note)
            self.emit(chunk)
        self.printed = current
        self.first = False

    def emit(self, text: str) -> None:
        import json
        import sys

        from perianctl.redact import scrub

        if not text:
            return
        if self.as_json:
            for line in text.splitlines():
                sys.stdout.write(json.dumps({"job_id": self.job_id, "line": scrub(line)}) + "\n")
        else:
            sys.stdout.write(scrub(text))
        sys.stdout.flush()


async def _logs(ctx: typer.Context, job_id: str, *, follow: bool, tail: int | None, interval: float,
                as_json: bool) -> int:
    import asyncio
    import sys

    from perianctl.flyte.phase import exit_code_for_status
    from perianctl.perian.status import is_terminal
    from perianctl.ui.console import info

    state = _Follow(job_id, follow=follow, tail=tail, interval=interval, as_json=as_json,
                    rewritten_note="-- the server rewrote the log text; printing it again --")
    async with make_client(ctx) as client:
        while True:
            job = await state.fetch(lambda: client.get_job(job_id))
            state.show(job.logs or "")
            if not is_terminal(job.status):
                state.waiting(job.status)
            if not follow or is_terminal(job.status):
                if state.printed and not state.printed.endswith("\n") and not as_json:
                    sys.stdout.write("\n")
                if follow:
                    errors = state.errors_seen
                    info(f"job {job_id} finished: {job.status}" + (f" ({errors} transient API errors)" if errors else ""))
                    code = exit_code_for_status(job.status)
                    return int(code) if code is not None else 0
                return 0
            await asyncio.sleep(interval)


async def _logs_via_connector(target: str, job_id: str, *, follow: bool, tail: int | None, interval: float,
                              as_json: bool) -> int:
    """GetTaskLogs (all pages) as text; with ``follow``, again until GetTask says the task ended."""
    import asyncio

    from perianctl.connector.grpc_client import TaskStatus, get_via_connector, logs_via_connector
    from perianctl.ui.console import info

    state = _Follow(job_id, follow=follow, tail=tail, interval=interval, as_json=as_json,
                    rewritten_note="-- the connector sent different log text; printing it again --")

    async def poll() -> tuple[TaskStatus | None, list[str]]:
        # The status first: logs read after a terminal status are complete.
        status = await get_via_connector(target, job_id) if follow else None
        return status, await logs_via_connector(target, job_id)

    while True:
        status, lines = await state.fetch(poll)
        with_ends = [line + "\n" for line in lines]
        state.show("".join(with_ends), with_ends)
        if status is None:
            return 0
        if not status.terminal:
            state.waiting(status.perian_status or status.phase_name)
        if status.terminal:
            info(f"job {job_id} finished: {status.phase_name}" + (f" ({status.message})" if status.message else ""))
            return status.exit_code or 0
        await asyncio.sleep(interval)
