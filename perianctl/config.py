"""Settings: TOML profiles, environment variables and flags, with one documented precedence.

    flag  >  environment variable  >  profile in the config file  >  built-in default

The config file (``$PERIANCTL_CONFIG`` or ``$XDG_CONFIG_HOME/perianctl/config.toml``) looks like::

    current_profile = "default"

    [profiles.default]
    api_url = "https://api.perian.cloud"
    organization = "my-org"
    token = "..."

It may hold a token, so every write is atomic (temp file + ``os.replace``), made ``0600`` before
any byte is written, and serialised with an exclusive lock so two concurrent ``config set`` never
lose an update. A half-written or corrupt file is never left behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli

from perianctl import envvars, paths
from perianctl.errors import ConfigError, UsageError
from perianctl.files import atomic_write, private_dir
from perianctl.redact import REDACTED, register_secret
from perianctl.text import unreadable_number

DEFAULT_API_URL = envvars.DEFAULT_API_URL
DEFAULT_PROFILE = "default"
DEFAULT_API_TIMEOUT = 30.0
"""Seconds one API operation may take, retries included (``--api-timeout``; README "Configuration")."""
MAX_API_TIMEOUT = 86_400.0

# Profile keys users may set, with a one-line description (shown by `config set --help`).
PROFILE_KEYS: dict[str, str] = {
    "api_url": "PERIAN API base URL",
    "organization": "PERIAN organization (account) name",
    "token": "PERIAN API token (stored 0600; redacted in `config show`)",
    "output_prefix": "default --output-prefix for submit (a local dir or s3:// / gs:// URI)",
    "connector": "default --connector HOST:PORT for submit/get/delete",
    "api_timeout": "how long one PERIAN API operation may take, retries included (e.g. 30s, 2m)",
}
SECRET_KEYS = frozenset({"token"})

# Environment variables, by setting. The first one set wins.
ENV_VARS: dict[str, tuple[str, ...]] = {
    "api_url": envvars.API_URL_VARS,
    "organization": envvars.ORGANIZATION_VARS,
    "token": envvars.TOKEN_VARS,
    "output_prefix": ("PERIANCTL_OUTPUT_PREFIX",),
    "connector": ("PERIANCTL_CONNECTOR",),
    "api_timeout": ("PERIANCTL_API_TIMEOUT",),
}
PROFILE_ENV = "PERIANCTL_PROFILE"
CONFIG_ENV = paths.CONFIG_ENV
STATE_ENV = paths.STATE_ENV


def config_path(explicit: str | Path | None = None) -> Path:
    return Path(paths.config_file(explicit))


def state_dir() -> Path:
    """Where the journal and sandbox state live (``$PERIANCTL_STATE_DIR`` or XDG state dir)."""
    return Path(paths.state_dir())


# --------------------------------------------------------------------------- file I/O


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse the config file; a missing file is an empty config, a broken one a one-line error."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        data = tomli.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    except tomli.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except ValueError as exc:  # TOML's int(), past Python's digit limit
        raise ConfigError(f"config file {path}: {unreadable_number(exc)}") from None
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
        raise ConfigError(f"config file {path}: [profiles.NAME] must be tables")
    for name, values in profiles.items():
        for key, value in values.items():
            if key not in PROFILE_KEYS:
                raise ConfigError(
                    f"config file {path}: unknown key {key!r} in profile {name!r} (known: {', '.join(PROFILE_KEYS)})"
                )
            if not isinstance(value, str):
                raise ConfigError(f"config file {path}: profile {name!r} key {key!r} must be a string")
    current = data.get("current_profile")
    if current is not None and not isinstance(current, str):
        raise ConfigError(f"config file {path}: current_profile must be a string")
    return data


def _dump_toml(data: Mapping[str, Any]) -> str:
    import tomli_w

    return tomli_w.dumps(dict(data))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    private_dir(path.parent)
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def update_config_file(path: Path, mutate: Any) -> dict[str, Any]:
    """Read-modify-write under an exclusive lock; ``mutate(data)`` edits the dict in place.

    A write that fails (disk full, file size limit, a parent that is not a directory) leaves the
    old file as it was and is a one-line ``ConfigError``, not a traceback.
    """
    try:
        with _locked(path):
            data = read_config_file(path)
            mutate(data)
            atomic_write(path, _dump_toml(data))
            return data
    except OSError as exc:
        raise ConfigError(f"cannot write config file {path}: {exc.strerror or exc}") from None


def save_profile(
    name: str, values: Mapping[str, str], *, config_path: Path | None = None, make_current: bool = False
) -> Path:
    """Create or update profile ``name`` with ``values`` (merged over what is there)."""
    validate_profile_name(name)
    for key in values:
        if key not in PROFILE_KEYS:
            raise UsageError(f"unknown config key {key!r} (known: {', '.join(PROFILE_KEYS)})")
    values = {key: validate_setting(key, str(value)) for key, value in values.items()}
    path = _resolve_path(config_path)

    def mutate(data: dict[str, Any]) -> None:
        profiles = data.setdefault("profiles", {})
        profile = profiles.setdefault(name, {})
        profile.update({k: str(v) for k, v in values.items()})
        if make_current or "current_profile" not in data:
            data["current_profile"] = name

    update_config_file(path, mutate)
    return path


def _resolve_path(explicit: Path | None) -> Path:
    return explicit if explicit is not None else config_path()


def validate_profile_name(name: str) -> None:
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise UsageError(f"invalid profile name {name!r} (use letters, digits, '-', '_', '.')")


# --------------------------------------------------------------------------- resolution


@dataclass
class Settings:
    """The resolved settings of one invocation, with where each value came from."""

    profile: str
    config_file: Path
    values: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return self.values.get("api_url", DEFAULT_API_URL)

    @property
    def organization(self) -> str | None:
        return self.values.get("organization")

    @property
    def token(self) -> str | None:
        return self.values.get("token")

    @property
    def api_timeout(self) -> float:
        """Seconds one PERIAN API operation may take, retries included."""
        value = self.values.get("api_timeout")
        return _parse_api_timeout(value, "api_timeout") if value else DEFAULT_API_TIMEOUT

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def require_credentials(self) -> tuple[str, str]:
        """Organization and token, or a one-line error telling how to provide them."""
        missing = [k for k in ("organization", "token") if not self.values.get(k)]
        if missing:
            raise ConfigError(
                f"no PERIAN {' or '.join(missing)} configured for profile {self.profile!r}",
                hint="pass --org/--token, set PERIAN_ORGANIZATION/PERIAN_TOKEN, or run "
                "'perianctl config init' (or 'perianctl sandbox start' for a local sandbox)",
            )
        assert self.organization is not None and self.token is not None
        return self.organization, self.token

    def redacted(self) -> dict[str, dict[str, str]]:
        """Every value with its source, secrets masked (what `config show` prints)."""
        out = {}
        for key in PROFILE_KEYS:
            if key in self.values:
                value = REDACTED if key in SECRET_KEYS else self.values[key]
                out[key] = {"value": value, "source": self.sources.get(key, "default")}
            elif key == "api_url":
                out[key] = {"value": DEFAULT_API_URL, "source": "default"}
            elif key == "api_timeout":
                out[key] = {"value": f"{DEFAULT_API_TIMEOUT:g}s", "source": "default"}
        return out


def read_token_file(spec: str) -> str:
    """Token from a file path, or from stdin when ``spec`` is ``-``; first line, stripped."""
    try:
        text = sys.stdin.read() if spec == "-" else Path(spec).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read token file {spec}: {getattr(exc, 'strerror', None) or exc}") from None
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        raise UsageError(f"token file {spec} is empty")
    if len(lines) > 1:
        register_secret(lines[0])
        raise UsageError(f"token file {spec} has {len(lines)} lines; expected the token alone on one line")
    return validate_setting("token", lines[0], source=f"token file {spec}")


def resolve(
    *,
    flags: Mapping[str, str | None] | None = None,
    profile: str | None = None,
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings with precedence flag > env > profile > default."""
    env = os.environ if environ is None else environ
    path = (
        config_path(config_file)
        if config_file
        else (Path(env[CONFIG_ENV]).expanduser() if env.get(CONFIG_ENV) else config_path())
    )
    data = read_config_file(path)
    profiles: dict[str, dict[str, str]] = data.get("profiles", {})
    explicit_profile = profile or env.get(PROFILE_ENV)
    name = explicit_profile or data.get("current_profile") or DEFAULT_PROFILE
    if explicit_profile and explicit_profile not in profiles:
        known = ", ".join(repr(p) if not p.isprintable() else p for p in sorted(profiles)) or "none"
        raise ConfigError(f"profile {explicit_profile!r} not found in {path} (profiles: {known})")
    settings = Settings(profile=name, config_file=path)
    for key, value in profiles.get(name, {}).items():
        settings.values[key] = value
        settings.sources[key] = f"profile {name} ({path})"
    for key, names in ENV_VARS.items():
        for var in names:
            if env.get(var):
                settings.values[key] = env[var]
                settings.sources[key] = f"env {var}"
                break
    for key, flag_value in (flags or {}).items():
        if flag_value:
            settings.values[key] = flag_value
            settings.sources[key] = "flag"
    for key, value in list(settings.values.items()):
        settings.values[key] = validate_setting(key, value, source=settings.sources.get(key, ""))
    register_secret(settings.token)
    return settings


