"""Text shaping shared by every message perianctl shows: errors, phase messages, table cells.

Stdlib only: the fast CLI paths, the connector and the sandbox all use it.
"""

from __future__ import annotations


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
