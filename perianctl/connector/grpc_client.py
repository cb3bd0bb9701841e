"""Talk to any Flyte connector over gRPC exactly as flytepropeller does (``--connector HOST:PORT``).

Propeller's ``connector-service`` plugin (flyteplugins go/tasks/plugins/webapi/connector/
{plugin,client}.go, v1.16.x) sends real flyteidl messages with a
10 s deadline per call and no retries:

* ``CreateTask``: the *rendered* template, the inputs ``LiteralMap``, ``output_prefix`` and a
  ``TaskExecutionMetadata`` whose ``task_execution_id`` names project/domain/execution/node/attempt.
  :func:`synthetic_execution_metadata` builds a realistic one, so the connector's idempotency key
  works the same as under propeller (same execution name + node + attempt → same PERIAN job).
* ``GetTask`` / ``DeleteTask``: ``resource_meta`` plus ``task_category`` (and the deprecated
  ``task_type``, which propeller still fills).

Only grpc and flyteidl are imported (about 0.1 s), never flytekit. gRPC failures become
:mod:`perianctl.errors` with one-line messages, so the CLI's exit codes hold.

**Both connector protocols.** A connector may serve Flyte 1's ``flyteidl.service`` services, Flyte
2's ``flyteidl2.connector`` ones, or both (``perianctl serve``). The protocol is ``auto`` (the
default: the server's gRPC health says which services it has; v1 when it has both or no health
service), ``v1`` or ``v2`` (``--protocol``). The requests and responses of the two are the same on
the wire (flyteidl2 only adds fields: ``connection``, ``LogLine`` bodies), so a v2 call sends the
v1 message's bytes as its flyteidl2 counterpart and reads the answer back the same way --
``flyteidl2`` is only imported when v2 is used.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, identifier_pb2, literals_pb2, tasks_pb2
from flyteidl.service import agent_pb2_grpc
from google.protobuf import json_format

from perianctl.errors import (
    ApiError,
    AuthError,
    BadRequestError,
    ExitCode,
    NotFoundError,
    PerianctlError,
    UnavailableError,
    UsageError,
    ValidationFailed,
)
from perianctl.flyte.templates import PERIAN_TASK_TYPE
from perianctl.text import first_line

PROTOCOLS = ("auto", "v1", "v2")
V1_SERVICE = "flyteidl.service.AsyncAgentService"
V2_SERVICE = "flyteidl2.connector.AsyncConnectorService"
_default_protocol = "auto"


def set_default_protocol(protocol: str | None) -> None:
    """The protocol of every :class:`ConnectorClient` made without one (``--protocol``)."""
    global _default_protocol
    value = (protocol or "auto").strip().lower()
    if value not in PROTOCOLS:
        raise UsageError(f"invalid --protocol '{protocol}': expected v1, v2 or auto")
    _default_protocol = value


# v1 method → (flyteidl2 service, method, request type, response type), all in flyteidl2.connector.connector_pb2
_V2_CALLS = {
    "CreateTask": ("async", "CreateTask", "CreateTaskRequest", "CreateTaskResponse"),
    "GetTask": ("async", "GetTask", "GetTaskRequest", "GetTaskResponse"),
    "DeleteTask": ("async", "DeleteTask", "DeleteTaskRequest", "DeleteTaskResponse"),
    "GetTaskMetrics": ("async", "GetTaskMetrics", "GetTaskMetricsRequest", "GetTaskMetricsResponse"),
    "GetTaskLogs": ("async", "GetTaskLogs", "GetTaskLogsRequest", "GetTaskLogsResponse"),
    "ListAgents": ("meta", "ListConnectors", "ListConnectorsRequest", "ListConnectorsResponse"),
    "GetAgent": ("meta", "GetConnector", "GetConnectorRequest", "GetConnectorResponse"),
}

DEFAULT_TIMEOUT = 10.0
"""Propeller's ``defaultTimeout`` for connector calls."""
TASK_TYPE = PERIAN_TASK_TYPE
_TARGET = re.compile(r"^(?:(?:dns|ipv4|ipv6|unix):.+|\[[0-9a-fA-F:.]+\]:\d{1,5}|[A-Za-z0-9_.-]+:\d{1,5})$")


