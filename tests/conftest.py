"""Shared fixtures: real subprocess CLI runs (tests/plugins/cli.py) and the sandbox (tests/plugins/sandbox.py).

Hypothesis: locally every run explores new examples (that is how bugs are found); under CI
(``CI`` set, as ``.ci/run`` runs) the search is derandomized so a landing is never decided by luck.
Set ``HYPOTHESIS_PROFILE=explore`` to explore under CI too.
"""

import importlib.util
import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "explore"))

pytest_plugins = ["tests.plugins.cli"] + (
    ["tests.plugins.sandbox"] if importlib.util.find_spec("tests.plugins.sandbox") else []
)
