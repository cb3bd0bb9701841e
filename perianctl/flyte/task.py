"""Author ``perian_task`` tasks without ``flytekitplugins-perian-job``.

The official plugin (1.16.31) imports ``perian.JobStatus``, which no current ``perian`` SDK has, so
installing it breaks ``import flytekit`` everywhere. This module is a drop-in replacement for its
*authoring* half::

    from flytekit import task
    from perianctl.flyte.task import PerianConfig

    @task(task_config=PerianConfig(cores=2, memory=8, accelerators=1, accelerator_type="A100"))
    def train(epochs: int) -> float: ...

Serialized templates are byte-for-byte what the official plugin produces: task type
``perian_task`` and the same ``custom`` keys (``cores, memory, accelerators, accelerator_type,
os_storage_size, country_code, provider, environment``; ``image, command`` for
:class:`PerianContainerTask`), numbers stored the way a protobuf ``Struct`` stores them (``2.0``).
A Flyte deployment running either connector accepts them. Two optional extensions,
``max_price_per_hour`` and ``max_cost``, add custom keys of those names (decimal text) only when
set; the official connector reads its own keys with ``.get`` and ignores them, perianctl's
connector refuses dearer instance types and turns the budget into the job's timeout.

Behaviour by execution mode (this is where we deliberately differ from the official plugin):

* **In the job** (``pyflyte-execute`` on a PERIAN machine, or in the sandbox's ``process``
  runtime): the Python function runs. The official plugin first insists that the raw output
  prefix is remote -- *also inside the job* -- which makes a local prefix (the sandbox demo)
  impossible. We check nothing here: whatever prefix the job was given is the one it uses.
* **Local execution** (``pyflyte run`` without ``--remote``, or calling the task in Python):
  by default the task is sent through the PERIAN connector registered *in this process*
  (perianctl's, registered by its ``flytekit.plugins`` entry point), exactly like the official
  plugin. No remote ``--raw-output-data-prefix`` is required: with a local prefix only a PERIAN
  API that runs jobs on this machine (``perianctl sandbox --runtime process``) can read
  ``inputs.pb`` and write ``outputs.pb``; against the real PERIAN, pass a bucket prefix
  (``pyflyte run --raw-output-data-prefix s3://...``) and storage credentials to the connector.
  Set ``PERIANCTL_LOCAL_EXECUTION=function`` to run the function in-process instead (no PERIAN,
  no connector) -- handy for unit tests of the task's logic.

flytekit is imported at module level here, and *only* here: this module is imported by people
authoring tasks, by the flytekit plugin entry point (``register_task_plugin``), and by tests --
never on the ``perianctl`` CLI's start-up path.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from flytekit import FlyteContextManager, PythonFunctionTask
from flytekit.configuration import SerializationSettings
from flytekit.core.base_task import PythonTask
from flytekit.core.interface import Interface
from flytekit.exceptions.user import FlyteUserException
from flytekit.extend import TaskPlugins
from flytekit.extend.backend.base_connector import AsyncConnectorExecutorMixin, ConnectorRegistry
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct

from perianctl.flyte.templates import PERIAN_TASK_TYPE

__all__ = [
    "LOCAL_EXECUTION_ENV",
    "TASK_TYPE",
    "PerianConfig",
    "PerianContainerTask",
    "PerianTask",
    "register_task_plugin",
]

TASK_TYPE = PERIAN_TASK_TYPE
"""The Flyte task type the official plugin, its connector and perianctl's connector all use."""

LOCAL_EXECUTION_ENV = "PERIANCTL_LOCAL_EXECUTION"
"""``connector`` (default): local execution goes through the in-process PERIAN connector;
``function``: local execution just calls the Python function."""

_LOCAL_MODES = ("connector", "function")


@dataclass
class PerianConfig:
    """Resources and placement of a PERIAN job; the official ``PerianConfig``'s fields and defaults.

    Every field is optional: ``None`` leaves the choice to PERIAN (or to the connector's defaults),
    and the key is then absent from the template, as with the official plugin.

    ``environment`` is an extension (the official class has no such field; there the environment
    only comes from ``@task(environment=...)``). Both end up in the template's ``environment``
    custom key; on a clash the ``@task`` value wins because it is the more specific one.
    """

    cores: int | None = None
    """Number of CPU cores."""
    memory: int | None = None
    """RAM in GB."""
    accelerators: int | None = None
    """Number of accelerators (GPUs)."""
    accelerator_type: str | None = None
    """Accelerator type, e.g. ``A100`` (``perian`` CLI: list-accelerators)."""
    os_storage_size: int | None = None
    """Boot disk size in GB."""
    country_code: str | None = None
    """Two-letter country to run in, e.g. ``DE``; stored upper-cased."""
    provider: str | None = None
    """Cloud provider to run on."""
    environment: dict[str, str] | None = field(default=None)
    """Extra environment variables for the job (extension, see the class docstring)."""
    max_price_per_hour: float | str | Decimal | None = None
    """Extension: refuse instance types dearer than this per hour (perianctl's connector; the official
    one ignores it)."""
    max_cost: float | str | Decimal | None = None
    """Extension: a budget for the job; perianctl's connector turns it into the job's timeout from the chosen
    instance type's price and billing granularity (ignored by the official connector)."""

    def __post_init__(self) -> None:
        # Fail where the task is declared, not later at serialization (the official plugin raises
        # only in get_custom, i.e. at `pyflyte register` time).
        for name, minimum in (("cores", 1), ("memory", 1), ("accelerators", 0), ("os_storage_size", 1)):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"PerianConfig.{name} must be an integer, got {value!r}")
            if value < minimum:
                raise ValueError(f"PerianConfig.{name} must be >= {minimum}, got {value}")
        self.country_code = _country_code(self.country_code)
        for name in ("max_price_per_hour", "max_cost"):
            setattr(self, name, _amount(name, getattr(self, name)))
        if self.environment is not None:
            bad = [k for k, v in self.environment.items() if not isinstance(k, str) or not isinstance(v, str)]
            if bad:
                raise ValueError(f"PerianConfig.environment must map str to str (bad keys: {bad!r})")


