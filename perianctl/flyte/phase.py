"""PERIAN job status → Flyte task-execution phase, and → perianctl exit code.

Pure and dependency-free on purpose: ``get``, ``list`` and ``watch`` show a Flyte phase next to
every job, and those fast CLI paths must not pay for importing protobuf/flyteidl. The numbers of
:class:`FlytePhase` therefore mirror ``flyteidl.core.execution_pb2.TaskExecution.Phase`` by hand;
a test asserts they stay identical.

The mapping is the table in README.md ("Status → Flyte phase": all 12 PERIAN statuses, never a
crash). It differs from the
official connector where that one is wrong for Flyte:

* ``ServerError`` is RETRYABLE_FAILED (a platform failure should consume a Flyte retry, not end the
  task for good), ``UserError`` and ``Timeout`` are FAILED (the official plugin raised KeyError on
  ``Timeout``).
* ``Undefined`` and unknown statuses keep the last known phase instead of raising, because
  propeller counts GetTask errors and gives up after five (``maxSystemFailures``, flyteplugins
  go/tasks/pluginmachinery/internal/webapi/cache.go), and an UNDEFINED phase would be read as a
  retryable failure (``Status`` in flyteplugins go/tasks/plugins/webapi/connector/plugin.go, v1.16.x).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from perianctl.errors import ExitCode
from perianctl.perian.status import WorkloadStatus, parse_status
from perianctl.text import first_line, one_line

#: Longest phase message we produce. Propeller stores it in the CRD and shows it in the UI; a
#: whole log would bloat etcd and the console (logs go through GetTaskLogs / ``perianctl logs``).
MESSAGE_LIMIT = 200


class FlytePhase(IntEnum):
    """``flyteidl.core.TaskExecution.Phase``, with the same numbers (wire-compatible)."""

    UNDEFINED = 0
    QUEUED = 1
    RUNNING = 2
    SUCCEEDED = 3
    ABORTED = 4
    FAILED = 5
    INITIALIZING = 6
    WAITING_FOR_RESOURCES = 7
    RETRYABLE_FAILED = 8


#: Phases after which propeller stops polling (RETRYABLE_FAILED ends this attempt).
TERMINAL_PHASES: frozenset[FlytePhase] = frozenset(
    {FlytePhase.SUCCEEDED, FlytePhase.ABORTED, FlytePhase.FAILED, FlytePhase.RETRYABLE_FAILED}
)


@dataclass(frozen=True)
class PhaseInfo:
    """A Flyte phase plus the short, single-line message that goes with it."""

    phase: FlytePhase
    message: str


_PHASE_BY_STATUS: dict[WorkloadStatus, FlytePhase] = {
    WorkloadStatus.QUEUED: FlytePhase.QUEUED,
    WorkloadStatus.INITIALIZING: FlytePhase.INITIALIZING,
    WorkloadStatus.MODEL_LOADING: FlytePhase.INITIALIZING,
    WorkloadStatus.RUNNING: FlytePhase.RUNNING,
    WorkloadStatus.RESUMED: FlytePhase.RUNNING,
    WorkloadStatus.PAUSED: FlytePhase.WAITING_FOR_RESOURCES,
    WorkloadStatus.DONE: FlytePhase.SUCCEEDED,
    WorkloadStatus.USER_ERROR: FlytePhase.FAILED,
    WorkloadStatus.TIMEOUT: FlytePhase.FAILED,
    WorkloadStatus.SERVER_ERROR: FlytePhase.RETRYABLE_FAILED,
    WorkloadStatus.CANCELLED: FlytePhase.ABORTED,
}

_EXIT_BY_STATUS: dict[WorkloadStatus, ExitCode] = {
    WorkloadStatus.DONE: ExitCode.OK,
    WorkloadStatus.USER_ERROR: ExitCode.JOB_FAILED,
    WorkloadStatus.SERVER_ERROR: ExitCode.JOB_FAILED,
    WorkloadStatus.CANCELLED: ExitCode.JOB_CANCELLED,
    WorkloadStatus.TIMEOUT: ExitCode.TIMEOUT,
}


def first_error_line(errors: str | None) -> str:
    """The first non-blank line of PERIAN's ``errors`` text, cleaned to one line (may be ``""``)."""
    return first_line(errors)


def status_to_phase(
    status: str | None, *, errors: str | None = None, last_phase: FlytePhase | None = None
) -> PhaseInfo:
    """Map a PERIAN ``JobView.status`` string to a Flyte phase and a short message.

    ``errors`` is ``JobView.errors``; only its first line is used. ``last_phase`` is the phase
    reported before: an ``Undefined``/unknown status keeps it (or QUEUED when there was none), so a
    glitch on the PERIAN side never flips a running task to a failure. Never raises.
    """
    raw = one_line(str(status)) if status is not None else ""
    known = parse_status(raw)
    detail = first_error_line(errors)
    phase = _PHASE_BY_STATUS.get(known) if known is not None else None
    if phase is None:
        kept = last_phase if last_phase is not None else FlytePhase.QUEUED
        shown = raw or WorkloadStatus.UNDEFINED.value
        what = "undefined" if known is WorkloadStatus.UNDEFINED or not raw else "unknown"
        message = f"PERIAN status {shown!r} is {what}; keeping phase {kept.name}"
        if detail:
            message += f": {detail}"
        return PhaseInfo(kept, one_line(message, MESSAGE_LIMIT))
    assert known is not None
    message = known.value if not detail else f"{known.value}: {detail}"
    return PhaseInfo(phase, one_line(message, MESSAGE_LIMIT))


def exit_code_for_status(status: str | None) -> ExitCode | None:
    """Exit code of ``wait``/``submit --wait`` for a terminal status; ``None`` while not terminal.

    Done 0 · UserError/ServerError 3 · Cancelled 4 · Timeout 5 (README "Exit codes").
    """
    known = parse_status(status)
    return _EXIT_BY_STATUS.get(known) if known is not None else None


def is_terminal_phase(phase: FlytePhase) -> bool:
    """True when propeller would stop polling this attempt."""
    return phase in TERMINAL_PHASES
