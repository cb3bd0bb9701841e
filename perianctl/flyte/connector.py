"""The PERIAN Flyte connector: ``perian_task`` → PERIAN jobs, truly async, idempotent, never UNDEFINED.

A drop-in replacement for ``flytekitplugins-perian-job``'s connector (same task type, same
``ResourceMeta`` bytes ``{"job_id": "..."}``, same secret names), fixing what flyte-connector.md
§3.7 and perian-api.md §9.2 list:

* **No blocking on the event loop.** Every PERIAN call goes through one shared
  :class:`~perianctl.perian.client.PerianClient` (pooled ``httpx.AsyncClient``) per event loop, so a
  slow create never delays a concurrent GetTask. Its retry budget (3 attempts, 8 s) fits inside
  propeller's 10 s per-call deadline.
* **Idempotent create.** The key comes from ``task_execution_metadata`` (:mod:`.idempotency`);
  the client looks for a job with that key before creating and before every retry of an ambiguous
  create. Orphans of earlier attempts (lost replies) are cancelled in the background.
* **GetTask never fails for transient trouble.** Propeller counts GetTask errors cumulatively and
  gives up after five (§2.6), so an unavailable PERIAN API keeps the last known phase with a short
  message instead. A job that does not exist is FAILED with a clear message.
* **Short messages, log links, custom_info.** Logs travel over GetTaskLogs (streamed by
  ``perianctl serve``), never in the phase message.
* **Idempotent delete**: an unknown or already finished job is fine.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import json
import logging
import os
import time
import weakref
from collections.abc import AsyncIterator, Mapping
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
from prometheus_client import Counter

from perianctl.errors import AuthError, NotFoundError, PerianctlError, ProtocolError, UnavailableError
from perianctl.flyte.idempotency import ATTEMPT_ENV, NODE_TAG_ENV, IdempotencyInfo, idempotency_for
from perianctl.flyte.phase import FlytePhase, PhaseInfo, is_terminal_phase, status_to_phase
from perianctl.flyte.secrets import ResolvedSecrets, resolve_secrets
from perianctl.flyte.spend import SpendMeter, cost_amount, money_info, with_budget
from perianctl.perian import models as m
from perianctl.perian.client import PerianClient, RetryPolicy
from perianctl.perian.status import WorkloadStatus, is_terminal
from perianctl.text import last_line, one_line

if TYPE_CHECKING:
    from flyteidl.core.tasks_pb2 import TaskTemplate as TaskTemplatePb

log = logging.getLogger("perianctl.connector")

TASK_TYPE = "perian_task"
TASK_TYPE_VERSION = 0
CONNECTOR_NAME = "PERIAN Connector (perianctl)"
DEFAULT_LOG_LINK = "{api_url}/job/{job_id}"
LOG_PAGE_LINES = 5000
LOG_CHUNK_LINES = 500
METRIC_RUNTIME = "PERIAN_JOB_RUNTIME_SECONDS"
METRIC_COST = "PERIAN_JOB_COST_ESTIMATE"

#: Propeller waits 10 s per call; 3 attempts within 8 s leaves room for the reply.
CONNECTOR_RETRY = RetryPolicy(attempts=3, timeout=8.0, wait_initial=0.2, wait_max=2.0, wait_jitter=0.2,
                              max_retry_after=2.0)

PERIAN_API_REQUESTS = Counter(
    "perianctl_perian_api_requests_total",
    "PERIAN API requests made by the connector, by method, route and HTTP status ('error' = no response)",
    ["method", "route", "status"],
)


@dataclass
class PerianMetadata(ResourceMeta):
    """What propeller stores for a task: exactly ``{"job_id": "..."}``, like the official connector.

    ``decode`` tolerates extra keys (a newer connector may add some) where flytekit's does not, so a
    rollback or a mixed-version rollout never breaks GetTask for in-flight jobs.
    """

    job_id: str

    @classmethod
    def decode(cls, data: bytes) -> PerianMetadata:
        try:
            payload = json.loads(bytes(data).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ValueError("resource_meta is not JSON; expected {\"job_id\": \"...\"}") from None
        job_id = payload.get("job_id") if isinstance(payload, dict) else None
        if not isinstance(job_id, str) or not job_id.strip():
            raise ValueError("resource_meta has no job_id; expected {\"job_id\": \"...\"}")
        return cls(job_id=job_id.strip())


@dataclass(frozen=True)
class ConnectorSettings:
    """How the connector reaches PERIAN. Unset values are looked up lazily (secrets, env, profile).

    ``log_link_template`` is formatted with ``api_url``, ``job_id`` and ``organization``; an empty
    string disables log links. ``http_backend`` is ``aiohttp`` (fast; see :mod:`.http_transport`)
    or ``httpx`` (httpx's own transport; also the fallback when aiohttp is not installed).
    """

    api_url: str | None = None
    organization: str | None = None
    token: str | None = None
    log_link_template: str = DEFAULT_LOG_LINK
    retry: RetryPolicy = CONNECTOR_RETRY
    connect_timeout: float = 3.0
    read_timeout: float = 6.0
    max_connections: int = 200
    reap_orphans: bool = True
    http_backend: str = "aiohttp"
    read_error_document: bool = True
    error_document_timeout: float = 3.0
    secrets_ttl: float = 60.0
    remember_phases: int = 50_000

    def resolved_api_url(self) -> str:
        if self.api_url:
            return self.api_url.rstrip("/")
        from perianctl.config import DEFAULT_API_URL, resolve

        try:
            return resolve().api_url
        except PerianctlError:
            return os.environ.get("PERIAN_API_URL", DEFAULT_API_URL).rstrip("/")


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
        from perianctl.flyte.http_transport import default_transport
    except ImportError:  # no aiohttp: httpx's own transport still works, only slower
        return httpx.AsyncHTTPTransport(retries=0, limits=httpx.Limits(max_connections=max_connections,
                                                                        max_keepalive_connections=max_connections))
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
class _LoopState:
    clients: dict[tuple[str, str, str], PerianClient] = field(default_factory=dict)
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    creating: dict[str, asyncio.Task[str]] = field(default_factory=dict)
    closers: set[asyncio.Task[None]] = field(default_factory=set)


class PerianConnector(AsyncConnectorBase):
    """flytekit ``AsyncConnectorBase`` for task type ``perian_task`` v0."""

    name = CONNECTOR_NAME

    def __init__(self, settings: ConnectorSettings | None = None) -> None:
        super().__init__(task_type_name=TASK_TYPE, task_type_version=TASK_TYPE_VERSION,
                         metadata_type=PerianMetadata)
        self.settings = settings or ConnectorSettings()
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._secrets: ResolvedSecrets | None = None
        self._secrets_at = 0.0
        self._api_url = ""
        self._phases = _PhaseMemory(self.settings.remember_phases)
        self._error_docs: collections.OrderedDict[str, tuple[FlytePhase, str] | None] = collections.OrderedDict()
        self._spend = SpendMeter(TASK_TYPE, self.settings.remember_phases)

    # ------------------------------------------------------------------ plumbing

    def secrets(self) -> ResolvedSecrets:
        """Secrets, re-read every ``secrets_ttl`` seconds so a rotated Secret needs no restart.

        The lookup is a few small file reads; cheap enough to do on the loop once a minute.
        """
        now = time.monotonic()
        if self._secrets is None or now - self._secrets_at > self.settings.secrets_ttl:
            self._secrets = resolve_secrets(organization=self.settings.organization, token=self.settings.token)
            self._api_url = self.settings.resolved_api_url()  # may read the config file: not per call
            self._secrets_at = now
        return self._secrets

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
            stale = list(state.clients.values())
            state.clients.clear()
            for old in stale:  # credentials rotated: close the old pool once its calls are done
                closer = asyncio.get_running_loop().create_task(
                    _close_later(old, delay=self.settings.read_timeout * 2))
                state.closers.add(closer)
                closer.add_done_callback(state.closers.discard)
            client = PerianClient(
                api_url, org, token,
                connect_timeout=self.settings.connect_timeout,
                read_timeout=self.settings.read_timeout,
                retry=self.settings.retry,
                max_connections=self.settings.max_connections,
                transport=_CountingTransport(_transport(self.settings.http_backend, self.settings.max_connections)),
                user_agent="perianctl-connector",
            )
            state.clients[key] = client
        return client

    def _spawn(self, coro: Any) -> None:
        """Run ``coro`` in the background, keeping a reference so it is not garbage-collected."""
        state = self._state()
        task = asyncio.get_running_loop().create_task(coro)
        state.background.add(task)
        task.add_done_callback(state.background.discard)

    async def wait_background(self, timeout: float = 10.0) -> None:
        """Wait for background work (orphan reaping) of this loop; used at shutdown and in tests."""
        pending = list(self._state().background)
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    async def aclose(self) -> None:
        """Finish background work and close this loop's HTTP pools."""
        await self.wait_background()
        state = self._state()
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

    # ------------------------------------------------------------------ create

    async def create(
        self,
        task_template: Any,
        output_prefix: str,
        inputs: Any = None,
        task_execution_metadata: Any = None,
        **kwargs: Any,
    ) -> PerianMetadata:
        """Translate the (already rendered) template and create the job exactly once per attempt."""
        template = _as_proto(task_template)
        secrets = self.secrets()
        request = _translate(template, inputs, output_prefix, secrets)
        info = idempotency_for(task_execution_metadata, output_prefix)
        request = _with_env(request, low=_metadata_env(task_execution_metadata), high=info.env())
        client = self.client()
        request = await with_budget(client, template, request)
        job_id = await self._create_once(client, request, info.key)
        self._phases.put(job_id, FlytePhase.QUEUED)
        log.info("created PERIAN job %s for %s", job_id,
                 info.execution.display if info.execution else f"output prefix {output_prefix}")
        if self.settings.reap_orphans and info.node_tag and info.attempt > 0:
            self._spawn(self._reap_orphans(client, info, keep=job_id))
        return PerianMetadata(job_id=job_id)

    async def _create_once(self, client: PerianClient, request: m.CreateJobRequest, key: str) -> str:
        """Create detached from the RPC, single flight per key.

        * Detached: when propeller's deadline cancels the RPC, the PERIAN create still runs to the
          end (a cancelled half-sent POST is exactly how orphans are made) and its job is found
          by the next CreateTask.
        * Single flight: a re-sent CreateTask arriving while the first still waits on PERIAN joins
          it instead of racing it -- a look-up at that moment would find nothing and duplicate.
        """
        state = self._state()
        task = state.creating.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(client.create_job(request, idempotency_key=key))
            state.creating[key] = task
            state.background.add(task)

            def done(t: asyncio.Task[str]) -> None:
                state.background.discard(t)
                if state.creating.get(key) is t:
                    del state.creating[key]
                if not t.cancelled():
                    t.exception()  # retrieved here, so an abandoned failure is not reported twice

            task.add_done_callback(done)
        return await asyncio.shield(task)

    async def _reap_orphans(self, client: PerianClient, info: IdempotencyInfo, *, keep: str) -> None:
        """Cancel still-running jobs of *earlier* attempts of this node (their replies were lost)."""
        try:
            async for job in client.iter_jobs(page_size=100, max_pages=3):
                env = _job_env(job)
                if not job.id or job.id == keep or env.get(NODE_TAG_ENV) != info.node_tag:
                    continue
                try:
                    attempt = int(env.get(ATTEMPT_ENV, "-1"))
                except ValueError:
                    continue
                if 0 <= attempt < info.attempt and not is_terminal(job.status):
                    await client.cancel_job(job.id)
                    log.warning("cancelled orphaned PERIAN job %s of attempt %d (now attempt %d)",
                                job.id, attempt, info.attempt)
        except PerianctlError as exc:
            log.warning("orphan reaping skipped: %s", exc)

    # ------------------------------------------------------------------ get

    async def get(self, resource_meta: PerianMetadata, output_prefix: str = "", **kwargs: Any) -> Resource:
        """Status → phase. Transient PERIAN trouble keeps the last phase; never UNDEFINED.

        ``output_prefix`` (propeller sends it in GetTaskRequest; ``perianctl serve`` passes it on)
        lets a failed task report the Python error from ``<prefix>/error.pb`` and its kind.
        """
        job_id = resource_meta.job_id
        last = self._phases.get(job_id)
        links = [link] if (link := self.log_link(job_id)) else None
        try:
            job = await self.client().get_job(job_id)
        except NotFoundError:
            return Resource(phase=TaskExecution.FAILED, log_links=links,
                            message=f"PERIAN job {job_id} not found (deleted, or another organization?)",
                            custom_info={"job_id": job_id})
        except (UnavailableError, ProtocolError, AuthError) as exc:
            kept = last if last is not None else FlytePhase.QUEUED
            what = "refused the credentials" if isinstance(exc, AuthError) else "unavailable"
            log.warning("GetTask %s: PERIAN API %s (%s); reporting %s", job_id, what, exc, kept.name)
            return Resource(phase=int(kept), message=f"PERIAN API {what}, retrying",
                            log_links=links, custom_info={"job_id": job_id})
        info = status_to_phase(job.status, errors=job.errors, last_phase=last)
        if info.phase in (FlytePhase.FAILED, FlytePhase.RETRYABLE_FAILED) and output_prefix:
            info = await self._with_error_document(job_id, info, output_prefix,
                                                   container_failed=job.workload_status == WorkloadStatus.USER_ERROR)
        self._phases.put(job_id, info.phase)
        self._spend.observe(job_id, job)
        return Resource(phase=int(info.phase), message=info.message, log_links=links,
                        custom_info=_custom_info(job_id, job, info))

    async def _with_error_document(self, job_id: str, info: PhaseInfo, output_prefix: str, *,
                                   container_failed: bool) -> PhaseInfo:
        """A failed ``pyflyte-execute`` writes ``error.pb``: its message is the real error, and its
        kind (recoverable or not) is what Flyte's retry semantics need (flyte-connector.md §2.7).
        The kind decides the phase only when the container itself failed (UserError); a platform
        failure stays RETRYABLE_FAILED. Read off the loop, within a short timeout, and remembered
        per job once read (terminal states do not change); a failed read is tried again next time.
        """
        if not self.settings.read_error_document:
            return info
        if job_id not in self._error_docs:
            try:
                self._error_docs[job_id] = await self._read_error_document(output_prefix)
            except (TimeoutError, PerianctlError, OSError) as exc:
                log.info("error document of job %s not readable yet (%s)", job_id, exc)
                return info
            while len(self._error_docs) > 10_000:
                self._error_docs.popitem(last=False)
        found = self._error_docs[job_id]
        if found is None:
            return info
        phase, detail = found
        status = info.message.split(":", 1)[0]
        return PhaseInfo(phase if container_failed else info.phase, _cap_message(f"{status}: {detail}"))

    async def _read_error_document(self, output_prefix: str) -> tuple[FlytePhase, str] | None:
        """``(phase, last line of the error)`` from ``<prefix>/error.pb``; None when there is none."""
        from flyteidl.core.errors_pb2 import ContainerError

        from perianctl.flyte.launch import read_error_document

        error = await asyncio.wait_for(asyncio.to_thread(read_error_document, output_prefix),
                                       timeout=self.settings.error_document_timeout)
        if error is None:  # no document, or a corrupt one: that must not fail GetTask
            return None
        detail = last_line(error.message) or error.code  # a traceback's last line names the exception
        phase = FlytePhase.RETRYABLE_FAILED if error.kind == ContainerError.RECOVERABLE else FlytePhase.FAILED
        return phase, detail or "the task failed"

    # ------------------------------------------------------------------ delete

    async def delete(self, resource_meta: PerianMetadata, **kwargs: Any) -> None:
        """Cancel; already finished or unknown jobs are fine (propeller retries aborts that fail)."""
        job_id = resource_meta.job_id
        try:
            result = await self.client().cancel_job(job_id)
        except NotFoundError:
            log.info("DeleteTask %s: no such PERIAN job; nothing to cancel", job_id)
            return
        log.info("DeleteTask %s: %s", job_id, "already finished" if result.already_done else "cancelled")

    # ------------------------------------------------------------------ logs and metrics

    async def get_logs(self, resource_meta: PerianMetadata, lines: int = 0, token: str = "",
                       **kwargs: Any) -> AsyncIterator[GetTaskLogsResponse]:
        """Header (next-page token) then body chunks of the job's log.

        ``lines`` > 0 keeps only the last N lines. ``token`` is the line offset to start from;
        a page holds at most :data:`LOG_PAGE_LINES` lines and the header's token names the next
        page ("" when there is none).
        """
        job = await self.client().get_job(resource_meta.job_id)
        all_lines = (job.logs or "").splitlines()
        if lines:
            all_lines = all_lines[-int(lines):]
        try:
            start = max(0, int(token)) if token else 0
        except ValueError:
            raise ValueError(f"invalid log page token {token!r}") from None
        end = min(len(all_lines), start + LOG_PAGE_LINES)
        next_token = str(end) if end < len(all_lines) else ""
        yield GetTaskLogsResponse(header=GetTaskLogsResponseHeader(token=next_token))
        for chunk_start in range(start, end, LOG_CHUNK_LINES):
            chunk = all_lines[chunk_start:min(end, chunk_start + LOG_CHUNK_LINES)]
            yield GetTaskLogsResponse(body=GetTaskLogsResponseBody(
                results=chunk,
                structured_lines=[LogLine(message=line, originator=LogLineOriginator.USER) for line in chunk],
            ))

    async def get_metrics(self, resource_meta: PerianMetadata, queries: list[str] | None = None,
                          **kwargs: Any) -> GetTaskMetricsResponse:
        """What PERIAN can tell: runtime so far and the cost (to date, or final) by PERIAN billing semantics.

        Results use the Prometheus matrix shape Flyte's UI expects; unknown queries get an empty
        result rather than an error, so a generic client asking for CPU metrics degrades cleanly.
        """
        job = await self.client().get_job(resource_meta.job_id)
        now = dt.datetime.now(dt.UTC)
        start = job.started_at
        end = job.done_at or now
        runtime = max(0.0, (end - start).total_seconds()) if start else 0.0
        values: dict[str, float | None] = {METRIC_RUNTIME: runtime, METRIC_COST: cost_amount(job, now)}
        wanted = list(queries) if queries else list(values)
        stamp = (job.done_at or now).timestamp()
        results = []
        for query in wanted:
            value = values.get(query)
            series = [] if value is None else [{"metric": {"job_id": resource_meta.job_id},
                                                "values": [[stamp, f"{value:.6g}"]]}]
            data = json_format.ParseDict({"resultType": "matrix", "result": series}, Struct())
            results.append(ExecutionMetricResult(metric=query, data=data))
        return GetTaskMetricsResponse(results=results)


# ---------------------------------------------------------------------- helpers


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


def _translate(template: TaskTemplatePb, inputs: Any, output_prefix: str,
               secrets: ResolvedSecrets) -> m.CreateJobRequest:
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

    prefix = output_prefix.rstrip("/")
    context = RenderContext(
        input_path=f"{prefix}/inputs.pb", input_prefix=prefix, output_prefix=prefix,
        raw_output_prefix=f"{prefix}/raw", checkpoint_prefix=f"{prefix}/checkpoint",
        prev_checkpoint_prefix="", per_retry_unique_key="", task_template_path="", namespace="",
        inputs=inputs,
    )
    return render_template(template, context)


def _metadata_env(metadata: Any) -> dict[str, str]:
    env = getattr(metadata, "environment_variables", None) if metadata is not None else None
    return {str(k): str(v) for k, v in dict(env or {}).items()}


def _with_env(request: m.CreateJobRequest, *, low: Mapping[str, str], high: Mapping[str, str]) -> m.CreateJobRequest:
    """Execution env (``low``) under the template's own env, our bookkeeping vars (``high``) over it."""
    if not low and not high:
        return request
    params = request.docker_run_parameters
    env = {**low, **(params.env_variables or {}), **high}
    return request.model_copy(update={"docker_run_parameters": params.model_copy(update={"env_variables": env})})


def _job_env(job: m.JobView) -> dict[str, Any]:
    params = job.docker_metadata.docker_run_parameters if job.docker_metadata else None
    return dict(params.env_variables or {}) if params else {}


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


def _finish_registration() -> None:
    from perianctl.flyte import register

    register.finish_deferred()


_finish_registration()
