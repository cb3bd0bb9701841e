"""A status line on stderr while a command waits on the API: never a silent minute.

On a terminal (and without ``-q``/``-v``), a call that has not finished after a second gets a
spinner with the elapsed time and, once the client retries, the reason ("waiting for PERIAN:
ConnectError: connection refused, retrying (12 s)"). The line is transient: it disappears when the
call ends, so it never mixes with data on stdout or with the one ``error:`` line. Piped or in CI
nothing is shown here: there the client's bounded retries end in one error line.

The reason comes from the HTTP client's retry hooks (stamina), so every command that goes through
``commands.common.run(..., status=...)`` gets the same line without knowing about retries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

SHOW_AFTER = 1.0
"""Seconds a call may take before the status line appears."""


def describe_retry_cause(exc: BaseException | None) -> str:
    """``connection refused``, ``read timeout``, ``HTTP 503``: what made the client retry."""
    if exc is None:
        return "no answer yet"
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        return f"HTTP {status}"
    text = str(exc).strip()
    if "refused" in text.lower():
        return "connection refused"
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


class _RetryWatcher:
    """Remembers the newest retry reason while installed as a stamina on-retry hook."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.retries = 0

    def __call__(self, details: Any) -> None:
        self.retries += 1
        self.reason = describe_retry_cause(getattr(details, "caused_by", None))

    def __enter__(self) -> _RetryWatcher:
        try:
            import stamina.instrumentation as instrumentation

            self._previous = instrumentation.get_on_retry_hooks()
            instrumentation.set_on_retry_hooks([*self._previous, self])
            self._instrumentation: Any = instrumentation
        except Exception:  # no stamina, or another API: the line just has no reason
            self._instrumentation = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._instrumentation is not None:
            self._instrumentation.set_on_retry_hooks(list(self._previous))


def status_wanted() -> bool:
    from perianctl.ui.console import err_console, state

    if state.quiet or state.verbose:  # -v logs each retry itself; a live line would tear them
        return False
    console = err_console()
    return bool(console.is_terminal and not console.is_dumb_terminal)


async def with_status(coro: Coroutine[Any, Any, T], what: str, *, show_after: float = SHOW_AFTER) -> T:
    """Await ``coro``; after ``show_after`` seconds show ``what`` with the elapsed time and reason."""
    if not status_wanted():
        return await coro
    from perianctl.ui.console import err_console

    task = asyncio.ensure_future(coro)
    started = time.monotonic()
    status: Any = None
    with _RetryWatcher() as watcher:
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=show_after if status is None else 0.5)
                if done:
                    return task.result()
                elapsed = time.monotonic() - started
                text = f"{what} ({elapsed:.0f} s)"
                if watcher.reason:
                    text = f"{what}: {watcher.reason}, retrying ({elapsed:.0f} s)"
                if status is None:
                    status = err_console().status(text, spinner="dots")
                    status.start()
                else:
                    status.update(text)
        finally:
            if status is not None:
                status.stop()
            if not task.done():
                task.cancel()
