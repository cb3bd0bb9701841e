"""Durability: a sandbox killed with SIGKILL and restarted loses no job it acknowledged."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from perianctl.sandbox.store import RESTART_ERROR
from tests.plugins.sandbox import SandboxFactory, http_client

pytestmark = pytest.mark.timeout(90)


def _statuses_in_db(state_dir: Path) -> dict[str, str]:
    with contextlib.closing(sqlite3.connect(state_dir / "sandbox.db")) as db:
        return dict(db.execute("SELECT id, status FROM jobs").fetchall())


def test_sigkill_and_restart_loses_no_job(sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory(speed=4)  # Queued 0.12 s, Initializing 0.25 s, Running 0.75 s
    assert sb.proc is not None
    done = sb.create_job()
    sb.wait_for_status(done, {"Done"})
    running = sb.create_job(duration=60)
    sb.wait_for_status(running, {"Running"})
    cancel_pending = sb.create_job(scenario="cancel-resistant", duration=60)
    sb.wait_for_status(cancel_pending, {"Running"})
    with sb.http() as client:
        assert client.patch(f"/job/{cancel_pending}/cancel").status_code == 200
        burst = [
            client.post("/job", json={"requirements": {}, "docker_run_parameters": {"image_name": "x"}})
            for _ in range(50)
        ]
    queued = [r.json()["id"] for r in burst]
    # Freeze the server, note what the database says, then kill it: the snapshot is the crash state.
    sb.proc.send_signal(signal.SIGSTOP)
    at_crash = _statuses_in_db(sb.state_dir)
    sb.kill()
    assert set(at_crash) == {done, running, cancel_pending, *queued}  # every acknowledged create is stored

    with pytest.raises(httpx.TransportError), http_client(sb.url) as client:
        client.get("/healthz")
    sb.restart()

    with sb.http() as client:
        listed = client.get("/job", params={"limit": 100}).json()
    assert listed["pagination"]["total_items"] == 53
    assert {j["id"] for j in listed["jobs"]} == set(at_crash)
    assert sb.get_job(done)["status"] == "Done"
    crashed = sb.get_job(running)
    assert crashed["status"] == "ServerError" and crashed["errors"] == RESTART_ERROR
    assert crashed["done_at"] is not None and "restarted" in crashed["logs"]
    assert sb.get_job(cancel_pending)["status"] == "Cancelled"
    still_queued = [j for j in queued if at_crash[j] == "Queued"]
    assert still_queued, at_crash
    for job_id in queued:  # Queued jobs are resumed; started ones end as ServerError; ended ones stay
        final = sb.wait_for_status(job_id)
        expected = {"Queued": "Done", "Done": "Done"}.get(at_crash[job_id], "ServerError")
        assert final["status"] == expected, (at_crash[job_id], final)
    stats = sb.stats()
    assert stats["jobs"]["total"] == 53 and stats["jobs"]["open"] == 0


def test_restart_kills_orphaned_process_jobs(sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory(runtime="process")
    command = shlex.join(["python", "-c", "import os, time; print('pid', os.getpid(), flush=True); time.sleep(120)"])
    job_id = sb.create_job(command)
    deadline = time.monotonic() + 60  # a hang detector
    while "pid" not in (sb.get_job(job_id)["logs"] or ""):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pid = int(sb.get_job(job_id)["logs"].split()[1])
    sb.kill()
    os.kill(pid, 0)  # the job's own session survived the sandbox's SIGKILL ...
    sb.restart()
    job = sb.get_job(job_id)
    assert job["status"] == "ServerError" and job["errors"] == RESTART_ERROR
    deadline = time.monotonic() + 30  # a hang detector
    while True:  # ... and the restarted sandbox killed it (it was verifiably the same process)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "orphaned job process still alive"
        time.sleep(0.05)


def test_second_sandbox_on_same_state_dir_is_refused(sandbox_factory: SandboxFactory) -> None:
    from tests.plugins.sandbox import SandboxStartFailed, launch_sandbox

    sb = sandbox_factory()
    with pytest.raises(SandboxStartFailed, match="another sandbox is already using state dir"):
        launch_sandbox(sb.state_dir, org=sb.org, token=sb.token, timeout=20)
    assert sb.stats()["pid"] == sb.pid
