"""What goes over the wire: lenient request models and strict response builders.

The two directions follow different rules (what PERIAN and the ``perian`` SDK 0.5.3's
perian/models/ send and accept; tests/integration/test_sandbox_api.py pins them):

* **Requests are lenient**: explicit ``null`` equals absent, sizes may be numbers or strings,
  unknown keys are ignored, and ``requirements`` is kept as raw JSON so that a garbage value (the
  perian-cli double-formatting quirk) never gets a job rejected when an instance type id is given.
* **Responses are strict**: every size and price is a *string*, enums are exact, timestamps are
  UTC with ``Z`` or ``null``. The official SDK validates ``Strict*`` fields, so a response that is
  "almost right" would crash real clients. :func:`echo_requirements` is the piece that makes the
  echoed requirements parse as ``InstanceTypeQueryOutput``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from perianctl.perian import models as m

# --------------------------------------------------------------------------- request models


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class ContainerFileIn(_Lenient):
    path: str
    read_only: bool | None = False
    base64_content: str


class DockerRunParametersIn(_Lenient):
    image_name: str | None = ""
    image_tag: str | None = None
    command: str | None = None
    env_variables: dict[str, Any] | None = None
    secrets: dict[str, Any] | None = None
    container_files: list[ContainerFileIn] | None = None


class RegistryCredentialsIn(_Lenient):
    url: str | None = ""
    username: str | None = ""
    password: str | None = ""


class OSStorageConfigIn(_Lenient):
    size: int | None = None


class CreateJobBody(_Lenient):
    """``CreateJobRequest``. ``instance_type_id`` is a UUID, as in the API's OpenAPI document."""

    instance_type_id: uuid.UUID | None = None
    auto_failover_instance_type: bool | None = True
    timeout_seconds: int | None = None
    os_storage_config: OSStorageConfigIn | None = None
    requirements: dict[str, Any] | None = None
    docker_run_parameters: DockerRunParametersIn | None = Field(default=None)
    docker_registry_credentials: RegistryCredentialsIn | None = None


class InstanceTypeSearchBody(_Lenient):
    instance_type_query: dict[str, Any] | None = None


class AcceleratorTypeSearchBody(_Lenient):
    accelerator_type_query: dict[str, Any] | None = None


# --------------------------------------------------------------------------- envelopes


def success(message: str = m.MESSAGE_SUCCESS, **extra: Any) -> dict[str, Any]:
    return {"status": "Success", "message": message, "detail": "", "status_code": 200, **extra}


def failure(status_code: int, detail: str) -> dict[str, Any]:
    message = m.MESSAGE_SERVER_ERROR if status_code >= 500 else m.MESSAGE_CLIENT_ERROR
    return {"status": "Error", "message": message, "detail": detail, "status_code": status_code}


