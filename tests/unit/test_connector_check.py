"""The connector check harness's census: jobs attributed by output prefix, ownership judged (pure).

The harness against a real connector: tests/integration/test_connector_check.py.
"""

from __future__ import annotations

from typing import Any

from perianctl.connector.check import (
    AttemptResult,
    Call,
    attribute,
    format_table,
    judge,
    unowned_jobs,
)

# --------------------------------------------------------------------------- the census rules


def job(job_id: str, prefix: str, status: str = "Running", cancel_requested: bool = False) -> dict[str, Any]:
    return {
        "id": job_id,
        "status": status,
        "terminal": status in ("Done", "Cancelled"),
        "cancel_requested": cancel_requested,
        "command": ["pyflyte-execute", "--output-prefix", prefix],
        "env": {},
    }


def test_census_attributes_by_output_prefix_and_judges_ownership() -> None:
    base = "/tmp/x/aexec/n0/data"
    attempts = [AttemptResult(attempt=n, output_prefix=f"{base}/{n}") for n in range(2)]
    attempts[1].resource_meta, attempts[1].job_id = b'{"job_id": "b"}', "b"
    jobs = [
        job("a", f"{base}/0"),
        job("b", f"{base}/1"),
        job("c", f"{base}/1", "Cancelled"),
        job("d", "/tmp/x/aexec/n0/other"),
        job("e", "/tmp/x/other-exec/n0/data/0"),
        {**job("f", f"{base}/10"), "command": ["x", f"{base}/10"]},
    ]
    by_attempt, stray = attribute(jobs, "aexec", attempts)
    assert [j["id"] for j in by_attempt[0]] == ["a"]  # .../data/1 never matches .../data/10
    assert [j["id"] for j in by_attempt[1]] == ["b", "c"]
    assert sorted(j["id"] for j in stray) == ["d", "f"]  # "e" is another execution
    for rec in attempts:
        rec.jobs = by_attempt[rec.attempt]
    attempts[0].outcome, attempts[1].outcome = "create-failed", "succeeded"
    unowned = unowned_jobs(attempts, stray)
    assert sorted(j["id"] for j in unowned) == ["a", "c", "d", "f"]
    problems = judge(attempts, unowned, [Call("GetTask", "t", 0.1, "OK", 1)], "succeeded")
    assert problems == ["3 unowned job(s) not cancelled (3 still running)"]
    table = format_table([])
    assert table.startswith("scenario")
