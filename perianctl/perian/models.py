"""Pydantic v2 models of the PERIAN Job API wire format.

Two rules from the API notes shape every model here:

* Requests are built by us, so they are precise, but they serialise with ``exclude_none`` so an
  unset optional never reaches the wire as ``null`` (PERIAN treats both alike).
* Responses come from a server we do not control, so they are lenient: unknown keys are kept,
  every field is optional, numbers-or-strings are accepted wherever the API has a union, and the
  job status is a plain string (see :mod:`perianctl.perian.status`) so a new value never crashes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from perianctl.perian.status import WorkloadStatus, parse_status

NumberOrString = str | int | float
NameValue = str | list[str]


class _Wire(BaseModel):
    """Base for every wire model: tolerate unknown keys, accept ``null`` for optional fields."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, defer_build=True)

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


class DockerMetadata(_Wire):
    docker_run_parameters: DockerRunParameters | None = None
    docker_registry_credentials: DockerRegistryCredentials | None = None


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


class GetInstanceTypesSuccess(Envelope):
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
    no: int | None = None
    accelerator_types: list[AcceleratorTypeView] = Field(default_factory=list)
    pagination: PaginationMetadata | None = None


# Exact ``detail`` strings of the real API (clients match on them; the sandbox must send them).
DETAIL_NO_JOB_FOUND = "No job found with specified ID"
DETAIL_JOB_ALREADY_DONE = "The job you are trying to cancel is already complete."
DETAIL_INCORRECT_CREATE_PARAMETER = (
    "Please either provide a specific instance type ID or requirements for the job"
)
DETAIL_INSTANCE_TYPE_NOT_FOUND = "The selected Instance Type was not found"
DETAIL_NO_INSTANCE_TYPE_FOUND = "No instance type found with specified ID"
DETAIL_NO_ACCELERATOR_TYPE_FOUND = "No accelerator type found"
DETAIL_INVALID_TOKEN = "Invalid API token"
DETAIL_ORG_NOT_FOUND = "The given organization could not be found."
MESSAGE_CLIENT_ERROR = "Operation failed due to a client error"
MESSAGE_SERVER_ERROR = "Operation failed due to a server error"
MESSAGE_SUCCESS = "Operation was successful"
MESSAGE_JOB_CREATED = "Job created successfully"
