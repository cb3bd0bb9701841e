"""perianctl.flyte.task: templates identical to the official flytekitplugins-perian-job ones.

The official plugin cannot be imported (it breaks ``import flytekit``), so its ``get_custom`` is
re-stated here from its 1.16.31 source: keys in a fixed set, ``None`` dropped, country code
upper-cased, ``environment`` from the task, then a round trip through a protobuf ``Struct``
(every number becomes a float).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest

flytekit = pytest.importorskip("flytekit")

from flytekit import task  # noqa: E402
from flytekit.configuration import Image, ImageConfig, SerializationSettings  # noqa: E402
from flytekit.extend import TaskPlugins  # noqa: E402
from flytekit.extend.backend.base_connector import ConnectorRegistry  # noqa: E402
from flytekit.tools.translator import get_serializable  # noqa: E402
from google.protobuf import json_format  # noqa: E402

from perianctl.flyte import task as perian_task  # noqa: E402
from perianctl.flyte.task import (  # noqa: E402
    LOCAL_EXECUTION_ENV,
    PerianConfig,
    PerianContainerTask,
    PerianTask,
    register_task_plugin,
)

IMAGE = "ghcr.io/flyteorg/flytekit:py3.11-1.16.31"


def official_custom(
    *,
    cores: int | None = None,
    memory: int | None = None,
    accelerators: int | None = None,
    accelerator_type: str | None = None,
    os_storage_size: int | None = None,
    country_code: str | None = None,
    provider: str | None = None,
    environment: dict[str, str] | None = None,
    image: str | None = None,
    command: list[str] | None = None,
) -> dict[str, Any]:
    """What flytekitplugins.perian_job 1.16.31 ``get_custom`` returns (re-stated, not imported)."""
    config: dict[str, Any] = {
        "cores": cores,
        "memory": memory,
        "accelerators": accelerators,
        "accelerator_type": accelerator_type,
        "os_storage_size": os_storage_size,
        "country_code": country_code.upper() if country_code else None,
        "provider": provider,
    }
    config = {k: v for k, v in config.items() if v is not None}
    if image is not None:  # PerianContainerTask only
        config["image"] = image
        config["command"] = command
    if environment:
        config["environment"] = environment
    # Struct -> MessageToDict: ints come back as floats, nothing else changes for these types.
    return {k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in config.items()}


def settings() -> SerializationSettings:
    image = Image(name="default", fqn=IMAGE.rsplit(":", 1)[0], tag=IMAGE.rsplit(":", 1)[1])
    return SerializationSettings(project="p", domain="d", version="v", image_config=ImageConfig(default_image=image))


def template_of(entity: Any) -> Any:
    return get_serializable(OrderedDict(), settings(), entity).template.to_flyte_idl()


# Tasks are defined at module level: flytekit reads their source (return-statement check).
FULL = PerianConfig(
    cores=2, memory=8, accelerators=1, accelerator_type="A100", os_storage_size=100, country_code="de", provider="ovh"
)


@task(task_config=FULL)
def full(name: str) -> str:
    return f"hi {name}"


@task(task_config=PerianConfig())
def bare(a: int, b: int) -> int:
    return a + b


@task(task_config=PerianConfig(cores=1, memory=1), environment={"GREETING": "hello", "SHARED": "task"})
def with_env(name: str) -> str:
    return name


@task(
    task_config=PerianConfig(cores=1, environment={"FROM_CONFIG": "1", "SHARED": "config"}),
    environment={"SHARED": "task"},
)
def merged_env(name: str) -> str:
    return name


@task(task_config=PerianConfig(cores=2, max_price_per_hour=2.5, max_cost="12.00"))
def budgeted(name: str) -> str:
    return name


CONTAINER = PerianContainerTask(
    name="container_hello",
    task_config=PerianConfig(cores=4, memory=16, country_code="fr"),
    image="ubuntu:22.04",
    command=["echo", "{{.inputs.name}}"],
    inputs={"name": str},
)


def test_decorator_builds_a_perian_task() -> None:
    assert isinstance(full, PerianTask)
    assert full.task_type == "perian_task"
    assert TaskPlugins.find_pythontask_plugin(PerianConfig) is PerianTask


@pytest.mark.parametrize(
    ("entity", "expected"),
    [
        (
            full,
            official_custom(
                cores=2,
                memory=8,
                accelerators=1,
                accelerator_type="A100",
                os_storage_size=100,
                country_code="de",
                provider="ovh",
            ),
        ),
        (bare, official_custom()),
        (with_env, official_custom(cores=1, memory=1, environment={"GREETING": "hello", "SHARED": "task"})),
        (
            CONTAINER,
            official_custom(
                cores=4, memory=16, country_code="fr", image="ubuntu:22.04", command=["echo", "{{.inputs.name}}"]
            ),
        ),
    ],
    ids=["full", "empty-config", "task-environment", "container-task"],
)
def test_custom_matches_the_official_plugin(entity: Any, expected: dict[str, Any]) -> None:
    assert entity.get_custom(settings()) == expected
    template = template_of(entity)
    assert template.type == "perian_task"
    assert json_format.MessageToDict(template.custom) == expected
    # Numbers are doubles in the template, exactly as the official plugin stores them.
    for key in ("cores", "memory"):
        if key in expected:
            assert template.custom.fields[key].HasField("number_value")


def test_custom_values_are_floats_like_the_official_plugin() -> None:
    custom = full.get_custom(settings())
    assert custom["cores"] == 2.0 and isinstance(custom["cores"], float)
    assert custom["country_code"] == "DE"


def test_budget_keys_travel_in_custom_only_when_set() -> None:
    """The extension keys are extra custom keys (decimal text); the official keys are unchanged."""
    custom = json_format.MessageToDict(template_of(budgeted).custom)
    assert custom.pop("max_price_per_hour") == "2.5" and custom.pop("max_cost") == "12.00"
    assert custom == official_custom(cores=2)
    assert "max_cost" not in json_format.MessageToDict(template_of(full).custom)
    # perianctl's translation reads them; the request itself is the one without them.
    from perianctl.flyte.translate import budget_of, template_to_job_request

    budget = budget_of(template_of(budgeted))
    assert (str(budget.max_price_per_hour), str(budget.max_cost)) == ("2.5", "12.00")
    plain = template_of(budgeted)
    for key in ("max_price_per_hour", "max_cost"):
        del plain.custom.fields[key]
    assert template_to_job_request(template_of(budgeted)).to_wire() == template_to_job_request(plain).to_wire()


@pytest.mark.parametrize("value", [0, -1, "abc", float("nan"), True])
def test_budget_values_are_checked_where_the_task_is_declared(value: Any) -> None:
    with pytest.raises(ValueError, match="positive amount"):
        PerianConfig(max_cost=value)


def test_config_environment_merges_under_the_task_environment() -> None:
    assert merged_env.get_custom(settings())["environment"] == {"FROM_CONFIG": "1", "SHARED": "task"}


def test_function_task_template_runs_pyflyte_execute() -> None:
    args = list(template_of(full).container.args)
    assert args[:3] == ["pyflyte-execute", "--inputs", "{{.input}}"]
    assert args[-4:] == ["task-module", __name__, "task-name", "full"]


def test_container_task_has_no_container_target() -> None:
    template = template_of(CONTAINER)
    assert not template.HasField("container")
    assert list(template.interface.inputs.variables) == ["name"]
    assert not template.interface.outputs.variables


@pytest.mark.parametrize("code", ["D", "DEU", "d1", "1E", "ÄÖ"])
def test_invalid_country_code_is_refused(code: str) -> None:
    with pytest.raises(ValueError, match="two-letter country code"):
        PerianConfig(country_code=code)


def test_empty_country_code_means_unset() -> None:
    assert PerianConfig(country_code="").country_code is None
    assert PerianConfig(country_code="gb").country_code == "GB"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cores": 0},
        {"memory": -1},
        {"accelerators": -1},
        {"cores": 1.5},
        {"cores": True},
        {"os_storage_size": 0},
        {"environment": {"A": 1}},
    ],
)
def test_invalid_numbers_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="PerianConfig"):
        PerianConfig(**kwargs)


def test_defaults_match_the_official_config() -> None:
    config = PerianConfig()
    assert (
        config.cores,
        config.memory,
        config.accelerators,
        config.accelerator_type,
        config.os_storage_size,
        config.country_code,
        config.provider,
        config.environment,
    ) == (None,) * 8


def test_container_task_refuses_outputs() -> None:
    with pytest.raises(ValueError, match="outputs"):
        PerianContainerTask(name="x", task_config=PerianConfig(), image="i", command=["c"], outputs={"o": int})


def test_register_task_plugin_is_idempotent() -> None:
    register_task_plugin()
    register_task_plugin()
    assert TaskPlugins.find_pythontask_plugin(PerianConfig) is PerianTask


def test_register_replaces_a_stale_registration_of_a_reloaded_module() -> None:
    """A re-imported module has new class objects with the same names: no collision error."""
    plugins = TaskPlugins._PYTHONFUNCTION_TASK_PLUGINS
    stale_config = type(
        "PerianConfig", (), {"__module__": PerianConfig.__module__, "__qualname__": PerianConfig.__qualname__}
    )
    plugins[stale_config] = PerianTask
    try:
        register_task_plugin()
        assert stale_config not in plugins
        assert plugins[PerianConfig] is PerianTask
    finally:
        plugins.pop(stale_config, None)


def test_local_execution_can_run_the_function_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOCAL_EXECUTION_ENV, "function")
    assert bare(a=40, b=2) == 42
    assert full(name="perian") == "hi perian"


def test_local_execution_without_a_connector_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LOCAL_EXECUTION_ENV, raising=False)
    monkeypatch.setattr(ConnectorRegistry, "_REGISTRY", {})
    with pytest.raises(Exception, match=f"{LOCAL_EXECUTION_ENV}=function"):
        bare(a=1, b=2)


def test_unknown_local_execution_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOCAL_EXECUTION_ENV, "sometimes")
    with pytest.raises(Exception, match=LOCAL_EXECUTION_ENV):
        bare(a=1, b=2)


def test_module_exports() -> None:
    assert perian_task.TASK_TYPE == "perian_task"
    assert set(perian_task.__all__) >= {"PerianConfig", "PerianTask", "PerianContainerTask", "register_task_plugin"}
