"""The sandbox's runtime registry: every name resolves to its runtime, unknown names are one error."""

from __future__ import annotations

from pathlib import Path

import pytest

from perianctl.sandbox import config, runtimes
from perianctl.sandbox.runtimes.base import Runtime, SandboxStartError


@pytest.mark.parametrize("name", runtimes.NAMES)
def test_every_registered_name_resolves_to_the_runtime_of_that_name(name: str) -> None:
    cls = runtimes.runtime_class(name)
    assert issubclass(cls, Runtime) and cls is not Runtime
    assert cls.name == name  # the registry and the class agree on what users type


def test_the_registry_is_the_one_list_of_runtimes(tmp_path: Path) -> None:
    assert runtimes.NAMES == ("simulate", "process", "docker")  # the order users see in help and errors
    assert config.RUNTIMES == runtimes.NAMES
    assert config.SandboxConfig(tmp_path, runtime="docker").validate().runtime == "docker"
    with pytest.raises(config.SandboxConfigError, match="choose simulate, process, docker"):
        config.SandboxConfig(tmp_path, runtime="kubernetes").validate()


def test_an_unknown_runtime_is_a_start_error_naming_the_choices() -> None:
    with pytest.raises(SandboxStartError, match=r"unknown runtime 'kubernetes' \(choose simulate, process, docker\)"):
        runtimes.runtime_class("kubernetes")
