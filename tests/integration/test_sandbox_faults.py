"""Fault injection: latency, 500/503 envelopes, connection resets, phases, endpoints, determinism."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.plugins.sandbox import SandboxFactory, SandboxHandle

pytestmark = pytest.mark.timeout(60)

JOB = {"requirements": {"cpu": {"cores": 1}}, "docker_run_parameters": {"image_name": "ubuntu", "command": "true"}}


def test_latency_applies_to_perian_routes_only(sandbox_factory: SandboxFactory) -> None:
    # 3 s: a delay no busy machine adds by itself, so "< 3 s" means "not delayed", not "fast"
    sb = sandbox_factory(latency="3")
    with sb.http() as client:
        started = time.monotonic()
        assert client.get("/job").status_code == 200
        assert time.monotonic() - started >= 3
        started = time.monotonic()
        assert client.get("/healthz").status_code == 200
        assert time.monotonic() - started < 3
    sb.set_faults(latency="3", latency_endpoints=["create"])
    with sb.http() as client:
        started = time.monotonic()
        assert client.get("/job").status_code == 200
        assert time.monotonic() - started < 3


@pytest.mark.parametrize("kind", ["500", "503"])
def test_error_faults_send_the_envelope(sandbox_factory: SandboxFactory, kind: str) -> None:
    sb = sandbox_factory(fault_rate=1.0, fault_kinds=kind, fault_endpoints="list")
    with sb.http() as client:
        response = client.get("/job")
        assert response.status_code == int(kind)
        body = response.json()
        assert body["status"] == "Error" and body["status_code"] == int(kind)
        assert body["message"] == "Operation failed due to a server error" and "Injected fault" in body["detail"]
        assert client.post("/job", json=JOB).status_code == 200  # other endpoints are untouched
    stats = sb.stats()
    assert stats["faults"]["injected"] == 1 and stats["faults"]["by_kind"] == {kind: 1}
    assert stats["faults"]["by_endpoint"] == {"list": 1}


def test_reset_is_a_transport_error(sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory(fault_rate=1.0, fault_kinds="reset", fault_endpoints=["get", "cancel"])
    job_id = sb.create_job()
    with sb.http() as client:
        with pytest.raises(httpx.TransportError) as excinfo:
            client.get(f"/job/{job_id}")
        assert isinstance(excinfo.value, httpx.RemoteProtocolError | httpx.ReadError)
        # the server is fine afterwards, and a fresh connection works
        assert client.get("/job").status_code == 200
    assert "injected connection reset" not in sb.log_text()  # resets are not logged as app errors


def test_before_phase_does_nothing_server_side(sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory(fault_rate=1.0, fault_kinds="503", fault_endpoints="create", fault_phase="before")
    with sb.http() as client:
        for _ in range(3):
            assert client.post("/job", json=JOB).status_code == 503
    stats = sb.stats()
    assert stats["jobs"]["total"] == 0 and stats["create_calls"] == 0 and stats["requests"]["create"] == 3


def test_after_phase_loses_the_reply_but_creates_the_job(sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory(fault_rate=1.0, fault_kinds="reset", fault_endpoints="create", fault_phase="after")
    with sb.http() as client:
        with pytest.raises(httpx.TransportError):
            client.post("/job", json=JOB)
        sb.set_faults(kinds=["500"])
        response = client.post("/job", json=JOB)
        assert response.status_code == 500 and "id" not in response.json()
    stats = sb.stats()
    assert stats["jobs"]["total"] == 2 and stats["jobs_created"] == 2 and stats["faults"]["injected"] == 2


def test_faults_are_deterministic_with_a_seed(sandbox_factory: SandboxFactory) -> None:
    def pattern(sb: SandboxHandle) -> list[int]:
        with sb.http() as client:
            return [client.get("/accelerator-type").status_code for _ in range(30)]

    first = sandbox_factory(fault_rate=0.4, fault_kinds="500,503", fault_seed=7)
    second = sandbox_factory(fault_rate=0.4, fault_kinds="500,503", fault_seed=7)
    seen = pattern(first)
    assert seen == pattern(second)
    assert {200, 500, 503} <= set(seen) or {200} < set(seen)
    first.set_faults(seed=7)  # re-seeding restarts the same sequence
    assert pattern(first) == seen


def test_live_reconfiguration_and_validation(sandbox: SandboxHandle) -> None:
    assert sandbox.set_faults(rate=1.0, kinds="500", endpoints="create")["rate"] == 1.0
    with sandbox.http() as client:
        assert client.post("/job", json=JOB).status_code == 500
        sandbox.set_faults(rate=0)
        assert client.post("/job", json=JOB).status_code == 200
        bad = client.put(f"{sandbox.url}/_sandbox/faults", json={"kinds": ["teapot"]})
        assert bad.status_code == 422 and "fault kinds" in bad.json()["detail"]
        bad = client.put(f"{sandbox.url}/_sandbox/faults", json={"rate": 2})
        assert bad.status_code == 422
