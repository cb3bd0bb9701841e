"""Text shaping shared by every message perianctl shows: errors, phase messages, table cells.

Stdlib only: the fast CLI paths, the connector and the sandbox all use it.
"""

from __future__ import annotations

import re
import sys


def one_line(text: str, limit: int | None = None) -> str:
    """``text`` as a single printable line, at most ``limit`` characters (``…`` marks a cut).

    Control characters (newlines, CR, escape sequences from API-supplied text) become spaces and
    runs of whitespace collapse, so a message can never break or repaint a terminal line.
    """
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in str(text)).split())
    if limit is None or len(flat) <= limit:
        return flat
    return flat[: limit - 1].rstrip() + "…"


def first_line(text: str | None, limit: int | None = None) -> str:
    """The first non-blank line of ``text`` as :func:`one_line` (``""`` when there is none)."""
    for line in (text or "").splitlines():
        if line.strip():
            return one_line(line, limit)
    return ""


def last_line(text: str | None, limit: int | None = None) -> str:
    """The last non-blank line (a traceback's last line names the exception; a log's is the latest)."""
    for line in reversed((text or "").splitlines()):
        if line.strip():
            return one_line(line, limit)
    return ""


def unreadable_number(exc: ValueError) -> str:
    """The one-line reason for a ``ValueError`` that a JSON or YAML parser let out of ``int()``.

    Python refuses to convert integers of more than ``sys.get_int_max_str_digits()`` digits (4,300 by
    default, a guard against quadratic-time conversion); the parsers raise that as a bare
    ``ValueError`` with advice for Python programmers, not for someone who wrote a document.
    """
    found = re.search(r"value has (\d+) digits", str(exc))
    if found:
        return f"a number has {found.group(1)} digits; at most {sys.get_int_max_str_digits()} can be read"
    return f"cannot read a value: {one_line(str(exc))}"