@dataclass(frozen=True)
class LogLink:
    name: str
    uri: str


@dataclass(frozen=True)
class TaskStatus:
    """A ``GetTask`` answer in plain Python (what ``get --connector`` prints)."""

    phase: int
    phase_name: str
    message: str
    log_links: list[LogLink] = field(default_factory=list)
    custom_info: dict[str, Any] = field(default_factory=dict)
    job_id: str | None = None

    @property
    def terminal(self) -> bool:
        return self.phase_name in ("SUCCEEDED", "FAILED", "ABORTED", "RETRYABLE_FAILED")

    @property
    def perian_status(self) -> str | None:
        """PERIAN's own status when the connector reports it (``perianctl serve``: custom_info)."""
        value = self.custom_info.get("status")
        return value if isinstance(value, str) and value else None

    @property
    def exit_code(self) -> int | None:
        """``submit --wait`` exit code for a terminal phase; ``None`` while the task is not done.

        SUCCEEDED 0 · FAILED / RETRYABLE_FAILED 3 · ABORTED 4, and 5 when PERIAN says the job hit
        its timeout (custom_info ``status: Timeout``), as the API path reports it.
        """
        if not self.terminal:
            return None
        if self.phase_name == "SUCCEEDED":
            return int(ExitCode.OK)
        if self.phase_name == "ABORTED":
            return int(ExitCode.JOB_CANCELLED)
        if self.perian_status == "Timeout":
            return int(ExitCode.TIMEOUT)
        return int(ExitCode.JOB_FAILED)


@dataclass(frozen=True)
class Submission:
    """What ``CreateTask`` returned, plus the execution identity sent with it."""

    resource_meta: bytes
    job_id: str | None
    execution_name: str
    node_id: str
    retry_attempt: int


# ---------------------------------------------------------------------- resource meta


def resource_meta_for(job_id: str) -> bytes:
    """The bytes both connectors use: ``{"job_id": "..."}``, as flytekit's ``ResourceMeta.encode``."""
    return json.dumps({"job_id": job_id}).encode("utf-8")


def job_id_from_resource_meta(data: bytes) -> str | None:
    try:
        payload = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    value = payload.get("job_id") if isinstance(payload, dict) else None
    return value if isinstance(value, str) else None


# ---------------------------------------------------------------------- requests


def new_execution_name() -> str:
    """A Flyte-style execution name: 20 chars, a letter then letters/digits (like ``f5c8e1a...``)."""
    alphabet = string.ascii_lowercase + string.digits
    return secrets.choice(string.ascii_lowercase) + "".join(secrets.choice(alphabet) for _ in range(19))


