"""Connector secrets, looked up the way a flytekit connector server looks them up.

A Flyte connector has no per-task secrets (flytekit #2297 is still open): its credentials are
server-wide, mounted into the pod. flytekit's ``SecretsManager`` resolves a secret ``key`` as

1. the environment variable ``<FLYTE_SECRETS_ENV_PREFIX or _FSEC_><KEY>`` (upper-cased), then
2. the file ``<FLYTE_SECRETS_DEFAULT_DIR or /etc/secrets>/<FLYTE_SECRETS_FILE_PREFIX><key>``
   (lower-cased).

We do the same, with the *official* key names (``perian_organization``, ``perian_token``,
``aws_access_key_id`` ...), so a Secret made for ``flytekitplugins-perian-job`` works unchanged.
We do it without ``flytekit.current_context()`` because that costs a flytekit import and, in the
server process, silently ignores bare env vars (flytekit's ``SecretsManager`` in
flytekit/core/context_manager.py tries the unprefixed name only in local execution).

Only for the PERIAN organization and token (and the API URL) do we then fall back to a
:class:`Credentials` source the connector is *given* (:attr:`ConnectorSettings.credentials
<perianctl.connector.settings.ConnectorSettings.credentials>`): ``perianctl serve`` passes one that
reads its flags, ``PERIAN_*`` and the config profile; the flytekit/flyte entry points pass
:func:`env_credentials` (``PERIAN_ORGANIZATION`` / ``PERIAN_TOKEN`` / ``PERIAN_API_URL``). This package
never reads perianctl's config itself. Storage and registry credentials have *no* bare-env fallback
on purpose: forwarding the connector pod's own ``AWS_*`` variables into a PERIAN job would leak them
to a third party.

Values are never logged; :class:`ResolvedSecrets` only exposes *where* each one came from.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from perianctl import envvars
from perianctl.redact import register_secret

if TYPE_CHECKING:
    from perianctl.flyte.translate import JobSecrets

ENV_PREFIX_VAR = "FLYTE_SECRETS_ENV_PREFIX"
DEFAULT_DIR_VAR = "FLYTE_SECRETS_DEFAULT_DIR"
FILE_PREFIX_VAR = "FLYTE_SECRETS_FILE_PREFIX"
DEFAULT_ENV_PREFIX = "_FSEC_"
DEFAULT_SECRETS_DIR = "/etc/secrets"

ORGANIZATION = "perian_organization"
TOKEN = "perian_token"
#: Secrets forwarded into the job (storage and registry credentials), as the official plugin names them.
JOB_SECRET_KEYS: tuple[str, ...] = (
    "aws_access_key_id",
    "aws_secret_access_key",
    "google_application_credentials",
    "docker_registry_url",
    "docker_registry_username",
    "docker_registry_password",
)
ALL_KEYS: tuple[str, ...] = (ORGANIZATION, TOKEN, *JOB_SECRET_KEYS)


@dataclass(frozen=True)
class SecretSource:
    """Where flytekit-style secrets live: env prefix, directory and file prefix."""

    env_prefix: str = DEFAULT_ENV_PREFIX
    directory: Path = Path(DEFAULT_SECRETS_DIR)
    file_prefix: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SecretSource:
        env = os.environ if environ is None else environ
        return cls(
            env_prefix=env.get(ENV_PREFIX_VAR, DEFAULT_ENV_PREFIX).strip(),
            directory=Path(env.get(DEFAULT_DIR_VAR, DEFAULT_SECRETS_DIR).strip() or DEFAULT_SECRETS_DIR),
            file_prefix=env.get(FILE_PREFIX_VAR, "").strip(),
        )

    def env_var(self, key: str) -> str:
        return f"{self.env_prefix}{key.upper()}"

    def file(self, key: str) -> Path:
        return self.directory / f"{self.file_prefix}{key.lower()}"


def lookup(
    key: str, *, source: SecretSource | None = None, environ: Mapping[str, str] | None = None
) -> tuple[str, str] | None:
    """``(value, where)`` for one flytekit-style secret, or ``None``. Empty values count as missing."""
    env = os.environ if environ is None else environ
    src = source or SecretSource.from_env(env)
    var = src.env_var(key)
    value = env.get(var)
    if value is not None and value.strip():
        return value.strip(), f"env {var}"
    path = src.file(key)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, UnicodeDecodeError):
        return None
    return (text, f"file {path}") if text else None


@dataclass(frozen=True)
class ResolvedSecrets:
    """Every secret the connector needs, resolved once. ``repr`` never shows a value."""

    values: dict[str, str] = field(default_factory=dict, repr=False)
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def organization(self) -> str | None:
        return self.values.get(ORGANIZATION)

    @property
    def token(self) -> str | None:
        return self.values.get(TOKEN)

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def missing_credentials(self) -> list[str]:
        return [k for k in (ORGANIZATION, TOKEN) if not self.values.get(k)]

    def job_secrets(self) -> JobSecrets:
        """The storage/registry credentials in the shape the translator forwards into the job."""
        from perianctl.flyte.translate import JobSecrets

        return JobSecrets(**{k: self.values.get(k) for k in JOB_SECRET_KEYS})

    def describe(self) -> str:
        """One line for the start-up log: which secrets were found and where (no values)."""
        found = [f"{k} ({self.sources[k]})" for k in ALL_KEYS if k in self.values]
        return ", ".join(found) if found else "none"


@dataclass(frozen=True)
class Credentials:
    """The PERIAN API URL, organization and token from the operator's own settings, with where each
    came from: the last fallback, after explicit values and mounted secrets. ``repr`` hides the token."""

    api_url: str | None = None
    organization: str | None = None
    token: str | None = field(default=None, repr=False)
    sources: Mapping[str, str] = field(default_factory=dict)


#: Called at every secrets refresh (so a rotated token or an edited profile needs no restart).
CredentialSource = Callable[[], Credentials]


def env_credentials(environ: Mapping[str, str] | None = None) -> Credentials:
    """``PERIAN_API_URL`` / ``PERIAN_ORGANIZATION`` / ``PERIAN_TOKEN`` (and their aliases)."""
    env = os.environ if environ is None else environ
    found: dict[str, str] = {}
    sources: dict[str, str] = {}
    for key, names in (
        ("api_url", envvars.API_URL_VARS),
        ("organization", envvars.ORGANIZATION_VARS),
        ("token", envvars.TOKEN_VARS),
    ):
        var = next((n for n in names if (env.get(n) or "").strip()), None)
        if var is not None:
            found[key], sources[key] = env[var].strip(), f"env {var}"
    return Credentials(
        api_url=found.get("api_url"), organization=found.get("organization"), token=found.get("token"), sources=sources
    )


def resolve_secrets(
    *,
    organization: str | None = None,
    token: str | None = None,
    environ: Mapping[str, str] | None = None,
    fallback: Credentials | None = None,
) -> ResolvedSecrets:
    """Resolve all connector secrets.

    ``organization``/``token`` given explicitly (``perianctl serve --org/--token`` or ``--sandbox``)
    win; then the flytekit-style env/file lookup; then ``fallback`` (the operator's own settings).
    """
    env = os.environ if environ is None else environ
    source = SecretSource.from_env(env)
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    explicit = {ORGANIZATION: organization, TOKEN: token}
    for key in ALL_KEYS:
        if explicit.get(key):
            values[key], sources[key] = str(explicit[key]), "explicit"
            continue
        found = lookup(key, source=source, environ=env)
        if found is not None:
            values[key], sources[key] = found
    if fallback is not None:
        for key, value, setting in (
            (ORGANIZATION, fallback.organization, "organization"),
            (TOKEN, fallback.token, "token"),
        ):
            if key not in values and value:
                values[key], sources[key] = value, fallback.sources.get(setting, "perianctl settings")
    for key in (TOKEN, "aws_secret_access_key", "docker_registry_password", "google_application_credentials"):
        register_secret(values.get(key))
    return ResolvedSecrets(values=values, sources=sources)


#: Secrets that arrived *with the request* (flyteidl2's per-request ``core.Connection``). They win
#: over the server-wide ones for the duration of one call; a context variable, so concurrent calls
#: (and the background work each one spawns) never see each other's credentials.
_REQUEST_SECRETS: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "perianctl_request_secrets", default=None
)


@contextlib.contextmanager
def request_secrets(values: Mapping[str, str] | None) -> Iterator[None]:
    """Within the block, :func:`with_request_secrets` lays ``values`` over the server's secrets.

    Only the keys perianctl knows (:data:`ALL_KEYS`) are taken; empty values are ignored, so a
    Connection that names a secret without a value falls back to the server-side one.
    """
    known = {k: str(v).strip() for k, v in (values or {}).items() if k in ALL_KEYS and str(v).strip()}
    for key in known:
        if key != ORGANIZATION:
            register_secret(known[key])
    token = _REQUEST_SECRETS.set(known or None)
    try:
        yield
    finally:
        _REQUEST_SECRETS.reset(token)


def with_request_secrets(server: ResolvedSecrets) -> ResolvedSecrets:
    """The server-side secrets with the current request's Connection secrets laid over them."""
    extra = _REQUEST_SECRETS.get()
    if not extra:
        return server
    return ResolvedSecrets(
        values={**server.values, **extra}, sources={**server.sources, **dict.fromkeys(extra, "request connection")}
    )
