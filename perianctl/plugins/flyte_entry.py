"""``flyte.connectors`` entry point: registers perianctl's PERIAN connector with the ``flyte`` SDK.

The SDK's connector server imports every entry point of this group (``flyte serve connector``), and
perianctl's Flyte 2 tasks load this one before a local run (:mod:`perianctl.flyte.flyte2`); a failure
here must never break either or ``import flyte``, so every error is caught and logged.
``PERIANCTL_FLYTE_PLUGIN=off`` keeps it from registering anything (as for the flytekit entry point).
Settings: :func:`perianctl.plugins.settings_from_env` (``PERIAN_*`` or the profile).
"""

from __future__ import annotations

import logging

_log = logging.getLogger("perianctl.plugin")

try:  # pragma: no cover - exercised by the entry-point tests in a subprocess
    from perianctl.connector.register import plugin_enabled as _enabled

    if _enabled():
        import flytekit  # noqa: F401 -- first, so flytekit's entry point registers its connector too (flytekit_entry)

        from perianctl.connector import flyte2 as _flyte2
        from perianctl.connector.service import PerianConnector
        from perianctl.plugins import settings_from_env

        _flyte2.register(PerianConnector(settings_from_env()))
except Exception as _exc:  # must never propagate into the SDK
    _log.warning("perianctl: PERIAN connector not registered with flyte (%s: %s)", type(_exc).__name__, _exc)
