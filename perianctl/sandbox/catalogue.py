"""A small built-in catalogue of instance and accelerator types, and requirement matching.

The real PERIAN catalogue is large and changes daily; the sandbox needs a stable one that covers
what clients exercise: CPU-only types, single- and multi-GPU types (T4, L4, V100, A100 40/80,
H100), seven providers in five countries, every billing granularity, a few types that are *not*
available right now, and distinct prices so "cheapest first" is observable. Ids are ``uuid5`` of
the type name, so they survive restarts and can be hard-coded in tests.

**Prices.** Each type is written down as euros per hour (``eur_per_hour``), the figure people
compare; the wire ``unit_price`` is derived from it: what *one unit of the type's billing
granularity* costs (``PriceData`` is a unit price in a granularity: the ``perian`` SDK 0.5.3's
perian/models/price_data.py). So a
``PER_SECOND`` GPU at 2.88 €/h has ``unit_price`` "0.0008", a ``PER_10_MINUTES`` one at 2.46 €/h
has "0.41", a ``PER_HOUR`` one at 2.99 €/h has "2.99". Per-hour figures are chosen so the unit
price is an exact decimal (checked at import), and billing uses :mod:`perianctl.perian.pricing`.

The magnitudes are those of the providers' public on-demand list prices as known in 2024 (rounded,
converted to EUR at about 0.92 EUR/USD, and nudged to exact unit prices). They are indicative, not
quotes, and PERIAN adds its own margin in reality:

* Google Cloud Compute Engine on-demand pricing (cloud.google.com/compute/vm-instance-pricing and
  /compute/gpus-pricing, us-central1 / europe-west3, mid-2024): e2-standard-2 ≈ $0.067/h,
  n2-standard-16 ≈ $0.78/h, n1-standard-4 + 1×T4 ≈ $0.54/h, g2-standard-8 (1×L4) ≈ $0.85/h,
  a2-highgpu-1g (1×A100 40 GB) ≈ $3.67/h, a3-highgpu-8g ≈ $88/h (≈ $11 per H100). Billed per second.
* OVHcloud Public Cloud price list (ovhcloud.com/en/public-cloud/prices, 2024): b3-8 ≈ €0.06/h,
  t1-45 (1×V100) ≈ €1.93/h, l4-90 (1×L4) ≈ €0.88/h, h100-380 (1×H100) ≈ €2.99/h, h100-760
  (2×H100) ≈ €5.98/h. Billed per started hour.
* DataCrunch (datacrunch.io/products, early 2024): 1×A100 80 GB SXM ≈ $1.75/h, 1×H100 80 GB SXM
  ≈ $2.65/h, 8×A100 ≈ 8× the single price. Billed in 10-minute increments.
* Exoscale price list (exoscale.com/pricing, 2024): Standard Small (2 vCPU, 2 GB) ≈ €0.02/h,
  Standard Large (4 vCPU, 8 GB) ≈ €0.08/h, GPU2 (1×V100) ≈ €1.37/h. Billed per second.
* Open Telekom Cloud price calculator (open-telekom-cloud.com/en/prices, 2024): s3.large.4
  (2 vCPU, 8 GB) ≈ €0.07/h. Gridscale (gridscale.io/en/prices, 2024): about €0.027 per core-hour,
  billed per minute. Taiga Cloud (taigacloud.com, 2024): A100/H100 at roughly €1.6–2.4 per GPU-hour.

Added by the sandbox to cover every granularity and accelerator (not from a provider's list):
Exoscale ``gpu-h100-1``, Gridscale ``gpu-a10-1``, DataCrunch ``1A100.40S.22V`` and ``1L40S.20V``.
That ``unit_price`` is per unit of granularity is how perian-cli 0.3.6 reads it (its
``util/currencies.py`` converts a unit price between granularities before showing € per hour).

Availability: most types are available; a few expensive ones are not (``available: false``,
source ``Provider`` or ``Provider_Quota``), so availability filters mean something. A job asking
by requirements gets the cheapest *available* match; a job naming an ``instance_type_id`` runs on
that type whatever its availability (PERIAN's fail-over rules are undocumented).

Matching follows PERIAN's instance-type search: numbers are minimums unless the sub-query carries an explicit
``operator``; accelerator names match loosely ("A100" matches ``NVIDIA_A100_40`` and
``NVIDIA_A100_80``); a price is a maximum *per hour* (a raw unit price means different things at
different granularities, and the real semantics are undocumented); ``billing_granularity``,
``type`` and ``availability.available`` are exact; fields the catalogue does not model are ignored.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import Any

from perianctl.perian.pricing import GRANULARITY_SECONDS, Rate, decimal_text, rate

_NAMESPACE = uuid.UUID("6f1d3c1e-5b2a-4c47-9d0e-7a61c0a5e5b1")
CATALOGUE_TIMESTAMP = "2025-01-01T00:00:00Z"
CURRENCY = "EUR"


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
    eur_per_hour: str  # the price people compare; ``unit_price`` is derived from it
    accelerator: AcceleratorType | None = None
    accelerators: int = 0
    storage_gb: int = 100
    kind: str = "Virtual"
    granularity: str | None = None  # PERIAN's billing granularity; default: the provider's
    available: bool = True
    availability_source: str = "Provider"

    def __post_init__(self) -> None:
        per_hour = Decimal(self.eur_per_hour)
        units_per_hour = Decimal(3600 // GRANULARITY_SECONDS[self.billing_granularity])
        if (per_hour / units_per_hour) * units_per_hour != per_hour:
            raise ValueError(f"{self.name}: {self.eur_per_hour} EUR/h is no exact {self.billing_granularity} price")

    @cached_property
    def id(self) -> str:
        return stable_id("instance", self.name)

    @property
    def threads(self) -> int:
        return self.cores * 2

    @property
    def billing_granularity(self) -> str:
        return self.granularity or self.provider.granularity

    @cached_property
    def unit_price(self) -> str:
        """What one unit of :attr:`billing_granularity` costs, as the API's decimal text."""
        units_per_hour = Decimal(3600 // GRANULARITY_SECONDS[self.billing_granularity])
        return decimal_text(Decimal(self.eur_per_hour) / units_per_hour)

    @cached_property
    def rate(self) -> Rate:
        found = rate(self.unit_price, self.billing_granularity, CURRENCY)
        assert found is not None
        return found

    @cached_property
    def per_hour(self) -> Decimal:
        return self.rate.per_hour

    def price(self) -> dict[str, Any]:
        return {
            "unit_price": self.unit_price,
            "currency": CURRENCY,
            "granularity": self.billing_granularity,
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
            "zone": {
                "id": stable_id("zone", self.region.name + "-a"),
                "name": self.region.name + "-a",
                "status": "Active",
            },
            "type": self.kind,
            "cpu": {"no": 1, "cores": self.cores, "threads": self.threads, "cpus": []},
            "accelerator": accelerator,
            "ram": {"size": str(self.ram_gb), "unit": "Gb"},
            "storage": {
                "no": 1,
                "size": {"size": str(self.storage_gb), "unit": "Gb"},
                "included": "INCLUDED",
                "storages": [{"type": "NVME", "size": {"size": str(self.storage_gb), "unit": "Gb"}}],
            },
            "network": {"inbound": {"speed": "10", "unit": "Gbits"}, "outbound": {"speed": "10", "unit": "Gbits"}},
            "price": self.price(),
            "availability": {"available": self.available, "source": self.availability_source},
            "created_at": CATALOGUE_TIMESTAMP,
            "updated_at": CATALOGUE_TIMESTAMP,
            "attributes_hash": stable_id("attributes", self.name).replace("-", ""),
        }


# --------------------------------------------------------------------------- the catalogue

T4 = AcceleratorType("NVIDIA_T4_16", "T4", "NVIDIA", 16)
L4 = AcceleratorType("NVIDIA_L4_24", "L4", "NVIDIA", 24)
V100 = AcceleratorType("NVIDIA_V100_16", "V100", "NVIDIA", 16)
A10 = AcceleratorType("NVIDIA_A10_24", "A10", "NVIDIA", 24)
L40S = AcceleratorType("NVIDIA_L40S_48", "L40S", "NVIDIA", 48)
A100_40 = AcceleratorType("NVIDIA_A100_40", "A100 40GB", "NVIDIA", 40)
A100_80 = AcceleratorType("NVIDIA_A100_80", "A100 80GB", "NVIDIA", 80)
H100 = AcceleratorType("NVIDIA_H100_80", "H100", "NVIDIA", 80)
# No H200/B200: they are new in SDK 0.5.3, and perian-cli 0.3.6 (on SDK 0.3.6) rejects a catalogue naming them.
ACCELERATOR_TYPES: tuple[AcceleratorType, ...] = (T4, L4, V100, A10, L40S, A100_40, A100_80, H100)

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
EXO_FRANKFURT = Region("de-fra-1", "Frankfurt", "DE")
BERLIN = Region("de-ber-1", "Berlin", "DE", sustainable=True)
HELSINKI = Region("FIN-01", "Helsinki", "FI", sustainable=True)
GCP_FRANKFURT = Region("europe-west3", "Frankfurt", "DE")
IOWA = Region("us-central1", "Council Bluffs", "US")

# Sorted by price per hour within each group; see the module docstring for where the figures come from.
INSTANCE_TYPES: tuple[InstanceType, ...] = (
    # CPU only: 0.02 - 0.72 EUR/h
    InstanceType("standard.small", EXOSCALE, GENEVA, cores=2, ram_gb=2, eur_per_hour="0.0216", storage_gb=50),
    InstanceType("b3-8", OVH, GRAVELINES, cores=2, ram_gb=8, eur_per_hour="0.0580"),
    InstanceType("e2-standard-2", GCP, IOWA, cores=2, ram_gb=8, eur_per_hour="0.0612"),
    InstanceType("s3.large.4", OTC, FRANKFURT, cores=2, ram_gb=8, eur_per_hour="0.0710"),
    InstanceType("standard.large", EXOSCALE, EXO_FRANKFURT, cores=4, ram_gb=8, eur_per_hour="0.0828"),
    InstanceType("cpu-8-32", GRIDSCALE, BERLIN, cores=8, ram_gb=32, eur_per_hour="0.2160"),
    InstanceType("n2-standard-4", GCP, GCP_FRANKFURT, cores=4, ram_gb=16, eur_per_hour="0.2340"),
    InstanceType("n2-standard-16", GCP, IOWA, cores=16, ram_gb=64, eur_per_hour="0.7200"),
    # small GPUs: 0.5 - 1.4 EUR/h
    InstanceType(
        "n1-standard-4-t4",
        GCP,
        GCP_FRANKFURT,
        cores=4,
        ram_gb=15,
        eur_per_hour="0.5400",
        accelerator=T4,
        accelerators=1,
    ),
    InstanceType("g2-standard-8", GCP, IOWA, cores=8, ram_gb=32, eur_per_hour="0.7920", accelerator=L4, accelerators=1),
    InstanceType("l4-90", OVH, GRAVELINES, cores=22, ram_gb=90, eur_per_hour="0.8800", accelerator=L4, accelerators=1),
    InstanceType(
        "gpu-a10-1", GRIDSCALE, BERLIN, cores=12, ram_gb=48, eur_per_hour="1.0800", accelerator=A10, accelerators=1
    ),
    InstanceType(
        "gpu2.small", EXOSCALE, GENEVA, cores=12, ram_gb=56, eur_per_hour="1.3680", accelerator=V100, accelerators=1
    ),
    InstanceType(
        "t1-45",
        OVH,
        GRAVELINES,
        cores=8,
        ram_gb=45,
        eur_per_hour="1.9300",
        accelerator=V100,
        accelerators=1,
        available=False,
    ),
    # A100: 1.2 - 4 EUR/h per GPU
    InstanceType(
        "1A100.40S.22V",
        DATACRUNCH,
        HELSINKI,
        cores=22,
        ram_gb=120,
        eur_per_hour="1.2000",
        accelerator=A100_40,
        accelerators=1,
    ),
    InstanceType(
        "a100-40-1x",
        TAIGA,
        FRANKFURT,
        cores=16,
        ram_gb=64,
        eur_per_hour="1.6000",
        accelerator=A100_40,
        accelerators=1,
        kind="Metal",
    ),
    InstanceType(
        "1A100.22V",
        DATACRUNCH,
        HELSINKI,
        cores=22,
        ram_gb=120,
        eur_per_hour="1.5900",
        accelerator=A100_80,
        accelerators=1,
    ),
    InstanceType(
        "1L40S.20V", DATACRUNCH, HELSINKI, cores=20, ram_gb=60, eur_per_hour="1.0200", accelerator=L40S, accelerators=1
    ),
    InstanceType(
        "a2-highgpu-1g", GCP, IOWA, cores=12, ram_gb=85, eur_per_hour="3.4200", accelerator=A100_40, accelerators=1
    ),
    InstanceType(
        "8A100.176V",
        DATACRUNCH,
        HELSINKI,
        cores=176,
        ram_gb=960,
        eur_per_hour="12.7200",
        accelerator=A100_80,
        accelerators=8,
        kind="Metal",
    ),
    # H100: 2 - 8 EUR/h per GPU
    InstanceType(
        "h100-1x",
        TAIGA,
        FRANKFURT,
        cores=24,
        ram_gb=200,
        eur_per_hour="2.4000",
        accelerator=H100,
        accelerators=1,
        kind="Metal",
        available=False,
        availability_source="Provider_Quota",
    ),
    InstanceType(
        "1H100.80S.30V",
        DATACRUNCH,
        HELSINKI,
        cores=30,
        ram_gb=120,
        eur_per_hour="2.4600",
        accelerator=H100,
        accelerators=1,
    ),
    InstanceType(
        "gpu-h100-1",
        EXOSCALE,
        EXO_FRANKFURT,
        cores=24,
        ram_gb=180,
        eur_per_hour="2.8800",
        accelerator=H100,
        accelerators=1,
    ),
    InstanceType(
        "h100-380", OVH, GRAVELINES, cores=30, ram_gb=380, eur_per_hour="2.9900", accelerator=H100, accelerators=1
    ),
    InstanceType(
        "h100-760", OVH, GRAVELINES, cores=60, ram_gb=760, eur_per_hour="5.9800", accelerator=H100, accelerators=2
    ),
    InstanceType(
        "a3-highgpu-1g",
        GCP,
        IOWA,
        cores=26,
        ram_gb=234,
        eur_per_hour="7.9200",
        accelerator=H100,
        accelerators=1,
        available=False,
    ),
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
    return n > 0 and any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def accelerator_name_matches(query: str, accelerator: AcceleratorType) -> bool:
    """Loose match: "A100", "a100-80gb", "NVIDIA A100", "NVIDIA_A100_80" or the display name."""
    wanted = _tokens(query)
    if not wanted:
        return True
    return _contains_run(_tokens(accelerator.name), wanted) or _contains_run(_tokens(accelerator.display_name), wanted)


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
    if not (
        _compare(itype.cores, cpu.get("cores"), op)
        and _compare(itype.threads, cpu.get("threads"), op)
        and _compare(1, cpu.get("no"), op)
    ):
        return False

    ram = _sub(query, "ram")
    if not _compare(itype.ram_gb, ram.get("size"), ram.get("operator")):
        return False

    storage = _sub(query, "storage")
    if not _compare(itype.storage_gb, storage.get("size"), storage.get("operator")):
        return False

    price = _sub(query, "price")
    if not _compare(
        float(itype.per_hour), price.get("unit_price"), price.get("operator"), default="LESS_THAN_OR_EQUAL"
    ):
        return False

    if not _text_eq(itype.billing_granularity, query.get("billing_granularity")):
        return False
    if not _text_eq(itype.kind, query.get("type")):
        return False
    available = _sub(query, "availability").get("available")
    if isinstance(available, bool) and available != itype.available:
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
    if not (
        _text_eq(itype.region.location, region.get("location"))
        and _text_eq(itype.region.name, region.get("name"))
        and _text_eq(itype.region.id, region.get("id"))
    ):
        return False
    if region.get("sustainable") is True and not itype.region.sustainable:
        return False

    provider = _sub(query, "provider")
    return (
        _text_eq(itype.provider.name_short, provider.get("name_short"))
        and _text_eq(itype.provider.name, provider.get("name"))
        and _text_eq(itype.provider.id, provider.get("id"))
    )


def search(query: Mapping[str, Any] | None, types: Iterable[InstanceType] = INSTANCE_TYPES) -> list[InstanceType]:
    """Matching instance types, cheapest per hour first (ties by name, so the order is stable)."""
    return sorted((t for t in types if instance_matches(t, query)), key=lambda t: (t.per_hour, t.name))


def cheapest_available(query: Mapping[str, Any] | None) -> InstanceType | None:
    """What a job asking by ``query`` runs on: the cheapest match that is available now."""
    return next((t for t in search(query) if t.available), None)


def search_accelerators(query: Mapping[str, Any] | None) -> list[AcceleratorType]:
    if not isinstance(query, Mapping):
        return list(ACCELERATOR_TYPES)
    return [a for a in ACCELERATOR_TYPES if accelerator_matches(a, query)]
