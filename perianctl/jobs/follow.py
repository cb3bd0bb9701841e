"""The core of ``watch``, ``wait`` and ``submit --wait/--watch``: poll a set of jobs, cheaply.

UI-free on purpose (the live table, the plain lines and NDJSON are views in :mod:`perianctl.ui.live`),
so the polling policy can be tested and benchmarked on its own. Why it works the way it does:

* **One paginated sweep per refresh, not one GET per job.** ``GET /job`` lists newest first, and
  jobs someone watches are almost always recent. A refresh therefore reads ``GET /job`` pages
  until every watched, not yet finished job was seen, or a page is older than the oldest of them,
  and remembers how deep it had to go so the next sweep asks for one page of the right size.
  Only ids the sweep missed (very old jobs, a list that lags) get a ``GET /job/{id}``, at most
  ``max_fallback_gets`` per refresh. Finished jobs are never fetched again. Watching one to
  three jobs uses plain GETs: a list page full of other jobs' logs would cost more.
* **Transient API trouble is survivable.** An :class:`~perianctl.errors.UnavailableError` (or a
  garbled answer) keeps the last known state, marks it stale and backs off with jitter (the
  client already honours ``Retry-After`` inside each call). Only after ``give_up_after`` seconds
  of continuous failure does it raise, which is exit code 8. Not found (7) and auth (6) errors
  are not transient and end the watch at once.
* **Every transition goes to the journal** with its time and phase message, which is the job's
  status history (PERIAN keeps none) that ``get --history`` shows.

Exit-code precedence when several jobs end differently (``wait``, ``watch``, ``submit --wait``):
**failed (3) > timed out (5) > cancelled (4) > succeeded (0)**. A failure is the most actionable
outcome (a bug to fix), a timeout is next (limits to raise, maybe a hang), a cancellation usually
happened on purpose. A ``wait --timeout`` that expires ranks like a job timeout: it yields 5 unless
a job already failed (then 3).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from perianctl.errors import (
    ExitCode,
    NotFoundError,
    PerianctlError,
    ProtocolError,
    UnavailableError,
)
from perianctl.flyte.phase import FlytePhase, exit_code_for_status, status_to_phase
from perianctl.jobs.observations import reported
from perianctl.perian.status import is_terminal

if TYPE_CHECKING:
    from perianctl.config import Settings
    from perianctl.journal import Journal
    from perianctl.perian.models import GetJobsSuccess, JobView

DEFAULT_INTERVAL = 2.0
"""Seconds between refreshes; ≥ 2 s keeps a long watch well inside API rate limits."""

MAX_PAGE_SIZE = 1000
MIN_PAGE_SIZE = 25
PAGE_SLACK = 25
"""Extra rows per sweep page for jobs created since the last refresh (they push ours down)."""


class WaitFor(StrEnum):
    """``wait --for``: what counts as done."""

    TERMINAL = "terminal"
    SUCCEEDED = "succeeded"


#: Higher is worse; see the module docstring for why.
_SEVERITY: dict[ExitCode, int] = {
    ExitCode.OK: 0,
    ExitCode.JOB_CANCELLED: 1,
    ExitCode.TIMEOUT: 2,
    ExitCode.JOB_FAILED: 3,
}


def worst_exit_code(codes: Iterable[ExitCode]) -> ExitCode:
    """The exit code that wins when jobs ended differently (OK for an empty set)."""
    return max(codes, key=lambda code: _SEVERITY.get(code, 4), default=ExitCode.OK)


class JobSource(Protocol):
    """What the poller needs from a backend (:class:`~perianctl.jobs.backend.JobBackend`; tests may
    pass a :class:`~perianctl.perian.client.PerianClient` or their own source).

    A source may also say ``can_list = False`` (a connector: no list call, so one get per job and
    refresh) and ``where`` (``connector HOST:PORT``: how an outage is named).
    """

    async def list_jobs(self, *, limit: int | None = None, page: int | None = None) -> GetJobsSuccess: ...

    async def get_job(self, job_id: str) -> JobView: ...


@dataclass(frozen=True)
class TransitionEvent:
    """A job seen in a new status. ``old_status`` is ``None`` the first time a job is seen."""

    job_id: str
    old_status: str | None
    new_status: str
    phase: str
    message: str
    at: float
    reported: bool = True
    """False when the status was derived from a connector's Flyte phase (not journalled)."""

    @property
    def at_iso(self) -> str:
        return iso_time(self.at)


