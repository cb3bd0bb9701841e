"""A small built-in catalogue of instance and accelerator types, and requirement matching.

The real PERIAN catalogue is large and changes daily; the sandbox needs a stable one that covers
what clients exercise: CPU-only types, single- and multi-GPU types (T4, L4, A100 40/80, H100), a
few providers and countries, and distinct prices so "cheapest first" is observable. Ids are
``uuid5`` of the type name, so they survive restarts and can be hard-coded in tests.

Matching follows the API notes: numbers are minimums unless the sub-query carries an explicit
``operator``; accelerator names match loosely ("A100" matches ``NVIDIA_A100_40`` and
``NVIDIA_A100_80``); a price is a maximum; fields the catalogue does not model are ignored.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

_NAMESPACE = uuid.UUID("6f1d3c1e-5b2a-4c47-9d0e-7a61c0a5e5b1")
CATALOGUE_TIMESTAMP = "2025-01-01T00:00:00Z"


def stable_id(kind: str, name: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{name}"))


@dataclass(frozen=True)
class AcceleratorType:
    name: str  # AcceleratorName enum value, e.g. NVIDIA_A100_80
    display_name: str
    vendor: str
    memory_gb: int

    @cached_property
    def id(self) -> str:
        return stable_id("accelerator", self.name)

    def view(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "display_name": self.display_name,
            "id": self.id,
            "vendor": self.vendor,
            "memory": {"size": str(self.memory_gb), "unit": "Gb"},
        }


@dataclass(frozen=True)
class Provider:
    name: str  # ProviderName enum value
    name_short: str
    location: str
    granularity: str

    @cached_property
    def id(self) -> str:
        return stable_id("provider", self.name_short)


@dataclass(frozen=True)
class Region:
    name: str
    city: str
    location: str  # Location enum value (country code)
    sustainable: bool = False

    @cached_property
    def id(self) -> str:
        return stable_id("region", self.name)


@dataclass(frozen=True)
class InstanceType:
    name: str
    provider: Provider
    region: Region
    cores: int
    ram_gb: int
    unit_price: str  # EUR per hour, as the API's decimal text
    accelerator: AcceleratorType | None = None
    accelerators: int = 0
    storage_gb: int = 100
    kind: str = "Virtual"
    granularity: str = "PER_SECOND"

    @cached_property
    def id(self) -> str:
        return stable_id("instance", self.name)

    @property
    def threads(self) -> int:
        return self.cores * 2

    @cached_property
    def price_value(self) -> float:
        return float(self.unit_price)

    def price(self) -> dict[str, Any]:
        return {
            "unit_price": self.unit_price,
            "currency": "EUR",
            "granularity": self.granularity,
            "provider_billing_granularity": self.provider.granularity,
        }

    def view(self) -> dict[str, Any]:
        """The ``InstanceTypeView`` wire shape (every size and price a string, exact enums)."""
        provider = self.provider
        region = {
            "id": self.region.id,
            "name": self.region.name,
            "city": self.region.city,
            "location": self.region.location,
            "sustainable": self.region.sustainable,
            "status": "Active",
            "zones": [],
        }
        accelerator: dict[str, Any] = {"no": self.accelerators, "accelerator_types": []}
        if self.accelerator is not None:
            accelerator["memory"] = {"size": str(self.accelerator.memory_gb * self.accelerators), "unit": "Gb"}
            accelerator["accelerator_types"] = [self.accelerator.view()]
        return {
            "id": self.id,
            "name": self.name,
            "provider": {
                "id": provider.id,
                "name": provider.name,
                "name_short": provider.name_short,
                "location": provider.location,
                "status": "Active",
                "capabilities": ["PricingAPI", "JobAPI"],
                "properties": {"compute_billing_granularity": provider.granularity},
                "created_at": CATALOGUE_TIMESTAMP,
                "updated_at": CATALOGUE_TIMESTAMP,
            },
            "region": region,
            "zone": {"id": stable_id("zone", self.region.name + "-a"), "name": self.region.name + "-a",
                     "status": "Active"},
            "type": self.kind,
            "cpu": {"no": 1, "cores": self.cores, "threads": self.threads, "cpus": []},
            "accelerator": accelerator,
            "ram": {"size": str(self.ram_gb), "unit": "Gb"},
            "storage": {"no": 1, "size": {"size": str(self.storage_gb), "unit": "Gb"}, "included": "INCLUDED",
                        "storages": [{"type": "NVME", "size": {"size": str(self.storage_gb), "unit": "Gb"}}]},
            "network": {"inbound": {"speed": "10", "unit": "Gbits"}, "outbound": {"speed": "10", "unit": "Gbits"}},
            "price": self.price(),
            "availability": {"available": True, "source": "Provider"},
            "created_at": CATALOGUE_TIMESTAMP,
            "updated_at": CATALOGUE_TIMESTAMP,
            "attributes_hash": stable_id("attributes", self.name).replace("-", ""),
        }


# --------------------------------------------------------------------------- the catalogue

T4 = AcceleratorType("NVIDIA_T4_16", "T4", "NVIDIA", 16)
L4 = AcceleratorType("NVIDIA_L4_24", "L4", "NVIDIA", 24)
A100_40 = AcceleratorType("NVIDIA_A100_40", "A100 40GB", "NVIDIA", 40)
A100_80 = AcceleratorType("NVIDIA_A100_80", "A100 80GB", "NVIDIA", 80)
H100 = AcceleratorType("NVIDIA_H100_80", "H100", "NVIDIA", 80)
V100 = AcceleratorType("NVIDIA_V100_16", "V100", "NVIDIA", 16)
ACCELERATOR_TYPES: tuple[AcceleratorType, ...] = (T4, L4, A100_40, A100_80, H100, V100)

OVH = Provider("OVH Cloud", "ovh", "FR", "PER_HOUR")
OTC = Provider("Open Telekom Cloud", "otc", "DE", "PER_HOUR")
EXOSCALE = Provider("Exoscale", "exoscale", "CH", "PER_SECOND")
GRIDSCALE = Provider("Gridscale", "gridscale", "DE", "PER_MINUTE")
DATACRUNCH = Provider("DataCrunch", "datacrunch", "FI", "PER_10_MINUTES")
TAIGA = Provider("Taiga Cloud", "taiga", "DE", "PER_HOUR")
GCP = Provider("Google Cloud Platform", "gcp", "US", "PER_SECOND")

GRAVELINES = Region("GRA11", "Gravelines", "FR")
FRANKFURT = Region("eu-de", "Frankfurt", "DE", sustainable=True)
GENEVA = Region("ch-gva-2", "Geneva", "CH", sustainable=True)
BERLIN = Region("de-ber-1", "Berlin", "DE", sustainable=True)
HELSINKI = Region("FIN-01", "Helsinki", "FI", sustainable=True)
GCP_FRANKFURT = Region("europe-west3", "Frankfurt", "DE")
IOWA = Region("us-central1", "Council Bluffs", "US")

INSTANCE_TYPES: tuple[InstanceType, ...] = (
    InstanceType("b3-8", OVH, GRAVELINES, cores=2, ram_gb=8, unit_price="0.0580"),
    InstanceType("s3.large.4", OTC, FRANKFURT, cores=2, ram_gb=8, unit_price="0.0710"),
    InstanceType("standard.large", EXOSCALE, GENEVA, cores=4, ram_gb=8, unit_price="0.0890"),
    InstanceType("cpu-8-32", GRIDSCALE, BERLIN, cores=8, ram_gb=32, unit_price="0.2150"),
    InstanceType("n2-standard-16", GCP, IOWA, cores=16, ram_gb=64, unit_price="0.7770"),
    InstanceType("n1-standard-4-t4", GCP, GCP_FRANKFURT, cores=4, ram_gb=15, unit_price="0.4450",
                 accelerator=T4, accelerators=1),
    InstanceType("g2-standard-8", GCP, IOWA, cores=8, ram_gb=32, unit_price="0.8540",
                 accelerator=L4, accelerators=1),
    InstanceType("t2-45", OVH, GRAVELINES, cores=8, ram_gb=45, unit_price="0.8800",
                 accelerator=V100, accelerators=1),
    InstanceType("a100-40-1x", TAIGA, FRANKFURT, cores=16, ram_gb=64, unit_price="1.1000",
                 accelerator=A100_40, accelerators=1, kind="Metal"),
    InstanceType("1A100.22V", DATACRUNCH, HELSINKI, cores=22, ram_gb=120, unit_price="1.2900",
                 accelerator=A100_80, accelerators=1),
    InstanceType("1H100.80S.30V", DATACRUNCH, HELSINKI, cores=30, ram_gb=120, unit_price="2.1900",
                 accelerator=H100, accelerators=1),
    InstanceType("h100-380", OVH, GRAVELINES, cores=60, ram_gb=380, unit_price="5.9800",
                 accelerator=H100, accelerators=2),
    InstanceType("8A100.176V", DATACRUNCH, HELSINKI, cores=176, ram_gb=960, unit_price="10.3200",
                 accelerator=A100_80, accelerators=8, kind="Metal"),
)

_BY_ID = {t.id: t for t in INSTANCE_TYPES}
_ACCEL_BY_ID = {a.id: a for a in ACCELERATOR_TYPES}


def instance_type_by_id(type_id: str) -> InstanceType | None:
    return _BY_ID.get(str(type_id).strip().lower())


def accelerator_type_by_id(type_id: str) -> AcceleratorType | None:
    return _ACCEL_BY_ID.get(str(type_id).strip().lower())


# --------------------------------------------------------------------------- matching helpers

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "EQUALS": lambda have, want: have == want,
    "INCLUDES": lambda have, want: have >= want,
    "UNDEFINED": lambda have, want: have >= want,
    "LESS_THAN": lambda have, want: have < want,
    "LESS_THAN_OR_EQUAL": lambda have, want: have <= want,
    "GREATER_THAN": lambda have, want: have > want,
    "GREATER_THAN_OR_EQUAL": lambda have, want: have >= want,
}


def to_number(value: Any) -> float | None:
    """A number from a JSON number or numeric text; ``None`` for anything else (ignored criterion)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    else:
        try:
            number = float(str(value).strip())
        except ValueError:
            return None
    return number if math.isfinite(number) else None


