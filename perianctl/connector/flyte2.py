"""The PERIAN connector for the ``flyte`` SDK (Flyte 2): ``flyte.connectors.AsyncConnector`` for ``perian_task`` v0.

:class:`PerianFlyte2Connector` is registered in flyte's ``ConnectorRegistry`` by :func:`register`,
which the ``flyte.connectors`` entry point (:mod:`perianctl.plugins.flyte_entry`) calls -- so the SDK's own connector
server (``flyte serve connector``) finds it, and so do local runs: the authoring module
(:mod:`perianctl.flyte.flyte2`, ``PerianTask``/``PerianContainerTask``) loads that entry point
before a run when no connector is registered. It holds no PERIAN logic: every call goes to
:class:`~perianctl.connector.v2.PerianV2` over one :class:`~perianctl.connector.service.PerianConnector`
(given by the entry point: :func:`perianctl.plugins.settings_from_env`, ``PERIAN_*`` or the profile).

Local executions (no ``task_execution_metadata``): each is its own attempt with its own output
prefix; the declared outputs are read back from ``<outputPrefix>/outputs.pb`` (a flyteidl2
``task.Outputs``) once the job is Done. Keyword arguments of the SDK's calls are the request's
connection secrets (``connector_secrets`` of a ``PerianContainerTask``).

This module imports the ``flyte`` SDK and must therefore never be imported by ``perianctl serve``:
``flyte.connectors`` and flytekit's connector service register the same Prometheus metric names.
"""

from __future__ import annotations

import collections
import inspect
import json
import uuid
from dataclasses import dataclass
from typing import Any

from flyte.connectors import AsyncConnector, ConnectorRegistry, Resource, ResourceMeta
from flyte.models import NativeInterface
from flyteidl2.core import execution_pb2 as e2
from google.protobuf import json_format

from perianctl.connector.service import CONNECTOR_NAME, TASK_TYPE, TASK_TYPE_VERSION, PerianConnector, PerianMetadata
from perianctl.connector.v2 import PerianV2

__all__ = ["PerianFlyte2Connector", "PerianJobMeta", "register"]

_LOCAL_RUNS = 1000  # local executions remembered for reading outputs back (bounded)


@dataclass
class PerianJobMeta(ResourceMeta):
    """``{"job_id": "..."}``: the same resource_meta bytes as perianctl's Flyte 1 connector."""

    job_id: str

    @classmethod
    def decode(cls, data: bytes) -> PerianJobMeta:
        return cls(job_id=PerianMetadata.decode(data).job_id)  # the one tolerant decoder


