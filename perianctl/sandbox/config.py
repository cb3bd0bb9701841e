"""The sandbox's settings: one frozen dataclass built by the CLI, the daemon or a test.

Everything that changes how the sandbox behaves lives here, so a server can be rebuilt from the
same values after a crash (``restart()`` in the test plugin) and so the CLI parsing stays thin.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from perianctl.sandbox.runtimes import NAMES

RUNTIMES: tuple[str, ...] = NAMES
"""The runtime names (the registry in :mod:`perianctl.sandbox.runtimes`)."""

FAULT_KINDS = ("500", "503", "reset")
FAULT_PHASES = ("before", "after", "mixed")
ENDPOINTS = ("create", "get", "list", "cancel", "instance-type", "accelerator-type", "billing")
DEFAULT_ORG = "sandbox"
MAX_LATENCY = 600.0
"""Longest injected latency (s): more is no test of a client, only a hung sandbox."""


class SandboxConfigError(ValueError):
    """A setting that cannot work; the message is one line fit for a user."""


@dataclass(frozen=True)
class SimTimings:
    """Base durations (seconds) of the simulated lifecycle, divided by ``speed``.

    At ``speed=1`` the happy path takes about 4.5 s, which looks realistic in a demo; tests use a
    large speed so the whole lifecycle takes a fraction of a second.
    """

    queued: float = 0.5
    initializing: float = 1.0
    running: float = 3.0
    slow_factor: float = 20.0
    cancel_delay: float = 3.0
    undefined: float = 2.0
    speed: float = 1.0

    def scaled(self, seconds: float) -> float:
        return max(0.0, seconds / self.speed)


@dataclass(frozen=True)
class FaultConfig:
    """Latency and faults injected in front of the PERIAN routes (never the admin routes).

    ``latency`` is a ``(min, max)`` range in seconds (equal bounds = fixed). ``rate`` is the chance
    that one request gets a fault of one of ``kinds``. ``phase`` ``before`` fails *instead of*
    handling (nothing happens server-side); ``after`` handles the request and then loses the
    reply -- the case client idempotency must survive; ``mixed`` picks one per fault.
    """

    latency: tuple[float, float] = (0.0, 0.0)
    latency_endpoints: frozenset[str] = frozenset(ENDPOINTS)
    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    endpoints: frozenset[str] = frozenset(ENDPOINTS)
    phase: str = "before"
    seed: int | None = None

    @property
    def active(self) -> bool:
        return self.rate > 0 or self.latency[1] > 0

    def validate(self) -> FaultConfig:
        # Written so that NaN fails every check (a comparison with NaN is always false).
        if not 0.0 <= self.rate <= 1.0:
            raise SandboxConfigError(f"fault rate must be between 0 and 1, got {self.rate}")
        low, high = self.latency
        if not (0 <= low <= high <= MAX_LATENCY):
            raise SandboxConfigError(f"invalid latency range {low}-{high} (seconds, from 0 to {MAX_LATENCY:g})")
        if self.seed is not None and not -(2**63) <= self.seed < 2**63:
            raise SandboxConfigError("fault seed must fit in 64 bits")
        bad = [k for k in self.kinds if k not in FAULT_KINDS]
        if bad or not self.kinds:
            raise SandboxConfigError(f"fault kinds must be a non-empty subset of {', '.join(FAULT_KINDS)}")
        for name, group in (("fault", self.endpoints), ("latency", self.latency_endpoints)):
            unknown = sorted(set(group) - set(ENDPOINTS))
            if unknown:
                raise SandboxConfigError(
                    f"unknown {name} endpoint(s) {', '.join(unknown)} (known: {', '.join(ENDPOINTS)})"
                )
        if self.phase not in FAULT_PHASES:
            raise SandboxConfigError(f"fault phase must be one of {', '.join(FAULT_PHASES)}")
        return self


@dataclass(frozen=True)
class SandboxConfig:
    """Everything a sandbox server needs. ``port=0`` picks a free port."""

    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    runtime: str = "simulate"
    organization: str | None = None
    token: str | None = None
    timings: SimTimings = field(default_factory=SimTimings)
    faults: FaultConfig = field(default_factory=FaultConfig)
    kill_grace: float = 5.0
    max_parallel: int = 4
    log_cap_bytes: int = 1_000_000
    access_log: bool = True
    impolite: tuple[Any, ...] = ()
    """:class:`perianctl.sandbox.impolite.ImpoliteRule` s applied at start-up (``--impolite``)."""
    credits: Decimal | None = None
    """Initial credits in EUR (``None``: the billing module's default); jobs' costs run them down."""

    def validate(self) -> SandboxConfig:
        if self.runtime not in RUNTIMES:
            raise SandboxConfigError(f"unknown runtime '{self.runtime}' (choose {', '.join(RUNTIMES)})")
        if not 0 <= self.port <= 65535:
            raise SandboxConfigError(f"invalid port {self.port}")
        if self.timings.speed <= 0:
            raise SandboxConfigError("simulation speed must be > 0")
        if self.kill_grace < 0:
            raise SandboxConfigError("kill grace must be >= 0")
        if self.max_parallel < 1:
            raise SandboxConfigError("max parallel jobs must be >= 1")
        if self.credits is not None and (not self.credits.is_finite() or not 0 <= self.credits <= 10**9):
            raise SandboxConfigError(f"credits must be an amount from 0 to 1000000000 EUR, got {self.credits}")
        self.faults.validate()
        for rule in self.impolite:
            rule.validate()
        return self

    def with_credentials(self, organization: str, token: str) -> SandboxConfig:
        return replace(self, organization=organization, token=token)

    def to_argv(self) -> list[str]:
        """Options of ``sandbox run`` that rebuild this config in a child process.

        Credentials are deliberately absent: a token on a command line is visible to every local
        user; the child reads them from ``<state-dir>/credentials.json`` instead.
        """
        faults = self.faults
        argv = [
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--runtime",
            self.runtime,
            "--state-dir",
            str(self.state_dir),
            "--speed",
            repr(self.timings.speed),
            "--kill-grace",
            repr(self.kill_grace),
            "--max-parallel",
            str(self.max_parallel),
            "--log-cap",
            str(self.log_cap_bytes),
            "--access-log" if self.access_log else "--no-access-log",
        ]
        if self.credits is not None:
            argv += ["--credits", str(self.credits)]
        if faults.latency[1] > 0:
            argv += ["--latency", f"{faults.latency[0]!r}-{faults.latency[1]!r}"]
        if set(faults.latency_endpoints) != set(ENDPOINTS):
            argv += ["--latency-endpoints", ",".join(sorted(faults.latency_endpoints))]
        if faults.rate > 0:
            argv += ["--fault-rate", repr(faults.rate)]
        if tuple(faults.kinds) != FAULT_KINDS:
            argv += ["--fault-kinds", ",".join(faults.kinds)]
        if set(faults.endpoints) != set(ENDPOINTS):
            argv += ["--fault-endpoints", ",".join(sorted(faults.endpoints))]
        if faults.phase != "before":
            argv += ["--fault-phase", faults.phase]
        if faults.seed is not None:
            argv += ["--fault-seed", str(faults.seed)]
        for rule in self.impolite:
            argv += ["--impolite", rule.spec()]
        return argv


def parse_latency(text: str | None) -> tuple[float, float]:
    """``"0.2"`` → (0.2, 0.2); ``"0.1-0.5"`` → (0.1, 0.5); empty → no latency."""
    if text is None or not str(text).strip():
        return (0.0, 0.0)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(?:-\s*([0-9]*\.?[0-9]+)\s*)?", str(text))
    if not match:
        raise SandboxConfigError(f"invalid latency '{text}': use seconds like 0.2 or a range like 0.1-0.5")
    low = float(match.group(1))
    high = float(match.group(2)) if match.group(2) is not None else low
    if high < low:
        raise SandboxConfigError(f"invalid latency '{text}': the range must go from low to high")
    return (low, high)


def parse_csv(text: str | None, *, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    """A comma-separated subset of ``allowed`` (``all`` or empty = everything), order kept."""
    if text is None or not text.strip() or text.strip().lower() == "all":
        return allowed
    items = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [item for item in items if item not in allowed]
    if unknown:
        raise SandboxConfigError(f"unknown {what} {', '.join(unknown)} (choose from {', '.join(allowed)})")
    return items


def parse_credits(text: str | None) -> Decimal | None:
    """``--credits``: an amount in EUR such as ``25`` or ``0.5``; empty = the default."""
    if text is None or not str(text).strip():
        return None
    try:
        amount = Decimal(str(text).strip())
    except InvalidOperation:
        raise SandboxConfigError(f"invalid credits '{text}': use an amount in EUR like 25 or 0.5") from None
    if not amount.is_finite() or not 0 <= amount <= 10**9:
        raise SandboxConfigError(f"invalid credits '{text}': use an amount from 0 to 1000000000 EUR")
    return amount
