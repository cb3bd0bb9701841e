"""Task template → PERIAN ``CreateJobRequest``: one pure function shared by CLI and connector.

``perianctl submit`` and the gRPC connector call the same :func:`template_to_job_request`, so a
template runs the same way whichever path started it. The mapping keeps parity with the official
``flytekitplugins-perian-job`` connector (flytekit's
plugins/flytekit-perian/flytekitplugins/perian_job/connector.py, 1.16.31) for the custom keys ``cores``,
``memory``, ``accelerators``, ``accelerator_type``, ``country_code``, ``provider``,
``os_storage_size``, ``image``, ``command`` and ``environment``, and improves on it where it was
wrong:

* Struct numbers arrive as floats (``2.0``); counts are turned into ints and rejected when they
  are fractional or negative instead of being silently truncated. ``0`` means "not set", as the
  official connector's truthiness checks did.
* The image is split at the last ``:`` only when what follows has no ``/``: ``host:5000/img`` is a
  registry port, not a tag, and ``img@sha256:…`` digests are kept whole (the official connector
  split both wrongly).
* Requirements: the official connector always sent a requirements object, empty (``{"all":
  false}``) when no key was set. We do the same: PERIAN needs ``instance_type_id`` *or*
  ``requirements`` and then picks the cheapest instance for what is unspecified. Inventing a
  ``cpu.cores = 1`` floor instead would change which machines match for no gain. With an explicit
  ``instance_type_id`` and no requirement keys, requirements are left out.
* ``metadata.timeout`` of the template becomes ``timeout_seconds`` so a PERIAN job cannot outlive
  the Flyte task that wanted it (the official connector dropped it; flyte#2298).
* Environment: ``container.env`` (where flytekit puts ``@task(environment=…)``), then
  ``custom["environment"]``, then overrides; for official templates both carry the same values.

Rendering placeholders is not done here: pass a template from ``render.render_template``.
"""

from __future__ import annotations

import base64
import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from typing import Any

from flyteidl.core import tasks_pb2
from google.protobuf import json_format

from perianctl.errors import ConfigError, TemplateError
from perianctl.flyte.render import custom_command
from perianctl.perian.models import (
    AcceleratorQueryInput,
    ContainerFile,
    CpuQueryInput,
    CreateJobRequest,
    DockerRegistryCredentials,
    DockerRunParameters,
    InstanceTypeQueryInput,
    MemoryQueryInput,
    OSStorageConfig,
    ProviderQueryInput,
    RegionQueryInput,
)
from perianctl.perian.offers import Budget, parse_amount

#: Where the official connector mounts the GCP credentials JSON inside the job's container.
GCP_CREDENTIALS_PATH = "/data/gcp-credentials.json"

_MEMORY_RE = re.compile(r"(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[KMGT]i?B?|B)?", re.IGNORECASE)
_MEMORY_SCALE = {"K": Decimal(1) / (1024 * 1024), "M": Decimal(1) / 1024, "G": Decimal(1), "T": Decimal(1024)}


@dataclass
class JobOverrides:
    """Values from CLI flags; each one that is set wins over the template's custom keys."""

    cores: int | None = None
    memory: str | int | float | None = None
    accelerators: int | None = None
    accelerator_type: str | None = None
    country_code: str | None = None
    provider: str | None = None
    os_storage_size: int | None = None
    timeout_seconds: int | None = None
    image: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    instance_type_id: str | None = None
    max_price_per_hour: str | float | Decimal | None = None
    max_cost: str | float | Decimal | None = None


@dataclass(repr=False)
class JobSecrets:
    """Credentials forwarded into the job, named like the official connector's secrets.

    ``google_application_credentials`` is the JSON text of a service-account key. ``repr`` never
    shows values, so a ``JobSecrets`` in a log line or traceback leaks nothing.
    """

    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    google_application_credentials: str | None = None
    docker_registry_url: str | None = None
    docker_registry_username: str | None = None
    docker_registry_password: str | None = None

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={'<redacted>' if getattr(self, f.name) else None}" for f in fields(self))
        return f"JobSecrets({shown})"

    __str__ = __repr__


