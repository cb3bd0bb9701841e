"""Where perianctl's config file and state dir are: the one rule, in plain strings.

Kept free of imports beyond ``os`` because a shell TAB (``perianctl.completion``) needs these paths
and must not pay for ``pathlib``, ``dataclasses`` or the TOML parser; ``perianctl.config`` wraps
them in ``Path``.
"""

from __future__ import annotations

import os

CONFIG_ENV = "PERIANCTL_CONFIG"
STATE_ENV = "PERIANCTL_STATE_DIR"


def config_file(explicit: str | os.PathLike[str] | None = None) -> str:
    """``--config``, else ``$PERIANCTL_CONFIG``, else ``$XDG_CONFIG_HOME/perianctl/config.toml``."""
    if explicit:
        return os.path.expanduser(os.fspath(explicit))
    if os.environ.get(CONFIG_ENV):
        return os.path.expanduser(os.environ[CONFIG_ENV])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "perianctl", "config.toml")


def state_dir() -> str:
    """Where the journal and sandbox state live (``$PERIANCTL_STATE_DIR`` or the XDG state dir)."""
    if os.environ.get(STATE_ENV):
        return os.path.expanduser(os.environ[STATE_ENV])
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "perianctl")