def _amount(name: str, value: float | str | Decimal | None) -> str | None:
    """A positive amount as exact decimal text (what travels in the template), or ``None``."""
    if value is None:
        return None
    try:
        amount = Decimal(str(value).strip()) if not isinstance(value, bool) else Decimal("NaN")
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"PerianConfig.{name} must be a positive amount such as 2.50, got {value!r}")
    return str(amount)


def _country_code(value: str | None) -> str | None:
    """The official rule (exactly two characters, upper-cased; empty means unset), plus letters only."""
    if not value:
        return None
    if len(value) != 2 or not value.isascii() or not value.isalpha():
        raise ValueError(f"Invalid country code {value!r}. Please provide a valid two-letter country code. (e.g. DE)")
    return value.upper()


def _custom(config: PerianConfig | None, task_environment: dict[str, str] | None, **extra: Any) -> dict[str, Any]:
    """The template's ``custom`` dict, built as the official plugin builds it.

    Going through a protobuf ``Struct`` and back is deliberate: it turns ints into floats
    (``cores: 2.0``) the way the official plugin's ``get_custom`` does, so the dict -- and the
    template -- are the same, not merely equivalent after the connector's int() casts.
    """
    config = config if config is not None else PerianConfig()
    values: dict[str, Any] = {
        "cores": config.cores,
        "memory": config.memory,
        "accelerators": config.accelerators,
        "accelerator_type": config.accelerator_type,
        "os_storage_size": config.os_storage_size,
        "country_code": _country_code(config.country_code),
        "provider": config.provider,
        "max_price_per_hour": config.max_price_per_hour,  # extensions: the official connector ignores them
        "max_cost": config.max_cost,
    }
    values = {k: v for k, v in values.items() if v is not None}
    values.update(extra)
    environment = {**(config.environment or {}), **(task_environment or {})}
    if environment:
        values["environment"] = environment
    struct = Struct()
    struct.update(values)
    result: dict[str, Any] = json_format.MessageToDict(struct)
    return result


def _local_mode() -> str:
    mode = os.environ.get(LOCAL_EXECUTION_ENV, "connector").strip().lower() or "connector"
    if mode not in _LOCAL_MODES:
        raise FlyteUserException(f"{LOCAL_EXECUTION_ENV}={mode!r}: expected one of {', '.join(_LOCAL_MODES)}")
    return mode


def _require_connector() -> None:
    """Turn flytekit's bare FlyteConnectorNotFound into an error that says what to do."""
    try:
        ConnectorRegistry.get_connector(TASK_TYPE, 0)
    except Exception as exc:  # FlyteConnectorNotFound; flytekit's exception tree varies by version
        raise FlyteUserException(
            f"no '{TASK_TYPE}' connector is registered in this process ({exc}). Install perianctl "
            f"(its flytekit plugin registers the connector), or set {LOCAL_EXECUTION_ENV}=function "
            "to run the task's function locally."
        ) from exc


@contextlib.contextmanager
def _serializable_locally(function: Callable[..., Any]) -> Iterator[None]:
    """Serialization settings with a default image, for the template a local run sends.

    flytekit's local connector path (``AsyncConnectorExecutorMixin.execute``) serializes the task
    with the context's settings or ``SerializationSettings(ImageConfig())`` -- which has no default
    image, so a ``PythonAutoContainer`` task without ``container_image`` (the README's example)
    fails with "An image is required for PythonAutoContainer tasks". ``pyflyte run`` (local) sets no
    settings; ``pyflyte run --remote``/``register`` do, with ``--image``. Here the missing default
    image is flytekit's own (``ImageConfig.auto_default_image()``, what ``pyflyte package`` uses
    without ``--image``); a task's ``container_image`` and a configured default still win. The
    sandbox's ``process`` runtime runs the command locally, so the image is only a name there --
    and the job's ``pyflyte-execute`` must import the task's module from this machine: without
    settings of its own, the template also gets ``PYTHONPATH`` = the directory the module was
    loaded from (as ``pyflyte run`` found it).
    """
    from flytekit.configuration import ImageConfig

    ctx = FlyteContextManager.current_context()
    settings = ctx.serialization_settings
    if settings is not None and settings.image_config.default_image is not None:
        yield
        return
    image_config = ImageConfig.auto_default_image()
    if settings is None:
        root = _source_root(function)
        settings = SerializationSettings(image_config=image_config, env={"PYTHONPATH": root} if root else None)
    else:
        import dataclasses

        settings = dataclasses.replace(settings, image_config=image_config)
    with FlyteContextManager.with_context(ctx.with_serialization_settings(settings)):
        yield


