"""The environment variables that name a PERIAN API and account, and the default API URL.

One table for the two readers: the CLI's settings (:mod:`perianctl.config`, which adds profiles and
validation) and the connector's (:meth:`perianctl.connector.settings.ConnectorSettings.from_env`),
which must not depend on the CLI's config. The first variable set wins.
"""

from __future__ import annotations

DEFAULT_API_URL = "https://api.perian.cloud"

API_URL_VARS: tuple[str, ...] = ("PERIAN_API_URL", "PERIAN_ENDPOINT")
ORGANIZATION_VARS: tuple[str, ...] = ("PERIAN_ORGANIZATION", "PERIAN_ORG")
TOKEN_VARS: tuple[str, ...] = ("PERIAN_TOKEN",)
