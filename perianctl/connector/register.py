"""Register perianctl's PERIAN connector with flytekit's process-global ``ConnectorRegistry``.

Called from the ``flytekit.plugins`` entry point (so ``pyflyte serve connector`` and local
``pyflyte run`` find it) and by ``perianctl serve`` (with explicit settings). Three rules:

* **Override** ``perian_task`` v0: it replaces the official ``flytekitplugins-perian-job``
  connector when both are installed. If the official plugin is importable and not imported yet,
  we import it *first* (guarded): otherwise it could load after us and hit flytekit's
  "Duplicate connector" ValueError, breaking ``import flytekit`` for everyone.
* **One advertiser.** ``ListAgents`` is built from registry metadata keyed by connector name; we
  drop ``perian_task`` from any other entry so propeller's discovery sees exactly one.
* **Idempotent**: calling it twice leaves one registration and one metadata entry.

Set ``PERIANCTL_FLYTE_PLUGIN=off`` to keep the entry point from registering anything.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perianctl.connector.service import ConnectorSettings, PerianConnector

log = logging.getLogger("perianctl.plugin")

OPT_OUT_ENV = "PERIANCTL_FLYTE_PLUGIN"
OFFICIAL_MODULE = "flytekitplugins.perian_job"
_CONNECTOR_MODULE = "perianctl.connector.service"
_deferred = False


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


def register_all(settings: ConnectorSettings | None = None, *, force: bool = False) -> PerianConnector | None:
    """Register (or re-register) the connector for ``perian_task`` v0 and return it.

    Returns ``None`` under the ``PERIANCTL_FLYTE_PLUGIN=off`` opt-out unless ``force`` (what
    ``perianctl serve`` passes: serving PERIAN is its whole point).
    """
    global _deferred
    if not force and not plugin_enabled():
        return None
    module = sys.modules.get(_CONNECTOR_MODULE)
    if module is not None and not hasattr(module, "PerianConnector"):
        # connector.py's own `import flytekit...` loaded this entry point: finish when it is done.
        _deferred = True
        return None
    from flyteidl.admin.agent_pb2 import Agent, TaskCategory
    from flytekit.extend.backend.base_connector import ConnectorRegistry

    from perianctl.connector.service import TASK_TYPE, TASK_TYPE_VERSION, PerianConnector

    _preload_official()
    connector = PerianConnector(settings)
    ConnectorRegistry.register(connector, override=True)

    metadata = ConnectorRegistry._METADATA  # the only way to fix ListAgents; flytekit has no API
    for name in list(metadata):
        if name == connector.name:
            continue
        agent = metadata[name]
        kept = [c for c in agent.supported_task_categories
                if not (c.name == TASK_TYPE and c.version == TASK_TYPE_VERSION)]
        if len(kept) != len(agent.supported_task_categories):
            if not kept:
                del metadata[name]
                continue
            del agent.supported_task_categories[:]
            agent.supported_task_categories.extend(kept)
            types = [t for t in agent.supported_task_types if t != TASK_TYPE or any(c.name == TASK_TYPE for c in kept)]
            del agent.supported_task_types[:]
            agent.supported_task_types.extend(types)
    category = TaskCategory(name=TASK_TYPE, version=TASK_TYPE_VERSION)
    metadata[connector.name] = Agent(
        name=connector.name, supported_task_types=[TASK_TYPE], supported_task_categories=[category], is_sync=False
    )
    return connector


def finish_deferred() -> None:
    """Called at the end of connector.py: complete a registration the entry point had to defer."""
    global _deferred
    if _deferred:
        _deferred = False
        try:
            register_all()
        except Exception as exc:  # same guarantee as the entry point: never break an import
            log.warning("perianctl: PERIAN connector not registered (%s: %s)", type(exc).__name__, exc)
