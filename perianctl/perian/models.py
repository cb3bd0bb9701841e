"""Pydantic v2 models of the PERIAN Job API wire format.

Two rules from how PERIAN and its SDK (``perian`` 0.5.3, perian/models/) treat the wire shape every
model here:

* Requests are built by us, so they are precise, but they serialise with ``exclude_none`` so an
  unset optional never reaches the wire as ``null`` (PERIAN treats both alike).
* Responses come from a server we do not control, so they are lenient: unknown keys are kept,
  every field is optional, numbers-or-strings are accepted wherever the API has a union, a number
  is read as text where text is expected, secrets the service nulls (``password: null``) are
  simply absent, and the job status is a plain string (see :mod:`perianctl.perian.status`) so a
  new value never crashes.
* What is still unreadable degrades **one item**, never the answer: :func:`parse_response` reads a
  list's items one by one, drops from an item only the parts that cannot be read (keeping the
  rest) and reports them as :class:`Unreadable`; an item that is not an object at all is skipped
  and reported. One odd job must never break ``list``, ``get``, ``watch`` or the connector's
  idempotency look-up.
"""

# No ``from __future__ import annotations`` here: pydantic would have to evaluate every field's
# annotation from its text while building the classes, ~20% of this module's import time.

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from perianctl.perian.status import WorkloadStatus, parse_status

NumberOrString = str | int | float
NameValue = str | list[str]


