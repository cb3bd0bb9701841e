"""Register a PERIAN connector with flytekit's process-global ``ConnectorRegistry``.

Called by the ``flytekit.plugins`` entry point (:mod:`perianctl.plugins.flytekit_entry`: ``pyflyte serve connector`` and
local ``pyflyte run`` find the connector) and by ``perianctl serve`` (with its own settings). It is
given the connector; it never imports :mod:`.service` (which imports flytekit, whose entry point
calls this module: no import loop). Three rules:

* **Override** ``perian_task`` v0: it replaces the official ``flytekitplugins-perian-job``
  connector when both are installed. If the official plugin is importable and not imported yet,
  we import it *first* (guarded): otherwise it could load after us and hit flytekit's
  "Duplicate connector" ValueError, breaking ``import flytekit`` for everyone.
* **One advertiser.** ``ListAgents`` is built from registry metadata keyed by connector name; we
  drop ``perian_task`` from any other entry so propeller's discovery sees exactly one.
* **Idempotent**: calling it twice leaves one registration and one metadata entry.

Set ``PERIANCTL_FLYTE_PLUGIN=off`` to keep the entry points from registering anything.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from flytekit.extend.backend.base_connector import AsyncConnectorBase

log = logging.getLogger("perianctl.plugin")

OPT_OUT_ENV = "PERIANCTL_FLYTE_PLUGIN"
OFFICIAL_MODULE = "flytekitplugins.perian_job"


def plugin_enabled() -> bool:
    return os.environ.get(OPT_OUT_ENV, "").strip().lower() not in ("0", "off", "false", "no")


def _preload_official() -> None:
    """Let the official plugin register first (if it can), so our override is the last word."""
    try:
        if importlib.util.find_spec("flytekitplugins") is None or importlib.util.find_spec(OFFICIAL_MODULE) is None:
            return
    except (ImportError, ValueError):
        return
    try:
        importlib.import_module(OFFICIAL_MODULE)
    except Exception as exc:  # a broken official plugin is not our failure
        log.debug("official PERIAN plugin not importable (%s: %s)", type(exc).__name__, exc)


C = TypeVar("C", bound="AsyncConnectorBase")


def register(connector: C) -> C:
    """Register ``connector`` for its task type (``perian_task`` v0), as the one advertiser; returns it."""
    from flyteidl.admin.agent_pb2 import Agent, TaskCategory
    from flytekit.extend.backend.base_connector import ConnectorRegistry

    _preload_official()
    ConnectorRegistry.register(connector, override=True)
    task_type, version = connector.task_category.name, connector.task_category.version

    metadata = ConnectorRegistry._METADATA  # the only way to fix ListAgents; flytekit has no API
    for name in list(metadata):
        if name == connector.name:
            continue
        agent = metadata[name]
        kept = [c for c in agent.supported_task_categories if not (c.name == task_type and c.version == version)]
        if len(kept) != len(agent.supported_task_categories):
            if not kept:
                del metadata[name]
                continue
            del agent.supported_task_categories[:]
            agent.supported_task_categories.extend(kept)
            types = [t for t in agent.supported_task_types if t != task_type or any(c.name == task_type for c in kept)]
            del agent.supported_task_types[:]
            agent.supported_task_types.extend(types)
    category = TaskCategory(name=task_type, version=version)
    metadata[connector.name] = Agent(
        name=connector.name, supported_task_types=[task_type], supported_task_categories=[category], is_sync=False
    )
    return connector