def pagination(total: int, limit: int, page: int) -> dict[str, Any]:
    total_pages = max(1, -(-total // limit))
    return {
        "total_items": total,
        "items_per_page": limit,
        "current_page": page,
        "total_pages": total_pages,
        "next_page": page + 1 if page < total_pages else None,
        "previous_page": min(page - 1, total_pages) if page > 1 else None,
    }


def iso(timestamp: float | None) -> str | None:
    """Epoch seconds → ``2025-01-01T10:00:00.123Z`` (millisecond precision, always UTC)."""
    if timestamp is None:
        return None
    moment = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# --------------------------------------------------------------------------- requirements echo

_OPERATORS = frozenset(
    {"EQUALS", "INCLUDES", "UNDEFINED", "LESS_THAN", "LESS_THAN_OR_EQUAL", "GREATER_THAN", "GREATER_THAN_OR_EQUAL"}
)
_ORDERS = frozenset({"PRICE", "CREATED_AT"})

# field kinds: "str", "int", "bool", "size" (number-or-string → string), "name" (string or list),
# "dict", or the name of a nested schema.
_SCHEMAS: dict[str, dict[str, str]] = {
    "root": {
        "all": "bool",
        "id": "str",
        "region": "region",
        "zone": "zone",
        "name": "str",
        "cpu": "cpu",
        "accelerator": "accelerator",
        "ram": "memory",
        "storage": "storage",
        "network": "network",
        "price": "price",
        "availability": "availability",
        "type": "str",
        "billing_granularity": "str",
        "provider": "provider",
        "reference_id": "reference_id",
        "attributes_hash": "str",
    },
    "cpu": {"all": "bool", "no": "int", "cores": "int", "threads": "int", "speed": "size"},
    "memory": {"all": "bool", "size": "size"},
    "accelerator": {
        "no": "int",
        "memory": "memory",
        "vendor": "str",
        "name": "name",
        "description": "name",
        "provider_specific_name": "dict",
    },
    "region": {"id": "str", "name": "str", "location": "str", "sustainable": "bool", "status": "str"},
    "provider": {"id": "str", "name": "str", "name_short": "str", "location": "str", "status": "str"},
    "zone": {"id": "str", "name": "str", "status": "str"},
    "storage": {"all": "bool", "no": "int", "size": "size", "type": "str", "speed": "size", "included": "str"},
    "network": {"all": "bool", "inbound_speed": "size", "outbound_speed": "size"},
    "price": {"all": "bool", "unit_price": "size"},
    "availability": {"all": "bool", "available": "bool"},
    "reference_id": {"all": "bool", "id": "str"},
}
_MISSING = object()


def _number_text(value: Any) -> Any:
    if isinstance(value, bool):
        return _MISSING
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    return _MISSING


def _scalar(kind: str, value: Any) -> Any:
    if kind == "size":
        return _number_text(value)
    if kind == "str":
        if isinstance(value, str):
            return value
        text = _number_text(value)
        return text
    if kind == "int":
        if isinstance(value, bool):
            return _MISSING
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value.strip())
        return _MISSING
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        return _MISSING
    if kind == "name":
        if isinstance(value, str | list):
            return value
        text = _number_text(value)
        return text
    if kind == "dict":
        return value if isinstance(value, dict) else _MISSING
    raise AssertionError(kind)


def _options(value: Any) -> Any:
    if not isinstance(value, dict):
        return _MISSING
    out: dict[str, Any] = {}
    for key in ("limit", "offset"):
        number = _scalar("int", value.get(key)) if value.get(key) is not None else _MISSING
        if number is not _MISSING:
            out[key] = number
    order = value.get("order")
    if isinstance(order, str) and order.upper() in _ORDERS:
        out["order"] = order.upper()
    lazy = _scalar("bool", value.get("lazy_loading")) if value.get("lazy_loading") is not None else _MISSING
    if lazy is not _MISSING:
        out["lazy_loading"] = lazy
    return out


def _echo(schema: str, value: Any) -> Any:
    if schema == "reference_id" and isinstance(value, str):
        value = {"id": value}
    if not isinstance(value, dict):
        return _MISSING
    fields = _SCHEMAS[schema]
    out: dict[str, Any] = {}
    operator = value.get("operator")
    if isinstance(operator, str) and operator.upper() in _OPERATORS:
        out["operator"] = operator.upper()
    if value.get("options") is not None:
        options = _options(value.get("options"))
        if options is not _MISSING:
            out["options"] = options
    for key, kind in fields.items():
        raw = value.get(key)
        if raw is None:
            continue
        converted = _echo(kind, raw) if kind in _SCHEMAS else _scalar(kind, raw)
        if converted is not _MISSING:
            out[key] = converted
    return out


def echo_requirements(requirements: dict[str, Any] | None) -> dict[str, Any] | None:
    """The job's ``requirements`` as an ``InstanceTypeQueryOutput``: known keys only, sizes as text.

    Values that cannot be represented (a bool where a size goes, an unknown operator) are dropped
    rather than echoed, because one bad echoed value would make the SDK reject the whole job.
    """
    if requirements is None:
        return None
    echoed = _echo("root", requirements)
    return None if echoed is _MISSING else echoed


# --------------------------------------------------------------------------- job views


def docker_metadata(params: DockerRunParametersIn, registry: RegistryCredentialsIn | None) -> dict[str, Any]:
    """The echoed container settings with secrets removed (the real service deletes them after use)."""
    return {
        "docker_run_parameters": {
            "image_name": params.image_name or "",
            "image_tag": params.image_tag,
            "command": params.command,
            "env_variables": params.env_variables,
            "secrets": None,
            "container_files": None,
        },
        "docker_registry_credentials": None
        if registry is None
        else {
            "url": registry.url or "",
            "username": registry.username or "",
            "password": None,
        },
    }


def job_view(row: Any) -> dict[str, Any]:
    """One ``JobView`` from a store row (see :class:`perianctl.sandbox.store.JobRow`)."""
    view = row.view
    return {
        "id": row.id,
        "status": row.status,
        "started_at": iso(row.started_at),
        "done_at": iso(row.done_at),
        "logs": row.logs,
        "errors": row.errors,
        "price": view.get("price"),
        "docker_metadata": view.get("docker_metadata"),
        "requirement_metadata": view.get("requirement_metadata"),
        "runtime_metadata": view.get("runtime_metadata"),
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }
