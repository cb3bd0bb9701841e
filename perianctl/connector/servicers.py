"""flytekit's connector servicers, fixed where they fall short over real gRPC.

flytekit's ``AsyncConnectorService`` is used as the base (same dispatch through the
``ConnectorRegistry``, same ``flyte_connector_*`` metrics), with these changes:

* ``GetTaskLogs`` is an **async generator**. flytekit's is a coroutine that *returns* a message,
  which grpc.aio silently drops: an empty stream with status OK (flytekit's
  flytekit/extend/backend/connector_service.py, 1.16.x).
* ``GetTaskMetrics`` maps "not implemented" to UNIMPLEMENTED instead of UNKNOWN.
* Errors become **one-line messages with a meaningful status code** (INVALID_ARGUMENT for a bad
  template or resource_meta, UNAVAILABLE when PERIAN is down, ...). flytekit sends INTERNAL with
  the whole Python traceback, which propeller shows verbatim in the Flyte UI. Tracebacks of
  unexpected errors still go to the server log.
* For ``perian_task`` the proto template and metadata are handed straight to the connector (no
  flytekit model round trip); other registered connectors go through flytekit's code unchanged.
* ``GetAgent`` with an unknown name is NOT_FOUND (flytekit lets the exception escape: UNKNOWN);
  ``ListAgents`` can be limited to the PERIAN connector so propeller's discovery does not route
  flytekit's always-registered ``sensor`` type here.
* ``ExecuteTaskSync`` for ``perian_task`` (an async connector) is FAILED_PRECONDITION with a
  clear message.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Any, NoReturn

import grpc
from flyteidl.admin.agent_pb2 import (
    CreateTaskRequest,
    CreateTaskResponse,
    DeleteTaskRequest,
    DeleteTaskResponse,
    ExecuteTaskSyncRequest,
    ExecuteTaskSyncResponse,
    GetAgentRequest,
    GetAgentResponse,
    GetTaskLogsRequest,
    GetTaskLogsResponse,
    GetTaskMetricsRequest,
    GetTaskMetricsResponse,
    GetTaskRequest,
    GetTaskResponse,
    ListAgentsRequest,
    ListAgentsResponse,
)
from flyteidl.admin.agent_pb2 import Resource as ResourcePb
from flytekit.exceptions.system import FlyteConnectorNotFound
from flytekit.extend.backend import connector_service as fk
from flytekit.extend.backend.base_connector import ConnectorRegistry, Resource
from flytekit.extend.backend.utils import mirror_async_methods
from google.protobuf.struct_pb2 import Struct

from perianctl.connector.service import PerianConnector, PerianMetadata
from perianctl.errors import (
    ApiError,
    AuthError,
    BadRequestError,
    NoOfferError,
    NotFoundError,
    PerianctlError,
    ProtocolError,
    UnavailableError,
    UsageError,
    ValidationFailed,
)
from perianctl.redact import scrub
from perianctl.text import one_line

log = logging.getLogger("perianctl.serve")

MESSAGE_LIMIT = 300


def _category(request: Any) -> tuple[str, int]:
    """Task type and version of a Get/Delete/Logs/Metrics request (deprecated ``task_type`` too)."""
    category = request.task_category
    if category.name:
        return category.name, int(category.version)
    return request.task_type, 0


def _deadline(context: grpc.aio.ServicerContext) -> float | None:
    """The call's gRPC deadline on the monotonic clock (None when the caller set none)."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


async def resource_pb(result: Resource) -> ResourcePb:
    """``result.to_flyte_idl()``, without its JSON round trip for ``custom_info``.

    flytekit turns ``custom_info`` into a protobuf ``Struct`` by dumping it to JSON text and parsing
    that back (``json_format.Parse``): a sixth of a GetTask's CPU in ``perianctl serve``.
    ``Struct.update`` builds the same message from the dict directly. Outputs still go through
    flytekit (its type engine); ``tests/unit/test_connector.py`` checks both give the same bytes.
    """
    if result.outputs is not None or not result.custom_info:
        return await result.to_flyte_idl()
    custom_info = Struct()
    custom_info.update(result.custom_info)
    return ResourcePb(phase=result.phase, message=result.message, log_links=result.log_links, custom_info=custom_info)


def _one_line(text: str) -> str:
    return one_line(scrub(str(text)), MESSAGE_LIMIT)


def status_for(exc: BaseException) -> grpc.StatusCode:
    """The gRPC status code for an exception raised while serving a task RPC."""
    if isinstance(exc, FlyteConnectorNotFound | NotFoundError):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, AuthError):
        return grpc.StatusCode.UNAUTHENTICATED
    if isinstance(exc, UnavailableError | ProtocolError):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(exc, NoOfferError):  # well-formed, but nothing offered matches (docs/connector.md)
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(exc, ValidationFailed | BadRequestError | UsageError | ValueError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, NotImplementedError):
        return grpc.StatusCode.UNIMPLEMENTED
    return grpc.StatusCode.INTERNAL


