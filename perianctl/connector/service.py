"""The PERIAN Flyte connector: ``perian_task`` → PERIAN jobs, truly async, idempotent, never UNDEFINED.

A drop-in replacement for ``flytekitplugins-perian-job``'s connector (same task type, same
``ResourceMeta`` bytes ``{"job_id": "..."}``, same secret names; flytekit's
plugins/flytekit-perian/flytekitplugins/perian_job/connector.py, 1.16.31), fixing what it gets wrong:

* **No blocking on the event loop.** Every PERIAN call goes through one shared
  :class:`~perianctl.perian.client.PerianClient` (pooled ``httpx.AsyncClient``) per event loop, so a
  slow create never delays a concurrent GetTask.
* **Deadline-aware.** Every PERIAN call made for an RPC is bounded by that RPC's remaining gRPC
  deadline minus a safety margin (:class:`ConnectorSettings`), never by a fixed timeout: a reply
  that arrives after propeller gave up is worth nothing, and a create that outlives its RPC is
  how duplicates and orphans are made.
* **Convergent create.** The attempt key comes from ``task_execution_metadata``
  (:mod:`.idempotency`); every ``POST /job`` is stamped so that any replica can tell from PERIAN
  data alone whether a job can have been returned to propeller (:mod:`.convergence`). A
  background sweeper in every replica cancels the jobs that cannot: creates that outlived their
  RPC, duplicates of one attempt, and jobs of earlier attempts.
* **GetTask never fails for transient trouble.** Propeller counts GetTask errors cumulatively and
  gives up after five (``maxSystemFailures`` in flyteplugins
  go/tasks/pluginmachinery/internal/webapi/cache.go, v1.16.x), so an unavailable PERIAN API keeps
  the last known phase with a short message instead. A job that does not exist is FAILED with a clear message.
* **Short messages, log links, custom_info.** Logs travel over GetTaskLogs (streamed by
  ``perianctl serve``), never in the phase message.
* **Idempotent delete**: an unknown or already finished job is fine.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import datetime as dt
import json
import logging
import re
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from flyteidl.admin.agent_pb2 import (
    GetTaskLogsResponse,
    GetTaskLogsResponseBody,
    GetTaskLogsResponseHeader,
    GetTaskMetricsResponse,
    LogLine,
    LogLineOriginator,
)
from flyteidl.core.execution_pb2 import TaskExecution, TaskLog
from flyteidl.core.metrics_pb2 import ExecutionMetricResult
from flytekit.extend.backend.base_connector import AsyncConnectorBase, Resource, ResourceMeta
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct
from prometheus_client import Counter, Histogram

from perianctl.connector import convergence as cv
from perianctl.connector.idempotency import IdempotencyInfo, idempotency_for
from perianctl.connector.secrets import ResolvedSecrets, resolve_secrets, with_request_secrets
from perianctl.connector.settings import ConnectorSettings
from perianctl.connector.spend import SpendMeter, cost_amount, money_info, with_budget
from perianctl.errors import AuthError, NotFoundError, PerianctlError, ProtocolError, UnavailableError
from perianctl.flyte.phase import FlytePhase, PhaseInfo, is_terminal_phase, status_to_phase
from perianctl.flyte.templates import PERIAN_TASK_TYPE, PERIAN_TASK_TYPE_VERSION
from perianctl.perian import models as m
from perianctl.perian.client import PerianClient, RetryPolicy, api_deadline
from perianctl.perian.pricing import runtime_seconds
from perianctl.perian.status import WorkloadStatus
from perianctl.text import last_line, one_line

if TYPE_CHECKING:
    from flyteidl.core.tasks_pb2 import TaskTemplate as TaskTemplatePb

log = logging.getLogger("perianctl.connector")

TASK_TYPE = PERIAN_TASK_TYPE
TASK_TYPE_VERSION = PERIAN_TASK_TYPE_VERSION
CONNECTOR_NAME = "PERIAN Connector (perianctl)"
LOG_PAGE_LINES = 5000
LOG_CHUNK_LINES = 500
METRIC_RUNTIME = "PERIAN_JOB_RUNTIME_SECONDS"
METRIC_COST = "PERIAN_JOB_COST_ESTIMATE"

#: Retries of one PERIAN call; the time they may take is the RPC's budget, not this policy's. A refused
#: connection is retried too (a CLI gives up at once; a connector call would otherwise burn one of the
#: task's retries on an API restart that is over in a few seconds).
CONNECTOR_RETRY = RetryPolicy(
    attempts=20, timeout=8.0, wait_initial=0.2, wait_max=1.0, wait_jitter=0.2, max_retry_after=5.0, connect_attempts=20
)

MAX_RESOURCE_META_BYTES = 4096
#: PERIAN job ids are UUIDs; accept any short token of URL-safe characters, refuse anything else
#: before it reaches a URL (a 100 kB id used to end as INTERNAL).
JOB_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

LOOKUP_REQUESTS = Histogram(
    "perianctl_connector_lookup_requests",
    "PERIAN list requests per job look-up (bounded by creation time, so this grows with the jobs created "
    "in the window, never with the organization's history)",
    ["purpose"],
    buckets=(1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000),
)
REAPED = Counter(
    "perianctl_connector_reaped_jobs_total",
    "PERIAN jobs the connector cancelled because no task attempt owns them",
    ["rule"],
)
PERIAN_API_REQUESTS = Counter(
    "perianctl_perian_api_requests_total",
    "PERIAN API requests made by the connector, by method, route and HTTP status ('error' = no response)",
    ["method", "route", "status"],
)


@dataclass
class PerianMetadata(ResourceMeta):  # type: ignore[misc]  # flytekit is untyped
    """What propeller stores for a task: exactly ``{"job_id": "..."}``, like the official connector.

    ``decode`` tolerates extra keys (a newer connector may add some) where flytekit's does not, so a
    rollback or a mixed-version rollout never breaks GetTask for in-flight jobs.
    """

    job_id: str

    @classmethod
    def decode(cls, data: bytes) -> PerianMetadata:
        """Strict about size and shape: whatever propeller hands back is checked before use, and a
        bad value is INVALID_ARGUMENT (a ValueError), never an internal error."""
        raw = bytes(data)
        if len(raw) > MAX_RESOURCE_META_BYTES:
            raise ValueError(
                f"resource_meta is {len(raw)} bytes, more than the {MAX_RESOURCE_META_BYTES} a "
                'PERIAN job reference can be; expected {"job_id": "..."}'
            )
        try:
            payload = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise ValueError('resource_meta is not JSON; expected {"job_id": "..."}') from None
        job_id = payload.get("job_id") if isinstance(payload, dict) else None
        if not isinstance(job_id, str) or not job_id.strip():
            raise ValueError('resource_meta has no job_id; expected {"job_id": "..."}')
        job_id = job_id.strip()
        if not JOB_ID_PATTERN.fullmatch(job_id):
            shown = job_id[:40] + ("..." if len(job_id) > 40 else "")
            raise ValueError(
                f"resource_meta has an invalid job_id {shown!r} ({len(job_id)} characters; expected a PERIAN job id)"
            )
        return cls(job_id=job_id)


class _CountingTransport(httpx.AsyncBaseTransport):
    """Counts PERIAN API responses by status for Prometheus (a public httpx hook; no client changes)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        route = _route(request.url.path)
        try:
            response = await self._inner.handle_async_request(request)
        except Exception:
            PERIAN_API_REQUESTS.labels(request.method, route, "error").inc()
            raise
        PERIAN_API_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def _transport(backend: str, max_connections: int) -> httpx.AsyncBaseTransport:
    try:
        from perianctl.perian.transport import default_transport
    except ImportError:  # no aiohttp: httpx's own transport still works, only slower
        return httpx.AsyncHTTPTransport(
            retries=0, limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        )
    return default_transport(backend, max_connections=max_connections)


