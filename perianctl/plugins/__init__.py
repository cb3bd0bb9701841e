"""The two entry points that other programs load, and the credential fallback they share with ``serve``.

* :mod:`.flytekit_entry` -- ``flytekit.plugins``: ``import flytekit`` registers the PERIAN connector
  (``pyflyte serve connector``, local ``pyflyte run``).
* :mod:`.flyte_entry` -- ``flyte.connectors``: the ``flyte`` SDK's connector server and local runs.

They sit above :mod:`perianctl.connector` (which never reads perianctl's configuration) because they
are where a connector meets the operator's settings: ``PERIAN_*`` variables, then the profile that
``PERIANCTL_PROFILE`` / ``PERIANCTL_CONFIG`` name (``perianctl serve`` passes its ``--profile`` /
``--config`` instead). This module stays light: it is imported by ``import flytekit``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perianctl.connector.secrets import CredentialSource
    from perianctl.connector.settings import ConnectorSettings


def profile_credentials(profile: str | None = None, config_file: str | Path | None = None) -> CredentialSource:
    """The connector's credential fallback after mounted secrets: ``PERIAN_*`` or the named profile.

    Read again at every secrets refresh (an edited profile needs no restart). A config that became
    unreadable meanwhile is a missing fallback, not a crash.
    """
    from perianctl.config import resolve
    from perianctl.connector.secrets import Credentials
    from perianctl.errors import PerianctlError

    def read() -> Credentials:
        try:
            found = resolve(profile=profile, config_file=config_file)
        except PerianctlError:
            return Credentials()
        return Credentials(
            api_url=found.values.get("api_url"),
            organization=found.organization,
            token=found.token,
            sources=dict(found.sources),
        )

    return read


def settings_from_env() -> ConnectorSettings:
    """Connector settings for a process started without flags: the defaults, with the credential
    fallback of :func:`profile_credentials` (``PERIAN_*``, then ``PERIANCTL_PROFILE`` /
    ``PERIANCTL_CONFIG`` or the current profile, all read at every refresh)."""
    from perianctl.connector.settings import ConnectorSettings

    return ConnectorSettings(credentials=profile_credentials())
