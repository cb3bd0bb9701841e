"""Shared fixtures: real subprocess CLI runs (tests/plugins/cli.py) and the sandbox (tests/plugins/sandbox.py).

Hypothesis: locally every run explores new examples (that is how bugs are found); under CI
(``CI`` set, as ``.ci/run`` runs) the search is derandomized so a landing is never decided by luck.
Set ``HYPOTHESIS_PROFILE=explore`` to explore under CI too. Neither profile has a deadline.
"""

import importlib.util
import os

from hypothesis import HealthCheck, settings

# No per-example deadline and no "too slow" health check: on a busy 2-core box an example can take
# seconds, and a property is about behaviour, not speed (pytest-timeout still catches a hang).
_UNTIMED = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", _UNTIMED, derandomize=True, print_blob=True)
settings.register_profile("explore", _UNTIMED, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "explore"))

pytest_plugins = ["tests.plugins.cli"] + (
    ["tests.plugins.sandbox"] if importlib.util.find_spec("tests.plugins.sandbox") else []
)
