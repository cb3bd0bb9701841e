"""``logs [--follow]``: a job's output through either backend, printing only what is new.

PERIAN has no log stream, only the whole text with each job; a connector's GetTaskLogs sends it
as pages of lines. Either way :func:`read_logs` gets the whole text on each poll (and, following,
the job's status *before* it, so logs read after a terminal status are complete) and hands the
sink only what it adds (:func:`new_output`). With ``follow``, an unavailable source is retried
every ``interval`` with a warning, and the return value is the job's exit code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from perianctl.errors import UnavailableError
from perianctl.flyte.phase import exit_code_for_status
from perianctl.jobs.backend import JobBackend, connector_answer, open_backend
from perianctl.perian.status import is_terminal

if TYPE_CHECKING:
    from perianctl.config import Settings
    from perianctl.perian.models import JobView


class LogSink(Protocol):
    def text(self, chunk: str) -> None:
        """New output (never empty)."""

    def note(self, message: str) -> None:
        """A progress message (``waiting for job X``, ``job X finished: Done``)."""

    def retrying(self, message: str) -> None:
        """The source did not answer; the poll is tried again."""


def new_output(previous: str, current: str) -> tuple[str, bool]:
    """What to print given the logs seen before and now: ``(text, rewritten)``.

    PERIAN has no log stream, only the whole text on each poll. Normally ``current`` extends
    ``previous``; if the server truncated or rotated the text we find the longest tail of what we
    printed inside the new text and continue after it, and only if that fails do we print it all
    again (``rewritten=True`` so the caller can say so).
    """
    if current.startswith(previous):
        return current[len(previous) :], False
    for size in (4096, 1024, 256, 64):
        anchor = previous[-size:]
        if len(anchor) >= 16:
            index = current.rfind(anchor)
            if index >= 0:
                return current[index + len(anchor) :], False
    return current, True


@dataclass
class _State:
    job_id: str
    follow: bool
    tail: int | None
    sink: LogSink
    rewritten_note: str
    printed: str = ""
    first: bool = True
    errors_seen: int = 0
    waiting_said: str | None = None

    def waiting(self, status: str) -> None:
        """With --follow, before the job has written anything: ``waiting for job X (Queued)``, once per
        status, so a queued job does not look like a hang."""
        if self.follow and not self.printed and status != self.waiting_said:
            self.waiting_said = status
            self.sink.note(f"waiting for job {self.job_id} ({status}); nothing logged yet")

    def show(self, current: str) -> None:
        if self.first and self.tail is not None:
            lines = current.splitlines(keepends=True)
            self._emit("".join(lines[-self.tail :]) if self.tail else "")
        else:
            chunk, rewritten = new_output(self.printed, current)
            if rewritten and self.printed:
                self.sink.note(self.rewritten_note)
            self._emit(chunk)
        self.printed = current
        self.first = False

    def _emit(self, text: str) -> None:
        if text:
            self.sink.text(text)


async def read_logs(
    settings: Settings,
    job_id: str,
    *,
    connector: str | None,
    follow: bool,
    tail: int | None,
    interval: float,
    sink: LogSink,
    on_unreadable: Callable[[str, Any], None] | None = None,
) -> int:
    """Print the job's logs to ``sink`` (with ``follow``, until it ends); returns the exit code: 0
    without ``follow``, else the job's outcome (0 done, 3 failed, 4 cancelled, 5 timed out)."""
    async with open_backend(settings, connector=connector, on_unreadable=on_unreadable) as backend:
        return await _read(backend, job_id, follow=follow, tail=tail, interval=interval, sink=sink)


async def _read(
    backend: JobBackend, job_id: str, *, follow: bool, tail: int | None, interval: float, sink: LogSink
) -> int:
    note = (
        "-- the connector sent different log text; printing it again --"
        if backend.kind == "connector"
        else "-- the server rewrote the log text; printing it again --"
    )
    state = _State(job_id, follow, tail, sink, note)
    while True:
        job, text = await _fetch(state, backend, interval)
        state.show(text)
        if job is None:
            return 0
        terminal = is_terminal(job.status)
        if not terminal:
            state.waiting(_shown_status(job))
        else:
            sink.note(_finished(job, state.errors_seen))
            code = exit_code_for_status(job.status)
            return int(code) if code is not None else 0
        await asyncio.sleep(interval)


async def _fetch(state: _State, backend: JobBackend, interval: float) -> tuple[JobView | None, str]:
    while True:
        try:
            return await backend.job_logs(state.job_id, with_status=state.follow)
        except UnavailableError as exc:
            if not state.follow:
                raise
            state.errors_seen += 1
            state.sink.retrying(f"{exc.message}; retrying")
            await asyncio.sleep(interval)


def _shown_status(job: JobView) -> str:
    answer = connector_answer(job)
    if answer is not None and answer.get("derived"):
        return str(answer.get("phase"))
    return job.status


def _finished(job: JobView, errors: int) -> str:
    answer = connector_answer(job)
    if answer is not None:  # through a connector: its phase and message, as propeller sees them
        message = answer.get("message") or ""
        return f"job {job.id} finished: {answer.get('phase')}" + (f" ({message})" if message else "")
    return f"job {job.id} finished: {job.status}" + (f" ({errors} transient API errors)" if errors else "")
