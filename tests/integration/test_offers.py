"""Offers, accelerators and budgets through real HTTP (the sandbox) and the CLI as a subprocess.

Prices are compared per hour, computed here from each type's ``PriceData`` (unit price x units per
hour) and not with perianctl's pricing module, so a wrong rule there would show.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.cli import CliRunner, assert_one_line_error
from tests.plugins.sandbox import SandboxHandle

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
HELLO = str(REPO / "examples" / "templates" / "hello.pb")
UNIT_SECONDS = {"PER_SECOND": 1, "PER_MINUTE": 60, "PER_10_MINUTES": 600, "PER_HOUR": 3600}


def _catalogue(sandbox: Any, query: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with sandbox.http() as client:
        response = client.post("/instance-type", params={"limit": 1000}, json={"instance_type_query": query or {}})
    assert response.status_code == 200, response.text
    return list(response.json()["instance_types"])


def _per_hour(itype: dict[str, Any]) -> Decimal:
    price = itype["price"]
    return Decimal(price["unit_price"]) * 3600 / UNIT_SECONDS[price["granularity"]]


def test_offers_lists_the_cheapest_per_hour_first_and_dry_run_picks_it(
    sandbox: SandboxHandle, run_cli: CliRunner
) -> None:
    # The template asks for DE and 1 GB; the flag adds 2 cores: the same requirements for both commands.
    flags = ["--cores", "2", "--country-code", "de", "--memory", "1"]
    everything = _catalogue(sandbox, {"cpu": {"cores": 2}, "region": {"location": "DE"}, "ram": {"size": "1"}})
    assert len(everything) > 1
    cheapest = min(everything, key=lambda t: (_per_hour(t), t["name"]))

    r = run_cli("offers", *flags, "-o", "json", "--limit", "1000", env=sandbox.env())
    assert r.returncode == 0, r
    offers = json.loads(r.stdout)
    assert [o["id"] for o in offers][:1] == [cheapest["id"]]
    assert len(offers) == len(everything)
    hourly = [Decimal(o["per_hour"]) for o in offers]
    assert hourly == sorted(hourly)
    assert Decimal(offers[0]["per_hour"]) == _per_hour(cheapest)

    r = run_cli("offers", *flags, env=sandbox.env())
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert "PER HOUR" in lines[0] and cheapest["name"] in lines[1], r

    r = run_cli("submit", HELLO, "-i", "name=x", "--cores", "2", "--dry-run", env=sandbox.env())
    assert r.returncode == 0, r
    dry = json.loads(r.stdout)
    assert dry["instance_type"]["id"] == cheapest["id"]
    assert Decimal(dry["instance_type"]["per_hour"]) == _per_hour(cheapest)
    assert f"would run on {cheapest['name']} (" in r.stderr, r.stderr
    assert sandbox.stats()["jobs_created"] == 0


def test_offers_filters_by_price_and_accelerator(sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    gpus = _catalogue(sandbox, {"accelerator": {"name": "A100"}})
    assert gpus
    cap = sorted(_per_hour(t) for t in gpus)[len(gpus) // 2]
    r = run_cli(
        "offers", "--accelerator-type", "A100", "--max-price-per-hour", str(cap), "-o", "json", env=sandbox.env()
    )
    assert r.returncode == 0, r
    offers = json.loads(r.stdout)
    assert offers and all(Decimal(o["per_hour"]) <= cap for o in offers)
    assert {o["id"] for o in offers} == {t["id"] for t in gpus if _per_hour(t) <= cap}
    assert all("A100" in (o["accelerator"] or "") for o in offers)
    r = run_cli("offers", "--accelerator-type", "A100", "-o", "name", env=sandbox.env())
    assert r.stdout.split() == [
        o["id"]
        for o in json.loads(run_cli("offers", "--accelerator-type", "A100", "-o", "json", env=sandbox.env()).stdout)
    ]


def test_offers_filters_by_provider_on_our_side_too(sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    ovh = [t for t in _catalogue(sandbox) if t["provider"]["name_short"] == "ovh"]
    assert ovh
    r = run_cli("offers", "--provider", "OVH", "-o", "json", "--limit", "1000", env=sandbox.env())
    assert r.returncode == 0, r
    assert sorted(o["id"] for o in json.loads(r.stdout)) == sorted(t["id"] for t in ovh)


def test_accelerators_lists_names_submit_accepts(sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    r = run_cli("accelerators", "-o", "json", env=sandbox.env())
    assert r.returncode == 0, r
    records = json.loads(r.stdout)
    assert records and all(rec["name"] for rec in records)
    with_offers = [rec for rec in records if rec["offers"]]
    assert with_offers
    rec = with_offers[0]
    r = run_cli("offers", "--accelerator-type", rec["name"], "-o", "json", env=sandbox.env())
    offers = json.loads(r.stdout)
    assert offers and offers[0]["per_hour"] == rec["cheapest_per_hour"]
    r = run_cli("accelerators", env=sandbox.env())
    assert r.returncode == 0 and rec["name"] in r.stdout, r


def test_max_price_per_hour_refuses_before_creating_anything(
    sandbox: SandboxHandle, run_cli: CliRunner, tmp_path: Path
) -> None:
    prefix = tmp_path / "run"
    r = run_cli(
        "submit",
        HELLO,
        "-i",
        "name=x",
        "--accelerator-type",
        "A100",
        "--max-price-per-hour",
        "0.01",
        "--output-prefix",
        str(prefix),
        env=sandbox.env(),
    )
    assert_one_line_error(r, 2)
    assert "0.01" in r.stderr and "hint:" in r.stderr and "cheapest match" in r.stderr
    assert sandbox.stats()["jobs_created"] == 0
    assert not prefix.exists()  # not even inputs.pb was written


def _first_of_each_granularity(sandbox: Any) -> dict[str, dict[str, Any]]:
    chosen: dict[str, dict[str, Any]] = {}
    for itype in sorted(_catalogue(sandbox), key=lambda t: t["name"]):
        chosen.setdefault(itype["price"]["granularity"], itype)
    return chosen


def test_max_cost_becomes_the_documented_timeout_for_each_granularity(
    sandbox: SandboxHandle, run_cli: CliRunner
) -> None:
    """timeout_seconds = whole billed units the budget buys x unit length (README "GPUs and cost")."""
    kinds = _first_of_each_granularity(sandbox)
    assert set(kinds) == set(UNIT_SECONDS)  # the sandbox catalogue has every billing granularity
    for granularity, itype in kinds.items():
        unit = Decimal(itype["price"]["unit_price"])
        budget = unit * 7 + unit / 2  # 7.5 units: 7 whole ones are bought
        r = run_cli(
            "submit",
            HELLO,
            "-i",
            "name=x",
            "--instance-type-id",
            itype["id"],
            "--max-cost",
            str(budget),
            "--dry-run",
            env=sandbox.env(),
        )
        assert r.returncode == 0, r
        dry = json.loads(r.stdout)
        expected = 7 * UNIT_SECONDS[granularity]
        assert dry["body"]["timeout_seconds"] == expected, (granularity, dry)
        assert dry["budget"]["budget_seconds"] == expected
        assert dry["body"]["instance_type_id"] == itype["id"]
        assert dry["body"]["auto_failover_instance_type"] is False
        assert f"buys 7 × {granularity}" in r.stderr
    # A budget below one unit buys nothing: refused.
    granularity, itype = next(iter(kinds.items()))
    r = run_cli(
        "submit",
        HELLO,
        "-i",
        "name=x",
        "--instance-type-id",
        itype["id"],
        "--max-cost",
        str(Decimal(itype["price"]["unit_price"]) / 2),
        env=sandbox.env(),
    )
    assert_one_line_error(r, 2)
    assert "does not buy one billed unit" in r.stderr
    assert sandbox.stats()["jobs_created"] == 0


def test_max_cost_keeps_a_shorter_own_timeout_and_the_job_gets_it(
    sandbox: SandboxHandle, run_cli: CliRunner, tmp_path: Path
) -> None:
    kinds = _first_of_each_granularity(sandbox)
    itype = kinds.get("PER_HOUR") or next(iter(kinds.values()))
    unit = Decimal(itype["price"]["unit_price"])
    seconds = UNIT_SECONDS[itype["price"]["granularity"]]
    r = run_cli(
        "submit",
        HELLO,
        "-i",
        "name=x",
        "--instance-type-id",
        itype["id"],
        "--max-cost",
        str(unit * 3),
        "--output-prefix",
        str(tmp_path / "p"),
        "-o",
        "name",
        "--env",
        "PERIAN_SANDBOX_SCENARIO=success",
        env=sandbox.env(),
    )
    assert r.returncode == 0, r
    job = sandbox.get_job(r.stdout.strip())
    assert job["runtime_metadata"]["timeout_seconds"] == 3 * seconds
    assert job["runtime_metadata"]["instance_type_id"] == itype["id"]
    r = run_cli(
        "submit",
        HELLO,
        "-i",
        "name=x",
        "--instance-type-id",
        itype["id"],
        "--max-cost",
        str(unit * 3),
        "--timeout",
        "1s",
        "--dry-run",
        env=sandbox.env(),
    )
    assert json.loads(r.stdout)["body"]["timeout_seconds"] == 1