def validate_setting(key: str, value: str, *, source: str = "") -> str:
    """The one place a setting's value is checked (flags, env, profile, ``config set``).

    Everything is checked before any request: a value that cannot go into an HTTP header (a
    newline in the token, a NUL in the organization) or a URL that is not one would otherwise fail
    deep in the HTTP stack, be retried, and be reported as an unreachable API. Error messages
    never echo a secret.
    """
    where = f" (from {source})" if source else ""
    if key == "api_url":
        return validate_api_url(value, where=where)
    if key == "token":
        register_secret(value)
    if key in ("token", "organization"):
        return check_header_value(key, value, where=where)
    if key == "api_timeout":
        _parse_api_timeout(value, f"api_timeout{where}")
        return value.strip()
    return value


def check_header_value(key: str, value: str, *, where: str = "") -> str:
    """``value`` stripped, if it can be sent as the ``key`` header value (token, organization);
    a one-line ConfigError that never includes the value otherwise. No side effects."""
    value = value.strip()
    problem = _header_problem(value)
    if problem:
        name = "token" if key == "token" else key
        raise ConfigError(
            f"invalid {name}{where}: it {problem}",
            hint="copy the token again; it is one line of printable ASCII" if key == "token" else None,
        )
    return value


def _header_problem(value: str) -> str | None:
    """Why ``value`` cannot be sent as an HTTP header value, or None. Never includes the value."""
    if not value:
        return "is empty"
    if value.isascii() and value.isprintable():  # the common case, without a loop in Python
        return None
    for index, char in enumerate(value):
        if char in "\r\n":
            return f"contains a line break (character {index + 1})"
        if ord(char) < 0x20 or ord(char) == 0x7F:
            return f"contains a control character (character {index + 1})"
        if ord(char) > 0x7E:
            return f"contains a non-ASCII character (character {index + 1})"
    return None


