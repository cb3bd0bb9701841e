"""stdout for data, stderr for messages; colour that respects ``--no-color``, ``NO_COLOR`` and TTYs.

Rich is imported lazily so machine-readable paths (``-o json``) never pay for it.
"""

from __future__ import annotations

import os
import re
import sys
from functools import lru_cache
from typing import TYPE_CHECKING, TextIO

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


_EMOJI_CODE = re.compile(r"(:(\S*?)(?:(?:\-)(emoji|text))?:)")
"""rich's pattern for emoji codes (``:warning:``), which it replaces even with ``markup=False``."""


def _as_is(stream: TextIO, text: str) -> bool:
    """Whether rich would print ``text`` on ``stream`` exactly as it is, plus a newline: no colour
    (not a terminal, none forced through ``FORCE_COLOR``/``TTY_COMPATIBLE``), no tab to expand, no
    control character, no emoji code. Then a piped command's messages need no rich at all (~15 ms
    of start-up); ``tests/unit/test_console.py`` checks the two agree."""
    isatty = getattr(stream, "isatty", None)
    return (
        isatty is not None
        and not isatty()
        and "FORCE_COLOR" not in os.environ
        and "TTY_COMPATIBLE" not in os.environ
        and text.isprintable()
        and not _EMOJI_CODE.search(text)
    )


def _message(text: str, style: str | None = None) -> None:
    """One message line on stderr, through rich only when rich would change it."""
    if _as_is(sys.stderr, text):
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    else:
        err_console().print(text, style=style, markup=False)


def info(message: str) -> None:
    """A progress/info message on stderr (suppressed by ``-q``)."""
    if not state.quiet:
        _message(_plain(message))


def success(message: str) -> None:
    if not state.quiet:
        _message(_plain(message), style="green")


def warn(message: str) -> None:
    _message(f"warning: {_plain(message)}", style="yellow")


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
