"""Use cases on existing jobs, without Typer: read them (``get``), cancel them (``delete``).

Each opens the command's one backend (:func:`perianctl.jobs.backend.open_backend`: the PERIAN API
or one channel to a connector), does its calls concurrently, and records what it saw in the journal
(:mod:`perianctl.jobs.observations`). Per-job failures are returned, not raised, so a command can
report every job before it exits with the last failure's code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from perianctl.errors import PerianctlError
from perianctl.jobs.backend import Cancellation, gather_jobs, open_backend
from perianctl.jobs.observations import record_views

if TYPE_CHECKING:
    from perianctl.config import Settings
    from perianctl.perian.models import JobView


@dataclass(frozen=True)
class Fetched:
    jobs: list[JobView]
    failures: list[PerianctlError]
    via_connector: bool


async def get_jobs(
    settings: Settings,
    ids: list[str],
    *,
    connector: str | None,
    warn: Callable[[str], None],
    on_unreadable: Callable[[str, Any], None] | None = None,
) -> Fetched:
    """Each job once (GetTask through a connector); observations go into the journal (``warn`` tells
    the user when it cannot be used)."""
    async with open_backend(settings, connector=connector, on_unreadable=on_unreadable) as backend:
        jobs, failures = await gather_jobs(backend, ids)
        record_views(jobs, api_url=backend.api_url, warn=warn)
    return Fetched(jobs, failures, backend.kind == "connector")


@dataclass(frozen=True)
class CancelOutcome:
    """One job's cancel: a :class:`~perianctl.jobs.backend.Cancellation` result, or ``error`` with
    the failure's exit code (6 auth, 8 unavailable, ...)."""

    job_id: str
    result: str
    message: str
    exit_code: int = 0


async def cancel_jobs(
    settings: Settings,
    ids: list[str],
    *,
    connector: str | None,
    on_unreadable: Callable[[str, Any], None] | None = None,
) -> list[CancelOutcome]:
    """Cancel each job (DeleteTask through a connector), concurrently on the command's one backend."""
    async with open_backend(settings, connector=connector, on_unreadable=on_unreadable) as backend:
        results = await asyncio.gather(*(backend.cancel_job(job_id) for job_id in ids), return_exceptions=True)
    out: list[CancelOutcome] = []
    for job_id, result in zip(ids, results, strict=True):
        if isinstance(result, Cancellation):
            out.append(CancelOutcome(job_id, result.result, result.message))
        elif isinstance(result, PerianctlError):
            out.append(CancelOutcome(job_id, "error", result.message, int(result.exit_code)))
        else:
            raise result
    return out
