"""The impolite PERIAN: slow work that survives a hang-up, stalls, refused windows, 429 storms.

Everything goes through real HTTP to a sandbox subprocess; waits are for events (a rule's
``committed`` counter, a job appearing, a port accepting again), never fixed sleeps.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.plugins.cli import CliRunner, assert_one_line_error
from tests.plugins.sandbox import SandboxFactory, SandboxHandle

pytestmark = pytest.mark.timeout(90)

JOB = {"requirements": {"cpu": {"cores": 1}}, "docker_run_parameters": {"image_name": "ubuntu", "command": "true"}}


SLOW = 2.0  # a slow answer takes this long; a polite one surely less, even on a busy box


def wait_until(predicate: Callable[[], Any], *, timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy (the event), failing after ``timeout`` (a hang)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def rule_state(sb: SandboxHandle, index: int = 0) -> dict[str, Any]:
    rules: list[dict[str, Any]] = sb.impolite()["rules"]
    return rules[index]


def connect_refused(sb: SandboxHandle) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", sb.port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


# --------------------------------------------------------------------------- slow


def test_slow_create_commits_after_the_caller_hung_up(sandbox: SandboxHandle) -> None:
    sb = sandbox
    sb.set_impolite(["create=slow:3s"])  # outlasts a CPU-starved test's next request
    with sb.http(timeout=0.2) as client, pytest.raises(httpx.ReadTimeout):
        client.post("/job", json=JOB)  # the caller gives up long before PERIAN answers
    assert sb.impolite()["in_flight"] == 1  # still being worked on: its job may yet land
    wait_until(lambda: rule_state(sb)["committed"] == 1, what="the slow create to be committed")
    assert sb.impolite()["in_flight"] == 0
    jobs = sb.jobs()
    assert len(jobs) == 1, jobs  # exactly one job, created after the caller left
    assert rule_state(sb)["hits"] == 1 and rule_state(sb)["dropped"] == 0
    # the same rule answers a patient caller after the delay, with the job id
    with sb.http(timeout=10) as client:
        started = time.monotonic()
        response = client.post("/job", json=JOB)
        assert response.status_code == 200 and time.monotonic() - started >= 3.0
    assert {j["id"] for j in sb.jobs()} == {jobs[0]["id"], response.json()["id"]}


def test_slow_without_commit_drops_the_work_of_a_caller_who_left(sandbox: SandboxHandle) -> None:
    sb = sandbox
    sb.set_impolite(["create=slow:1s,commit=no"])
    with sb.http(timeout=0.2) as client, pytest.raises(httpx.ReadTimeout):
        client.post("/job", json=JOB)
    wait_until(lambda: rule_state(sb)["dropped"] == 1, what="the abandoned create to be dropped")
    assert sb.jobs() == [] and rule_state(sb)["committed"] == 0


def test_slow_gets_answer_late_and_leave_other_endpoints_alone(sandbox: SandboxHandle) -> None:
    sb = sandbox
    job_id = sb.create_job()
    sb.set_impolite([{"endpoint": "get", "mode": "slow", "seconds": SLOW, "count": 2}])
    with sb.http(timeout=10) as client:
        started = time.monotonic()
        assert client.get("/job").status_code == 200  # list is not slowed
        list_took = time.monotonic() - started
        for _ in range(2):
            started = time.monotonic()
            response = client.get(f"/job/{job_id}")
            assert response.status_code == 200 and response.json()["jobs"][0]["id"] == job_id
            assert time.monotonic() - started >= SLOW
        assert client.get(f"/job/{job_id}").status_code == 200  # count=2: the third is polite again
    assert list_took < SLOW
    state = rule_state(sb)
    assert state["hits"] == 2 and state["committed"] == 2 and state["active"] is False


# --------------------------------------------------------------------------- stall


def test_stall_never_answers_and_commits_at_the_end(sandbox: SandboxHandle) -> None:
    sb = sandbox
    sb.set_impolite(["create=stall:3s,count=1"])  # outlasts a CPU-starved test's next request
    with sb.http(timeout=0.3) as client, pytest.raises(httpx.ReadTimeout):
        client.post("/job", json=JOB)
    assert sb.jobs() == []  # nothing yet: the stall is still going on
    wait_until(lambda: rule_state(sb)["committed"] == 1, what="the stalled create to be committed")
    assert len(sb.jobs()) == 1


def test_stall_closes_the_connection_without_a_reply(sandbox: SandboxHandle) -> None:
    sb = sandbox
    job_id = sb.create_job(duration=60)
    sb.set_impolite(["cancel=stall:0.5s"])
    with sb.http(timeout=20) as client:
        with pytest.raises(httpx.RemoteProtocolError) as excinfo:
            client.patch(f"/job/{job_id}/cancel")
        assert "without sending" in str(excinfo.value).lower() or "disconnected" in str(excinfo.value).lower()
    # the cancel was done although no reply ever came
    assert sb.wait_for_status(job_id, {"Cancelled"})["status"] == "Cancelled"
    assert "Internal Server Error" not in sb.log_text() and "without starting response" not in sb.log_text()


# --------------------------------------------------------------------------- refuse


def test_refuse_window_refuses_connections_then_recovers(sandbox: SandboxHandle) -> None:
    sb = sandbox
    with sb.http(timeout=5) as pooled:
        assert pooled.get("/job").status_code == 200  # a keep-alive connection in the pool
        snapshot = sb.set_impolite(["*=refuse:4s"])  # outlasts a CPU-starved test's next connect
        assert snapshot["refusing"] is True
        # refused right after the PUT answered: a real ECONNREFUSED, for pooled clients too
        assert connect_refused(sb)
        with pytest.raises(httpx.ConnectError):
            pooled.post("/job", json=JOB)
        wait_until(lambda: not connect_refused(sb), what="the port to accept again")
        response = pooled.post("/job", json=JOB)
    assert response.status_code == 200
    assert [j["id"] for j in sb.jobs()] == [response.json()["id"]]  # the refused create did nothing
    state = sb.impolite()
    assert state["refusing"] is False and state["rules"][0]["hits"] == 1


# --------------------------------------------------------------------------- 429


def test_429_storm_bounded_by_count_with_retry_after(sandbox: SandboxHandle) -> None:
    sb = sandbox
    sb.set_impolite(["*=429:count=3,retry-after=2"])
    with sb.http() as client:
        for _ in range(3):
            response = client.post("/job", json=JOB)
            assert response.status_code == 429
            assert response.headers["retry-after"] == "2"
            body = response.json()
            assert body["status"] == "Error" and body["status_code"] == 429 and body["detail"]
        assert client.post("/job", json=JOB).status_code == 200
        assert client.get("/healthz").status_code == 200  # admin routes are never stormed
    assert len(sb.jobs()) == 1
    assert rule_state(sb)["hits"] == 3


def test_429_storm_bounded_by_time(sandbox: SandboxHandle) -> None:
    sb = sandbox
    sb.set_impolite([{"endpoint": "list", "mode": "429", "seconds": 3, "retry_after": 0.25}])
    with sb.http() as client:
        first = client.get("/job")
        assert first.status_code == 429 and first.headers["retry-after"] == "0.25"
        assert client.post("/job", json=JOB).status_code == 200  # other endpoints untouched
        wait_until(lambda: client.get("/job").status_code == 200, what="the storm to end")


# --------------------------------------------------------------------------- admin API


@pytest.mark.parametrize(
    "body",
    [
        '{"rules": [{"endpoint": "create", "mode": "slow", "seconds": NaN}]}',
        '{"rules": [{"endpoint": "create", "mode": "slow", "seconds": Infinity}]}',
        '{"rules": [{"endpoint": "create", "mode": "slow", "seconds": -1}]}',
        '{"rules": [{"endpoint": "create", "mode": "slow"}]}',
        '{"rules": [{"endpoint": "create", "mode": "nap", "seconds": 1}]}',
        '{"rules": [{"endpoint": "jobs", "mode": "slow", "seconds": 1}]}',
        '{"rules": [{"endpoint": "create", "mode": "refuse", "seconds": 1}]}',
        '{"rules": [{"endpoint": "*", "mode": "refuse", "seconds": 1, "count": 2}]}',
        '{"rules": [{"endpoint": "create", "mode": "slow", "seconds": 1, "retry_after": 2}]}',
        '{"rules": [{"endpoint": "create", "mode": "429", "count": 0}]}',
        '{"rules": [{"endpoint": "create", "mode": "429", "count": 1.5}]}',
        '{"rules": [{"endpoint": "create", "mode": "429", "commit": "yes"}]}',
        '{"rules": [{"endpoint": "create", "mode": "429", "colour": "red"}]}',
        # Items may be rule objects or compact specs ("create=slow:1s"); one bad item of either refuses all.
        '{"rules": [{"endpoint": "get", "mode": "429"}, "create=nap:1s"]}',
        '{"rules": ["get=429", "create=slow"]}',
        '{"rules": ["create=slow:1s", 7]}',
        '{"rules": {"endpoint": "get", "mode": "429"}}',
        "not json",
    ],
)
def test_invalid_rules_are_422_and_change_nothing(sandbox: SandboxHandle, body: str) -> None:
    sb = sandbox
    before = sb.set_impolite(["get=429:count=5"])
    with sb.http() as client:
        response = client.put("/_sandbox/impolite", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("invalid impolite rules")
    assert sb.impolite()["rules"] == before["rules"]


def test_put_replaces_and_delete_clears(sandbox: SandboxHandle) -> None:
    sb = sandbox
    sb.set_impolite(["get=429", "create=slow:2s"])
    state = sb.set_impolite(["list=429:count=1"])
    assert [r["spec"] for r in state["rules"]] == ["list=429:count=1"]
    with sb.http() as client:
        assert client.get("/job").status_code == 429
        assert client.get("/job").status_code == 200
    assert sb.clear_impolite()["rules"] == []
    assert sb.impolite() == {"rules": [], "set_at": None, "in_flight": 0, "refusing": False, "refusing_for": 0.0}


def test_jobs_census_carries_the_attempt_key(sandbox: SandboxHandle) -> None:
    sb = sandbox
    env = {"PERIANCTL_IDEMPOTENCY_KEY": "pk1-abc", "PERIANCTL_FLYTE_NODE": "tag1", "PERIANCTL_FLYTE_ATTEMPT": "2"}
    keyed = sb.create_job(env=env)
    plain = sb.create_job()
    jobs = sb.jobs()
    assert [j["id"] for j in jobs] == [keyed, plain]  # oldest first
    assert jobs[0]["idempotency_key"] == "pk1-abc" and jobs[0]["node_tag"] == "tag1" and jobs[0]["attempt"] == 2
    assert jobs[1]["idempotency_key"] is None and jobs[1]["attempt"] is None
    assert {k: [j["id"] for j in v] for k, v in sb.jobs_by_key().items()} == {"pk1-abc": [keyed], None: [plain]}


# --------------------------------------------------------------------------- flags and CLI


def test_impolite_flag_applies_at_start_up(sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory(impolite=["create=429:count=1,retry-after=3", "get=slow:0.1s"])
    with sb.http() as client:
        response = client.post("/job", json=JOB)
        assert response.status_code == 429 and response.headers["retry-after"] == "3"
        assert client.post("/job", json=JOB).status_code == 200
    assert [r["spec"] for r in sb.impolite()["rules"]] == ["create=429:count=1,retry-after=3s", "get=slow:0.1s"]


def test_refuse_flag_refuses_once_serving(sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory(impolite=["*=refuse:4s"])  # long enough for a CPU-starved poll to see it
    # sandbox.json appears before the port is served; the window starts as soon as it is
    wait_until(lambda: connect_refused(sb), timeout=10, what="the start-up refuse window")
    wait_until(lambda: not connect_refused(sb), what="the port to accept again")
    assert sb.impolite()["rules"][0]["hits"] == 1


def test_cli_sets_shows_and_clears_rules(sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    sb = sandbox
    result = run_cli("sandbox", "impolite", "create=slow:7s", "*=429:count=20,retry-after=2", "--url", sb.url)
    assert result.returncode == 0, result
    assert "create=slow:7s" in result.stdout and "*=429:count=20,retry-after=2s" in result.stdout
    assert [r["mode"] for r in sb.impolite()["rules"]] == ["slow", "429"]
    shown = run_cli("sandbox", "impolite", "--show", "-o", "json", "--url", sb.url)
    assert shown.returncode == 0, shown
    assert [r["spec"] for r in json.loads(shown.stdout)["rules"]] == ["create=slow:7s", "*=429:count=20,retry-after=2s"]
    cleared = run_cli("sandbox", "impolite", "--clear", "--url", sb.url)
    assert cleared.returncode == 0 and "no impolite rules" in cleared.stdout
    assert sb.impolite()["rules"] == []


@pytest.mark.parametrize(
    "rule",
    [
        "create=nap:1s",
        "create",
        "create=slow",
        "create=refuse:2s",
        "*=slow:fast",
        "get=429:count=x",
        "get=slow:1s,colour=red",
        "get=slow:NaNs",
    ],
)
def test_cli_rejects_bad_rules_before_contacting_the_sandbox(
    sandbox: SandboxHandle, run_cli: CliRunner, rule: str
) -> None:
    sb = sandbox
    sb.set_impolite(["list=429:count=1"])
    result = run_cli("sandbox", "impolite", rule, "--url", sb.url)
    assert_one_line_error(result, 2)
    assert [r["spec"] for r in sb.impolite()["rules"]] == ["list=429:count=1"]


def test_cli_bad_rule_at_start_is_a_usage_error(run_cli: CliRunner, tmp_path: Any) -> None:
    result = run_cli(
        "sandbox", "run", "--port", "0", "--state-dir", str(tmp_path / "sb"), "--impolite", "create=slow:-1s"
    )
    assert_one_line_error(result, 2)
    assert not (tmp_path / "sb").exists()  # nothing created before the input is known valid


def test_cli_unreachable_sandbox_is_exit_8(run_cli: CliRunner) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_cli("sandbox", "impolite", "--show", "--url", f"http://127.0.0.1:{port}")
    assert_one_line_error(result, 8)


def test_admin_finish_ends_a_simulated_job(sandbox: SandboxHandle) -> None:
    sb = sandbox
    job_id = sb.create_job(duration=3600)
    sb.wait_for_status(job_id, {"Running"})
    with sb.http() as client:
        response = client.post(f"/_sandbox/jobs/{job_id}/finish")
        assert response.status_code == 200 and response.json() == {"id": job_id, "status": "Done", "changed": True}
        again = client.post(f"/_sandbox/jobs/{job_id}/finish", params={"status": "Cancelled"})
        assert again.json() == {"id": job_id, "status": "Done", "changed": False}  # terminal is final
        assert client.post(f"/_sandbox/jobs/{job_id}/finish", params={"status": "Running"}).status_code == 422
        assert client.post("/_sandbox/jobs/00000000-0000-4000-8000-000000000000/finish").status_code == 400
    assert sb.get_job(job_id)["status"] == "Done"
    other = sb.create_job(duration=3600)
    with sb.http() as client:
        assert client.post(f"/_sandbox/jobs/{other}/finish", params={"status": "Cancelled"}).json()["changed"]
    assert sb.get_job(other)["status"] == "Cancelled"