def _route(path: str) -> str:
    """``/job/3f2c.../cancel`` → ``/job/{id}/cancel``: bounded label cardinality."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] in ("job", "instance-type"):
        parts[1] = "{id}"
    return "/" + "/".join(parts)


class _PhaseMemory:
    """Last phase reported per job (bounded LRU), for answers when PERIAN cannot be asked."""

    def __init__(self, size: int) -> None:
        self._size = max(1, size)
        self._data: collections.OrderedDict[str, FlytePhase] = collections.OrderedDict()

    def get(self, job_id: str) -> FlytePhase | None:
        return self._data.get(job_id)

    def put(self, job_id: str, phase: FlytePhase) -> None:
        self._data[job_id] = phase
        self._data.move_to_end(job_id)
        while len(self._data) > self._size:
            self._data.popitem(last=False)


@dataclass
class _Flight:
    """One create for one attempt key on this replica; re-sent CreateTasks join it."""

    task: asyncio.Task[str]


@dataclass
class _LoopState:
    clients: dict[tuple[str, str, str], PerianClient] = field(default_factory=dict)
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    creating: dict[str, _Flight] = field(default_factory=dict)
    closers: set[asyncio.Task[None]] = field(default_factory=set)
    sweeper: asyncio.Task[None] | None = None
    swept: asyncio.Event = field(default_factory=asyncio.Event)


class _Spent(Exception):
    """The RPC's budget ran out before PERIAN answered."""