class _Wire(BaseModel):
    """Base for every wire model: tolerate unknown keys, accept ``null`` for optional fields."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, defer_build=True, coerce_numbers_to_str=True)

    def to_wire(self) -> dict[str, Any]:
        """The JSON body to send: no ``None`` values, defaults (``all: false``) kept."""
        return self.model_dump(mode="json", exclude_none=True)


# --------------------------------------------------------------------------- requirements (query)


class QueryOptions(_Wire):
    limit: int | None = None
    offset: int | None = None
    order: str | None = None
    lazy_loading: bool | None = None


class _Query(_Wire):
    operator: str | None = None
    options: QueryOptions | None = None


class CpuQueryInput(_Query):
    all: bool = False
    no: int | None = None
    cores: int | None = None
    threads: int | None = None
    speed: NumberOrString | None = None


class MemoryQueryInput(_Query):
    all: bool = False
    size: NumberOrString | None = None


class AcceleratorQueryInput(_Query):
    no: int | None = None
    memory: MemoryQueryInput | None = None
    vendor: str | None = None
    name: NameValue | None = None
    description: NameValue | None = None
    provider_specific_name: dict[str, Any] | None = None


class RegionQueryInput(_Query):
    id: str | None = None
    name: str | None = None
    location: str | None = None
    sustainable: bool | None = None
    status: str | None = None


class ProviderQueryInput(_Query):
    id: str | None = None
    name: str | None = None
    name_short: str | None = None
    location: str | None = None
    status: str | None = None


class ZoneQueryInput(_Query):
    id: str | None = None
    name: str | None = None
    status: str | None = None


class StorageQueryInput(_Query):
    all: bool = False
    no: int | None = None
    size: NumberOrString | None = None
    type: str | None = None
    speed: NumberOrString | None = None
    included: str | None = None


class NetworkQueryInput(_Query):
    all: bool = False
    inbound_speed: NumberOrString | None = None
    outbound_speed: NumberOrString | None = None


class PriceQueryInput(_Query):
    all: bool = False
    unit_price: NumberOrString | None = None


class AvailabilityQueryInput(_Query):
    all: bool = False
    available: bool | None = None


class InstanceTypeQueryInput(_Query):
    """``requirements`` of a job, and the body of an instance-type search."""

    all: bool = False
    id: str | None = None
    region: RegionQueryInput | None = None
    zone: ZoneQueryInput | None = None
    name: str | None = None
    cpu: CpuQueryInput | None = None
    accelerator: AcceleratorQueryInput | None = None
    ram: MemoryQueryInput | None = None
    storage: StorageQueryInput | None = None
    network: NetworkQueryInput | None = None
    price: PriceQueryInput | None = None
    availability: AvailabilityQueryInput | None = None
    type: str | None = None
    billing_granularity: str | None = None
    provider: ProviderQueryInput | None = None
    reference_id: dict[str, Any] | None = None
    attributes_hash: str | None = None


# --------------------------------------------------------------------------- job creation


class OSStorageConfig(_Wire):
    size: int | None = None


class ContainerFile(_Wire):
    path: str
    read_only: bool = False
    base64_content: str


class DockerRunParameters(_Wire):
    image_name: str = ""
    image_tag: str | None = None
    command: str | None = None
    env_variables: dict[str, Any] | None = None
    secrets: dict[str, Any] | None = None
    container_files: list[ContainerFile] | None = None


class DockerRegistryCredentials(_Wire):
    url: str = ""
    username: str = ""
    password: str = ""


class CreateJobRequest(_Wire):
    """Body of ``POST /job``. Either ``instance_type_id`` or ``requirements`` must be set."""

    instance_type_id: str | None = None
    auto_failover_instance_type: bool = True
    timeout_seconds: int | None = None
    os_storage_config: OSStorageConfig | None = None
    requirements: InstanceTypeQueryInput | None = None
    docker_run_parameters: DockerRunParameters = Field(default_factory=DockerRunParameters)
    docker_registry_credentials: DockerRegistryCredentials | None = None

    def with_env(
        self,
        *,
        under: Mapping[str, str] | None = None,
        over: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> "CreateJobRequest":
        """A copy with more container variables: ``under`` yields to the request's own env (a
        Flyte execution's env below the template's), ``over`` wins over it (bookkeeping such as the
        idempotency key), ``secrets`` win over its secrets (``submit --secret-env`` over
        ``--storage-credentials``). The one place a request's env and secrets are merged; nothing
        given returns the request itself, so an unset field stays unset on the wire.
        """
        params = self.docker_run_parameters
        update: dict[str, Any] = {}
        if under or over:
            update["env_variables"] = {**(under or {}), **(params.env_variables or {}), **(over or {})}
        if secrets:
            update["secrets"] = {**(params.secrets or {}), **secrets}
        if not update:
            return self
        return self.model_copy(update={"docker_run_parameters": params.model_copy(update=update)})


# --------------------------------------------------------------------------- envelopes and views


class Envelope(_Wire):
    """The flat envelope every success and (non-422) error body carries."""

    status: str | None = None
    message: str | None = None
    detail: Any = None
    status_code: int | None = None


class PriceData(_Wire):
    unit_price: str | None = None
    currency: str | None = None
    granularity: str | None = None
    provider_billing_granularity: str | None = None

    @field_validator("unit_price", mode="before")
    @classmethod
    def _decimal_as_text(cls, value: Any) -> Any:
        return None if value is None else str(value)


class ContainerFileView(_Wire):
    """A container file as the API echoes it: the service may null the content (a secret)."""

    path: str | None = None
    read_only: bool | None = None
    base64_content: str | None = None


class DockerRunParametersView(DockerRunParameters):
    """The echoed container settings; anything may be null or missing."""

    image_name: str = ""
    container_files: list[ContainerFileView] | None = None  # type: ignore[assignment]

    @field_validator("image_name", mode="before")
    @classmethod
    def _null_name(cls, value: Any) -> Any:
        return "" if value is None else value


class RegistryCredentialsView(_Wire):
    """Echoed registry credentials: the real service nulls the password (and may null the rest)."""

    url: str | None = None
    username: str | None = None
    password: str | None = None


class DockerMetadata(_Wire):
    docker_run_parameters: DockerRunParametersView | None = None
    docker_registry_credentials: RegistryCredentialsView | None = None


class RequirementMetadata(_Wire):
    os_storage_config: OSStorageConfig | None = None
    requirements: dict[str, Any] | None = None


class RuntimeMetadata(_Wire):
    instance_type_id: str | None = None
    auto_failover_instance_type: bool | None = None
    timeout_seconds: int | None = None


class JobView(_Wire):
    """One job as the API reports it. ``status`` stays a string; use :attr:`workload_status`."""

    id: str | None = None
    status: str = WorkloadStatus.UNDEFINED.value
    started_at: datetime | None = None
    done_at: datetime | None = None
    logs: str | None = None
    errors: str | None = None
    price: PriceData | None = None
    docker_metadata: DockerMetadata | None = None
    requirement_metadata: RequirementMetadata | None = None
    runtime_metadata: RuntimeMetadata | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _status_text(cls, value: Any) -> Any:
        return WorkloadStatus.UNDEFINED.value if value is None else str(value)

    @property
    def workload_status(self) -> WorkloadStatus | None:
        """The status as an enum, or ``None`` if the server sent a value we do not know."""
        return parse_status(self.status)

    @property
    def image(self) -> str | None:
        params = self.docker_metadata.docker_run_parameters if self.docker_metadata else None
        if params is None or not params.image_name:
            return None
        return f"{params.image_name}:{params.image_tag}" if params.image_tag else params.image_name


class PaginationMetadata(_Wire):
    total_items: int = 0
    items_per_page: int = 25
    current_page: int = 1
    total_pages: int = 1
    next_page: int | None = None
    previous_page: int | None = None


class CreateJobSuccess(Envelope):
    id: str


class GetJobsSuccess(Envelope):
    items_field: ClassVar[str] = "jobs"
    limit: int | None = None
    no: int | None = None
    jobs: list[JobView] = Field(default_factory=list)
    pagination: PaginationMetadata | None = None


class InstanceTypeView(_Wire):
    """An instance type; only the fields perianctl displays are typed, the rest are kept as-is."""

    id: str | None = None
    name: str | None = None
    provider: dict[str, Any] | None = None
    region: dict[str, Any] | None = None
    zone: dict[str, Any] | None = None
    type: str | None = None
    cpu: dict[str, Any] | None = None
    accelerator: dict[str, Any] | None = None
    ram: dict[str, Any] | None = None
    storage: dict[str, Any] | None = None
    network: dict[str, Any] | None = None
    price: PriceData | None = None
    availability: dict[str, Any] | None = None

    @property
    def provider_name(self) -> str | None:
        """The provider's display name (``OVH Cloud``), else its short name."""
        provider = self.provider or {}
        return _text(provider.get("name")) or _text(provider.get("name_short"))

    @property
    def location(self) -> str | None:
        """The region's country code (``DE``)."""
        return _text((self.region or {}).get("location"))

    @property
    def region_name(self) -> str | None:
        return _text((self.region or {}).get("name"))

    @property
    def cores(self) -> int | None:
        return _int((self.cpu or {}).get("cores"))

    @property
    def ram_gb(self) -> float | None:
        """RAM in GB (the API sends the size as text with a ``unit``; Mb/Kb are converted)."""
        ram = self.ram or {}
        size = _number(ram.get("size"))
        if size is None:
            return None
        unit = str(ram.get("unit") or "Gb").lower()
        return size / 1024 if unit == "mb" else size / 1024 / 1024 if unit == "kb" else size

    @property
    def accelerator_count(self) -> int:
        return _int((self.accelerator or {}).get("no")) or 0

    @property
    def accelerator_names(self) -> list[str]:
        """Accelerator type names (``NVIDIA_A100_80``) of the type's GPUs; empty for CPU-only types."""
        kinds = (self.accelerator or {}).get("accelerator_types") or []
        return [str(k["name"]) for k in kinds if isinstance(k, dict) and k.get("name")]

    @property
    def available(self) -> bool | None:
        """Whether the provider can give one now (``None`` when the API did not say)."""
        value = (self.availability or {}).get("available")
        return value if isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return str(value) if value is not None and str(value).strip() else None


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _int(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


class GetInstanceTypesSuccess(Envelope):
    items_field: ClassVar[str] = "instance_types"
    limit: int | None = None
    no: int | None = None
    instance_types: list[InstanceTypeView] = Field(default_factory=list)
    pagination: PaginationMetadata | None = None


class AcceleratorTypeView(_Wire):
    id: str | None = None
    name: str | None = None
    display_name: str | None = None
    vendor: str | None = None
    memory: dict[str, Any] | None = None


class GetAcceleratorTypesSuccess(Envelope):
    items_field: ClassVar[str] = "accelerator_types"
    no: int | None = None
    accelerator_types: list[AcceleratorTypeView] = Field(default_factory=list)
    pagination: PaginationMetadata | None = None


# --------------------------------------------------------------------------- lenient reading

_W = TypeVar("_W", bound=BaseModel)
_DROP = object()
_MAX_ROUNDS = 8


@dataclass(frozen=True)
class Unreadable:
    """Part of an answer that could not be read: ``fields`` were dropped from ``item`` (a label
    such as ``job <id>`` or ``jobs[3]``), or the whole item was ``skipped``. Messages name fields
    and what was wrong, never the values (they may be secrets)."""

    item: str
    fields: tuple[str, ...] = ()
    skipped: bool = False

    def describe(self) -> str:
        if self.skipped:
            return f"{self.item}: {', '.join(self.fields) or 'unreadable'}; skipped"
        return f"{self.item}: could not read {', '.join(self.fields)}; showing the rest"


def _drop_at(data: Any, loc: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """Replace the deepest existing node on ``loc`` with the drop marker; the path dropped, or None."""
    node: Any = data
    path: tuple[Any, ...] = ()
    for step in loc:
        in_dict = isinstance(node, dict) and isinstance(step, str) and step in node
        in_list = isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node)
        if not (in_dict or in_list):
            break  # a union tag ('str', 'int'), or a missing key: the node itself is what is unreadable
        node, path = node[step], (*path, step)
    if not path:
        return None
    container = data
    for key in path[:-1]:
        container = container[key]
    if container[path[-1]] is _DROP:
        return None
    container[path[-1]] = _DROP
    return path


def _purge(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _purge(v) for k, v in data.items() if v is not _DROP}
    if isinstance(data, list):
        return [_purge(v) for v in data if v is not _DROP]
    return data


def _copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_copy(v) for v in data]
    return data