# --------------------------------------------------------------------------- value coercion


def _pick(override: Any, custom: Mapping[str, Any], key: str) -> tuple[Any, str]:
    """The override if set, else the custom key; plus how to name it in an error message."""
    if override is not None:
        return override, f"--{key.replace('_', '-')}"
    return custom.get(key), f"custom {key!r}"


def _count(value: Any, key: str) -> int | None:
    """A non-negative whole number from a Struct float/int/str; ``0`` and null mean "not set"."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise TemplateError(f"{key} must be a whole number, got {value!r}")
    number: float | int
    if isinstance(value, int | float):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise TemplateError(f"{key} must be a whole number, got {value!r}") from None
    else:
        raise TemplateError(f"{key} must be a whole number, got a {type(value).__name__}")
    if isinstance(number, float) and (not math.isfinite(number) or not number.is_integer()):
        raise TemplateError(f"{key} must be a whole number, got {value!r}")
    if number < 0:
        raise TemplateError(f"{key} must not be negative, got {value!r}")
    if number > 2**31 - 1:
        raise TemplateError(f"{key} is too large: {value!r}")
    return int(number) or None


def _memory(value: Any, key: str = "custom 'memory'") -> str | None:
    """Memory in GB as PERIAN's string ``Size`` (``"8"``, ``"0.5"``).

    Numbers are GB (PerianConfig's unit). Strings may carry a unit: ``G``/``Gi``/``GB`` are GB,
    ``M``/``Mi`` MB, ``T``/``Ti`` TB; binary and decimal prefixes are treated alike because
    PERIAN instance sizes are nominal.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise TemplateError(f"{key} must be a size in GB, got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise TemplateError(f"{key} must be a size in GB, got {value!r}")
        size = Decimal(str(value))
    elif isinstance(value, str):
        match = _MEMORY_RE.fullmatch(value.strip())
        if not match:
            raise TemplateError(f"{key} must be a size such as 16 or 16Gi, got {value!r}")
        unit = (match.group("unit") or "G")[0].upper()
        try:
            size = Decimal(match.group("num")) * _MEMORY_SCALE.get(unit, Decimal(1) / (1024**3))
        except InvalidOperation:
            raise TemplateError(f"{key} must be a size such as 16 or 16Gi, got {value!r}") from None
    else:
        raise TemplateError(f"{key} must be a size in GB, got a {type(value).__name__}")
    if size < 0:
        raise TemplateError(f"{key} must not be negative, got {value!r}")
    if size == 0:
        return None
    if size > 10**9:
        raise TemplateError(f"{key} is too large: {value!r}")
    if size == size.to_integral_value():
        return str(int(size))
    return format(size.normalize(), "f")


def _text(value: Any, key: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TemplateError(f"{key} must be a string, got a {type(value).__name__}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def country_code(value: Any) -> str | None:
    """Upper-cased two-letter country code (the official plugin's rule), or ``TemplateError``."""
    text = _text(value, "country_code")
    if text is None:
        return None
    if len(text) != 2 or not text.isascii() or not text.isalpha():
        raise TemplateError(f"country code must be two letters such as DE, got {text!r}")
    return text.upper()


def split_image(image: str) -> tuple[str, str | None]:
    """``name:tag`` → (name, tag), splitting at the last ``:`` only if the tag has no ``/``.

    ``host:5000/img`` (registry port, no tag) and ``img@sha256:…`` (digest) stay whole.
    """
    text = image.strip()
    if not text or any(ch.isspace() for ch in text):
        raise TemplateError(f"invalid container image {image!r}")
    if "@" in text:
        return text, None
    name, sep, tag = text.rpartition(":")
    if not sep or "/" in tag:
        return text, None
    if not name or not tag:
        raise TemplateError(f"invalid container image {image!r}")
    return name, tag


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str | int | float):
        return str(value)
    raise TemplateError(f"custom 'environment' values must be strings, got a {type(value).__name__}")


# --------------------------------------------------------------------------- translation


def template_custom(template: tasks_pb2.TaskTemplate) -> dict[str, Any]:
    """``template.custom`` as a plain dict (numbers are floats, as the Struct stores them)."""
    if not template.HasField("custom"):
        return {}
    return dict(json_format.MessageToDict(template.custom))


def _requirements(custom: Mapping[str, Any], o: JobOverrides) -> InstanceTypeQueryInput | None:
    cores = _count(*_pick(o.cores, custom, "cores"))
    memory = _memory(*_pick(o.memory, custom, "memory"))
    accelerators = _count(*_pick(o.accelerators, custom, "accelerators"))
    accelerator_type = _text(*_pick(o.accelerator_type, custom, "accelerator_type"))
    country = country_code(_pick(o.country_code, custom, "country_code")[0])
    provider = _text(*_pick(o.provider, custom, "provider"))

    reqs = InstanceTypeQueryInput()
    if cores:
        reqs.cpu = CpuQueryInput(cores=cores)
    if memory:
        reqs.ram = MemoryQueryInput(size=memory)
    if accelerators or accelerator_type:
        reqs.accelerator = AcceleratorQueryInput(no=accelerators, name=accelerator_type)
    if country:
        reqs.region = RegionQueryInput(location=country)
    if provider:
        reqs.provider = ProviderQueryInput(name_short=provider)
    if o.instance_type_id and not any((cores, memory, accelerators, accelerator_type, country, provider)):
        return None
    return reqs


def requirements_for(overrides: JobOverrides) -> InstanceTypeQueryInput | None:
    """The ``requirements`` the resource flags alone ask for (``offers``: same flags, same meaning as ``submit``)."""
    return _requirements({}, overrides)


BUDGET_KEYS = ("max_price_per_hour", "max_cost")
"""Custom keys of perianctl's ``PerianConfig`` that the official connector does not read (it only
``.get``s its own keys, so extra ones pass through it unused): money limits our connector honours."""


def budget_of(template: tasks_pb2.TaskTemplate, overrides: JobOverrides | None = None) -> Budget:
    """The money limits for a template: flags over the custom keys ``max_price_per_hour``/``max_cost``."""
    o = overrides or JobOverrides()
    custom = template_custom(template)
    return Budget(
        max_price_per_hour=parse_amount(*_pick(o.max_price_per_hour, custom, "max_price_per_hour")),
        max_cost=parse_amount(*_pick(o.max_cost, custom, "max_cost")),
    )


def _command(template: tasks_pb2.TaskTemplate) -> str | None:
    if template.HasField("container"):
        argv = [*template.container.command, *template.container.args]
        return shlex.join(argv) if argv else None
    command = custom_command(template)
    if command is None:
        return None
    if len(command) == 1 and template.custom.fields["command"].WhichOneof("kind") == "string_value":
        return command[0] or None  # a single shell string is passed through, like perian-cli
    return shlex.join(command) if command else None


def _timeout(template: tasks_pb2.TaskTemplate, o: JobOverrides) -> int | None:
    if o.timeout_seconds is not None:
        if isinstance(o.timeout_seconds, bool) or o.timeout_seconds <= 0:
            raise TemplateError(f"timeout must be a positive number of seconds, got {o.timeout_seconds!r}")
        return int(o.timeout_seconds)
    if template.HasField("metadata") and template.metadata.HasField("timeout"):
        total: float = template.metadata.timeout.seconds + template.metadata.timeout.nanos / 1e9
        if total > 0:
            return math.ceil(total)
    return None


def _environment(template: tasks_pb2.TaskTemplate, custom: Mapping[str, Any], o: JobOverrides) -> dict[str, str]:
    env: dict[str, str] = {}
    if template.HasField("container"):
        env.update({kv.key: kv.value for kv in template.container.env if kv.key})
    extra = custom.get("environment")
    if extra is not None:
        if not isinstance(extra, Mapping):
            raise TemplateError("custom 'environment' must be a mapping of names to values")
        env.update({str(k): _env_text(v) for k, v in extra.items()})
    env.update({str(k): str(v) for k, v in o.env.items()})
    if _runs_pyflyte(template):
        # Without it pyflyte-execute exits 0 after the task raised (it only writes error.pb), so
        # PERIAN -- which sees only the exit code -- would report a failed task as Done.
        env.setdefault(FAIL_ON_ERROR_ENV, "true")
    return env


FAIL_ON_ERROR_ENV = "FLYTE_FAIL_ON_ERROR"


def _runs_pyflyte(template: tasks_pb2.TaskTemplate) -> bool:
    if not template.HasField("container"):
        return False
    words = [*template.container.command, *template.container.args]
    return any(w.startswith(("pyflyte-execute", "pyflyte-fast-execute", "pyflyte-map-execute")) for w in words)


def _apply_secrets(params: DockerRunParameters, secrets: JobSecrets) -> DockerRegistryCredentials | None:
    aws_id, aws_key = secrets.aws_access_key_id, secrets.aws_secret_access_key
    if bool(aws_id) != bool(aws_key):
        missing = "aws_secret_access_key" if aws_id else "aws_access_key_id"
        raise ConfigError(f"incomplete AWS credentials: {missing} is not set")
    if aws_id and aws_key:
        # Same precedence as the official connector: AWS first, GCP only without AWS keys.
        params.secrets = {"AWS_ACCESS_KEY_ID": aws_id, "AWS_SECRET_ACCESS_KEY": aws_key}
    elif secrets.google_application_credentials:
        params.secrets = {"GOOGLE_APPLICATION_CREDENTIALS": GCP_CREDENTIALS_PATH}
        content = base64.b64encode(secrets.google_application_credentials.encode()).decode()
        params.container_files = [ContainerFile(path=GCP_CREDENTIALS_PATH, read_only=False, base64_content=content)]
    url, user, password = (
        secrets.docker_registry_url,
        secrets.docker_registry_username,
        secrets.docker_registry_password,
    )
    if any((url, user, password)):
        return DockerRegistryCredentials(url=url or "", username=user or "", password=password or "")
    return None


def template_to_job_request(
    template: tasks_pb2.TaskTemplate,
    *,
    overrides: JobOverrides | None = None,
    secrets: JobSecrets | None = None,
) -> CreateJobRequest:
    """Build the PERIAN ``POST /job`` body for a (rendered) task template. Pure: no I/O, no clock.

    ``overrides`` win over the template's custom keys; ``secrets`` become container secrets,
    files and registry credentials exactly as the official connector forwards them. Invalid values
    raise ``TemplateError`` (``ConfigError`` for incomplete credentials).
    """
    o = overrides or JobOverrides()
    custom = template_custom(template)

    image = o.image or (template.container.image if template.HasField("container") else None)
    image = image or _text(custom.get("image"), "custom 'image'")
    if not image:
        raise TemplateError("the template has no container image (no container and no custom 'image'); pass --image")
    image_name, image_tag = split_image(image)

    params = DockerRunParameters(image_name=image_name, image_tag=image_tag, command=_command(template))
    env = _environment(template, custom, o)
    if env:
        params.env_variables = dict(env)

    storage = _count(*_pick(o.os_storage_size, custom, "os_storage_size"))

    registry = _apply_secrets(params, secrets) if secrets is not None else None
    return CreateJobRequest(
        instance_type_id=o.instance_type_id or None,
        auto_failover_instance_type=True,
        timeout_seconds=_timeout(template, o),
        os_storage_config=OSStorageConfig(size=storage) if storage else None,
        requirements=_requirements(custom, o),
        docker_run_parameters=params,
        docker_registry_credentials=registry,
    )


# --------------------------------------------------------------------------- overrides for a connector


def apply_overrides(template: tasks_pb2.TaskTemplate, overrides: JobOverrides) -> tasks_pb2.TaskTemplate:
    """A copy of ``template`` with the CLI's overrides written where a connector reads them. Pure.

    ``submit --connector`` can only send a ``CreateTaskRequest``, which carries the template and
    nothing else, so the flags have to travel inside it:

    * ``cores``, ``memory``, ``accelerators``, ``accelerator_type``, ``country_code``, ``provider``,
      ``os_storage_size`` become the official ``custom`` keys (every ``perian_task`` connector
      reads those);
    * ``env`` goes into ``container.env`` *and* ``custom["environment"]`` (the official connector
      reads only the latter; ours reads both, the custom one winning, so it must hold the override);
    * ``image`` replaces ``container.image`` (and ``custom["image"]`` when the template has one or
      no container);
    * ``timeout_seconds`` becomes ``metadata.timeout`` (the official connector ignores it);
    * ``max_price_per_hour``/``max_cost`` become the custom keys of the same names, as decimal text
      (perianctl's connector honours them; the official one ignores them).

    Values are checked with the same rules as :func:`template_to_job_request`, so a bad flag is a
    ``TemplateError`` here rather than an INVALID_ARGUMENT from the connector. ``instance_type_id``
    has no place in a template: asking for it raises ``TemplateError``.
    ``template_to_job_request(apply_overrides(t, o))`` equals ``template_to_job_request(t, overrides=o)``.
    """
    o = overrides
    if o.instance_type_id:
        raise TemplateError(
            "--instance-type-id cannot be sent through a connector (a task template has no "
            "place for it); use --cores/--memory/--accelerators/--accelerator-type instead"
        )
    out = tasks_pb2.TaskTemplate()
    out.CopyFrom(template)
    custom_values: dict[str, Any] = {}
    for key in ("cores", "accelerators", "os_storage_size"):
        value = getattr(o, key)
        if value is not None:
            _count(value, f"--{key.replace('_', '-')}")
            custom_values[key] = value
    if o.memory is not None:
        _memory(o.memory, "--memory")
        custom_values["memory"] = o.memory
    if o.country_code is not None:
        custom_values["country_code"] = country_code(o.country_code) or ""
    for key in ("accelerator_type", "provider"):
        value = getattr(o, key)
        if value is not None:
            custom_values[key] = _text(value, f"--{key.replace('_', '-')}") or ""
    for key in BUDGET_KEYS:
        value = getattr(o, key)
        if value is not None:
            custom_values[key] = str(parse_amount(value, f"--{key.replace('_', '-')}"))
    for key, value in custom_values.items():
        out.custom[key] = value
    if o.image:
        split_image(o.image)  # validates
        if out.HasField("container"):
            out.container.image = o.image
        if not out.HasField("container") or "image" in out.custom.fields:
            out.custom["image"] = o.image
    if o.env:
        env = {str(k): str(v) for k, v in o.env.items()}
        if out.HasField("container"):
            kept = [kv for kv in out.container.env if kv.key not in env]
            del out.container.env[:]
            out.container.env.extend(kept)
            for key, value in env.items():
                out.container.env.add(key=key, value=value)
        existing = out.custom.fields.get("environment")
        if existing is not None and existing.WhichOneof("kind") not in ("struct_value", "null_value"):
            raise TemplateError("custom 'environment' must be a mapping of names to values")
        environment = out.custom.get_or_create_struct("environment")
        environment.update(env)
    if o.timeout_seconds is not None:
        if isinstance(o.timeout_seconds, bool) or o.timeout_seconds <= 0:
            raise TemplateError(f"timeout must be a positive number of seconds, got {o.timeout_seconds!r}")
        out.metadata.timeout.FromSeconds(int(o.timeout_seconds))
    return out