def _source_root(function: Callable[..., Any]) -> str | None:
    """The directory ``function``'s module was imported from (``a/b/wf.py`` as ``b.wf`` → ``a``)."""
    import sys
    from pathlib import Path

    name = getattr(function, "__module__", "") or ""
    path = getattr(sys.modules.get(name), "__file__", None)
    if not path or name == "__main__":
        return None
    root = Path(path).resolve().parent
    for _ in range(name.count(".")):
        root = root.parent
    return str(root)


def _is_local_execution() -> bool:
    state = FlyteContextManager.current_context().execution_state
    return bool(state is not None and state.is_local_execution())


class PerianTask(AsyncConnectorExecutorMixin, PythonFunctionTask):
    """A Python function task that runs as a PERIAN job (task type ``perian_task``).

    Created by ``@task(task_config=PerianConfig(...))`` once :func:`register_task_plugin` has run
    (importing this module does that).
    """

    _TASK_TYPE = TASK_TYPE

    def __init__(
        self,
        task_config: PerianConfig | None,
        task_function: Callable[..., Any],
        container_image: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            task_config=task_config,
            task_function=task_function,
            container_image=container_image,
            task_type=self._TASK_TYPE,
            **kwargs,
        )

    def execute(self, **kwargs: Any) -> Any:
        """In the job: run the function. Locally: the connector, unless told otherwise (module doc)."""
        if _is_local_execution() and _local_mode() == "connector":
            _require_connector()
            with _serializable_locally(self.task_function):
                return AsyncConnectorExecutorMixin.execute(self, **kwargs)
        return PythonFunctionTask.execute(self, **kwargs)

    def get_custom(self, settings: SerializationSettings) -> dict[str, Any]:
        """Plugin data for the template, identical to the official plugin's for the same config."""
        return _custom(self.task_config, self.environment)


class PerianContainerTask(AsyncConnectorExecutorMixin, PythonTask):
    """Run an arbitrary image and command on PERIAN (the official ``PerianContainerTask``).

    The template has no ``container`` target; ``image`` and ``command`` travel in ``custom``, and
    ``{{.inputs.<name>}}`` in the command is rendered by the connector (propeller renders only
    container args). Like the official class, it has inputs but no outputs.
    """

    _TASK_TYPE = TASK_TYPE

    def __init__(
        self,
        name: str,
        task_config: PerianConfig,
        image: str,
        command: list[str],
        inputs: dict[str, type] | None = None,
        **kwargs: Any,
    ) -> None:
        if "outputs" in kwargs or "output_data_dir" in kwargs:
            raise ValueError("PerianContainerTask does not support 'outputs' or 'output_data_dir' arguments")
        super().__init__(
            name=name,
            task_type=self._TASK_TYPE,
            task_config=task_config,
            interface=Interface(inputs=inputs or {}),
            **kwargs,
        )
        self._image = image
        self._command = list(command)

    def execute(self, **kwargs: Any) -> Any:
        """There is no function to run here: local execution always goes through the connector."""
        _require_connector()
        return AsyncConnectorExecutorMixin.execute(self, **kwargs)

    def get_custom(self, settings: SerializationSettings) -> dict[str, Any]:
        """Plugin data: the resource keys plus ``image`` and ``command`` (official key order)."""
        return _custom(self.task_config, self.environment, image=self._image, command=self._command)


def register_task_plugin() -> None:
    """Make ``@task(task_config=PerianConfig(...))`` build a :class:`PerianTask`.

    Idempotent: flytekit accepts re-registering the same pair, and a stale registration of a
    class with the same qualified name (this module re-imported or reloaded) is replaced
    instead of raising, so calling this from both the entry point and user code is safe.
    """
    plugins: dict[type, type] = TaskPlugins._PYTHONFUNCTION_TASK_PLUGINS
    for config_type, plugin in list(plugins.items()):
        if _is_stale(config_type, PerianConfig) or (config_type is PerianConfig and _is_stale(plugin, PerianTask)):
            del plugins[config_type]
    TaskPlugins.register_pythontask_plugin(PerianConfig, PerianTask)


def _is_stale(candidate: type, current: type) -> bool:
    """An older class object of the same name (from a previous import of this module)."""
    return candidate is not current and (candidate.__module__, candidate.__qualname__) == (
        current.__module__,
        current.__qualname__,
    )


register_task_plugin()
