"""Pieces of the sandbox that need no server: echo, catalogue, log buffer, config.

The embedded server is in tests/integration/test_sandbox_units.py.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import perian
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perianctl.sandbox import catalogue, wire
from perianctl.sandbox.config import FaultConfig, SandboxConfig, SimTimings
from perianctl.sandbox.runtimes.process import JobSetupError, LogBuffer, container_path_on_host

# --------------------------------------------------------------------------- requirements echo

_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.lists(st.text(max_size=3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_keys = st.sampled_from(
    [
        "all",
        "no",
        "cores",
        "threads",
        "speed",
        "size",
        "name",
        "vendor",
        "location",
        "status",
        "id",
        "operator",
        "options",
        "memory",
        "type",
        "inbound_speed",
        "unit_price",
        "available",
        "sustainable",
        "description",
        "junk",
    ]
)
_sub = st.dictionaries(_keys, st.one_of(_scalar, st.dictionaries(_keys, _scalar, max_size=3)), max_size=6)
_requirements = st.dictionaries(
    st.sampled_from(
        [
            "all",
            "id",
            "region",
            "zone",
            "name",
            "cpu",
            "accelerator",
            "ram",
            "storage",
            "network",
            "price",
            "availability",
            "type",
            "billing_granularity",
            "provider",
            "reference_id",
            "attributes_hash",
            "operator",
            "options",
            "unknown",
        ]
    ),
    st.one_of(_scalar, _sub),
    max_size=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_requirements)
def test_echoed_requirements_always_parse_in_the_sdk(requirements: dict[str, Any]) -> None:
    echoed = wire.echo_requirements(requirements)
    assert echoed is not None
    perian.InstanceTypeQueryOutput.from_dict(echoed)  # raises on anything the SDK would reject


def test_echo_stringifies_sizes_and_keeps_names() -> None:
    echoed = wire.echo_requirements(
        {
            "ram": {"size": 8},
            "storage": {"size": 50.0, "speed": 1.5},
            "cpu": {"cores": "4", "speed": 3},
            "accelerator": {"name": ["A100", "H100"], "memory": {"size": 80}, "no": 2.0},
            "price": {"unit_price": 1.25},
            "network": {"inbound_speed": 10},
            "reference_id": "ref-1",
            "options": {"order": "price", "limit": 3},
            "operator": "equals",
        }
    )
    assert echoed == {
        "operator": "EQUALS",
        "options": {"limit": 3, "order": "PRICE"},
        "cpu": {"cores": 4, "speed": "3"},
        "accelerator": {"no": 2, "memory": {"size": "80"}, "name": ["A100", "H100"]},
        "ram": {"size": "8"},
        "storage": {"size": "50", "speed": "1.5"},
        "network": {"inbound_speed": "10"},
        "price": {"unit_price": "1.25"},
        "reference_id": {"id": "ref-1"},
    }
    assert wire.echo_requirements(None) is None


# --------------------------------------------------------------------------- catalogue


def test_catalogue_views_parse_in_the_sdk() -> None:
    ids = set()
    for itype in catalogue.INSTANCE_TYPES:
        view = perian.InstanceTypeView.from_dict(itype.view())
        assert view is not None and view.price is not None
        assert view.id == itype.id and view.price.unit_price == itype.unit_price
        assert view.availability is not None and view.availability.available is itype.available
        ids.add(itype.id)
    assert len(ids) == len(catalogue.INSTANCE_TYPES) >= 12
    for accelerator in catalogue.ACCELERATOR_TYPES:
        parsed = perian.AcceleratorTypeView.from_dict(accelerator.view())
        assert parsed is not None and parsed.name is not None and parsed.name.value == accelerator.name
    providers = {t.provider.name_short for t in catalogue.INSTANCE_TYPES}
    assert len(providers) >= 4 and any(t.accelerator is None for t in catalogue.INSTANCE_TYPES)


@pytest.mark.parametrize(
    "query, expected",
    [
        ("A100", {"NVIDIA_A100_40", "NVIDIA_A100_80"}),
        ("a100-80gb", {"NVIDIA_A100_80"}),
        ("NVIDIA A100 80", {"NVIDIA_A100_80"}),
        ("NVIDIA_H100_80", {"NVIDIA_H100_80"}),
        ("H100", {"NVIDIA_H100_80"}),
        ("l4", {"NVIDIA_L4_24"}),
        ("A10", {"NVIDIA_A10_24"}),  # not the A100s
        ("L40S", {"NVIDIA_L40S_48"}),
        ("B200", set()),
        ("T4", {"NVIDIA_T4_16"}),
    ],
)
def test_accelerator_names_match_loosely(query: str, expected: set[str]) -> None:
    assert {a.name for a in catalogue.ACCELERATOR_TYPES if catalogue.accelerator_name_matches(query, a)} == expected


def test_search_semantics() -> None:
    cheapest = catalogue.search({})[0]
    assert cheapest.accelerator is None and cheapest.per_hour == min(t.per_hour for t in catalogue.INSTANCE_TYPES)
    gpus = catalogue.search({"accelerator": {"no": 1}})
    assert gpus and all(t.accelerators >= 1 for t in gpus)
    assert [t.accelerators for t in catalogue.search({"accelerator": {"name": "A100", "no": 8}})] == [8]
    budget = catalogue.search({"price": {"unit_price": "0.5"}})  # a maximum per hour, whatever the granularity
    assert budget and all(t.per_hour <= Decimal("0.5") for t in budget)
    assert {t.name for t in budget} == {t.name for t in catalogue.INSTANCE_TYPES if t.per_hour <= Decimal("0.5")}
    assert all(t.provider.name_short == "gcp" for t in catalogue.search({"provider": {"name_short": "GCP"}}))
    assert catalogue.search({"cpu": {"cores": 2, "operator": "LESS_THAN_OR_EQUAL"}})[0].cores == 2
    assert catalogue.search({"ram": {"size": "not a number"}}) == catalogue.search({})
    assert catalogue.unknown_accelerator_names({"accelerator": {"name": ["A100", "Z9"]}}) == ["Z9"]


# --------------------------------------------------------------------------- process runtime helpers


def test_log_buffer_keeps_the_tail() -> None:
    buffer = LogBuffer(1024)
    for i in range(100):
        buffer.write(f"line {i:03d} " + "x" * 20 + "\n")
    text = buffer.text()
    assert buffer.truncated and text.startswith("[sandbox] earlier output was dropped")
    assert text.endswith("line 099 " + "x" * 20 + "\n") and len(text) <= 1024 + 60


def test_container_paths_stay_inside_the_job_root(tmp_path: Path) -> None:
    assert container_path_on_host(tmp_path, "/data/gcp.json") == tmp_path / "data" / "gcp.json"
    assert container_path_on_host(tmp_path, "relative/x") == tmp_path / "relative" / "x"
    for bad in ("/", "", "/data/../../etc/passwd"):
        with pytest.raises(JobSetupError):
            container_path_on_host(tmp_path, bad)


# --------------------------------------------------------------------------- config


def test_config_argv_round_trips_through_the_cli(tmp_path: Path) -> None:
    import typer
    from typer.core import TyperGroup

    from perianctl.commands.sandbox import _build_config, sandbox_app

    config = SandboxConfig(
        state_dir=tmp_path,
        host="127.0.0.1",
        port=0,
        runtime="process",
        timings=SimTimings(speed=7.5),
        faults=FaultConfig(
            latency=(0.1, 0.4),
            latency_endpoints=frozenset({"create"}),
            rate=0.25,
            kinds=("503", "reset"),
            endpoints=frozenset({"get", "list"}),
            phase="mixed",
            seed=9,
        ),
        kill_grace=2.0,
        max_parallel=3,
        log_cap_bytes=5000,
        access_log=False,
    )
    group = typer.main.get_command(sandbox_app)
    assert isinstance(group, TyperGroup)
    command = group.commands["run"]
    params = command.make_context("run", config.to_argv()).params
    assert params.pop("write_profile") is False
    assert _build_config(**params) == config