def _deadline_left(cut: float) -> float:
    return cut - time.monotonic()


@contextlib.asynccontextmanager
async def _within(cut: float) -> AsyncIterator[None]:
    """Bound the PERIAN calls in the block by the monotonic time ``cut``: the HTTP attempts through
    the client's budget scope (so retries stop in time), and the block as a whole by a timeout."""
    left = _deadline_left(cut)
    if left <= 0.02:
        raise _Spent()
    try:
        with api_deadline(left):  # the client's one budget mechanism: retries and timeouts fit in
            async with asyncio.timeout(left + 0.05):  # and a hard stop for the block as a whole
                yield
    except TimeoutError:
        raise _Spent() from None


class PerianConnector(AsyncConnectorBase):  # type: ignore[misc]  # flytekit is untyped
    """flytekit ``AsyncConnectorBase`` for task type ``perian_task`` v0."""

    name = CONNECTOR_NAME

    def __init__(self, settings: ConnectorSettings | None = None) -> None:
        super().__init__(task_type_name=TASK_TYPE, task_type_version=TASK_TYPE_VERSION, metadata_type=PerianMetadata)
        self.settings = settings or ConnectorSettings()
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()
        self._secrets: ResolvedSecrets | None = None
        self._secrets_at = 0.0
        self._api_url = ""
        self._phases = _PhaseMemory(self.settings.remember_phases)
        self._error_docs: collections.OrderedDict[str, tuple[FlytePhase, str] | None] = collections.OrderedDict()
        self._spend = SpendMeter(TASK_TYPE, self.settings.remember_phases)
        self._trouble_since: float | None = None  # wall time PERIAN first failed a GetTask, until it answers

    # ------------------------------------------------------------------ plumbing

    def secrets(self) -> ResolvedSecrets:
        """Secrets, re-read every ``secrets_ttl`` seconds so a rotated Secret needs no restart.

        The lookup is a few small file reads; cheap enough to do on the loop once a minute.
        """
        now = time.monotonic()
        if self._secrets is None or now - self._secrets_at > self.settings.secrets_ttl:
            fallback = self.settings.fallback()  # may read a config file: not per call
            self._secrets = resolve_secrets(
                organization=self.settings.organization, token=self.settings.token, fallback=fallback
            )
            self._api_url = self.settings.resolved_api_url(fallback)
            self._secrets_at = now
        return with_request_secrets(self._secrets)  # a flyteidl2 request's Connection wins

    def api_url(self) -> str:
        self.secrets()
        return self._api_url

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            state = self._loops[loop] = _LoopState()
        return state

    def client(self) -> PerianClient:
        """The shared client of this event loop for the current API URL and credentials."""
        secrets = self.secrets()
        missing = secrets.missing_credentials()
        if missing:
            raise AuthError(
                f"no PERIAN {' and '.join(missing)} configured for the connector",
                hint="mount them as /etc/secrets/perian_organization and /etc/secrets/perian_token "
                "(or set _FSEC_PERIAN_ORGANIZATION/_FSEC_PERIAN_TOKEN)",
            )
        api_url = self._api_url
        org, token = secrets.organization or "", secrets.token or ""
        key = (api_url, org, token)
        state = self._state()
        client = state.clients.get(key)
        if client is None:
            # Same API and organization, another token: rotated, so retire the old pool. Other
            # organizations' pools (per-request Connection secrets) stay.
            stale = [state.clients.pop(k) for k in list(state.clients) if k[:2] == key[:2]]
            for old in stale:  # credentials rotated: close the old pool once its calls are done
                closer = asyncio.get_running_loop().create_task(
                    _close_later(old, delay=max(self.settings.create_budget, self.settings.get_budget) * 2)
                )
                state.closers.add(closer)
                closer.add_done_callback(state.closers.discard)
            client = PerianClient(
                api_url,
                org,
                token,
                connect_timeout=self.settings.connect_timeout,
                read_timeout=self.settings.read_timeout,
                retry=self.settings.retry or CONNECTOR_RETRY,
                max_connections=self.settings.max_connections,
                transport=_CountingTransport(_transport(self.settings.http_backend, self.settings.max_connections)),
                user_agent="perianctl-connector",
            )
            state.clients[key] = client
        self.start_sweeper()
        return client

    def _spawn(self, coro: Any) -> None:
        """Run ``coro`` in the background, keeping a reference so it is not garbage-collected."""
        state = self._state()
        task = asyncio.get_running_loop().create_task(coro)
        state.background.add(task)
        task.add_done_callback(state.background.discard)

    async def wait_background(self, timeout: float = 10.0) -> None:
        """Wait for background work of this loop (not the sweeper); used at shutdown and in tests."""
        pending = list(self._state().background)
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    async def aclose(self) -> None:
        """Stop the sweeper, finish background work and close this loop's HTTP pools."""
        state = self._state()
        if state.sweeper is not None:
            state.sweeper.cancel()
            with contextlib.suppress(BaseException):
                await state.sweeper
            state.sweeper = None
        await self.wait_background()
        closers = list(state.closers)
        for closer in closers:  # retired pools: close now instead of after their grace delay
            closer.cancel()
        if closers:
            await asyncio.gather(*closers, return_exceptions=True)
        clients = list(state.clients.values())
        state.clients.clear()
        for client in clients:
            await client.aclose()

    def log_link(self, job_id: str) -> TaskLog | None:
        template = self.settings.log_link_template
        if not template:
            return None
        secrets = self.secrets()
        uri = template.format(api_url=self.api_url(), job_id=job_id, organization=secrets.organization or "")
        return TaskLog(name=f"PERIAN job {job_id}", uri=uri, ShowWhilePending=True)

    def _cut(self, deadline: float | None, default: float) -> float:
        """The monotonic time by which an RPC's PERIAN work must be done: its gRPC deadline minus the
        margin, or ``default`` seconds from now when the call has no deadline."""
        if deadline is None:
            return time.monotonic() + default
        return deadline - self.settings.deadline_margin

    # ------------------------------------------------------------------ create

    async def create(
        self,
        task_template: Any,
        output_prefix: str,
        inputs: Any = None,
        task_execution_metadata: Any = None,
        deadline: float | None = None,
        **kwargs: Any,
    ) -> PerianMetadata:
        """Translate the (already rendered) template and create the job exactly once per attempt.

        ``deadline`` is the RPC's gRPC deadline on the monotonic clock (``perianctl serve`` passes
        it); all PERIAN work is done by ``deadline - deadline_margin``.
        """
        cut = self._cut(deadline, self.settings.create_budget)
        template = _as_proto(task_template)
        secrets = self.secrets()
        request = _translate(template, inputs, output_prefix, secrets)
        info = idempotency_for(task_execution_metadata, output_prefix)
        request = request.with_env(under=_metadata_env(task_execution_metadata), over=info.env())
        client = self.client()
        try:
            async with _within(cut):
                request = await with_budget(client, template, request)
        except _Spent:
            raise UnavailableError(
                "create job: the PERIAN API did not answer the instance-type search within this "
                "call's deadline; no job was created"
            ) from None
        job_id = await self._create_converging(client, request, info, cut)
        self._phases.put(job_id, FlytePhase.QUEUED)
        log.info(
            "created PERIAN job %s for %s",
            job_id,
            info.execution.display if info.execution else f"output prefix {output_prefix}",
        )
        return PerianMetadata(job_id=job_id)

    async def _create_converging(
        self, client: PerianClient, request: m.CreateJobRequest, info: IdempotencyInfo, cut: float
    ) -> str:
        """Single flight per attempt key on this replica; the answer must be back by ``cut``.

        A re-sent CreateTask arriving while the first still waits on PERIAN joins it (a look-up at
        that moment would find nothing and post a duplicate). The create goes on when the call that
        started it is cancelled: its job is then found by the re-send (on any replica), or reaped.
        """
        state = self._state()
        flight = state.creating.get(info.key)
        if flight is None:
            task = asyncio.get_running_loop().create_task(self._issue(client, request, info, cut))
            flight = _Flight(task)
            state.creating[info.key] = flight
            state.background.add(task)
            started = flight
            task.add_done_callback(lambda _t: self._flight_done(info.key, started))
        left = _deadline_left(cut)
        try:
            if left <= 0:
                raise TimeoutError
            job_id = await asyncio.wait_for(asyncio.shield(flight.task), timeout=left)
        except TimeoutError:
            raise UnavailableError(
                "create job: PERIAN did not answer within this call's deadline; a job it "
                "makes after all is cancelled by the connector",
                hint="propeller retries the task as a new attempt",
            ) from None
        except _Spent:
            raise UnavailableError(
                "create job: PERIAN did not answer within this call's deadline; a job it "
                "makes after all is cancelled by the connector"
            ) from None
        return job_id

    def _flight_done(self, key: str, flight: _Flight) -> None:
        state = self._state()
        state.background.discard(flight.task)
        if state.creating.get(key) is flight:
            del state.creating[key]
        if not flight.task.cancelled():
            flight.task.exception()  # retrieved here, so an abandoned failure is not reported twice

    async def _issue(self, client: PerianClient, request: m.CreateJobRequest, info: IdempotencyInfo, cut: float) -> str:
        """Adopt the attempt's claimable job, or post one; the job id."""
        settings = self.settings
        try:
            async with _within(cut):
                scan = await cv.scan_recent(
                    client, since=time.time() - settings.adopt_window, page_size=settings.list_page_size
                )
        except _Spent:
            raise UnavailableError(
                "create job: the PERIAN API did not answer the look-up for an earlier job of "
                "this attempt in time; no job was created"
            ) from None
        except UnavailableError as exc:
            raise UnavailableError(f"{exc.message}; no job was created") from None
        LOOKUP_REQUESTS.labels("adopt").observe(scan.requests)
        found = cv.adoptable(scan.jobs, info.key, skew=settings.clock_skew)
        if found is not None:
            log.info("CreateTask re-sent for %s: returning its existing PERIAN job %s", info.key, found.id)
            return found.id
        # Hang up on the POST ``create_reserve`` before the cut: that leaves time to look the job up
        # when the reply is lost, and makes the stamp below exact (a job made later is never returned).
        post_cut = cut - settings.create_reserve
        claim_base = time.time() + _deadline_left(post_cut)
        for attempt in range((settings.retry or CONNECTOR_RETRY).attempts):
            if _deadline_left(post_cut) < 0.1:
                raise UnavailableError(
                    "create job: no time left in this call's deadline to create the job; no job was created"
                )
            create_id = cv.new_create_id()
            # A later POST of this call gets a later stamp, so if an earlier one shows up after all,
            # the sweepers keep the one returned here (the last sent) and cancel the other.
            claim_until = claim_base + 0.01 * attempt
            body = request.with_env(over={cv.IDEMPOTENCY_ENV: info.key, **cv.stamps(create_id, claim_until)})
            issued = time.time()
            try:
                async with _within(post_cut):
                    return await client.create_job(body)
            except (UnavailableError, ProtocolError) as exc:
                if isinstance(exc, UnavailableError) and (exc.never_sent or exc.status == 429):
                    raise  # provably nothing was created
                answered = getattr(exc, "reason", None) in ("status", "transport") or isinstance(exc, ProtocolError)
                log.info("create %s for %s: outcome unknown (%s); looking it up", create_id, info.key, exc)
            except _Spent:
                answered = False
                log.info("create %s for %s: no answer by its hang-up time; looking it up", create_id, info.key)
            # PERIAN answered (5xx, reset): one look-up settles it, and if no job carries the create
            # id, another POST is safe. No answer by the hang-up time: look up until the cut.
            confirmed = await self._confirm(
                client, info, create_id, since=issued - 60.0, cut=post_cut if answered else cut, once=answered
            )
            if confirmed is not None:
                return confirmed
            if not answered:
                break
        raise UnavailableError(
            "create job: PERIAN did not answer within this call's deadline; a job it makes after "
            "all is returned to a re-sent call or cancelled by the connector",
            hint="propeller retries the task as a new attempt",
        )

    async def _confirm(
        self, client: PerianClient, info: IdempotencyInfo, create_id: str, *, since: float, cut: float, once: bool
    ) -> str | None:
        """Find the job of an ambiguous POST by its create id, until ``cut`` (``once``: until one
        look-up has answered). None when it was not found.

        Only a claimable job is returned (one PERIAN made before the POST's hang-up time); one made
        later is left to the sweepers, which cancel it, so every replica agrees about it.
        """
        delay = 0.1
        while True:
            try:
                async with _within(cut):
                    scan = await cv.scan_recent(client, since=since, page_size=self.settings.list_page_size)
            except _Spent:
                return None
            except (UnavailableError, ProtocolError):
                pass
            else:
                LOOKUP_REQUESTS.labels("confirm").observe(scan.requests)
                mine = next((j for j in scan.jobs if j.create_id == create_id), None)
                if mine is not None:
                    if mine.claimable(self.settings.clock_skew):
                        log.info(
                            "create %s for %s: PERIAN made job %s; the reply was lost", create_id, info.key, mine.id
                        )
                        return mine.id
                    log.info(
                        "create %s for %s: PERIAN made job %s only after the create gave up",
                        create_id,
                        info.key,
                        mine.id,
                    )
                    return None
                if once:
                    return None
            if _deadline_left(cut) < delay + 0.05:
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    # ------------------------------------------------------------------ sweeper

    def start_sweeper(self) -> None:
        """Start this loop's sweeper once (needs a running loop and credentials)."""
        if not self.settings.reap_orphans or self.settings.sweep_interval <= 0:
            return
        state = self._state()
        if state.sweeper is None or state.sweeper.done():
            # A fresh context: started from inside an RPC, the task would otherwise inherit that
            # RPC's budget scope (a context variable) and every later sweep would find it spent.
            state.sweeper = asyncio.get_running_loop().create_task(self._sweep_forever(), context=contextvars.Context())

    async def _sweep_forever(self) -> None:
        interval = self.settings.sweep_interval
        while True:
            try:
                await self.sweep_once()
            except asyncio.CancelledError:
                raise
            except PerianctlError as exc:
                log.warning("sweep skipped: %s", exc)
            except Exception:  # never let the sweeper die: it is what reaps orphans
                log.exception("sweep failed")
            await asyncio.sleep(interval)

    async def sweep_once(self) -> int:
        """One pass over the jobs created in the sweep window; returns how many were cancelled."""
        client = self.client()
        state = self._state()
        budget = max(5.0, self.settings.sweep_interval * 4)
        try:
            async with _within(time.monotonic() + budget):
                scan = await cv.scan_recent(
                    client, since=time.time() - self.settings.sweep_window, page_size=self.settings.list_page_size
                )
        except _Spent:
            log.warning("sweep: the PERIAN API did not list the jobs within %.0fs", budget)
            return 0
        LOOKUP_REQUESTS.labels("sweep").observe(scan.requests)
        cancelled = 0
        for reap in cv.plan_sweep(scan.jobs, now=time.time(), skew=self.settings.clock_skew):
            job_id, reason = reap.job_id, reap.reason
            try:
                async with _within(time.monotonic() + max(3.0, self.settings.delete_budget)):
                    result = await client.cancel_job(job_id)
            except (_Spent, PerianctlError) as exc:
                log.warning(
                    "sweep: could not cancel PERIAN job %s (%s); next sweep retries",
                    job_id,
                    exc if isinstance(exc, PerianctlError) else "no answer in time",
                )
                continue
            if not result.already_done:
                cancelled += 1
                REAPED.labels(reap.rule).inc()
                log.warning("cancelled PERIAN job %s: %s", job_id, reason)
        state.swept.set()
        state.swept = asyncio.Event()
        return cancelled

    # ------------------------------------------------------------------ get

    async def get(
        self, resource_meta: PerianMetadata, output_prefix: str = "", deadline: float | None = None, **kwargs: Any
    ) -> Resource:
        """Status → phase, always answered by the deadline; never UNDEFINED.

        Transient PERIAN trouble (slow, unavailable, credentials refused) answers the last phase this
        replica saw (RUNNING when it saw none: another replica served the earlier calls, and a
        task that has a job is at least under way) with "PERIAN API ... since ...": propeller counts
        GetTask errors and freezes the task after five.

        ``output_prefix`` (propeller sends it in GetTaskRequest; ``perianctl serve`` passes it on)
        lets a failed task report the Python error from ``<prefix>/error.pb`` and its kind.
        """
        cut = self._cut(deadline, self.settings.get_budget)
        job_id = resource_meta.job_id
        last = self._phases.get(job_id)
        links = [link] if (link := self.log_link(job_id)) else None
        try:
            async with _within(cut):
                job = await self.client().get_job(job_id)
        except NotFoundError:
            return Resource(
                phase=TaskExecution.FAILED,
                log_links=links,
                message=f"PERIAN job {job_id} not found (deleted, or another organization?)",
                custom_info={"job_id": job_id},
            )
        except (_Spent, UnavailableError, ProtocolError, AuthError) as exc:
            return self._transient(job_id, last, links, exc)
        self._trouble_since = None
        info = status_to_phase(job.status, errors=job.errors, last_phase=last)
        if info.phase in (FlytePhase.FAILED, FlytePhase.RETRYABLE_FAILED) and output_prefix:
            info = await self._with_error_document(
                job_id, info, output_prefix, cut=cut, container_failed=job.workload_status == WorkloadStatus.USER_ERROR
            )
        self._phases.put(job_id, info.phase)
        self._spend.observe(job_id, job)
        return Resource(
            phase=int(info.phase), message=info.message, log_links=links, custom_info=_custom_info(job_id, job, info)
        )

    def _transient(
        self, job_id: str, last: FlytePhase | None, links: list[TaskLog] | None, exc: BaseException
    ) -> Resource:
        now = time.time()
        if self._trouble_since is None:
            self._trouble_since = now
        since = dt.datetime.fromtimestamp(self._trouble_since, dt.UTC).strftime("%H:%M:%SZ")
        if isinstance(exc, AuthError):
            what = "refused the credentials"
        elif isinstance(exc, _Spent) or _no_answer(exc):
            what = "slow"
        else:
            what = "unavailable"
        kept = last if last is not None else FlytePhase.RUNNING
        seen = "last known phase" if last is not None else "no phase seen by this replica yet"
        log.warning(
            "GetTask %s: PERIAN API %s (%s); reporting %s",
            job_id,
            what,
            exc if isinstance(exc, PerianctlError) else "no answer within the deadline",
            kept.name,
        )
        return Resource(
            phase=int(kept),
            message=f"PERIAN API {what} since {since}, retrying ({seen})",
            log_links=links,
            custom_info={"job_id": job_id, "perian_api": what, "perian_api_trouble_since": since},
        )

    async def _with_error_document(
        self, job_id: str, info: PhaseInfo, output_prefix: str, *, cut: float, container_failed: bool
    ) -> PhaseInfo:
        """A failed ``pyflyte-execute`` writes ``error.pb``: its message is the real error, and its
        kind (recoverable or not) is what Flyte's retry semantics need (propeller reads ``error.pb`` only
        after SUCCEEDED: ``writeOutput`` in flyteplugins go/tasks/plugins/webapi/connector/plugin.go, v1.16.x).
        The kind decides the phase only when the container itself failed (UserError); a platform
        failure stays RETRYABLE_FAILED. Read off the loop, within a short timeout (and the RPC's
        deadline), and remembered per job once read (terminal states do not change); a failed read
        is tried again next time.
        """
        if not self.settings.read_error_document:
            return info
        if job_id not in self._error_docs:
            timeout = min(self.settings.error_document_timeout, _deadline_left(cut))
            try:
                if timeout <= 0.05:
                    raise TimeoutError
                self._error_docs[job_id] = await self._read_error_document(output_prefix, timeout)
            except (TimeoutError, PerianctlError, OSError) as exc:
                log.info("error document of job %s not readable yet (%s)", job_id, exc or "no time left")
                return info
            while len(self._error_docs) > 10_000:
                self._error_docs.popitem(last=False)
        found = self._error_docs[job_id]
        if found is None:
            return info
        phase, detail = found
        status = info.message.split(":", 1)[0]
        return PhaseInfo(phase if container_failed else info.phase, _cap_message(f"{status}: {detail}"))

    async def _read_error_document(self, output_prefix: str, timeout: float) -> tuple[FlytePhase, str] | None:
        """``(phase, last line of the error)`` from ``<prefix>/error.pb``; None when there is none."""
        from flyteidl.core.errors_pb2 import ContainerError

        from perianctl.flyte.launch import read_error_document

        error = await asyncio.wait_for(asyncio.to_thread(read_error_document, output_prefix), timeout=timeout)
        if error is None:  # no document, or a corrupt one: that must not fail GetTask
            return None
        detail = last_line(error.message) or error.code  # a traceback's last line names the exception
        phase = FlytePhase.RETRYABLE_FAILED if error.kind == ContainerError.RECOVERABLE else FlytePhase.FAILED
        return phase, detail or "the task failed"

    # ------------------------------------------------------------------ delete

    async def delete(self, resource_meta: PerianMetadata, deadline: float | None = None, **kwargs: Any) -> None:
        """Cancel within the deadline; already finished or unknown jobs are fine (propeller retries
        aborts that fail, so an unconfirmed cancel is UNAVAILABLE and the retry is harmless)."""
        cut = self._cut(deadline, self.settings.delete_budget)
        job_id = resource_meta.job_id
        try:
            async with _within(cut):
                result = await self.client().cancel_job(job_id)
        except NotFoundError:
            log.info("DeleteTask %s: no such PERIAN job; nothing to cancel", job_id)
            return
        except _Spent:
            raise UnavailableError(
                f"cancel job {job_id}: PERIAN did not confirm within this call's deadline",
                hint="propeller retries the abort; cancelling twice is harmless",
            ) from None
        log.info("DeleteTask %s: %s", job_id, "already finished" if result.already_done else "cancelled")

    # ------------------------------------------------------------------ logs and metrics

    async def get_logs(
        self, resource_meta: PerianMetadata, lines: int = 0, token: str = "", **kwargs: Any
    ) -> AsyncIterator[GetTaskLogsResponse]:
        """Header (next-page token) then body chunks of the job's log.

        ``lines`` > 0 keeps only the last N lines. ``token`` is the line offset to start from;
        a page holds at most :data:`LOG_PAGE_LINES` lines and the header's token names the next
        page ("" when there is none).
        """
        job = await self.client().get_job(resource_meta.job_id)
        all_lines = (job.logs or "").splitlines()
        if lines:
            all_lines = all_lines[-int(lines) :]
        try:
            start = max(0, int(token)) if token else 0
        except ValueError:
            raise ValueError(f"invalid log page token {token!r}") from None
        end = min(len(all_lines), start + LOG_PAGE_LINES)
        next_token = str(end) if end < len(all_lines) else ""
        yield GetTaskLogsResponse(header=GetTaskLogsResponseHeader(token=next_token))
        for chunk_start in range(start, end, LOG_CHUNK_LINES):
            chunk = all_lines[chunk_start : min(end, chunk_start + LOG_CHUNK_LINES)]
            yield GetTaskLogsResponse(
                body=GetTaskLogsResponseBody(
                    results=chunk,
                    structured_lines=[LogLine(message=line, originator=LogLineOriginator.USER) for line in chunk],
                )
            )

    async def get_metrics(
        self, resource_meta: PerianMetadata, queries: list[str] | None = None, **kwargs: Any
    ) -> GetTaskMetricsResponse:
        """What PERIAN can tell: runtime so far and the cost (to date, or final) by PERIAN billing semantics.

        Results use the Prometheus matrix shape Flyte's UI expects; unknown queries get an empty
        result rather than an error, so a generic client asking for CPU metrics degrades cleanly.
        """
        job = await self.client().get_job(resource_meta.job_id)
        now = dt.datetime.now(dt.UTC)
        values: dict[str, float | None] = {
            METRIC_RUNTIME: runtime_seconds(job, now) or 0.0,
            METRIC_COST: cost_amount(job, now),
        }
        wanted = list(queries) if queries else list(values)
        stamp = (job.done_at or now).timestamp()
        results = []
        for query in wanted:
            value = values.get(query)
            series = (
                []
                if value is None
                else [{"metric": {"job_id": resource_meta.job_id}, "values": [[stamp, f"{value:.6g}"]]}]
            )
            data = json_format.ParseDict({"resultType": "matrix", "result": series}, Struct())
            results.append(ExecutionMetricResult(metric=query, data=data))
        return GetTaskMetricsResponse(results=results)


