"""Issue 10: the sandbox never answers 500 to any input, and one odd record never breaks the others.

Everything over real HTTP to a real sandbox process. What it cannot store or serve is refused with
FastAPI's 422 ``HTTPValidationError`` shape (what PERIAN's clients handle: the ``perian`` SDK's
perian/models/http_validation_error.py), nothing is created, and the job list keeps working; records
an older sandbox stored anyway are served degraded (a lone surrogate shown as U+FFFD, a NaN as null)
and still run to an end.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
from typing import Any

import pytest

from tests.plugins.sandbox import TERMINAL, SandboxFactory, SandboxHandle, http_client

pytestmark = pytest.mark.timeout(90)

JSON = {"content-type": "application/json"}
CPU = b'{"cores": 1}'


def _is_validation_error(body: Any) -> bool:
    return (
        isinstance(body, dict)
        and isinstance(body.get("detail"), list)
        and bool(body["detail"])
        and all({"loc", "msg", "type"} <= set(item) for item in body["detail"])
    )


def _jobs_created(sandbox: SandboxHandle) -> int:
    count: int = sandbox.stats()["jobs_created"]
    return count


# Raw bodies: Python's json accepts each of them, and none can be stored and served back as JSON.
UNSTORABLE = {
    "lone surrogate and NUL in a name": (
        b'{"requirements":{"accelerator":{"name":"\\u0000\\ud800"}}}',
        ["body", "requirements", "accelerator", "name"],
    ),
    "lone surrogate in the command": (
        b'{"requirements":{"cpu":' + CPU + b'},"docker_run_parameters":{"command":"echo \\udfff"}}',
        ["body", "docker_run_parameters", "command"],
    ),
    "NUL in an env variable": (
        b'{"requirements":{"cpu":' + CPU + b'},"docker_run_parameters":{"env_variables":{"A":"x\\u0000y"}}}',
        ["body", "docker_run_parameters", "env_variables", "A"],
    ),
    "lone surrogate in a key": (
        b'{"requirements":{"cpu":' + CPU + b'},"docker_run_parameters":{"env_variables":{"\\ud800":"x"}}}',
        ["body", "docker_run_parameters", "env_variables"],
    ),
    "NaN": (b'{"requirements":{"cpu":{"cores":NaN}}}', ["body", "requirements", "cpu", "cores"]),
    "Infinity in an env variable": (
        b'{"requirements":{"cpu":' + CPU + b'},"docker_run_parameters":{"env_variables":{"A":-Infinity}}}',
        ["body", "docker_run_parameters", "env_variables", "A"],
    ),
    "a float that overflows to inf": (
        b'{"requirements":{"cpu":{"cores":1e400}}}',
        ["body", "requirements", "cpu", "cores"],
    ),
    "an integer past 64 bits": (
        b'{"requirements":{"cpu":' + CPU + b'},"timeout_seconds":99999999999999999999999}',
        ["body", "timeout_seconds"],
    ),
    "an integer of 5000 digits": (
        b'{"requirements":{"cpu":{"cores":' + b"9" * 5000 + b"}}}",
        ["body", "requirements", "cpu", "cores"],
    ),
}


def test_bodies_that_cannot_be_stored_or_served_get_a_422_and_create_nothing(sandbox: SandboxHandle) -> None:
    with sandbox.http() as client:
        good = client.post(
            "/job",
            content=b'{"requirements":{"cpu":' + CPU + b'},"docker_run_parameters":'
            b'{"command":"echo \\ud83d\\ude00 caf\\u00e9"}}',
            headers=JSON,
        )
        assert good.status_code == 200, good.text  # a surrogate *pair* is an emoji: accepted
        for name, (body, loc) in UNSTORABLE.items():
            response = client.post("/job", content=body, headers=JSON)
            assert response.status_code == 422, (name, response.status_code, response.text)
            detail = response.json()
            assert _is_validation_error(detail), (name, detail)
            assert detail["detail"][0]["loc"] == loc, (name, detail)
            assert "input" not in detail["detail"][0]  # never echoed: it may be a secret, or unencodable
        assert _jobs_created(sandbox) == 1
        listing = client.get("/job")
        assert listing.status_code == 200, listing.text
        assert [job["id"] for job in listing.json()["jobs"]] == [good.json()["id"]]
        one = client.get(f"/job/{good.json()['id']}")
        assert one.status_code == 200
        assert one.json()["jobs"][0]["docker_metadata"]["docker_run_parameters"]["command"] == "echo \U0001f600 café"


def test_odd_bytes_sizes_nesting_and_content_types_never_get_a_500(sandbox: SandboxHandle) -> None:
    cases: dict[str, tuple[bytes, dict[str, str], int]] = {
        "invalid UTF-8 in a JSON body": (b'{"requirements":{"cpu":{"cores":1}},"x":"\xff\xfe"}', JSON, 422),
        "invalid UTF-8 sent as text/plain": (b"\xff\xfe\x00", {"content-type": "text/plain"}, 422),
        "a JSON body sent as text/plain": (
            b'{"requirements":{"cpu":{"cores":1}}}',
            {"content-type": "text/plain"},
            422,
        ),
        "a form content type": (b"a=%FF", {"content-type": "application/x-www-form-urlencoded"}, 422),
        "100 000 nested arrays": (b"[" * 100_000 + b"]" * 100_000, JSON, 422),
        "nested deeper than 64 objects": (b'{"requirements":' + b'{"a":' * 100 + b"1" + b"}" * 101, JSON, 422),
        "a body over 16 MiB": (b'{"x":"' + b"a" * (16 * 1024 * 1024) + b'"}', JSON, 413),
    }
    with sandbox.http() as client:
        for name, (body, headers, expected) in cases.items():
            for path in ("/job", "/instance-type", "/accelerator-type"):
                response = client.post(path, content=body, headers=headers)
                assert response.status_code == expected, (name, path, response.status_code, response.text[:300])
                if expected == 422:
                    assert _is_validation_error(response.json()), (name, path, response.text[:300])
                else:
                    assert response.json()["status_code"] == 413
        assert client.get("/job").status_code == 200
    assert _jobs_created(sandbox) == 0
    assert "Traceback" not in sandbox.log_text()


@pytest.mark.parametrize("query", ["page=99999999999999999999", "page=9223372036854775807&limit=1000"])
def test_a_page_far_past_the_end_is_an_empty_page(shared_sandbox: SandboxHandle, query: str) -> None:
    with shared_sandbox.http() as client:
        response = client.get(f"/job?{query}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status_code"] == 200 and body["jobs"] == [] and body["pagination"]["next_page"] is None


BAD_FAULTS = [
    b'{"latency": [0, Infinity]}',
    b'{"latency": Infinity}',
    b'{"latency": [NaN, NaN]}',
    b'{"rate": NaN}',
    b'{"rate": Infinity}',
    b'{"rate": -0.5}',
    b'{"latency": -1}',
    b'{"latency": [2, 1]}',
    b'{"latency": 1e300}',
    b'{"latency": "1e300"}',
    b'{"rate": 1e400}',
    b'{"seed": 1.5}',
    b'{"seed": 99999999999999999999999}',
    b'{"seed": true}',
    b'{"rate": true}',
    b'{"rate": "x"}',
    b'{"kinds": 5}',
    b'{"kinds": [1, 2]}',
    b'{"endpoints": {"a": 1}}',
    b'{"phase": 3}',
    b'{"phase": "sometimes"}',
    b'{"kinds": []}',
    b"[1, 2]",
    b'"rate"',
    b"not json",
    b'{"rate": 0.5, "latency": [0, Infinity]}',
    b'{"rate": 1, "seed": "x"}',
]


def test_fault_config_is_validated_completely_before_anything_applies(sandbox: SandboxHandle) -> None:
    with http_client(sandbox.url) as admin, sandbox.http(timeout=20) as client:
        before = admin.get("/_sandbox/faults").json()
        for body in BAD_FAULTS:
            response = admin.put("/_sandbox/faults", content=body, headers=JSON)
            assert response.status_code == 422, (body, response.status_code, response.text)
            assert response.json()["status_code"] == 422 and "invalid fault configuration" in response.json()["detail"]
            assert admin.get("/_sandbox/faults").json() == before, body  # nothing applied
        # The API still answers at once: no infinite latency, no fault rate left behind.
        assert client.get("/job").status_code == 200
        good = admin.put("/_sandbox/faults", content=b'{"latency": [0.0, 0.0], "rate": 0.25, "seed": 3}', headers=JSON)
        assert good.status_code == 200 and good.json()["rate"] == 0.25


def _poison(state_dir: Any, done_id: str, queued_id: str, damaged_id: str) -> None:
    """Rewrite rows the way a sandbox before this fix stored them (JSON escapes, NaN, broken JSON)."""
    with contextlib.closing(sqlite3.connect(state_dir / "sandbox.db")) as db:
        for job_id in (done_id, queued_id):
            view_text, spec_text = db.execute("SELECT view, spec FROM jobs WHERE id = ?", (job_id,)).fetchone()
            view, spec = json.loads(view_text), json.loads(spec_text)
            view["docker_metadata"]["docker_run_parameters"]["command"] = "echo \x00\ud800"
            view["requirement_metadata"]["requirements"] = {"accelerator": {"name": "\x00\ud800"}, "cpu": {"cores": 1}}
            view["runtime_metadata"]["timeout_seconds"] = math.nan
            spec["command"] = "echo \udfff"
            db.execute("UPDATE jobs SET view = ?, spec = ? WHERE id = ?", (json.dumps(view), json.dumps(spec), job_id))
        db.execute("UPDATE jobs SET status = 'Queued', done_at = NULL, started_at = NULL WHERE id = ?", (queued_id,))
        db.execute("UPDATE jobs SET view = '{\"price\": ', spec = 'not json' WHERE id = ?", (damaged_id,))
        db.commit()


def test_records_an_older_sandbox_stored_are_served_degraded_and_still_run(sandbox_factory: SandboxFactory) -> None:
    sandbox = sandbox_factory()
    done_id, queued_id, damaged_id, healthy_id = (sandbox.create_job() for _ in range(4))
    for job_id in (done_id, queued_id, damaged_id, healthy_id):
        sandbox.wait_for_status(job_id)
    sandbox.stop()
    _poison(sandbox.state_dir, done_id, queued_id, damaged_id)
    sandbox.restart()

    finished = sandbox.wait_for_status(queued_id)  # the runtime's batches are not stuck on it
    assert finished["status"] in TERMINAL
    with sandbox.http() as client:
        listing = client.get("/job")
        assert listing.status_code == 200, listing.text
        jobs = {job["id"]: job for job in listing.json()["jobs"]}
        assert set(jobs) == {done_id, queued_id, damaged_id, healthy_id}
        for job_id in (done_id, queued_id, damaged_id, healthy_id):
            response = client.get(f"/job/{job_id}")
            assert response.status_code == 200, (job_id, response.text)
            assert response.json()["jobs"][0] == jobs[job_id]
    command = jobs[done_id]["docker_metadata"]["docker_run_parameters"]["command"]
    assert command == "echo \x00\ufffd"
    assert jobs[done_id]["requirement_metadata"]["requirements"]["accelerator"]["name"] == "\x00\ufffd"
    assert jobs[done_id]["runtime_metadata"]["timeout_seconds"] is None
    assert jobs[damaged_id]["status"] == "Done" and jobs[damaged_id]["price"] is None
    assert jobs[healthy_id]["docker_metadata"]["docker_run_parameters"]["command"] == "echo hello"