def validate_leniently(model: type[_W], data: dict[str, Any]) -> tuple[_W, tuple[str, ...]]:
    """``model`` from ``data``, dropping the parts that do not validate; the dropped paths with why.

    Raises ``ValidationError`` only when nothing sensible is left (a required top-level field).
    """
    try:
        return model.model_validate(data), ()
    except ValidationError as exc:
        error = exc
    work = _copy(data)
    dropped: list[str] = []
    for _ in range(_MAX_ROUNDS):
        progressed = False
        for item in error.errors(include_url=False, include_input=False):
            path = _drop_at(work, tuple(item.get("loc", ())))
            if path is not None:
                progressed = True
                dropped.append(f"{'.'.join(str(p) for p in path)} ({item.get('msg', 'invalid')})")
        if not progressed:
            break
        work = _purge(work)
        try:
            return model.model_validate(work), tuple(dropped)
        except ValidationError as exc:
            error = exc
    raise error


def _label(item: Any, index: int, field: str) -> str:
    ident = item.get("id") if isinstance(item, dict) else None
    noun = {"jobs": "job", "instance_types": "instance type", "accelerator_types": "accelerator type"}.get(field)
    if noun and isinstance(ident, (str, int)) and not isinstance(ident, bool) and str(ident).isprintable():
        return f"{noun} {str(ident)[:80]}"
    return f"{field}[{index}]"


