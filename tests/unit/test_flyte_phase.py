"""PERIAN status → Flyte phase / exit code (README.md "Status → Flyte phase", "Exit codes"): the pure mapping.

The test that needs a process is in tests/integration/test_flyte_phase.py.
"""

from __future__ import annotations

import pytest
from flyteidl.core import execution_pb2

from perianctl.errors import ExitCode
from perianctl.flyte.phase import (
    MESSAGE_LIMIT,
    FlytePhase,
    PhaseInfo,
    exit_code_for_status,
    is_terminal_phase,
    status_to_phase,
)
from perianctl.perian.status import WorkloadStatus


def test_flyte_phase_numbers_match_flyteidl() -> None:
    idl = dict(execution_pb2.TaskExecution.Phase.items())
    assert {p.name: p.value for p in FlytePhase} == idl


@pytest.mark.parametrize(
    ("status", "phase"),
    [
        ("Queued", FlytePhase.QUEUED),
        ("Initializing", FlytePhase.INITIALIZING),
        ("ModelLoading", FlytePhase.INITIALIZING),
        ("Running", FlytePhase.RUNNING),
        ("Resumed", FlytePhase.RUNNING),
        ("Paused", FlytePhase.WAITING_FOR_RESOURCES),
        ("Done", FlytePhase.SUCCEEDED),
        ("UserError", FlytePhase.FAILED),
        ("Timeout", FlytePhase.FAILED),
        ("ServerError", FlytePhase.RETRYABLE_FAILED),
        ("Cancelled", FlytePhase.ABORTED),
    ],
)
def test_every_known_status_has_its_phase(status: str, phase: FlytePhase) -> None:
    info = status_to_phase(status)
    assert info == PhaseInfo(phase, status)
    # Case and surrounding whitespace from the wire do not matter.
    assert status_to_phase(f"  {status.upper()} ").phase is phase


def test_all_twelve_statuses_are_covered_without_crashing() -> None:
    for status in WorkloadStatus:
        info = status_to_phase(status.value, last_phase=FlytePhase.RUNNING)
        assert info.phase is not FlytePhase.UNDEFINED
        assert "\n" not in info.message


@pytest.mark.parametrize("status", ["Undefined", "", None, "Exploded", "running-ish", "Queued\nDone"])
def test_undefined_or_unknown_keeps_last_phase(status: str | None) -> None:
    assert status_to_phase(status).phase is FlytePhase.QUEUED
    kept = status_to_phase(status, last_phase=FlytePhase.RUNNING)
    assert kept.phase is FlytePhase.RUNNING
    assert "keeping phase RUNNING" in kept.message
    assert "\n" not in kept.message


def test_message_uses_first_error_line_only_and_is_capped() -> None:
    info = status_to_phase("UserError", errors="\n\n  Traceback (most recent call last):\n  File x\n" + "y" * 5000)
    assert info.phase is FlytePhase.FAILED
    assert info.message == "UserError: Traceback (most recent call last):"
    long = status_to_phase("ServerError", errors="z" * 5000)
    assert len(long.message) <= MESSAGE_LIMIT
    assert long.message.endswith("…")
    ctrl = status_to_phase("UserError", errors="bad\x1b[31m red\ttab\rcr")
    assert "\x1b" not in ctrl.message and "\r" not in ctrl.message


def test_unknown_status_message_is_short_even_for_giant_status() -> None:
    info = status_to_phase("X" * 10_000, errors="e" * 10_000, last_phase=FlytePhase.INITIALIZING)
    assert info.phase is FlytePhase.INITIALIZING
    assert len(info.message) <= MESSAGE_LIMIT


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("Done", ExitCode.OK),
        ("UserError", ExitCode.JOB_FAILED),
        ("ServerError", ExitCode.JOB_FAILED),
        ("Cancelled", ExitCode.JOB_CANCELLED),
        ("Timeout", ExitCode.TIMEOUT),
        ("Queued", None),
        ("Running", None),
        ("Paused", None),
        ("Undefined", None),
        ("whatever", None),
        (None, None),
    ],
)
def test_exit_code_for_status(status: str | None, code: ExitCode | None) -> None:
    assert exit_code_for_status(status) == code


def test_terminal_phases() -> None:
    terminal = {p for p in FlytePhase if is_terminal_phase(p)}
    assert terminal == {FlytePhase.SUCCEEDED, FlytePhase.FAILED, FlytePhase.ABORTED, FlytePhase.RETRYABLE_FAILED}