def _parse_api_timeout(value: str, what: str) -> float:
    from perianctl.timeparse import parse_duration

    seconds = parse_duration(value, what=what)
    if not 0 < seconds <= MAX_API_TIMEOUT:
        raise ConfigError(f"{what}: '{value}' must be more than 0 s and at most 24h")
    return seconds


def validate_api_url(url: str, *, where: str = "") -> str:
    """``http(s)://host[:port][/path]``, checked as far as can be without the network."""
    from urllib.parse import urlsplit

    url = url.strip().rstrip("/")
    shown = repr(url) if len(url) <= 200 else repr(url[:200] + "...")
    if "@" in url.split("://", 1)[-1].split("/", 1)[0]:
        raise ConfigError(
            f"invalid API URL{where}: credentials in the URL are not supported",
            hint="use --org and --token (or --token-file)",
        )
    expected = "expected http(s)://host[:port]"
    if not url.isascii() or not url.isprintable() or " " in url:
        raise ConfigError(f"invalid API URL {shown}{where}: {expected} (no spaces, control or non-ASCII characters)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a port that is not a number or out of 0-65535
        raise ConfigError(f"invalid API URL {shown}{where}: {exc}; {expected}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"invalid API URL {shown}{where}: {expected}")
    if port == 0:
        raise ConfigError(f"invalid API URL {shown}{where}: port 0 is not a port one can connect to")
    if parts.query or parts.fragment:
        raise ConfigError(f"invalid API URL {shown}{where}: {expected} (no query or fragment)")
    return url
