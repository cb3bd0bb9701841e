"""flyteidl2 connector servicers: ``AsyncConnectorService`` and ``ConnectorMetadataService``.

Served by ``perianctl serve`` on the same port as the Flyte 1 ``flyteidl.service`` services. They
dispatch to the *same* :class:`~perianctl.connector.service.PerianConnector` instance through
:class:`~perianctl.connector.v2.PerianV2` (one client pool, one idempotency and reaping mechanism),
share the Flyte 1 servicers' error mapping (one-line messages, meaningful status codes) and
count into the same ``flyte_connector_*`` metrics (flytekit's collectors; the ``flyte`` SDK's
server would register the same names again, which is why it is not imported here).

Only ``perian_task`` is served over flyteidl2: flytekit's other registered connectors speak
flytekit models, not Flyte 2 ones.

Per request, secrets come from the request's ``core.Connection`` first and the server's own
(mounted files, env) otherwise. GetTaskLogs and GetTaskMetrics requests carry no Connection in
flyteidl2, so they use the server's credentials.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
from flyteidl2.connector import connector_pb2 as c2
from flyteidl2.connector.service_pb2_grpc import AsyncConnectorServiceServicer, ConnectorMetadataServiceServicer
from flytekit.exceptions.system import FlyteConnectorNotFound
from flytekit.extend.backend import connector_service as fk

from perianctl.connector.service import TASK_TYPE, TASK_TYPE_VERSION, PerianConnector, PerianMetadata
from perianctl.connector.servicers import _fail
from perianctl.connector.v2 import PerianV2, connection_secrets


def _deadline(context: grpc.aio.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


class PerianAsyncServiceV2(AsyncConnectorServiceServicer):  # type: ignore[misc]  # grpc is untyped
    """``flyteidl2.connector.AsyncConnectorService`` for ``perian_task`` v0."""

    def __init__(self, connector: PerianConnector) -> None:
        self.v2 = PerianV2(connector)

    def _check(self, name: str, version: int) -> None:
        if name != TASK_TYPE or int(version) != TASK_TYPE_VERSION:
            raise FlyteConnectorNotFound(f"Cannot find connector for task type: {name}.")

    def _meta(self, request: Any) -> PerianMetadata:
        category = request.task_category
        self._check(category.name or TASK_TYPE, category.version)
        return PerianMetadata.decode(request.resource_meta)

    async def CreateTask(
        self, request: c2.CreateTaskRequest, context: grpc.aio.ServicerContext
    ) -> c2.CreateTaskResponse:
        task_type = request.template.type
        try:
            self._check(task_type, request.template.task_type_version)
            if request.HasField("inputs"):
                fk.input_literal_size.labels(task_type=task_type).observe(request.inputs.ByteSize())
            with fk.request_latency.labels(task_type=task_type, operation=fk.create_operation).time():
                meta = await self.v2.create(
                    request.template,
                    request.output_prefix,
                    inputs=request.inputs if request.HasField("inputs") else None,
                    metadata=request.task_execution_metadata if request.HasField("task_execution_metadata") else None,
                    secrets=connection_secrets(request.connection),
                    deadline=_deadline(context),
                )
        except Exception as exc:  # every failure becomes a status code
            await _fail(context, exc, "create", task_type)
        fk.request_success_count.labels(task_type=task_type, operation=fk.create_operation).inc()
        return c2.CreateTaskResponse(resource_meta=meta.encode())

    async def GetTask(self, request: c2.GetTaskRequest, context: grpc.aio.ServicerContext) -> c2.GetTaskResponse:
        task_type = request.task_category.name or TASK_TYPE
        try:
            with fk.request_latency.labels(task_type=task_type, operation=fk.get_operation).time():
                resource = await self.v2.get(
                    self._meta(request),
                    output_prefix=request.output_prefix,
                    secrets=connection_secrets(request.connection),
                    deadline=_deadline(context),
                )
        except Exception as exc:  # every failure becomes a status code
            await _fail(context, exc, "get", task_type)
        fk.request_success_count.labels(task_type=task_type, operation=fk.get_operation).inc()
        return c2.GetTaskResponse(resource=resource)

    async def DeleteTask(
        self, request: c2.DeleteTaskRequest, context: grpc.aio.ServicerContext
    ) -> c2.DeleteTaskResponse:
        task_type = request.task_category.name or TASK_TYPE
        try:
            with fk.request_latency.labels(task_type=task_type, operation=fk.delete_operation).time():
                await self.v2.delete(
                    self._meta(request), secrets=connection_secrets(request.connection), deadline=_deadline(context)
                )
        except Exception as exc:  # every failure becomes a status code
            await _fail(context, exc, "delete", task_type)
        fk.request_success_count.labels(task_type=task_type, operation=fk.delete_operation).inc()
        return c2.DeleteTaskResponse()

    async def GetTaskMetrics(
        self, request: c2.GetTaskMetricsRequest, context: grpc.aio.ServicerContext
    ) -> c2.GetTaskMetricsResponse:
        task_type = request.task_category.name or TASK_TYPE
        try:
            return await self.v2.get_metrics(self._meta(request), list(request.queries))
        except Exception as exc:  # every failure becomes a status code
            await _fail(context, exc, "get metrics of", task_type)

    async def GetTaskLogs(  # an async generator, as grpc.aio streams it
        self, request: c2.GetTaskLogsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[c2.GetTaskLogsResponse]:
        task_type = request.task_category.name or TASK_TYPE
        try:
            async for message in self.v2.get_logs(self._meta(request), lines=int(request.lines), token=request.token):
                yield message
        except Exception as exc:  # every failure becomes a status code
            await _fail(context, exc, "get logs of", task_type)


class PerianMetadataServiceV2(ConnectorMetadataServiceServicer):  # type: ignore[misc]  # grpc is untyped
    """``flyteidl2.connector.ConnectorMetadataService``: advertises ``perian_task`` v0."""

    def __init__(self, connector: PerianConnector) -> None:
        self.connector_proto = c2.Connector(
            name=connector.name,
            supported_task_categories=[c2.TaskCategory(name=TASK_TYPE, version=TASK_TYPE_VERSION)],
        )

    async def ListConnectors(
        self, request: c2.ListConnectorsRequest, context: grpc.aio.ServicerContext
    ) -> c2.ListConnectorsResponse:
        return c2.ListConnectorsResponse(connectors=[self.connector_proto])

    async def GetConnector(
        self, request: c2.GetConnectorRequest, context: grpc.aio.ServicerContext
    ) -> c2.GetConnectorResponse:
        if request.name != self.connector_proto.name:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"no connector named {request.name!r} (known: {self.connector_proto.name!r})"
            )
        return c2.GetConnectorResponse(connector=self.connector_proto)