@dataclass(frozen=True, slots=True)
class _Seen:
    """One job as a refresh saw it, compact: its JSON (about 1 KB) instead of its model (about 6 KB),
    so a sweep of 10,000 jobs does not hold 10,000 models until it is applied."""

    id: str
    status: str
    errors: str | None
    created: datetime | None
    json: str | None
    model: JobView | None = None
    """Kept only when the view cannot be serialised (a model built in code, not from the wire)."""
    reported: bool = True

    @classmethod
    def of(cls, job: JobView) -> _Seen:
        try:
            text: str | None = job.model_dump_json(by_alias=True)  # round-trips: models accept their names
            model = None
        except ValueError:
            text, model = None, job
        return cls(job.id or "", job.status, job.errors, _created(job), text, model, reported(job))


class WatchedJob:
    """What we know about one job: the last view the API gave and its Flyte phase.

    The view is kept as its JSON (about 1 KB a job), not as a model (about 6 KB: pydantic keeps a
    dict, a fields-set and nested models per job); :attr:`job` builds the model when a view asks
    for it. A watch of 10,000 jobs holds every job but builds models only for the rows it shows
    (the live frame is capped to the screen), so its memory stays near the size of the JSON.
    """

    __slots__ = (
        "_created",
        "_json",
        "_model",
        "_status",
        "first_seen",
        "job_id",
        "last_seen",
        "phase",
        "phase_message",
    )

    def __init__(
        self,
        job_id: str,
        job: JobView | None = None,
        phase: FlytePhase | None = None,
        phase_message: str = "",
        first_seen: float | None = None,
        last_seen: float | None = None,
    ) -> None:
        self.job_id = job_id
        self._json: str | None = None
        self._model: JobView | None = None
        self._status: str | None = None
        self._created: datetime | None = None
        self.job = job
        self.phase = phase
        self.phase_message = phase_message
        self.first_seen = first_seen
        self.last_seen = last_seen

    @property
    def job(self) -> JobView | None:
        """The last view the API gave (a fresh model each time when kept as JSON)."""
        if self._model is not None or self._json is None:
            return self._model
        from perianctl.perian.models import JobView

        return JobView.model_validate_json(self._json)

    @job.setter
    def job(self, value: JobView | None) -> None:
        if value is None:
            self._status = self._created = self._json = self._model = None
        else:
            self._keep(_Seen.of(value))

    def _keep(self, seen: _Seen) -> None:
        self._status, self._created, self._json, self._model = seen.status, seen.created, seen.json, seen.model

    @property
    def status(self) -> str | None:
        return self._status

    @property
    def created_at(self) -> datetime | None:
        """When the job was created (timezone-aware), without building the model."""
        return self._created

    @property
    def terminal(self) -> bool:
        return self._status is not None and is_terminal(self._status)

    @property
    def exit_code(self) -> ExitCode | None:
        return exit_code_for_status(self._status) if self._status is not None else None

    def __repr__(self) -> str:
        return f"WatchedJob({self.job_id!r}, status={self._status!r}, phase={self.phase!r})"


@dataclass(frozen=True)
class RefreshResult:
    """One refresh: what changed, what it cost, and whether the data is now stale."""

    events: list[TransitionEvent]
    ok: bool
    error: str | None = None
    list_requests: int = 0
    get_requests: int = 0
    fetch_seconds: float = 0.0

    @property
    def requests(self) -> int:
        return self.list_requests + self.get_requests