class PerianFlyte2Connector(AsyncConnector[PerianJobMeta]):
    """``flyte.connectors.AsyncConnector`` for ``perian_task`` v0, over the one PERIAN connector."""

    name = CONNECTOR_NAME
    task_type_name = TASK_TYPE
    task_type_version = TASK_TYPE_VERSION
    metadata_type = PerianJobMeta

    def __init__(self, core: PerianConnector) -> None:
        self.v2 = PerianV2(core)
        # job id → (output prefix, output types) of local executions, to read outputs.pb back
        self._local: collections.OrderedDict[str, tuple[str, dict[str, type]]] = collections.OrderedDict()

    async def create(
        self,
        task_template: Any,
        output_prefix: str,
        inputs: Any = None,
        task_execution_metadata: Any = None,
        **kwargs: Any,
    ) -> PerianJobMeta:
        """``inputs``: native values (what the SDK passes), a ``task.Inputs`` or ``None``.
        Keyword arguments are the request's connection secrets and configs."""
        secrets = {k: v for k, v in kwargs.items() if isinstance(v, str)}
        local = task_execution_metadata is None
        if local:  # every local execution is its own attempt: its own prefix, so its own job
            output_prefix = f"{output_prefix.rstrip('/')}/perian-{uuid.uuid4().hex[:12]}"
        literal_inputs = await _to_inputs(task_template, inputs) if isinstance(inputs, dict) else inputs
        meta = await self.v2.create(
            task_template, output_prefix, inputs=literal_inputs, metadata=task_execution_metadata, secrets=secrets
        )
        if local:
            self._local[meta.job_id] = (output_prefix, _output_types(task_template))
            while len(self._local) > _LOCAL_RUNS:
                self._local.popitem(last=False)
        return PerianJobMeta(job_id=meta.job_id)

    async def get(self, resource_meta: PerianJobMeta, **kwargs: Any) -> Resource:
        secrets = {k: v for k, v in kwargs.items() if isinstance(v, str) and k != "output_prefix"}
        prefix, types = self._local.get(resource_meta.job_id, (str(kwargs.get("output_prefix") or ""), {}))
        resource = await self.v2.get(PerianMetadata(job_id=resource_meta.job_id), output_prefix=prefix, secrets=secrets)
        outputs = None
        if resource.phase == e2.TaskExecution.SUCCEEDED and types and prefix:  # read what the command wrote
            outputs = await _read_outputs(prefix, types)
        return Resource(
            phase=resource.phase,
            message=resource.message,
            log_links=list(resource.log_links),
            custom_info=json.loads(json_format.MessageToJson(resource.custom_info)) if resource.custom_info else None,
            outputs=outputs,
        )

    async def delete(self, resource_meta: PerianJobMeta, **kwargs: Any) -> None:
        secrets = {k: v for k, v in kwargs.items() if isinstance(v, str)}
        await self.v2.delete(PerianMetadata(job_id=resource_meta.job_id), secrets=secrets)

    async def get_metrics(self, resource_meta: PerianJobMeta, **kwargs: Any) -> Any:
        return await self.v2.get_metrics(PerianMetadata(job_id=resource_meta.job_id), kwargs.get("queries"))

    async def get_logs(self, resource_meta: PerianJobMeta, **kwargs: Any) -> Any:
        async for message in self.v2.get_logs(
            PerianMetadata(job_id=resource_meta.job_id),
            lines=int(kwargs.get("lines") or 0),
            token=kwargs.get("token") or "",
        ):
            yield message


async def _to_inputs(template: Any, values: dict[str, Any]) -> Any:
    """Native input values → ``task.Inputs``, typed by the template's interface (as flyte's server does)."""
    from flyte._internal.runtime.convert import convert_from_native_to_inputs
    from flyte.types import TypeEngine

    variables = {entry.key: entry.value.type for entry in template.interface.inputs.variables}
    types: dict[str, Any] = {
        k: (TypeEngine.guess_python_type(v), inspect.Parameter.empty) for k, v in variables.items()
    }
    interface = NativeInterface.from_types(inputs=types, outputs={})
    return (await convert_from_native_to_inputs(interface, **values)).proto_inputs


def _output_types(template: Any) -> dict[str, type]:
    from flyte.types import TypeEngine

    return {entry.key: TypeEngine.guess_python_type(entry.value.type) for entry in template.interface.outputs.variables}


async def _read_outputs(prefix: str, types: dict[str, type]) -> dict[str, Any] | None:
    """``<prefix>/outputs.pb`` as native values; ``None`` when the job wrote none."""
    from flyte import storage
    from flyte._internal.runtime import io
    from flyte.types import TypeEngine
    from flyteidl2.core import literals_pb2

    path = io.outputs_path(prefix)
    if not await storage.exists(path):
        return None
    outputs = await io.load_outputs(path)
    literal_map = literals_pb2.LiteralMap(literals={n.name: n.value for n in outputs.proto_outputs.literals})
    values: dict[str, Any] = await TypeEngine.literal_map_to_kwargs(literal_map, types)
    return {name: values[name] for name in types if name in values}


def register(core: PerianConnector) -> PerianFlyte2Connector:
    """Register the connector (``perian_task`` v0), over ``core``, with the ``flyte`` SDK. Idempotent."""
    connector = PerianFlyte2Connector(core)
    ConnectorRegistry.register(connector, override=True)
    metadata = ConnectorRegistry._METADATA.get(connector.name)
    if metadata is not None and len(metadata.supported_task_categories) > 1:  # re-registered: one entry
        unique = {(c.name, c.version): c for c in metadata.supported_task_categories}
        del metadata.supported_task_categories[:]
        metadata.supported_task_categories.extend(unique.values())
    return connector
