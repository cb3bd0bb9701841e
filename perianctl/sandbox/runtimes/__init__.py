"""Job runtimes: ``simulate`` (a scheduler, no processes), ``process`` (local subprocesses) and
``docker`` (``docker run``). See :mod:`perianctl.sandbox.runtimes.base` for the contract.

This module is the registry: a runtime's name and where its class lives, imported only when that
runtime is chosen (``process``/``docker`` need more modules than ``simulate``). The runtimes import
:mod:`~perianctl.sandbox.runtimes.base`, never this registry, and ``base`` imports no runtime, so
adding a runtime is one line here and one module (the import-linter contracts in pyproject.toml
hold both directions).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perianctl.sandbox.runtimes.base import Runtime

# name -> "module:Class"; the order is the order users see (help, completion, errors).
_REGISTRY: dict[str, str] = {
    "simulate": "perianctl.sandbox.runtimes.simulate:SimulateRuntime",
    "process": "perianctl.sandbox.runtimes.process:ProcessRuntime",
    "docker": "perianctl.sandbox.runtimes.docker:DockerRuntime",
}

NAMES: tuple[str, ...] = tuple(_REGISTRY)


def runtime_class(name: str) -> type[Runtime]:
    """The runtime class registered as ``name``; :class:`SandboxStartError` for an unknown name."""
    try:
        target = _REGISTRY[name]
    except KeyError:
        from perianctl.sandbox.runtimes.base import SandboxStartError

        raise SandboxStartError(f"unknown runtime '{name}' (choose {', '.join(NAMES)})") from None
    module_name, _, class_name = target.partition(":")
    cls: type[Runtime] = getattr(importlib.import_module(module_name), class_name)
    return cls