@dataclass
class PollStats:
    """Totals over a whole watch; reported at the end ("3 transient API errors")."""

    refreshes: int = 0
    list_requests: int = 0
    get_requests: int = 0
    errors: int = 0
    fetch_seconds: float = 0.0
    last_error: str | None = None

    @property
    def requests(self) -> int:
        return self.list_requests + self.get_requests


def iso_time(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _created(job: JobView) -> datetime | None:
    value = job.created_at
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Poller:
    """Keeps the state of a set of watched jobs up to date, one :meth:`refresh` at a time.

    ``discover=True`` is ``watch --all``: unfinished jobs on the first ``discover_pages`` list
    pages join the watched set, on the first refresh and on every later one (new jobs).
    A source that cannot list (a connector) is asked one get per pending job and refresh, and
    cannot discover. Outages are handled the same for every source (see the module docstring).
    """

    def __init__(
        self,
        client: JobSource,
        job_ids: Sequence[str] = (),
        *,
        discover: bool = False,
        discover_pages: int = 1,
        discover_page_size: int = 100,
        interval: float = DEFAULT_INTERVAL,
        max_backoff: float = 30.0,
        give_up_after: float | None = 300.0,
        direct_get_threshold: int = 3,
        max_pages: int = 20,
        max_fallback_gets: int = 25,
        journal: Journal | None = None,
        api_url: str | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.can_list = bool(getattr(client, "can_list", True))
        self.source = str(getattr(client, "where", "PERIAN API"))
        """What an outage is named after: ``PERIAN API`` or ``connector HOST:PORT``."""
        if discover and not self.can_list:
            from perianctl.jobs.backend import no_list_error

            raise no_list_error("watch --all")
        self.jobs: dict[str, WatchedJob] = {job_id: WatchedJob(job_id) for job_id in job_ids}
        self.discover = discover
        self.discover_pages = discover_pages
        self.discover_page_size = discover_page_size
        self.interval = interval
        self.max_backoff = max(max_backoff, interval)
        self.give_up_after = give_up_after
        self.direct_get_threshold = direct_get_threshold
        self.max_pages = max_pages
        self.max_fallback_gets = max_fallback_gets
        self.journal = journal
        self.api_url = api_url
        self.stats = PollStats()
        self.consecutive_errors = 0
        self.unavailable_since: float | None = None
        self.refresh_started: float | None = None
        """Monotonic start of the refresh in flight (None between refreshes): views show a slow one."""
        self._clock = clock
        self._monotonic = monotonic
        self._rng = rng or random.Random()
        self._depth_hint: int | None = None

    # ------------------------------------------------------------------ state

    @property
    def stale(self) -> bool:
        """True while the last refresh failed: what we show may be out of date."""
        return self.consecutive_errors > 0

    def refreshing_for(self) -> float | None:
        """Seconds the refresh in flight has taken so far (None between refreshes)."""
        if self.refresh_started is None:
            return None
        return max(0.0, self._monotonic() - self.refresh_started)

    def unavailable_for(self) -> float | None:
        """Seconds since the API stopped answering (None while it answers)."""
        if self.unavailable_since is None:
            return None
        return max(0.0, self._monotonic() - self.unavailable_since)

    @property
    def all_terminal(self) -> bool:
        return bool(self.jobs) and all(w.terminal for w in self.jobs.values())

    def watched(self) -> list[WatchedJob]:
        return list(self.jobs.values())

    def pending(self) -> list[WatchedJob]:
        """Jobs we still have to poll: not seen yet, or not finished."""
        return [w for w in self.jobs.values() if not w.terminal]

    def next_delay(self) -> float:
        """Seconds until the next refresh: the interval, or exponential back-off with jitter."""
        if self.consecutive_errors == 0:
            return self.interval
        base: float = min(self.max_backoff, self.interval * (2 ** min(self.consecutive_errors, 10)))
        return base / 2 + self._rng.uniform(0, base / 2)  # "equal jitter": spread out, never 0

    # ------------------------------------------------------------------ refresh

    async def refresh(self) -> RefreshResult:
        """Fetch the pending jobs once and apply what came back; never raises for transient errors.

        Raises :class:`~perianctl.errors.NotFoundError`, :class:`~perianctl.errors.AuthError` and
        friends (not transient), and :class:`~perianctl.errors.UnavailableError` once the API has
        been unreachable for longer than ``give_up_after``.
        """
        started = self._monotonic()
        counter = _Counter()
        found: dict[str, _Seen] = {}
        error: PerianctlError | None = None
        pending_ids = [w.job_id for w in self.pending()]
        self.refresh_started = started
        try:
            if self.can_list and (self.discover or len(pending_ids) > self.direct_get_threshold):
                found = await self._sweep(set(pending_ids), counter)
            missing = [job_id for job_id in pending_ids if job_id not in found]
            fetched, error = await self._fallback(missing, counter)
            found.update((job_id, _Seen.of(job)) for job_id, job in fetched.items())
        except (UnavailableError, ProtocolError) as exc:
            error = exc
        finally:
            self.refresh_started = None
        now = self._clock()
        events = [event for job in found.values() if (event := self._apply(job, now)) is not None]
        self._record(events)
        elapsed = self._monotonic() - started
        self.stats.refreshes += 1
        self.stats.list_requests += counter.lists
        self.stats.get_requests += counter.gets
        self.stats.fetch_seconds += elapsed
        if error is None:
            self.consecutive_errors = 0
            self.unavailable_since = None
            return RefreshResult(events, True, None, counter.lists, counter.gets, elapsed)
        self.consecutive_errors += 1
        self.stats.errors += 1
        self.stats.last_error = error.message
        if self.unavailable_since is None:
            self.unavailable_since = self._monotonic()
        if self.give_up_after is not None and self._monotonic() - self.unavailable_since >= self.give_up_after:
            raise UnavailableError(
                f"{self.source} unavailable for {self._monotonic() - self.unavailable_since:.0f}s "
                f"({self.stats.errors} failed refreshes; last: {error.message}); giving up",
                hint="the jobs keep running; try again later",
            )
        return RefreshResult(events, False, error.message, counter.lists, counter.gets, elapsed)

    async def _sweep(self, wanted: set[str], counter: _Counter) -> dict[str, _Seen]:
        """Newest-first ``GET /job`` pages until every wanted id is found (see module docstring)."""
        found: dict[str, _Seen] = {}
        remaining = set(wanted)
        oldest = self._oldest_created(wanted)
        page_size = self._page_size(len(wanted))
        page = 1
        position = 0
        deepest = 0
        for pages_read in range(1, self.max_pages + 1):
            counter.lists += 1  # counted before the call: a failed request costs the API too
            result = await self.client.list_jobs(limit=page_size, page=page)
            for job in result.jobs:
                position += 1
                job_id = job.id
                if not job_id:
                    continue
                if job_id in remaining:
                    remaining.discard(job_id)
                    found[job_id] = _Seen.of(job)
                    deepest = position
                elif (
                    self.discover
                    and pages_read <= self.discover_pages
                    and job_id not in self.jobs
                    and not is_terminal(job.status)
                ):
                    self.jobs[job_id] = WatchedJob(job_id)
                    found[job_id] = _Seen.of(job)
            pagination = result.pagination
            if not remaining and (not self.discover or pages_read >= self.discover_pages):
                break
            if not result.jobs or pagination is None or not pagination.next_page or pagination.next_page <= page:
                break
            if oldest is not None and remaining and self._page_older_than(result.jobs, oldest):
                break
            page = pagination.next_page
        if not remaining:
            self._depth_hint = deepest
        return found

    def _page_size(self, wanted: int) -> int:
        base = max(wanted, self._depth_hint or 0)
        if self.discover:
            base = max(base, self.discover_page_size)
        return max(MIN_PAGE_SIZE, min(MAX_PAGE_SIZE, base + PAGE_SLACK))

    def _oldest_created(self, wanted: set[str]) -> datetime | None:
        """Creation time of the oldest wanted job, if we know it for all of them."""
        times: list[datetime] = []
        for job_id in wanted:
            watched = self.jobs.get(job_id)
            created = watched.created_at if watched is not None else None
            if created is None:
                return None
            times.append(created)
        return min(times) if times else None

    @staticmethod
    def _page_older_than(jobs: Sequence[JobView], oldest: datetime) -> bool:
        created = [c for job in jobs if (c := _created(job)) is not None]
        return bool(created) and min(created) < oldest

    async def _fallback(
        self, missing: list[str], counter: _Counter
    ) -> tuple[dict[str, JobView], PerianctlError | None]:
        """``GET /job/{id}`` for ids the sweep missed, least recently seen first, bounded."""
        if not missing:
            return {}, None
        missing.sort(key=lambda job_id: self.jobs[job_id].last_seen or 0.0)
        batch = missing[: self.max_fallback_gets]
        counter.gets += len(batch)
        results = await asyncio.gather(*(self.client.get_job(job_id) for job_id in batch), return_exceptions=True)
        fetched: dict[str, JobView] = {}
        transient: PerianctlError | None = None
        for job_id, result in zip(batch, results, strict=True):
            if isinstance(result, (UnavailableError, ProtocolError)):
                transient = result
            elif isinstance(result, NotFoundError):
                raise NotFoundError(
                    f"job {job_id} not found",
                    status=result.status,
                    detail=result.detail,
                    hint="check the id (perianctl list) and the profile/API URL",
                )
            elif isinstance(result, BaseException):
                raise result
            else:
                fetched[job_id] = result
        return fetched, transient

    def _apply(self, job: _Seen, now: float) -> TransitionEvent | None:
        assert job.id
        watched = self.jobs.setdefault(job.id, WatchedJob(job.id))
        old = watched.status
        info = status_to_phase(job.status, errors=job.errors, last_phase=watched.phase)
        watched._keep(job)
        watched.phase = info.phase
        watched.phase_message = info.message
        watched.last_seen = now
        if watched.first_seen is None:
            watched.first_seen = now
        if old == job.status:
            return None
        return TransitionEvent(job.id, old, job.status, info.phase.name, info.message, now, job.reported)

    def _record(self, events: list[TransitionEvent]) -> None:
        from perianctl.jobs.observations import record_events

        record_events(self.journal, events, api_url=self.api_url)


@dataclass
class _Counter:
    lists: int = 0
    gets: int = 0


# ---------------------------------------------------------------------- waiting


@dataclass(frozen=True)
class WaitResult:
    """How a wait ended: the jobs as last seen, the exit code, and a one-line reason."""

    jobs: list[WatchedJob]
    exit_code: ExitCode
    reason: str
    message: str
    still_running: list[str] = field(default_factory=list)
    stats: PollStats = field(default_factory=PollStats)


def decide(jobs: Sequence[WatchedJob], wait_for: WaitFor) -> ExitCode | None:
    """The exit code if waiting is over for ``jobs``, else ``None`` (pure; the policy in one place).

    ``terminal``: over when every job is terminal; the worst outcome wins.
    ``succeeded``: over as soon as any job ended without success (its code), or all succeeded (0).
    Undefined and unknown statuses are not terminal: we keep waiting.
    """
    codes = [w.exit_code for w in jobs]
    if wait_for is WaitFor.SUCCEEDED:
        bad = [c for c in codes if c is not None and c is not ExitCode.OK]
        if bad:
            return worst_exit_code(bad)
    if codes and all(c is not None for c in codes):
        return worst_exit_code(c for c in codes if c is not None)
    return None


def describe_outcome(jobs: Sequence[WatchedJob]) -> str:
    """``"2 Done, 1 UserError"``: counts per PERIAN status, in first-seen order."""
    counts: dict[str, int] = {}
    for w in jobs:
        key = w.status or "unseen"
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in counts.items())


RefreshHook = Callable[[Poller, RefreshResult], None]
TickHook = Callable[[Poller], None]


async def wait_for(
    poller: Poller,
    *,
    wait_for: WaitFor = WaitFor.TERMINAL,
    timeout: float | None = None,
    on_refresh: RefreshHook | None = None,
    on_tick: TickHook | None = None,
    tick: float = 1.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> WaitResult:
    """Refresh until :func:`decide` says done or ``timeout`` passes; the core of wait and watch.

    ``on_refresh`` sees every refresh (views render transitions from it); ``on_tick`` is called
    about every ``tick`` seconds in between, so a live view can advance its elapsed-time column
    without another API request. With ``poller.discover`` and nothing to watch, returns at once.
    """
    monotonic = poller._monotonic
    deadline = monotonic() + timeout if timeout is not None else None
    while True:
        result = await _refresh_ticking(poller, on_tick, tick)
        if on_refresh is not None:
            on_refresh(poller, result)
        jobs = poller.watched()
        if not jobs and poller.discover and result.ok:
            return WaitResult([], ExitCode.OK, "empty", "no unfinished jobs to watch", stats=poller.stats)
        # Deciding on stale data is sound: a terminal status never changes, unseen jobs wait.
        code = decide(jobs, wait_for)
        if code is not None:
            reason = "succeeded" if code is ExitCode.OK else "outcome"
            return WaitResult(jobs, code, reason, _summary(jobs, code, wait_for), stats=poller.stats)
        delay = poller.next_delay()
        if deadline is not None:
            remaining = deadline - monotonic()
            if remaining <= 0:
                return _timed_out(poller, timeout or 0.0)
            delay = min(delay, remaining)  # one last refresh right at the deadline
        await _sleep_ticking(poller, delay, on_tick, tick, sleep)


async def _refresh_ticking(poller: Poller, on_tick: TickHook | None, tick: float) -> RefreshResult:
    """One refresh; ``on_tick`` keeps being called while it runs, so a view can say that the API is
    slow to answer (a refresh can take as long as the client's time budget)."""
    if on_tick is None or tick <= 0:
        return await poller.refresh()
    task = asyncio.ensure_future(poller.refresh())
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=tick)
            if done:
                return task.result()
            on_tick(poller)
    finally:
        if not task.done():
            task.cancel()


async def _sleep_ticking(
    poller: Poller,
    delay: float,
    on_tick: TickHook | None,
    tick: float,
    sleep: Callable[[float], Awaitable[None]],
) -> None:
    if on_tick is None or tick <= 0:
        await sleep(delay)
        return
    monotonic = poller._monotonic
    end = monotonic() + delay
    while (left := end - monotonic()) > 0:
        await sleep(min(tick, left))
        on_tick(poller)


def _timed_out(poller: Poller, timeout: float) -> WaitResult:
    jobs = poller.watched()
    running = [w.job_id for w in jobs if not w.terminal]
    finished = [w.exit_code for w in jobs if w.exit_code is not None]
    code = worst_exit_code([*finished, ExitCode.TIMEOUT])
    listing = ", ".join(f"{job_id} ({poller.jobs[job_id].status or 'unseen'})" for job_id in running[:10])
    if len(running) > 10:
        listing += f" and {len(running) - 10} more"
    message = f"gave up waiting after {_seconds(timeout)}: {len(running)} job(s) still running: {listing}"
    if code is not ExitCode.TIMEOUT:
        message += f"; and {describe_outcome([w for w in jobs if w.terminal])}"
    return WaitResult(jobs, code, "wait-timeout", message, running, poller.stats)


def _summary(jobs: Sequence[WatchedJob], code: ExitCode, wait_for: WaitFor) -> str:
    if code is ExitCode.OK:
        return f"{len(jobs)} job(s) succeeded" if len(jobs) != 1 else f"job {jobs[0].job_id} succeeded"
    if len(jobs) == 1:
        w = jobs[0]
        return f"job {w.job_id} ended {w.phase_message or w.status}"
    text = describe_outcome(jobs)
    if wait_for is WaitFor.SUCCEEDED and any(not w.terminal for w in jobs):
        text += " (stopped early: --for succeeded)"
    return text


def _seconds(value: float) -> str:
    return f"{value:g}s"


# ---------------------------------------------------------------------- the use case


class FollowView(Protocol):
    """How a follow is shown (:mod:`perianctl.ui.live` has the views); hooks of :func:`wait_for`."""

    def start(self) -> None: ...

    def on_refresh(self, poller: Poller, result: RefreshResult) -> None: ...

    def on_tick(self, poller: Poller) -> None: ...

    def finish(self, poller: Poller, result: WaitResult | None, *, error: str | None = None) -> None: ...


async def follow_jobs(
    settings: Settings,
    ids: Sequence[str],
    *,
    connector: str | None,
    make_view: Callable[[Journal | None], FollowView],
    wait_for: WaitFor = WaitFor.TERMINAL,
    timeout: float | None = None,
    interval: float = DEFAULT_INTERVAL,
    discover: bool = False,
    give_up_after: float | None = 300.0,
    output_prefixes: dict[str, str] | None = None,
    on_unreadable: Callable[[str, Any], None] | None = None,
    warn: Callable[[str], None],
) -> tuple[WaitResult, Poller]:
    """``watch``, ``wait``, ``submit --wait/--watch``: follow ``ids`` through the command's one backend
    (the PERIAN API, or one channel to ``connector``) until they end, ``timeout`` passes or the
    source has been unavailable for ``give_up_after`` seconds (exit 8, the same outage policy for
    both). Transitions go into the journal (``warn`` tells the user when it cannot be used).
    ``output_prefixes`` (``submit``) lets a connector read a failed task's error document for a job
    the journal does not know yet.
    """
    from perianctl.errors import PerianctlError
    from perianctl.jobs.backend import ConnectorBackend, open_backend
    from perianctl.journal import open_journal_best_effort

    if discover and connector:
        from perianctl.jobs.backend import no_list_error

        raise no_list_error("watch --all")
    retry = None
    if not connector:
        from perianctl.perian.client import RetryPolicy

        # Short client-side retries: a refresh that fails is retried by the poller's back-off anyway,
        # and a quick failure lets the view show "stale" instead of freezing for a minute.
        retry = RetryPolicy(attempts=2, timeout=max(10.0, interval * 3), wait_initial=0.2, wait_max=1.0)
    with open_journal_best_effort(warn=warn) as journal:
        async with open_backend(settings, connector=connector, retry=retry, on_unreadable=on_unreadable) as backend:
            if isinstance(backend, ConnectorBackend):
                for job_id, prefix in (output_prefixes or {}).items():
                    backend.remember_output_prefix(job_id, prefix)
            poller = Poller(
                backend,
                ids,
                discover=discover,
                interval=interval,
                journal=journal,
                api_url=backend.api_url if backend.kind == "perian" else None,
                give_up_after=give_up_after,
            )
            view = make_view(journal)
            result: WaitResult | None = None
            failure: str | None = None
            view.start()
            try:
                result = await wait_for_(
                    poller, wait_for=wait_for, timeout=timeout, on_refresh=view.on_refresh, on_tick=view.on_tick
                )
            except PerianctlError as exc:
                failure = exc.message
                raise
            finally:
                view.finish(poller, result, error=failure)
            return result, poller


wait_for_ = wait_for
""":func:`wait_for` under a name the ``wait_for`` parameter of :func:`follow_jobs` does not hide."""
