"""``flytekit.plugins`` entry point: registers perianctl's PERIAN connector with flytekit.

``import flytekit`` imports every entry point of this group, so a failure here would break
flytekit for everyone in the environment (exactly what the official plugin does today). Every
import is therefore guarded: on any error we log a warning and leave flytekit working.

Settings: :func:`perianctl.plugins.settings_from_env` (no flags here: ``PERIAN_*`` or the profile).
``PERIANCTL_FLYTE_PLUGIN=off`` keeps it from registering anything.

When :mod:`perianctl.connector.service` is itself what imports flytekit (imported before flytekit
in this process), the connector class does not exist yet and nothing is registered: such a process
(``perianctl serve``, a program of its own) registers explicitly with
:func:`perianctl.connector.register.register`. Every flytekit-driven process (``pyflyte``, a
workflow module importing ``perianctl.flyte.task``) imports flytekit first.
"""

from __future__ import annotations

import logging
import sys

_log = logging.getLogger("perianctl.plugin")
_SERVICE = "perianctl.connector.service"


def _register() -> None:
    from perianctl.connector.register import plugin_enabled, register

    if not plugin_enabled():
        return
    partial = sys.modules.get(_SERVICE)
    if partial is not None and not hasattr(partial, "PerianConnector"):
        _log.debug("perianctl: %s is importing flytekit; the process registers the connector itself", _SERVICE)
        return
    from perianctl.connector.service import PerianConnector
    from perianctl.plugins import settings_from_env

    register(PerianConnector(settings_from_env()))


try:  # pragma: no cover - exercised by the entry-point test in a subprocess
    _register()
except Exception as _exc:  # must never propagate into `import flytekit`
    _log.warning("perianctl: PERIAN connector not registered (%s: %s)", type(_exc).__name__, _exc)