# ---------------------------------------------------------------------- helpers


def _no_answer(exc: BaseException) -> bool:
    """The client's failure was PERIAN not answering in time (slow), not an error answer (unavailable)."""
    reason = getattr(exc, "reason", None)
    return reason == "no-answer" or (reason == "budget" and "last: no answer" in str(exc))


async def _close_later(client: PerianClient, *, delay: float) -> None:
    try:
        await asyncio.sleep(delay)
    finally:
        await client.aclose()


def _cap_message(text: str, limit: int = 200) -> str:
    return one_line(text, limit)


def _as_proto(task_template: Any) -> TaskTemplatePb:
    """flytekit's servicer hands us a flytekit model; ``perianctl serve`` the proto itself."""
    to_idl = getattr(task_template, "to_flyte_idl", None)
    return to_idl() if callable(to_idl) else task_template


def _as_literal_map_proto(inputs: Any) -> Any:
    to_idl = getattr(inputs, "to_flyte_idl", None)
    return to_idl() if callable(to_idl) else inputs


def _translate(
    template: TaskTemplatePb, inputs: Any, output_prefix: str, secrets: ResolvedSecrets
) -> m.CreateJobRequest:
    """Template → CreateJobRequest with the flyte layer's pure translation (shared with ``submit``)."""
    from perianctl.flyte.translate import template_to_job_request

    template = _render_custom_command(template, _as_literal_map_proto(inputs), output_prefix)
    return template_to_job_request(template, secrets=secrets.job_secrets())


