"""The 12 PERIAN ``WorkloadStatus`` values and what they mean for a job.

Statuses travel as plain strings so that a value the server adds tomorrow never breaks parsing;
:func:`parse_status` turns a wire string into the enum or ``None`` for "unknown".
"""

from __future__ import annotations

from enum import StrEnum


class WorkloadStatus(StrEnum):
    QUEUED = "Queued"
    INITIALIZING = "Initializing"
    MODEL_LOADING = "ModelLoading"
    RUNNING = "Running"
    PAUSED = "Paused"
    RESUMED = "Resumed"
    DONE = "Done"
    SERVER_ERROR = "ServerError"
    USER_ERROR = "UserError"
    CANCELLED = "Cancelled"
    TIMEOUT = "Timeout"
    UNDEFINED = "Undefined"


TERMINAL_STATUSES: frozenset[WorkloadStatus] = frozenset(
    {
        WorkloadStatus.DONE,
        WorkloadStatus.SERVER_ERROR,
        WorkloadStatus.USER_ERROR,
        WorkloadStatus.CANCELLED,
        WorkloadStatus.TIMEOUT,
    }
)

_BY_LOWER = {s.value.lower(): s for s in WorkloadStatus}


def parse_status(value: str | None) -> WorkloadStatus | None:
    """Map a wire string to the enum, case-insensitively; ``None`` when it is not one we know."""
    if not value:
        return None
    return _BY_LOWER.get(str(value).strip().lower())


def is_terminal(value: str | WorkloadStatus | None) -> bool:
    status = value if isinstance(value, WorkloadStatus) else parse_status(value)
    return status in TERMINAL_STATUSES