def _compare(have: float, want: Any, operator: Any, *, default: str = "GREATER_THAN_OR_EQUAL") -> bool:
    wanted = to_number(want)
    if wanted is None:
        return True
    op = _OPERATORS.get(str(operator).upper()) if operator else None
    return (op or _OPERATORS[default])(float(have), wanted)


def _tokens(text: str) -> list[str]:
    parts = [p for p in re.split(r"[^A-Z0-9]+", text.upper()) if p]
    return [re.sub(r"(?<=\d)GB$", "", p) for p in parts]


def _contains_run(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return n > 0 and any(haystack[i:i + n] == needle for i in range(len(haystack) - n + 1))


def accelerator_name_matches(query: str, accelerator: AcceleratorType) -> bool:
    """Loose match: "A100", "a100-80gb", "NVIDIA A100", "NVIDIA_A100_80" or the display name."""
    wanted = _tokens(query)
    if not wanted:
        return True
    return _contains_run(_tokens(accelerator.name), wanted) or _contains_run(
        _tokens(accelerator.display_name), wanted
    )


def _names(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        return [str(v) for v in value if v is not None and str(v).strip()]
    return [str(value)]


def known_accelerator_name(query: str) -> bool:
    return any(accelerator_name_matches(query, a) for a in ACCELERATOR_TYPES)


def unknown_accelerator_names(requirements: Mapping[str, Any] | None) -> list[str]:
    """Accelerator names in ``requirements`` that match no accelerator type at all."""
    accel = _sub(requirements, "accelerator")
    return [name for name in _names(accel.get("name")) if not known_accelerator_name(name)]


def _sub(query: Mapping[str, Any] | None, key: str) -> Mapping[str, Any]:
    value = query.get(key) if isinstance(query, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def _text_eq(have: str, want: Any) -> bool:
    """Case-insensitive equality; an absent or blank wanted value matches anything."""
    if want is None or isinstance(want, (dict, list)):
        return want is None or not want
    text = str(want).strip()
    return not text or have.lower() == text.lower()


def accelerator_matches(accelerator: AcceleratorType, query: Mapping[str, Any]) -> bool:
    """Does one accelerator type satisfy an ``AcceleratorQueryInput``/``AcceleratorTypeQuery``?"""
    names = _names(query.get("name"))
    if names and not any(accelerator_name_matches(n, accelerator) for n in names):
        return False
    if query.get("id") is not None and str(query.get("id")).lower() != accelerator.id:
        return False
    if not _text_eq(accelerator.vendor, query.get("vendor")):
        return False
    memory = _sub(query, "memory")
    return _compare(accelerator.memory_gb, memory.get("size"), memory.get("operator"))


def instance_matches(itype: InstanceType, query: Mapping[str, Any] | None) -> bool:
    """Does ``itype`` satisfy an ``InstanceTypeQueryInput`` (a job's ``requirements``)?"""
    if not isinstance(query, Mapping):
        return True
    if query.get("id") is not None and str(query["id"]).lower() != itype.id:
        return False
    if isinstance(query.get("name"), str) and query["name"].strip() and query["name"].strip() != itype.name:
        return False

    cpu = _sub(query, "cpu")
    op = cpu.get("operator")
    if not (_compare(itype.cores, cpu.get("cores"), op) and _compare(itype.threads, cpu.get("threads"), op)
            and _compare(1, cpu.get("no"), op)):
        return False

    ram = _sub(query, "ram")
    if not _compare(itype.ram_gb, ram.get("size"), ram.get("operator")):
        return False

    storage = _sub(query, "storage")
    if not _compare(itype.storage_gb, storage.get("size"), storage.get("operator")):
        return False

    price = _sub(query, "price")
    if not _compare(itype.price_value, price.get("unit_price"), price.get("operator"),
                    default="LESS_THAN_OR_EQUAL"):
        return False

    accel = _sub(query, "accelerator")
    if accel:
        wants_named = bool(_names(accel.get("name")) or accel.get("vendor") or _sub(accel, "memory"))
        count = accel.get("no")
        if wants_named and to_number(count) is None:
            count = 1
        if not _compare(itype.accelerators, count, accel.get("operator")):
            return False
        if wants_named and (itype.accelerator is None or not accelerator_matches(itype.accelerator, accel)):
            return False

    region = _sub(query, "region")
    if not (_text_eq(itype.region.location, region.get("location")) and _text_eq(itype.region.name, region.get("name"))
            and _text_eq(itype.region.id, region.get("id"))):
        return False
    if region.get("sustainable") is True and not itype.region.sustainable:
        return False

    provider = _sub(query, "provider")
    return (_text_eq(itype.provider.name_short, provider.get("name_short"))
            and _text_eq(itype.provider.name, provider.get("name"))
            and _text_eq(itype.provider.id, provider.get("id")))


def search(query: Mapping[str, Any] | None, types: Iterable[InstanceType] = INSTANCE_TYPES) -> list[InstanceType]:
    """Matching instance types, cheapest first (ties by name, so the order is stable)."""
    return sorted((t for t in types if instance_matches(t, query)), key=lambda t: (t.price_value, t.name))


def search_accelerators(query: Mapping[str, Any] | None) -> list[AcceleratorType]:
    if not isinstance(query, Mapping):
        return list(ACCELERATOR_TYPES)
    return [a for a in ACCELERATOR_TYPES if accelerator_matches(a, query)]