def parse_response(model: type[_W], payload: dict[str, Any]) -> tuple[_W, list[Unreadable]]:
    """Read an answer leniently (module docstring): one odd item never costs the others.

    Raises ``ValidationError`` only when the envelope itself is unusable (e.g. a create answer
    without an ``id``, or ``jobs`` that is not a list).
    """
    problems: list[Unreadable] = []
    field = getattr(model, "items_field", None)
    data = dict(payload)
    raw_items: Any = data.pop(field, None) if field else None
    envelope, dropped = validate_leniently(model, data)
    if dropped:
        problems.append(Unreadable("the answer", dropped))
    if field is None:
        return envelope, problems
    if raw_items is not None and not isinstance(raw_items, list):
        model.model_validate(payload)  # no list to degrade item by item: the answer is not PERIAN's shape
    item_model = model.model_fields[field].annotation.__args__[0]  # type: ignore[union-attr]
    items = []
    for index, raw in enumerate(raw_items or []):
        label = _label(raw, index, field)
        if not isinstance(raw, dict):
            problems.append(Unreadable(label, (f"not an object but {type(raw).__name__}",), skipped=True))
            continue
        try:
            item, lost = validate_leniently(item_model, raw)
        except ValidationError:
            problems.append(Unreadable(label, ("no readable fields",), skipped=True))
            continue
        if lost:
            problems.append(Unreadable(label, lost))
        items.append(item)
    setattr(envelope, field, items)
    return envelope, problems


