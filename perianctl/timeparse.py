"""Durations as people type them: ``90``, ``30s``, ``5m``, ``2h``, ``1h30m``, ``1d``, ``1.5h``."""

from __future__ import annotations

import re

from perianctl.errors import UsageError

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|d|h|m|s)\s*", re.IGNORECASE)
_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str, *, what: str = "duration") -> float:
    """Seconds for ``text``; a one-line UsageError naming ``what`` when it is not a duration."""
    value = text.strip().lower()
    try:
        seconds = float(value)
    except ValueError:
        pos = 0
        seconds = 0.0
        for match in _PART.finditer(value):
            if match.start() != pos or value[pos:match.start()].strip():
                break
            seconds += float(match.group(1)) * _UNITS[match.group(2).lower()]
            pos = match.end()
        if pos != len(value) or not value:
            raise UsageError(f"{what}: '{text}' is not a duration (use e.g. 90, 30s, 5m, 1h30m, 2d)") from None
    if seconds < 0 or seconds != seconds or seconds == float("inf"):
        raise UsageError(f"{what}: '{text}' must be a positive duration")
    return seconds