def synthetic_execution_metadata(
    template: tasks_pb2.TaskTemplate,
    *,
    execution_name: str | None = None,
    project: str | None = None,
    domain: str | None = None,
    node_id: str = "n0",
    retry_attempt: int = 0,
    environment: Mapping[str, str] | None = None,
    service_account: str = "default",
) -> agent_pb2.TaskExecutionMetadata:
    """A ``TaskExecutionMetadata`` shaped like the one propeller builds (``buildTaskExecutionMetadata``).

    Project and domain default to the template's id (or ``flytesnacks``/``development``), the k8s
    namespace is ``<project>-<domain>`` and labels are the ones propeller puts on task pods.
    """
    tid = template.id
    project = project or tid.project or "flytesnacks"
    domain = domain or tid.domain or "development"
    name = execution_name or new_execution_name()
    task_id = identifier_pb2.Identifier(
        resource_type=identifier_pb2.TASK,
        project=tid.project or project,
        domain=tid.domain or domain,
        name=tid.name or "perian_task",
        version=tid.version or "v0",
    )
    execution = identifier_pb2.WorkflowExecutionIdentifier(project=project, domain=domain, name=name)
    return agent_pb2.TaskExecutionMetadata(
        task_execution_id=identifier_pb2.TaskExecutionIdentifier(
            task_id=task_id,
            node_execution_id=identifier_pb2.NodeExecutionIdentifier(node_id=node_id, execution_id=execution),
            retry_attempt=retry_attempt,
        ),
        namespace=f"{project}-{domain}",
        labels={
            "domain": domain,
            "execution-id": name,
            "interruptible": "false",
            "node-id": node_id,
            "project": project,
            "task-name": _label(task_id.name),
            "workflow-name": "perianctl-submit",
        },
        annotations={"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
        k8s_service_account=service_account,
        environment_variables=dict(environment or {}),
    )


def _label(value: str) -> str:
    """Kubernetes label values: at most 63 chars of ``[a-z0-9-_.]``, as propeller sanitises them."""
    cleaned = re.sub(r"[^a-z0-9-_.]", "-", value.lower()).strip("-_.")
    return cleaned[:63].rstrip("-_.") or "task"


def build_create_request(
    template: tasks_pb2.TaskTemplate,
    inputs: literals_pb2.LiteralMap | None,
    output_prefix: str,
    metadata: agent_pb2.TaskExecutionMetadata | None = None,
) -> agent_pb2.CreateTaskRequest:
    return agent_pb2.CreateTaskRequest(
        template=template,
        inputs=inputs if inputs is not None else literals_pb2.LiteralMap(),
        output_prefix=output_prefix,
        task_execution_metadata=metadata if metadata is not None else synthetic_execution_metadata(template),
    )


def _category(task_type: str, version: int) -> agent_pb2.TaskCategory:
    return agent_pb2.TaskCategory(name=task_type, version=version)


# ---------------------------------------------------------------------- errors


def error_from_rpc(exc: grpc.aio.AioRpcError, *, op: str, target: str, timeout: float) -> PerianctlError:
    """One-line perianctl error for a failed call (the code decides the class, hence the exit code)."""
    code = exc.code()
    detail = first_line(exc.details(), 300) or code.name
    where = f"{op} via connector {target}"
    if code == grpc.StatusCode.UNAVAILABLE:
        return UnavailableError(
            f"{where}: unavailable ({detail})", hint="is 'perianctl serve' (or another connector) listening there?"
        )
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return UnavailableError(f"{where}: no answer within {timeout:g}s (the deadline propeller uses)")
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFoundError(f"{where}: {detail}")
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return AuthError(f"{where}: {detail}", hint="check the connector's perian_organization/perian_token secrets")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return ValidationFailed(f"{where}: {detail}")
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return BadRequestError(f"{where}: {detail}")
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return ApiError(f"{where}: not implemented by this connector ({detail})")
    return ApiError(f"{where}: {code.name} ({detail})")


def validate_target(target: str) -> str:
    """``HOST:PORT``, ``[::1]:PORT`` or a gRPC URI (``dns:///host:port``); anything else is a usage error."""
    target = target.strip()
    if not _TARGET.match(target):
        raise UsageError(f"invalid --connector '{target}': expected HOST:PORT (e.g. localhost:8000)")
    port = re.search(r":(\d+)$", target)
    if port is not None and not 1 <= int(port.group(1)) <= 65535:
        # gRPC would take the port modulo 65536 and quietly dial another one.
        raise UsageError(f"invalid --connector '{target}': port {int(port.group(1))} is not in 1-65535")
    return target


# ---------------------------------------------------------------------- client


def status_from_resource(resource: agent_pb2.Resource, job_id: str | None = None) -> TaskStatus:
    custom = json_format.MessageToDict(resource.custom_info) if resource.HasField("custom_info") else {}
    return TaskStatus(
        phase=int(resource.phase),
        phase_name=execution_pb2.TaskExecution.Phase.Name(resource.phase),
        message=resource.message,
        log_links=[LogLink(name=link.name, uri=link.uri) for link in resource.log_links],
        custom_info=custom,
        job_id=custom.get("job_id") if isinstance(custom.get("job_id"), str) else job_id,
    )


class ConnectorClient:
    """One channel to a connector. ``async with ConnectorClient("localhost:8000") as c: ...``"""

    def __init__(
        self,
        target: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_message_mb: int = 64,
        channel: grpc.aio.Channel | None = None,
        protocol: str | None = None,
    ) -> None:
        self.target = validate_target(target) if channel is None else target
        self.timeout = timeout
        self.protocol = (protocol or _default_protocol).lower()
        """``auto`` until the first call has asked the server; then ``v1`` or ``v2``."""
        self._chosen = self.protocol in ("v1", "v2")  # by the caller (--protocol), not detected
        self._v2: dict[str, Any] = {}
        limit = max_message_mb * 1024 * 1024
        self._channel = channel or grpc.aio.insecure_channel(
            self.target,
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.enable_retries", 0),
                # A CLI following jobs through an outage reconnects within seconds of the
                # connector's return (gRPC's default back-off grows to two minutes).
                ("grpc.max_reconnect_backoff_ms", 5000),
            ],
        )
        self._async = agent_pb2_grpc.AsyncAgentServiceStub(self._channel)
        self._meta = agent_pb2_grpc.AgentMetadataServiceStub(self._channel)
        self._sync = agent_pb2_grpc.SyncAgentServiceStub(self._channel)

    async def __aenter__(self) -> ConnectorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, op: str, method: Any, request: Any, v2: str | None = None) -> Any:
        """``method`` (a v1 stub method) with ``request``; over flyteidl2 when the protocol is v2 and
        ``v2`` names the call (a key of ``_V2_CALLS``)."""
        try:
            if v2 is not None and await self.resolved_protocol() == "v2":
                return await self._call_v2(v2, request)
            return await method(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, op) from None

    def _error(self, exc: grpc.aio.AioRpcError, op: str) -> PerianctlError:
        if exc.code() == grpc.StatusCode.UNIMPLEMENTED and self._chosen and _service_missing(exc):
            other = "v1" if self.protocol == "v2" else "v2"
            return UsageError(
                f"{op} via connector {self.target}: it does not serve the {self.protocol} connector protocol",
                hint=f"use --protocol {other}, or leave --protocol out to detect it",
            )
        return error_from_rpc(exc, op=op, target=self.target, timeout=self.timeout)

    async def resolved_protocol(self) -> str:
        """``v1`` or ``v2``: as given, else what the server's health service says it serves."""
        if self.protocol not in ("v1", "v2"):
            self.protocol = await self._detect()
        return self.protocol

    async def _detect(self) -> str:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self._channel)
        serving: dict[str, bool] = {}
        for service in (V1_SERVICE, V2_SERVICE):
            try:
                answer = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=self.timeout)
                serving[service] = answer.status == health_pb2.HealthCheckResponse.SERVING
            except grpc.aio.AioRpcError as exc:
                if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise  # the server is not there: say so, not "no such protocol"
                serving[service] = False  # NOT_FOUND (not served) or UNIMPLEMENTED (no health service)
            if service == V1_SERVICE and serving[service]:
                return "v1"  # both served: Flyte 1's, the long-standing one
        return "v2" if serving.get(V2_SERVICE) else "v1"

    def _v2_parts(self, name: str) -> tuple[Any, Any, Any]:
        """(flyteidl2 stub method, request type, response type) for a v1 method name."""
        from flyteidl2.connector import connector_pb2
        from flyteidl2.connector import service_pb2_grpc as s2

        kind, method, request_type, response_type = _V2_CALLS[name]
        if kind not in self._v2:
            stub = s2.AsyncConnectorServiceStub if kind == "async" else s2.ConnectorMetadataServiceStub
            self._v2[kind] = stub(self._channel)
        return (
            getattr(self._v2[kind], method),
            getattr(connector_pb2, request_type),
            getattr(connector_pb2, response_type),
        )

    async def _call_v2(self, name: str, request: Any) -> Any:
        """The v1 call over flyteidl2: the same bytes in, the answer read back as the v1 type."""
        method, request_type, _ = self._v2_parts(name)
        response = await method(request_type.FromString(request.SerializeToString()), timeout=self.timeout)
        return _v2_to_v1(name, response)

    async def create_task(self, request: agent_pb2.CreateTaskRequest) -> bytes:
        response = await self._call("create task", self._async.CreateTask, request, "CreateTask")
        return bytes(response.resource_meta)

    async def get_task(
        self, resource_meta: bytes, *, task_type: str = TASK_TYPE, version: int = 0, output_prefix: str = ""
    ) -> TaskStatus:
        request = agent_pb2.GetTaskRequest(
            task_type=task_type,
            resource_meta=resource_meta,
            task_category=_category(task_type, version),
            output_prefix=output_prefix,
        )
        response = await self._call("get task", self._async.GetTask, request, "GetTask")
        return status_from_resource(response.resource, job_id_from_resource_meta(resource_meta))

    async def delete_task(self, resource_meta: bytes, *, task_type: str = TASK_TYPE, version: int = 0) -> None:
        request = agent_pb2.DeleteTaskRequest(
            task_type=task_type, resource_meta=resource_meta, task_category=_category(task_type, version)
        )
        await self._call("delete task", self._async.DeleteTask, request, "DeleteTask")

    async def get_task_metrics(
        self, resource_meta: bytes, queries: list[str] | None = None, *, task_type: str = TASK_TYPE, version: int = 0
    ) -> dict[str, Any]:
        request = agent_pb2.GetTaskMetricsRequest(
            task_type=task_type,
            resource_meta=resource_meta,
            queries=queries or [],
            task_category=_category(task_type, version),
        )
        response = await self._call("get task metrics", self._async.GetTaskMetrics, request, "GetTaskMetrics")
        return {r.metric: json_format.MessageToDict(r.data) for r in response.results}

    async def get_task_logs(
        self, resource_meta: bytes, *, lines: int = 0, token: str = "", task_type: str = TASK_TYPE, version: int = 0
    ) -> AsyncIterator[str | LogPage]:
        """Yield a :class:`LogPage` (the header: next-page token) first, then each log line."""
        request = agent_pb2.GetTaskLogsRequest(
            task_type=task_type,
            resource_meta=resource_meta,
            lines=lines,
            token=token,
            task_category=_category(task_type, version),
        )
        try:
            if await self.resolved_protocol() == "v2":
                method, request_type, _ = self._v2_parts("GetTaskLogs")
                stream: Any = method(request_type.FromString(request.SerializeToString()), timeout=self.timeout)
            else:
                stream = self._async.GetTaskLogs(request, timeout=self.timeout)
            async for part in stream:
                if part.HasField("header"):
                    yield LogPage(next_token=part.header.token)
                else:
                    body = part.body
                    structured = body.lines if hasattr(body, "lines") else body.structured_lines  # v2 : v1
                    lines_out = [line.message for line in structured] or list(body.results)
                    for line in lines_out:
                        yield line
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, "get task logs") from None

    async def all_log_lines(self, resource_meta: bytes, *, lines: int = 0) -> list[str]:
        """Every page of the ``GetTaskLogs`` stream, as lines (``logs --connector``)."""
        out: list[str] = []
        token = ""
        while True:
            next_token = ""
            async for part in self.get_task_logs(resource_meta, lines=lines, token=token):
                if isinstance(part, LogPage):
                    next_token = part.next_token
                else:
                    out.append(part)
            if not next_token or next_token == token:
                return out
            token = next_token

    async def list_agents(self) -> list[agent_pb2.Agent]:
        response = await self._call(
            "list connectors", self._meta.ListAgents, agent_pb2.ListAgentsRequest(), "ListAgents"
        )
        return list(response.agents)

    async def get_agent(self, name: str) -> agent_pb2.Agent:
        response = await self._call(
            "get connector", self._meta.GetAgent, agent_pb2.GetAgentRequest(name=name), "GetAgent"
        )
        return response.agent

    async def health(self, service: str = "") -> str:
        """grpc.health.v1 status name (``SERVING``, ``NOT_SERVING`` ...) of ``service``."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self._channel)
        response = await self._call("health check", stub.Check, health_pb2.HealthCheckRequest(service=service))
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def _service_missing(exc: grpc.aio.AioRpcError) -> bool:
    """UNIMPLEMENTED because the *service* is missing (gRPC's "Method not found!"), not a method of it."""
    return "method not found" in (exc.details() or "").lower()


_V1_RESPONSES: dict[str, Any] = {
    "CreateTask": agent_pb2.CreateTaskResponse,
    "GetTask": agent_pb2.GetTaskResponse,
    "DeleteTask": agent_pb2.DeleteTaskResponse,
    "GetTaskMetrics": agent_pb2.GetTaskMetricsResponse,
    "ListAgents": agent_pb2.ListAgentsResponse,
    "GetAgent": agent_pb2.GetAgentResponse,
}


def _v2_to_v1(name: str, response: Any) -> Any:
    """A flyteidl2 answer as its flyteidl type. Same wire form, except that a v2 ``Connector`` has no
    ``supported_task_types``: filled from its categories, as a Flyte 1 connector fills them."""
    v1 = _V1_RESPONSES[name].FromString(response.SerializeToString())
    agents = list(v1.agents) if name == "ListAgents" else [v1.agent] if name == "GetAgent" else []
    for agent in agents:
        if not agent.supported_task_types:
            agent.supported_task_types.extend(dict.fromkeys(c.name for c in agent.supported_task_categories))
    return v1


@dataclass(frozen=True)
class LogPage:
    """Header of a GetTaskLogs stream: the token of the next page ("" when there is none)."""

    next_token: str


# ---------------------------------------------------------------------- one call on a channel of its own
# (submit, the check harness and tests; the job commands go through perianctl.jobs.backend)


async def submit_via_connector(
    target: str,
    template: tasks_pb2.TaskTemplate,
    inputs: literals_pb2.LiteralMap | None,
    output_prefix: str,
    *,
    execution_name: str | None = None,
    project: str | None = None,
    domain: str | None = None,
    node_id: str = "n0",
    retry_attempt: int = 0,
    environment: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Submission:
    """``submit --connector``: one ``CreateTask`` as propeller sends it; returns the resource meta.

    Re-running with the same ``execution_name`` (and node/attempt) is idempotent: the connector
    returns the job it created the first time.
    """
    metadata = synthetic_execution_metadata(
        template,
        execution_name=execution_name,
        project=project,
        domain=domain,
        node_id=node_id,
        retry_attempt=retry_attempt,
        environment=environment,
    )
    request = build_create_request(template, inputs, output_prefix, metadata)
    async with ConnectorClient(target, timeout=timeout) as client:
        meta = await client.create_task(request)
    wf = metadata.task_execution_id.node_execution_id
    return Submission(
        resource_meta=meta,
        job_id=job_id_from_resource_meta(meta),
        execution_name=wf.execution_id.name,
        node_id=wf.node_id,
        retry_attempt=retry_attempt,
    )


async def get_via_connector(
    target: str, job_id: str, *, timeout: float = DEFAULT_TIMEOUT, output_prefix: str = ""
) -> TaskStatus:
    """``get --connector``: ``GetTask`` for a PERIAN job id (resource meta ``{"job_id": ...}``).

    ``output_prefix`` (propeller sends it too) lets ``perianctl serve`` report a failed task's
    real error from ``<prefix>/error.pb``.
    """
    async with ConnectorClient(target, timeout=timeout) as client:
        return await client.get_task(resource_meta_for(job_id), output_prefix=output_prefix)


async def delete_via_connector(target: str, job_id: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """``delete --connector``: ``DeleteTask``; the connector treats finished/unknown jobs as done."""
    async with ConnectorClient(target, timeout=timeout) as client:
        await client.delete_task(resource_meta_for(job_id))


async def logs_via_connector(
    target: str, job_id: str, *, lines: int = 0, timeout: float = DEFAULT_TIMEOUT
) -> list[str]:
    """Every page of the ``GetTaskLogs`` stream of ``job_id``, as lines, on a channel of its own."""
    async with ConnectorClient(target, timeout=timeout) as client:
        return await client.all_log_lines(resource_meta_for(job_id), lines=lines)
