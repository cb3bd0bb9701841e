"""stdout for data, stderr for messages; colour that respects ``--no-color``, ``NO_COLOR`` and TTYs.

Rich is imported lazily so machine-readable paths (``-o json``) never pay for it.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from typing import TYPE_CHECKING

from perianctl.redact import scrub
from perianctl.text import one_line

if TYPE_CHECKING:
    from rich.console import Console


class _State:
    no_color: bool = False
    quiet: bool = False
    verbose: int = 0


state = _State()


def configure(*, no_color: bool = False, quiet: bool = False, verbose: int = 0) -> None:
    state.no_color = no_color or bool(os.environ.get("NO_COLOR"))
    state.quiet = quiet
    state.verbose = verbose
    out_console.cache_clear()
    err_console.cache_clear()


def _make(stderr: bool) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    # Piped output must never be cut or wrapped (grep and awk see whole lines): give rich a
    # virtually unlimited width so every column keeps its natural size.
    width = None if tty else 100_000
    return Console(
        file=stream,
        no_color=state.no_color,
        highlight=False,
        soft_wrap=not tty,
        width=width,
        color_system="auto" if not state.no_color else None,
    )


@lru_cache(maxsize=1)
def out_console() -> Console:
    return _make(stderr=False)


@lru_cache(maxsize=1)
def err_console() -> Console:
    return _make(stderr=True)


def _plain(text: str) -> str:
    return scrub(text)


def info(message: str) -> None:
    """A progress/info message on stderr (suppressed by ``-q``)."""
    if not state.quiet:
        err_console().print(_plain(message), markup=False)


def success(message: str) -> None:
    if not state.quiet:
        err_console().print(_plain(message), style="green", markup=False)


def warn(message: str) -> None:
    err_console().print(f"warning: {_plain(message)}", style="yellow", markup=False)


def error(message: str, hint: str | None = None) -> None:
    """One error line (plus an optional hint line) on stderr, without rich for robustness."""
    sys.stderr.write(f"error: {one_line(_plain(message))}\n")
    if hint:
        sys.stderr.write(f"hint: {one_line(_plain(hint))}\n")
    sys.stderr.flush()


def write_out(text: str) -> None:
    """Raw data to stdout (JSON, YAML, ids), scrubbed of known secrets."""
    sys.stdout.write(_plain(text))
    if not text.endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()