async def _fail(context: grpc.aio.ServicerContext, exc: BaseException, op: str, task_type: str) -> NoReturn:
    """Abort the RPC with a one-line message; log unexpected errors with their traceback."""
    code = status_for(exc)
    if isinstance(exc, FlyteConnectorNotFound):
        message = f"Cannot find connector for task type: {task_type}."  # flytekit's wording
    elif isinstance(exc, PerianctlError | ValueError | NotImplementedError):
        message = f"{op} {task_type}: {exc or type(exc).__name__}"
    else:
        message = f"failed to {op} {task_type} task: {type(exc).__name__}: {exc}"
    message = _one_line(message)
    if code == grpc.StatusCode.INTERNAL and not isinstance(exc, ApiError):
        log.error("%s\n%s", message, scrub("".join(traceback.format_exception(exc))))
    else:
        log.warning("%s (%s)", message, code.name)
    if op in ("create", "get", "delete"):
        error_code = HTTPStatus.NOT_FOUND if code == grpc.StatusCode.NOT_FOUND else HTTPStatus.INTERNAL_SERVER_ERROR
        fk.request_failure_count.labels(task_type=task_type, operation=op, error_code=error_code).inc()
    await context.abort(code, message)
    raise AssertionError("unreachable")  # pragma: no cover - abort raises