def _render_custom_command(template: TaskTemplatePb, inputs: Any, output_prefix: str) -> TaskTemplatePb:
    """Propeller renders container args only; a ``custom.command`` may still hold ``{{.inputs.x}}``."""
    command = template.custom.fields.get("command") if template.HasField("custom") else None
    if command is None or "{{" not in json_format.MessageToJson(command):
        return template
    from perianctl.flyte.render import RenderContext, render_template

    context = RenderContext.for_launch(output_prefix, inputs=inputs)
    return render_template(template, context)


def _metadata_env(metadata: Any) -> dict[str, str]:
    env = getattr(metadata, "environment_variables", None) if metadata is not None else None
    return {str(k): str(v) for k, v in dict(env or {}).items()}


def _custom_info(job_id: str, job: m.JobView, info: PhaseInfo) -> dict[str, Any]:
    custom: dict[str, Any] = {"job_id": job_id, "status": job.status, "terminal": is_terminal_phase(info.phase)}
    runtime = job.runtime_metadata
    if runtime and runtime.instance_type_id:
        custom["instance_type_id"] = runtime.instance_type_id
    custom.update(money_info(job))
    for key, value in (("started_at", job.started_at), ("done_at", job.done_at)):
        if value is not None:
            custom[key] = value.isoformat()
    return custom
