"""Durations, one syntax for the whole product: CLI flags (``--timeout``) and task inputs alike.

Accepted: seconds (``90``, ``1.5``), Go-style parts (``30s``, ``1h30m``, ``500ms``, ``2d``), ISO 8601
(``PT1H30M``, ``P1DT2H``, ``P1W``) and clock time (``01:30:00``). Stdlib only, so fast CLI paths
can use it without importing protobuf.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from perianctl.errors import UsageError

MAX_DURATION_SECONDS = 315_576_000_000
NANOS = 1_000_000_000

_GO_UNITS = {
    "ns": Decimal(1),
    "us": Decimal(1_000),
    "µs": Decimal(1_000),
    "μs": Decimal(1_000),
    "ms": Decimal(1_000_000),
    "s": Decimal(NANOS),
    "m": Decimal(60 * NANOS),
    "h": Decimal(3600 * NANOS),
    "d": Decimal(86400 * NANOS),
}
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d)")
_ISO_DURATION = re.compile(
    r"P(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?",
    re.IGNORECASE,
)
_CLOCK = re.compile(r"(\d+):([0-5]?\d):([0-5]?\d(?:\.\d+)?)")
DURATION_HELP = "a duration such as 30s, 1h30m, 500ms, PT1H30M, 01:30:00 or seconds (90)"


def parse_duration_nanos(text: str) -> int:
    """Parse the duration syntaxes listed in the module docstring into integer nanoseconds.

    Integer nanoseconds (via :class:`~decimal.Decimal`) keep ``0.1s`` exact, which floats would not.
    Raises ``ValueError`` with a one-line reason.
    """
    raw = text.strip()
    sign = 1
    body = raw
    if body[:1] in "+-" and body:
        sign = -1 if body[0] == "-" else 1
        body = body[1:].strip()
    if not body:
        raise ValueError(f"expected {DURATION_HELP}, got {raw!r}")
    total: Decimal
    try:
        number: Decimal | None = Decimal(body)
    except InvalidOperation:
        number = None
    if number is not None:
        if not number.is_finite() or number.is_signed():
            raise ValueError(f"expected {DURATION_HELP}, got {raw!r}")
        # adjusted() is context-free; arithmetic on 1e999999999 would raise decimal.Overflow.
        if number.adjusted() > 12 or number > MAX_DURATION_SECONDS:
            raise ValueError(f"duration {raw!r} is out of range (at most 10000 years)")
        total = number * NANOS
    else:
        total = Decimal(0)
        iso = _ISO_DURATION.fullmatch(body)
        clock = _CLOCK.fullmatch(body)
        if iso and body.upper() not in ("P", "PT") and not body.upper().endswith("T"):
            weights = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
            for key, weight in weights.items():
                part = iso.group(key)
                if part:
                    total += Decimal(part) * weight * NANOS
        elif clock:
            hours, minutes, seconds = clock.groups()
            total = (Decimal(hours) * 3600 + Decimal(minutes) * 60 + Decimal(seconds)) * NANOS
        else:
            pos = 0
            for match in _GO_PART.finditer(body):
                if match.start() != pos:
                    break
                total += Decimal(match.group(1)) * _GO_UNITS[match.group(2)]
                pos = match.end()
            if pos == 0 or pos != len(body):
                raise ValueError(f"expected {DURATION_HELP}, got {raw!r}") from None
    # Compare before converting: int(Decimal("1e999999999")) would take forever.
    if total > MAX_DURATION_SECONDS * NANOS:
        raise ValueError(f"duration {raw!r} is out of range (at most 10000 years)")
    return sign * int(total.to_integral_value())


def parse_duration(text: str, *, what: str = "duration") -> float:
    """Seconds for a flag value such as ``90``, ``30s``, ``5m``, ``1h 30m``, ``2d`` (case and
    spaces between parts are forgiven); a one-line UsageError naming ``what`` otherwise."""
    compact = re.sub(r"\s+", "", text).lower()
    try:
        nanos = parse_duration_nanos(compact)
    except ValueError:
        raise UsageError(f"{what}: '{text}' is not a duration (use e.g. 90, 30s, 5m, 1h30m, 2d)") from None
    if nanos < 0:
        raise UsageError(f"{what}: '{text}' must be a positive duration")
    return nanos / NANOS
