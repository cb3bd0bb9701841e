"""PERIAN for Flyte 2: the task plugin (authoring) for the ``flyte`` SDK.

Authoring (the Flyte 2 counterpart of :mod:`perianctl.flyte.task`, the same ``PerianConfig``
class and therefore the same ``custom`` keys)::

    import flyte
    from perianctl.flyte.flyte2 import PerianConfig, PerianContainerTask

    env = flyte.TaskEnvironment("train", plugin_config=PerianConfig(accelerators=1, accelerator_type="A100"))

    @env.task
    async def train(epochs: int) -> float: ...          # a PerianTask: runs as a PERIAN job

    hello = PerianContainerTask(name="hello", image="ubuntu:24.04", command=["echo", "{{.inputs.name}}"],
                                inputs={"name": str}, plugin_config=PerianConfig(cores=2))
    flyte.TaskEnvironment.from_task("hello", hello)

Both have task type ``perian_task`` v0, which a Flyte 2 backend routes to a connector serving
``flyteidl2.connector.AsyncConnectorService`` for it -- ``perianctl serve`` does (beside the Flyte 1
protocol, from the same image).

The connector for the ``flyte`` SDK lives in :mod:`perianctl.connector.flyte2` (a layer above this
one; nothing here imports it). The SDK finds it through perianctl's ``flyte.connectors`` entry point,
which its connector server loads (``flyte serve connector``); for a local run the SDK does not, so
these tasks load that entry point themselves before their first run when no ``perian_task``
connector is registered (``PERIANCTL_FLYTE_PLUGIN=off`` keeps it unregistered: such a run fails
with a clear error).

Local execution (``flyte.run`` without a backend): a :class:`PerianContainerTask` always goes
through the connector. Its command gets ``{{.inputs.<name>}}`` and ``{{.outputPrefix}}``
rendered; to return outputs it writes a flyteidl2 ``task.Outputs`` to ``<outputPrefix>/outputs.pb``
(what Flyte's own runtime writes), which the connector reads back once the job is Done. A
function task (``@env.task``) is run by the SDK's mixin: in-process when the raw data path is
local, through the connector with a remote one. Credentials: a container task's
``connector_secrets={"perian_token": "MY_TOKEN_ENV", ...}`` names environment variables the SDK
reads and hands over as the request's connection secrets; without them the connector's own
lookup applies (``_FSEC_PERIAN_TOKEN``, ``/etc/secrets``, ``PERIAN_TOKEN``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from flyte._task import AsyncFunctionTaskTemplate, TaskTemplate
from flyte.connectors import AsyncConnectorExecutorMixin, ConnectorRegistry
from flyte.extend import TaskPluginRegistry
from flyte.models import NativeInterface, SerializationContext

from perianctl.flyte.task import TASK_TYPE, PerianConfig, _custom
from perianctl.flyte.templates import PERIAN_TASK_TYPE_VERSION

__all__ = ["PerianConfig", "PerianContainerTask", "PerianTask"]

TASK_TYPE_VERSION = PERIAN_TASK_TYPE_VERSION
ENTRY_POINT_GROUP = "flyte.connectors"
ENTRY_POINT_NAME = "perianctl"


def _ensure_connector() -> None:
    """Load perianctl's ``flyte.connectors`` entry point once when no ``perian_task`` connector is registered."""
    if _registered():
        return
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == ENTRY_POINT_NAME:
            entry.load()  # registers, unless PERIANCTL_FLYTE_PLUGIN=off (it logs any failure)
            break
    if not _registered():
        raise RuntimeError(
            f"no '{TASK_TYPE}' connector is registered with the flyte SDK: install perianctl with its "
            f"'{ENTRY_POINT_GROUP}' entry point (and leave PERIANCTL_FLYTE_PLUGIN unset)"
        )


def _registered() -> bool:
    try:
        ConnectorRegistry.get_connector(TASK_TYPE, TASK_TYPE_VERSION)
    except Exception:  # FlyteConnectorNotFound
        return False
    return True


class _ThroughTheConnector(AsyncConnectorExecutorMixin):
    """The SDK's local-run mixin, once the connector is known to be registered."""

    async def execute(self, **kwargs: Any) -> Any:
        _ensure_connector()
        return await super().execute(**kwargs)


@dataclass(kw_only=True)
class PerianTask(_ThroughTheConnector, AsyncFunctionTaskTemplate[..., Any, Any]):
    """A Flyte 2 function task that runs as a PERIAN job: ``TaskEnvironment(plugin_config=PerianConfig(...))``."""

    plugin_config: PerianConfig = field(default_factory=PerianConfig)
    task_type: str = TASK_TYPE
    task_type_version: int = TASK_TYPE_VERSION

    def custom_config(self, sctx: SerializationContext) -> dict[str, Any]:
        return _custom(self.plugin_config, None)


class PerianContainerTask(_ThroughTheConnector, TaskTemplate[..., Any, Any]):
    """Run an image and command on PERIAN (``image`` and ``command`` travel in ``custom``).

    ``{{.inputs.<name>}}`` and ``{{.outputPrefix}}`` in the command are rendered by the connector.
    Declared ``outputs`` are read from ``<outputPrefix>/outputs.pb`` (a flyteidl2 ``task.Outputs``).
    ``connector_secrets`` maps secret names (``perian_organization``, ``perian_token``, storage and
    registry credentials) to environment variables; in a local run the SDK reads them and sends
    them as the request's connection secrets. Like flyte's ``ContainerTask``, put it in an
    environment: ``flyte.TaskEnvironment.from_task("name", task)``.
    """

    def __init__(
        self,
        name: str,
        image: str,
        command: list[str],
        *,
        plugin_config: PerianConfig | None = None,
        inputs: dict[str, type] | None = None,
        outputs: dict[str, type] | None = None,
        connector_secrets: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        if not image or any(not isinstance(c, str) for c in command) or not command:
            raise ValueError("PerianContainerTask needs an image and a command (a list of strings)")
        super().__init__(
            name=name,
            task_type=TASK_TYPE,
            task_type_version=TASK_TYPE_VERSION,
            image=None,
            interface=NativeInterface(
                {k: (v, inspect.Parameter.empty) for k, v in (inputs or {}).items()}, dict(outputs or {})
            ),
            **kwargs,
        )
        self.plugin_config = plugin_config if plugin_config is not None else PerianConfig()
        self._perian_image = image
        self._perian_command = list(command)
        self._connector_secrets = dict(connector_secrets or {})

    def custom_config(self, sctx: SerializationContext) -> dict[str, Any]:
        custom = _custom(self.plugin_config, None, image=self._perian_image, command=self._perian_command)
        if self._connector_secrets:  # local runs: the SDK reads these env vars into the connection secrets
            custom["secrets"] = dict(self._connector_secrets)
        return custom


TaskPluginRegistry.register(PerianConfig, PerianTask)
