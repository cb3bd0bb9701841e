"""``flytekit.plugins`` entry point: registers perianctl's PERIAN connector and task plugin.

``import flytekit`` imports every entry point of this group, so a failure here would break
flytekit for everyone in the environment (exactly what the official plugin does today). Every
import is therefore guarded: on any error we log a warning and leave flytekit working.
"""

from __future__ import annotations

import logging

_log = logging.getLogger("perianctl.plugin")

try:  # pragma: no cover - exercised by the entry-point test in a subprocess
    from perianctl.connector import register as _register

    _register.register_all()
except Exception as _exc:  # must never propagate into `import flytekit`
    _log.warning("perianctl: PERIAN connector not registered (%s: %s)", type(_exc).__name__, _exc)
