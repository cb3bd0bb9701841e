"""A status line on stderr while a command waits on the API: never a silent minute.

On a terminal (and without ``-q``/``-v``), a call that has not finished after a second gets a
spinner with the elapsed time and, once the client retries, the reason ("waiting for PERIAN:
ConnectError: connection refused, retrying (12 s)"). The line is transient: it disappears when the
call ends, so it never mixes with data on stdout or with the one ``error:`` line. Piped or in CI
nothing is shown here: there the client's bounded retries end in one error line.

The reason comes from the HTTP client's retry log records (logger ``perianctl.http``), so every
command that goes through ``commands.common.run(..., status=...)`` gets the same line without
knowing about retries.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

SHOW_AFTER = 1.0
"""Seconds a call may take before the status line appears."""


class _RetryWatcher(logging.Handler):
    """Remembers the newest retry reason the HTTP client logs (``perianctl.http``: "retry N of GET
    /job in 0.40s after connection refused") while the status line is up."""

    LOGGER = "perianctl.http"

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.reason: str | None = None
        self.retries = 0

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        if str(record.msg).startswith("retry") and args:
            self.retries += 1
            self.reason = str(args[-1])

    def __enter__(self) -> _RetryWatcher:
        logger = logging.getLogger(self.LOGGER)
        self._previous_level = logger.level
        if not logger.isEnabledFor(logging.INFO):
            logger.setLevel(logging.INFO)  # no handler prints INFO without -v (and -v shows no status)
        logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logger = logging.getLogger(self.LOGGER)
        logger.removeHandler(self)
        logger.setLevel(self._previous_level)


_FORCED_TERMINAL = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")
"""Environment variables that make rich treat a pipe as a terminal."""


def status_wanted() -> bool:
    from perianctl.ui.console import err_console, state

    if state.quiet or state.verbose:  # -v logs each retry itself; a live line would tear them
        return False
    if not sys.stderr.isatty() and not any(os.environ.get(name) for name in _FORCED_TERMINAL):
        return False  # what rich would answer, without importing it (~13 ms of a piped `get`)
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
