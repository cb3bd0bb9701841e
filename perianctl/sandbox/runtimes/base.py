"""The contract between the API and the thing that runs jobs.

The API layer owns validation, persistence of new jobs and the "already complete" rule; a runtime
owns everything after that: moving a job through its statuses, its logs and its end. All runtime
methods run on the server's event loop, so a runtime never races the API for the same job; the
store additionally refuses to change a job that already ended.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from perianctl.sandbox.config import SandboxConfig
from perianctl.sandbox.store import JobRow, JobStore, JobUpdate


class SandboxStartError(RuntimeError):
    """The sandbox cannot start (runtime unavailable, state dir in use...); one line for the user."""


@dataclass(frozen=True)
class JobSpec:
    """What a runtime needs to know about a job, read from the store row."""

    job_id: str
    image: str
    command: str | None
    env: dict[str, Any]
    secrets: dict[str, Any]
    container_files: list[dict[str, Any]]
    timeout_seconds: int | None
    instance_type: str | None

    @classmethod
    def from_row(cls, row: JobRow) -> JobSpec:
        spec = row.spec
        private = row.private or {}
        timeout = spec.get("timeout_seconds")
        return cls(
            job_id=row.id,
            image=str(spec.get("image") or ""),
            command=spec.get("command"),
            env=dict(spec.get("env") or {}),
            secrets=dict(private.get("secrets") or {}),
            container_files=list(private.get("container_files") or []),
            timeout_seconds=int(timeout) if isinstance(timeout, int) and timeout > 0 else None,
            instance_type=spec.get("instance_type"),
        )


class Runtime(ABC):
    """Base class of ``simulate``, ``process`` and ``docker``."""

    name: ClassVar[str]

    def __init__(self, config: SandboxConfig, store: JobStore) -> None:
        self.config = config
        self.store = store

    @classmethod
    def preflight(cls, config: SandboxConfig) -> None:
        """Raise :class:`SandboxStartError` if this runtime cannot work on this machine."""
        return None

    def recover(self, ended: list[JobRow]) -> None:
        """Clean up after jobs a previous sandbox process left behind (already marked ended)."""
        return None

    @abstractmethod
    async def start(self, queued: list[JobRow]) -> None:
        """Begin running; ``queued`` are Queued jobs from before a restart, oldest first."""

    @abstractmethod
    def submit(self, job: JobRow) -> None:
        """A new job was stored as Queued; run it."""

    @abstractmethod
    def cancel(self, job: JobRow) -> None:
        """Cancel a job that is not terminal. It may reach Cancelled later (asynchronously)."""

    async def stop(self) -> None:
        """The server is shutting down: stop scheduling, end what runs."""
        return None

    def end(self, job_id: str, status: str, *, errors: str | None = None, logs: str | None = None) -> bool:
        return self.store.update(JobUpdate(job_id, status=status, at=time.time(), errors=errors, append_logs=logs))
