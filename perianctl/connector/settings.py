"""Everything a connector process is told: :class:`ConnectorSettings` and :class:`ServeOptions`.

The connector reads no settings of its own: whoever starts it builds these and passes them in.
``perianctl serve`` builds them from its flags (whose defaults are the defaults here: one source),
with a :data:`~perianctl.connector.secrets.CredentialSource` over perianctl's profile. The entry
points that flytekit and the ``flyte`` SDK load (``pyflyte serve connector``, local runs) have no
flags: :func:`perianctl.plugins.settings_from_env` gives them the same credential source over
``PERIAN_*`` and the profile. :meth:`ConnectorSettings.from_env` is the config-free variant
(``PERIAN_*`` only) for a program that embeds the connector without perianctl's configuration.
Flytekit-style secrets, ``_FSEC_*`` and ``/etc/secrets``, are looked up by :mod:`.secrets` at every
refresh, as flytekit does.

Kept free of heavy imports (no grpc, flytekit, httpx): ``perianctl --help`` imports it for the
``serve`` flag defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from perianctl.envvars import DEFAULT_API_URL

if TYPE_CHECKING:
    from perianctl.connector.secrets import Credentials, CredentialSource
    from perianctl.perian.client import RetryPolicy

DEFAULT_LOG_LINK = "{api_url}/job/{job_id}"
PROTOCOLS: tuple[str, ...] = ("v1", "v2")
#: Tolerated difference between PERIAN's clock (``created_at``) and the connector's (:mod:`.convergence`).
DEFAULT_CLOCK_SKEW = 0.25


@dataclass(frozen=True)
class ConnectorSettings:
    """How the connector reaches PERIAN, and its time budgets.

    ``api_url``/``organization``/``token`` given here win; unset ones come from flytekit-style
    secrets (:mod:`.secrets`), then from ``credentials`` (called at every secrets refresh; ``None``:
    no fallback, the API URL is PERIAN's public one). ``log_link_template`` is formatted with
    ``api_url``, ``job_id`` and ``organization``; an empty string disables log links.
    ``http_backend`` is ``aiohttp`` (fast; see :mod:`perianctl.perian.transport`) or ``httpx``
    (httpx's own transport; also the fallback when aiohttp is not installed). ``retry`` ``None`` is
    the connector's policy (``perianctl.connector.service.CONNECTOR_RETRY``).
    """

    api_url: str | None = None
    organization: str | None = None
    token: str | None = field(default=None, repr=False)
    credentials: CredentialSource | None = field(default=None, repr=False, compare=False)
    log_link_template: str = DEFAULT_LOG_LINK
    retry: RetryPolicy | None = None
    connect_timeout: float = 3.0
    read_timeout: float = 30.0  # per HTTP attempt; the RPC's budget cuts it shorter
    max_connections: int = 200
    reap_orphans: bool = True
    # -- budgets (docs/connector.md, "Deadlines"): an RPC with a gRPC deadline gets
    # (remaining - margin); one without a deadline (flytekit's server, tests) gets the default.
    deadline_margin: float = 1.0
    create_budget: float = 9.0
    get_budget: float = 9.0
    delete_budget: float = 9.0
    create_reserve: float = 0.75
    # -- convergence (perianctl.connector.convergence)
    sweep_interval: float = 15.0
    sweep_window: float = 900.0
    adopt_window: float = 600.0
    clock_skew: float = DEFAULT_CLOCK_SKEW
    list_page_size: int = 100
    http_backend: str = "aiohttp"
    read_error_document: bool = True
    error_document_timeout: float = 3.0
    secrets_ttl: float = 60.0
    remember_phases: int = 50_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ConnectorSettings:
        """Settings for a connector embedded without perianctl's configuration (the entry points use
        :func:`perianctl.plugins.settings_from_env`, which adds the profile).

        Everything is a default except the credential fallback: ``PERIAN_API_URL``,
        ``PERIAN_ORGANIZATION`` and ``PERIAN_TOKEN`` (re-read at every refresh; ``environ`` ``None``
        is the live process environment). perianctl's config profile is *not* read here: the
        connector does not depend on the CLI's configuration (``perianctl serve`` passes it in).
        """
        from perianctl.connector.secrets import env_credentials

        return cls(credentials=partial(env_credentials, environ))

    def fallback(self) -> Credentials | None:
        """What ``credentials`` says now (``None`` without a source)."""
        return self.credentials() if self.credentials is not None else None

    def resolved_api_url(self, fallback: Credentials | None = None) -> str:
        """The explicit ``api_url``, else the fallback's, else PERIAN's public API."""
        url = self.api_url or (fallback.api_url if fallback is not None else None) or DEFAULT_API_URL
        return url.rstrip("/")


@dataclass
class ServeOptions:
    """Everything ``perianctl serve`` can be told (its flag defaults are these). ``port=0`` binds a free port."""

    host: str = "[::]"
    port: int = 8000
    metrics_port: int = 9090
    metrics_host: str = "0.0.0.0"
    workers: int = 10
    grace: float = 30.0
    shutdown_delay: float = 0.0
    max_message_mb: int = 64
    max_concurrent_rpcs: int | None = None
    sandbox: bool = False
    sandbox_runtime: str = "process"
    """How the in-process sandbox runs jobs (``simulate``, ``process`` or ``docker``)."""
    sandbox_port: int = 0
    """The in-process sandbox's port on 127.0.0.1 (0 picks a free one)."""
    sandbox_factory: Callable[[str, int], Any] | None = None
    """With ``sandbox``: ``(runtime, port)`` -> an unstarted sandbox (``start()``, ``stop()``, ``url``,
    ``organization``, ``token``). The command layer passes :class:`perianctl.sandbox.server.EmbeddedSandbox`:
    the connector package does not import the sandbox."""
    all_connectors: bool = False
    connector: ConnectorSettings = field(default_factory=ConnectorSettings)
    protocols: tuple[str, ...] = PROTOCOLS
    """Which connector protocols to serve: ``v1`` (flyteidl ``AsyncAgentService``, Flyte 1 propeller)
    and/or ``v2`` (flyteidl2 ``AsyncConnectorService``, Flyte 2)."""
