"""``flyte.connectors`` entry point: registers perianctl's PERIAN connector with the ``flyte`` SDK.

The SDK's connector server imports every entry point of this group (``flyte serve connector``);
a failure here must never break it or ``import flyte``, so every error is caught and logged.
``PERIANCTL_FLYTE_PLUGIN=off`` keeps it from registering anything (as for the flytekit entry point).
"""

from __future__ import annotations

import logging

_log = logging.getLogger("perianctl.plugin")

try:  # pragma: no cover - exercised by the entry-point test in a subprocess
    from perianctl.connector.register import plugin_enabled as _enabled

    if _enabled():
        from perianctl.flyte import flyte2 as _flyte2  # registers on import

        _ = _flyte2.PerianFlyte2Connector
except Exception as _exc:  # must never propagate into the SDK
    _log.warning("perianctl: PERIAN connector not registered with flyte (%s: %s)", type(_exc).__name__, _exc)