# --------------------------------------------------------------------------- billing


def _amount_text(value: Any) -> Any:
    """Billing amounts are decimal text; a number from a lax server is kept as its text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


class BillItem(_Wire):
    """One workload on a bill: ``price`` in the bill's currency, ``original_price`` in the workload's."""

    workload_id: str | None = None
    price: str | None = None
    currency: str | None = None
    original_price: str | None = None
    original_currency: str | None = None
    exchange_rate: str | None = None
    granularity: str | None = None
    workload_type: str | None = None
    started_at: datetime | None = None
    done_at: datetime | None = None

    _amounts = field_validator("price", "original_price", "exchange_rate", mode="before")(_amount_text)


class Bill(_Wire):
    """``GET /billing/generate``: the organization's bill for a window (no envelope on this one)."""

    items_field: ClassVar[str] = "items"
    organization_id: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    total_price: str | None = None
    currency: str | None = None
    margin_multiplier: str | None = None
    items: list[BillItem] = Field(default_factory=list)

    _amounts = field_validator("total_price", "margin_multiplier", mode="before")(_amount_text)


class RemainingCredits(Envelope):
    """``GET /billing/remaining-credits``: ``current_amount`` left of ``original_amount``."""

    current_amount: str | None = None
    currency: str | None = None
    original_amount: str | None = None
    last_calculated: str | None = None

    _amounts = field_validator("current_amount", "original_amount", mode="before")(_amount_text)


class UsageLimit(_Wire):
    """A usage limit and, when listed, what was used in its current period (``usage``)."""

    start_time: datetime | None = None
    end_time: datetime | None = None
    amount: str | None = None
    currency: str | None = None
    duration_type: str | None = None
    is_enabled: bool | None = None
    usage: str | None = None

    _amounts = field_validator("amount", "usage", mode="before")(_amount_text)


class UsageLimitRequest(_Wire):
    """Body of ``PUT /billing/limit``. ``duration_type``: Day, Week, Month or Year."""

    limit: str
    currency: str = "EUR"
    duration_type: str = "Month"
    is_enabled: bool = True


class GetUsageLimitsSuccess(Envelope):
    items_field: ClassVar[str] = "usage_limits"
    usage_limits: list[UsageLimit] = Field(default_factory=list)


class SetUsageLimitSuccess(Envelope):
    usage_limit: UsageLimit | None = None


class CreditTopUpSuccess(Envelope):
    payment_url: str | None = None


DURATION_TYPES = ("Day", "Week", "Month", "Year")
"""``DurationType`` values of a usage limit."""

# Exact ``detail`` strings of the real API (clients match on them; the sandbox must send them).
DETAIL_NO_JOB_FOUND = "No job found with specified ID"
DETAIL_JOB_ALREADY_DONE = "The job you are trying to cancel is already complete."
DETAIL_INCORRECT_CREATE_PARAMETER = "Please either provide a specific instance type ID or requirements for the job"
DETAIL_INSTANCE_TYPE_NOT_FOUND = "The selected Instance Type was not found"
DETAIL_NO_INSTANCE_TYPE_FOUND = "No instance type found with specified ID"
DETAIL_NO_ACCELERATOR_TYPE_FOUND = "No accelerator type found"
DETAIL_INVALID_TOKEN = "Invalid API token"
DETAIL_ORG_NOT_FOUND = "The given organization could not be found."
DETAIL_INSUFFICIENT_CREDITS = "You have insufficient credits to create a new Job."
"""The sandbox's wording; the real API's model says "... a new Inference Services." (clients match "insufficient")."""
MESSAGE_CLIENT_ERROR = "Operation failed due to a client error"
MESSAGE_SERVER_ERROR = "Operation failed due to a server error"
MESSAGE_SUCCESS = "Operation was successful"
MESSAGE_JOB_CREATED = "Job created successfully"
