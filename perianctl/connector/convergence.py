"""Convergence: at most one running PERIAN job per task attempt, decided from PERIAN data alone.

Why this exists (docs/connector.md, "Convergence"): PERIAN has no server-side idempotency, no
labels that can be changed after creation, and a job list without filters. A create can commit
after the connector gave up on it (a slow or stalled ``POST /job``), propeller then fails the
attempt (and may never try again: ``retries=0``), and the replica that sent the create may be
gone. Replicas share nothing but PERIAN. So every rule here is a pure function of what a job
carries from the moment it is created, plus the clock:

``PERIANCTL_IDEMPOTENCY_KEY``  the attempt key (:mod:`.idempotency`).
``PERIANCTL_CREATE_ID``        a fresh nonce per ``POST /job``: the sender finds *its* job after a lost reply.
``PERIANCTL_CLAIM_UNTIL``      Unix time after which the sender stops waiting for that ``POST``
                               (its hang-up time; the RPC still has a short reserve to look the job up).

**Claimable.** A job is *claimable* when PERIAN created it no later than its ``CLAIM_UNTIL``
(plus :data:`DEFAULT_CLOCK_SKEW`): only such a job can have been returned by the CreateTask that
sent it, and only such a job may be returned by a re-sent CreateTask for the same attempt. A job
created later (its create outlived the RPC) was never returned by anybody and never will be: any
replica cancels it on sight. That is how orphans are reaped even when no later attempt exists.

**One per attempt.** When several live claimable jobs carry one key (propeller re-sent an attempt
while the first call's create was still on its way, and neither replica could see the other's
job), the one sent *last* (the latest ``CLAIM_UNTIL``) is kept and the others are cancelled at
once: a same-attempt re-send means propeller abandoned the earlier call, so the answer it holds is
the one to its latest call, and a re-sent CreateTask that finds several returns that same one. (A
job sent later still, not visible yet, supersedes it the same way when it shows up.)

**Earlier attempts.** A live job of attempt *a* of a node is cancelled as soon as any job of a
later attempt of the same node exists: propeller only starts attempt *a+1* after attempt *a*
failed.

Everything here is pure (no I/O) except :func:`scan_recent`, which pages the job list newest
first and stops at a *creation time*, not a count, so the cost of a look-up is the number of jobs
created in the window, and finding a job never depends on how many were created meanwhile.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from perianctl.connector.idempotency import ATTEMPT_ENV, NODE_TAG_ENV
from perianctl.connector.settings import DEFAULT_CLOCK_SKEW
from perianctl.perian.stamps import IDEMPOTENCY_ENV as IDEMPOTENCY_ENV  # the name the client stamps
from perianctl.perian.status import is_terminal

if TYPE_CHECKING:
    from perianctl.perian import models as m
    from perianctl.perian.client import PerianClient

CREATE_ID_ENV = "PERIANCTL_CREATE_ID"
CLAIM_UNTIL_ENV = "PERIANCTL_CLAIM_UNTIL"


def new_create_id() -> str:
    return uuid.uuid4().hex[:20]


def stamps(create_id: str, claim_until: float) -> dict[str, str]:
    """The env variables one ``POST /job`` carries besides the attempt key and node tag."""
    return {CREATE_ID_ENV: create_id, CLAIM_UNTIL_ENV: f"{claim_until:.3f}"}


@dataclass(frozen=True)
class JobFacts:
    """What the rules need from one job, read from its JobView."""

    id: str
    key: str | None
    node_tag: str | None
    attempt: int | None
    create_id: str | None
    claim_until: float | None
    created_at: float | None
    live: bool

    def claimable(self, skew: float = DEFAULT_CLOCK_SKEW) -> bool:
        """Created before its sender stopped waiting (see the module docstring).

        A job without the stamp (an older connector, ``perianctl submit``) is claimable.
        """
        if self.claim_until is None or self.created_at is None:
            return True
        return self.created_at <= self.claim_until + skew


def _timestamp(value: dt.datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def facts(job: m.JobView) -> JobFacts | None:
    """The facts of a job, or None when it has no id."""
    if not job.id:
        return None
    params = job.docker_metadata.docker_run_parameters if job.docker_metadata else None
    env = dict(params.env_variables or {}) if params else {}
    attempt: int | None
    try:
        attempt = int(env[ATTEMPT_ENV]) if ATTEMPT_ENV in env else None
    except (TypeError, ValueError):
        attempt = None
    claim: float | None
    try:
        claim = float(env[CLAIM_UNTIL_ENV]) if CLAIM_UNTIL_ENV in env else None
    except (TypeError, ValueError):
        claim = None
    if claim is not None and claim != claim:  # NaN never compares: treat as unstamped
        claim = None
    status = job.status
    return JobFacts(
        id=job.id,
        key=env.get(IDEMPOTENCY_ENV) or None,
        node_tag=env.get(NODE_TAG_ENV) or None,
        attempt=attempt,
        create_id=env.get(CREATE_ID_ENV) or None,
        claim_until=claim,
        created_at=_timestamp(job.created_at),
        live=not is_terminal(status),
    )


def _newest_first(jobs: Iterable[JobFacts]) -> list[JobFacts]:
    """Sent last first: by ``CLAIM_UNTIL`` (when the sender's call was made), then creation time."""
    return sorted(jobs, key=lambda j: (j.claim_until or 0.0, j.created_at or 0.0, j.id), reverse=True)


def adoptable(jobs: Iterable[JobFacts], key: str, *, skew: float = DEFAULT_CLOCK_SKEW) -> JobFacts | None:
    """The job a CreateTask for attempt ``key`` returns instead of creating one: the claimable job
    with that key sent last (the one the sweepers keep), running or not, or None. A finished one
    is returned too: the attempt's job has run, and propeller learns its outcome from GetTask."""
    candidates = [j for j in jobs if j.key == key and j.claimable(skew)]
    return _newest_first(candidates)[0] if candidates else None


@dataclass(frozen=True)
class Reap:
    job_id: str
    reason: str
    rule: str  # late | earlier-attempt | duplicate (a metric label)


def plan_sweep(jobs: Iterable[JobFacts], *, now: float, skew: float = DEFAULT_CLOCK_SKEW) -> list[Reap]:
    """Which live connector jobs to cancel, and why (the three rules of the module docstring).

    Only jobs carrying the connector's stamps are considered. ``now`` (Unix time) is not needed by
    today's rules; it is kept so a rule may depend on the clock without changing every caller.
    """
    jobs = [j for j in jobs if j.key is not None or j.node_tag is not None]
    reaps: dict[str, tuple[str, str]] = {}
    latest_attempt: dict[str, int] = {}
    for job in jobs:
        if job.node_tag is not None and job.attempt is not None:
            latest_attempt[job.node_tag] = max(latest_attempt.get(job.node_tag, -1), job.attempt)
    by_key: dict[str, list[JobFacts]] = defaultdict(list)
    for job in jobs:
        if job.key is not None and job.claimable(skew):
            by_key[job.key].append(job)  # finished ones too: the keeper may have finished already
        if not job.live:
            continue
        if job.claim_until is not None and not job.claimable(skew):
            reaps[job.id] = (
                "its create outlived the CreateTask call that sent it (never returned to propeller)",
                "late",
            )
            continue
        if job.node_tag is not None and job.attempt is not None and job.attempt < latest_attempt[job.node_tag]:
            reaps[job.id] = (
                f"orphan of attempt {job.attempt}: attempt {latest_attempt[job.node_tag]} of the same node exists",
                "earlier-attempt",
            )
    for group in by_key.values():
        if len(group) < 2:
            continue
        keep, *others = _newest_first(group)
        for job in others:
            if job.live and job.id not in reaps:
                reaps[job.id] = (f"duplicate of job {keep.id} for the same attempt", "duplicate")
    return [Reap(job_id, reason, rule) for job_id, (reason, rule) in reaps.items()]


@dataclass
class ScanResult:
    jobs: list[JobFacts]
    requests: int
    complete: bool  # reached a job older than ``since`` or the end of the list


async def scan_recent(client: PerianClient, *, since: float, page_size: int = 100, max_pages: int = 1000) -> ScanResult:
    """Every job created at or after ``since`` (Unix time), newest first, by paging until a page
    reaches older jobs. New jobs arriving meanwhile only shift pages (a job may be seen twice,
    never skipped); ``max_pages`` is a safety stop, reported as ``complete=False``."""
    seen: dict[str, JobFacts] = {}
    requests = 0
    page = 1
    while requests < max_pages:
        result = await client.list_jobs(limit=page_size, page=page)
        requests += 1
        oldest: float | None = None
        for job in result.jobs:
            found = facts(job)
            if found is None:
                continue
            if found.created_at is not None:
                oldest = found.created_at if oldest is None else min(oldest, found.created_at)
                if found.created_at < since:
                    continue
            seen.setdefault(found.id, found)
        pagination = result.pagination
        if (
            not result.jobs
            or (oldest is not None and oldest < since)
            or pagination is None
            or not pagination.next_page
            or pagination.next_page <= page
        ):
            return ScanResult(list(seen.values()), requests, True)
        page = pagination.next_page
    return ScanResult(list(seen.values()), requests, False)
