"""The one place job observations go into the journal (PERIAN keeps no status history; we do).

Every status a command sees -- ``get``, ``list``, each transition ``watch``/``wait`` observe, through
the PERIAN API or a connector -- is recorded here, so ``get --history`` fills up as people look.
A status a connector did not report (only its Flyte phase; see
:func:`perianctl.jobs.backend.connector_answer`) is not PERIAN's word and is not recorded.
Recording is best effort: an unusable journal never fails the command; the caller's ``warn`` says so
(the use cases write to no terminal themselves).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from perianctl.jobs.backend import connector_answer

if TYPE_CHECKING:
    from perianctl.jobs.follow import TransitionEvent
    from perianctl.journal import Journal, Observation
    from perianctl.perian.models import JobView


def reported(job: JobView) -> bool:
    """True when ``job.status`` is what PERIAN said (not derived from a connector's phase)."""
    answer = connector_answer(job)
    return answer is None or not answer.get("derived")


def record_views(jobs: Iterable[JobView], *, api_url: str | None, warn: Callable[[str], None]) -> None:
    """``get``/``list``: each job as just seen (its phase from its status)."""
    from perianctl.flyte.phase import status_to_phase
    from perianctl.journal import Observation

    observations = []
    for job in jobs:
        if job.id and reported(job):
            info = status_to_phase(job.status, errors=job.errors)
            observations.append(Observation(job.id, job.status, info.phase.name, info.message))
    _write(observations, api_url=api_url, warn=warn)


def record_events(journal: Journal | None, events: Iterable[TransitionEvent], *, api_url: str | None) -> None:
    """``watch``/``wait``: the transitions one refresh saw, in one transaction of the open journal."""
    from perianctl.journal import Observation

    if journal is None:
        return
    rows = [Observation(e.job_id, e.new_status, e.phase, e.message, e.at) for e in events if e.reported]
    if rows:
        journal.observe_many(rows, api_url=api_url)


def _write(observations: list[Observation], *, api_url: str | None, warn: Callable[[str], None]) -> None:
    from perianctl.journal import open_journal_best_effort

    if not observations:
        return
    with open_journal_best_effort(warn=warn) as journal:
        if journal is not None:
            journal.observe_many(observations, api_url=api_url)