class PerianAsyncService(fk.AsyncConnectorService):  # type: ignore[misc]  # flytekit is untyped
    """AsyncAgentService for every registered connector, with the fixes in the module docstring."""

    async def CreateTask(self, request: CreateTaskRequest, context: grpc.aio.ServicerContext) -> CreateTaskResponse:
        template = request.template
        task_type = template.type
        deadline = _deadline(context)
        try:
            connector = ConnectorRegistry.get_connector(task_type, template.task_type_version)
            if request.HasField("inputs"):
                fk.input_literal_size.labels(task_type=task_type).observe(request.inputs.ByteSize())
            with fk.request_latency.labels(task_type=task_type, operation=fk.create_operation).time():
                if isinstance(connector, PerianConnector):
                    meta = await connector.create(
                        task_template=template,
                        output_prefix=request.output_prefix,
                        inputs=request.inputs if request.HasField("inputs") else None,
                        task_execution_metadata=(
                            request.task_execution_metadata if request.HasField("task_execution_metadata") else None
                        ),
                        deadline=deadline,
                    )
                    response = CreateTaskResponse(resource_meta=meta.encode())
                else:
                    response = await self._flytekit_create(request, connector)
        except Exception as exc:  # every failure becomes a status code
            await _fail(context, exc, "create", task_type)
        fk.request_success_count.labels(task_type=task_type, operation=fk.create_operation).inc()
        return response

    @staticmethod
    async def _flytekit_create(request: CreateTaskRequest, connector: Any) -> CreateTaskResponse:
        from flytekit.models.literals import LiteralMap
        from flytekit.models.task import TaskExecutionMetadata, TaskTemplate

        meta = await mirror_async_methods(
            connector.create,
            task_template=TaskTemplate.from_flyte_idl(request.template),
            inputs=LiteralMap.from_flyte_idl(request.inputs) if request.HasField("inputs") else None,
            output_prefix=request.output_prefix,
            task_execution_metadata=TaskExecutionMetadata.from_flyte_idl(request.task_execution_metadata),
        )
        return CreateTaskResponse(resource_meta=meta.encode())

    async def GetTask(self, request: GetTaskRequest, context: grpc.aio.ServicerContext) -> GetTaskResponse:
        task_type, version = _category(request)
        try:
            connector = ConnectorRegistry.get_connector(task_type, version)
            with fk.request_latency.labels(task_type=task_type, operation=fk.get_operation).time():
                meta = connector.metadata_type.decode(request.resource_meta)
                if isinstance(connector, PerianConnector):  # flytekit drops output_prefix; we use it
                    result = await connector.get(meta, output_prefix=request.output_prefix, deadline=_deadline(context))
                else:
                    result = await mirror_async_methods(connector.get, resource_meta=meta)
                resource = await resource_pb(result)
        except Exception as exc:  # every failure becomes a status code
            await _fail(context, exc, "get", task_type)
        fk.request_success_count.labels(task_type=task_type, operation=fk.get_operation).inc()
        return GetTaskResponse(resource=resource)

    async def DeleteTask(self, request: DeleteTaskRequest, context: grpc.aio.ServicerContext) -> DeleteTaskResponse:
        task_type, version = _category(request)
        try:
            connector = ConnectorRegistry.get_connector(task_type, version)
            with fk.request_latency.labels(task_type=task_type, operation=fk.delete_operation).time():
                meta = connector.metadata_type.decode(request.resource_meta)
                if isinstance(connector, PerianConnector):
                    await connector.delete(meta, deadline=_deadline(context))
                else:
                    await mirror_async_methods(connector.delete, resource_meta=meta)
        except Exception as exc:  # every failure becomes a status code
            await _fail(context, exc, "delete", task_type)
        fk.request_success_count.labels(task_type=task_type, operation=fk.delete_operation).inc()
        return DeleteTaskResponse()

    async def GetTaskMetrics(
        self, request: GetTaskMetricsRequest, context: grpc.aio.ServicerContext
    ) -> GetTaskMetricsResponse:
        task_type, version = _category(request)
        try:
            connector = ConnectorRegistry.get_connector(task_type, version)
            meta = connector.metadata_type.decode(request.resource_meta)
            kwargs: dict[str, Any] = {"queries": list(request.queries)}
            for name in ("start_time", "end_time", "step"):
                if request.HasField(name):
                    kwargs[name] = getattr(request, name)
            result = await mirror_async_methods(connector.get_metrics, resource_meta=meta, **kwargs)
        except Exception as exc:  # every failure becomes a status code
            await _fail(context, exc, "get metrics of", task_type)
        return result

    async def GetTaskLogs(  # an async generator: that is the fix
        self, request: GetTaskLogsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[GetTaskLogsResponse]:
        task_type, version = _category(request)
        try:
            connector = ConnectorRegistry.get_connector(task_type, version)
            meta = connector.metadata_type.decode(request.resource_meta)
            if isinstance(connector, PerianConnector):
                assert isinstance(meta, PerianMetadata)
                stream: Any = connector.get_logs(meta, lines=int(request.lines), token=request.token)
            else:
                stream = await mirror_async_methods(connector.get_logs, resource_meta=meta)
            if isinstance(stream, GetTaskLogsResponse):
                yield stream
            else:
                async for message in stream:
                    yield message
        except Exception as exc:  # every failure becomes a status code
            await _fail(context, exc, "get logs of", task_type)


class PerianSyncService(fk.SyncConnectorService):  # type: ignore[misc]  # flytekit is untyped
    """SyncAgentService: flytekit's, but an async connector's type gets a clear refusal."""

    async def ExecuteTaskSync(
        self, request_iterator: AsyncIterator[ExecuteTaskSyncRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ExecuteTaskSyncResponse]:
        try:
            first = await request_iterator.__anext__()
        except StopAsyncIteration:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "ExecuteTaskSync: no header message")
        template = first.header.template
        try:
            connector = ConnectorRegistry.get_connector(template.type, template.task_type_version)
        except FlyteConnectorNotFound as exc:
            await _fail(context, exc, "execute", template.type)
        if isinstance(connector, PerianConnector):
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{template.type} is served asynchronously: use AsyncAgentService.CreateTask/GetTask",
            )

        async def replay() -> AsyncIterator[ExecuteTaskSyncRequest]:
            yield first
            async for item in request_iterator:
                yield item

        async for response in super().ExecuteTaskSync(replay(), context):
            yield response


class PerianMetadataService(fk.ConnectorMetadataService):  # type: ignore[misc]  # flytekit is untyped
    """AgentMetadataService; ``perian_only`` hides other registered connectors from discovery."""

    def __init__(self, *, perian_only: bool = True) -> None:
        self.perian_only = perian_only

    def _agents(self) -> list[Any]:
        agents: list[Any] = ConnectorRegistry.list_connectors()
        if not self.perian_only:
            return agents
        names = {c.name for c in ConnectorRegistry._REGISTRY.values() if isinstance(c, PerianConnector)}
        return [a for a in agents if a.name in names]

    async def ListAgents(self, request: ListAgentsRequest, context: grpc.aio.ServicerContext) -> ListAgentsResponse:
        return ListAgentsResponse(agents=self._agents())

    async def GetAgent(self, request: GetAgentRequest, context: grpc.aio.ServicerContext) -> GetAgentResponse:
        for agent in self._agents():
            if agent.name == request.name:
                return GetAgentResponse(agent=agent)
        known = ", ".join(repr(a.name) for a in self._agents()) or "none"
        await context.abort(grpc.StatusCode.NOT_FOUND, f"no connector named {request.name!r} (known: {known})")
        raise AssertionError("unreachable")  # pragma: no cover
