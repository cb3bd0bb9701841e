"""Issue 7, faults: ``submit --wait``, ``wait`` and ``watch`` through an unreliable API lose no job and
create no duplicate; a sandbox SIGKILLed and restarted under a running ``wait`` loses nothing.

Real CLI subprocesses against a real sandbox with fault injection (20 % of PERIAN requests answered
500, 503 or a dropped connection, 0-50 ms latency). The ``after`` phase is the hard one: the server
did the work (the job exists) and the reply is lost, so only an idempotent create avoids a duplicate.
Every count is taken on the sandbox side, with faults switched off first.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from perianctl.journal import open_journal
from tests.plugins.cli import CliEnv, CliResult, CliRunner
from tests.plugins.sandbox import SandboxFactory, SandboxHandle

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = str(REPO / "examples" / "templates" / "hello.json")  # simulate ignores the command
JOB_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
FAULTS: dict[str, Any] = {"fault_rate": 0.2, "fault_kinds": ["500", "503", "reset"], "latency": "0-0.05"}
PARALLEL = 5  # CLI processes at once: enough to interleave requests, few enough for a 2-CPU runner


def _submit_many(run_cli: CliRunner, sb: SandboxHandle, n: int, *extra: str) -> list[CliResult]:
    def one(i: int) -> CliResult:
        return run_cli("submit", TEMPLATE, "--input", f"name=r{i}", "-o", "name", *extra, env=sb.env(), timeout=90)

    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(one, range(n)))


def _ids_printed(results: list[CliResult]) -> list[str]:
    ids = []
    for result in results:
        assert result.returncode == 0, result
        assert "Traceback" not in result.output, result
        lines = result.stdout.split()
        assert len(lines) == 1 and JOB_ID.match(lines[0]), result  # -o name: only the id on stdout
        ids.append(lines[0])
    return ids


def _server_jobs(sb: SandboxHandle) -> dict[str, str]:
    """Every job the sandbox holds (id → status), read with fault injection switched off."""
    sb.set_faults(rate=0.0, latency=0)
    with sb.http() as client:
        response = client.get("/job", params={"limit": 1000})
    assert response.status_code == 200, response.text
    body = response.json()
    jobs = {job["id"]: job["status"] for job in body["jobs"]}
    assert body["pagination"]["total_items"] == len(jobs)
    return jobs


def _journal_ids(cli_env: CliEnv) -> set[str]:
    with open_journal(cli_env.state_dir / "journal.db") as journal:
        return {job.job_id for job in journal.jobs(limit=10_000)}


@pytest.mark.parametrize("phase", ["before", "after"])
def test_submit_wait_under_faults_creates_each_job_exactly_once(
    phase: str, sandbox_factory: SandboxFactory, run_cli: CliRunner, cli_env: CliEnv
) -> None:
    """15 ``submit --wait`` runs, 5 at a time: all exit 0 with their id; the server holds exactly those 15, Done."""
    n = 15
    sb = sandbox_factory(**FAULTS, fault_phase=phase, fault_seed=701 if phase == "before" else 702)
    results = _submit_many(run_cli, sb, n, "--wait")
    ids = _ids_printed(results)
    assert len(set(ids)) == n, ids

    stats = sb.stats()
    assert stats["faults"]["injected"] > 0, stats
    assert stats["jobs_created"] == n, stats  # no duplicate was ever created, even transiently
    jobs = _server_jobs(sb)
    assert set(jobs) == set(ids), (sorted(jobs), sorted(ids))  # none lost, none extra
    assert set(jobs.values()) == {"Done"}, jobs
    assert _journal_ids(cli_env) == set(ids)  # 15 concurrent writers, every submission journalled
    for result in results:
        assert "succeeded" in result.stderr, result


def test_wait_and_watch_under_faults_see_every_job_finish(
    sandbox_factory: SandboxFactory, run_cli: CliRunner, cli_env: CliEnv
) -> None:
    """Jobs created by ``submit`` under faults (both phases), then followed by ``wait`` and ``watch`` at once."""
    n = 8
    sb = sandbox_factory(**FAULTS, fault_phase="mixed", fault_seed=703)
    # Running ~10 s, so wait and watch really poll through the faults rather than find them finished
    # (starting two CLI processes on a busy 2-core box takes seconds).
    ids = _ids_printed(_submit_many(run_cli, sb, n, "--env", "PERIAN_SANDBOX_DURATION=10"))
    assert len(set(ids)) == n
    base = cli_env.env() | sb.env()
    common = ["--interval", "0.2", "--timeout", "60"]
    wait = subprocess.Popen(
        [sys.executable, "-m", "perianctl", "wait", *ids, *common, "-o", "json"],
        env=base,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watch = subprocess.Popen(
        [sys.executable, "-m", "perianctl", "watch", *ids, *common, "-o", "json"],
        env=base,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_out, wait_err = wait.communicate(timeout=90)
        watch_out, watch_err = watch.communicate(timeout=90)
    finally:
        for proc in (wait, watch):
            if proc.poll() is None:
                proc.kill()
    assert wait.returncode == 0, (wait_out, wait_err)
    assert watch.returncode == 0, (watch_out, watch_err)
    assert "Traceback" not in wait_err + watch_err
    waited = json.loads(wait_out)
    waited = waited if isinstance(waited, list) else [waited]
    assert {job["id"]: job["status"] for job in waited} == dict.fromkeys(ids, "Done")
    events = [json.loads(line) for line in watch_out.splitlines()]
    done = events[-1]
    assert done["event"] == "done" and done["exit_code"] == 0, watch_out
    assert {job["job_id"]: job["status"] for job in done["jobs"]} == dict.fromkeys(ids, "Done")
    moves = [e for e in events if e["event"] == "transition"]
    assert moves and all(e["job_id"] in ids for e in moves)  # it saw jobs move, not just a final state

    stats = sb.stats()
    assert stats["faults"]["injected"] > 0 and stats["jobs_created"] == n, stats
    assert _server_jobs(sb) == dict.fromkeys(ids, "Done")


def _statuses_in_db(state_dir: Path) -> dict[str, str]:
    with contextlib.closing(sqlite3.connect(state_dir / "sandbox.db")) as db:
        return dict(db.execute("SELECT id, status FROM jobs").fetchall())


@contextlib.contextmanager
def _background_cli(args: list[str], env: dict[str, str], log_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    out, err = log_dir / "stdout", log_dir / "stderr"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "perianctl", *args], env=env, stdout=stdout, stderr=stderr)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _wait_for_text(path: Path, needles: list[str], proc: subprocess.Popen[bytes], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace")
        if all(n in text for n in needles):
            return text
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"never saw all of {needles!r} in {path}: {path.read_text(errors='replace')!r}")


def test_wait_survives_sandbox_sigkill_and_restart(
    sandbox_factory: SandboxFactory, cli_env: CliEnv, tmp_path: Path
) -> None:
    """``wait`` keeps going across a crash: started jobs end ServerError (exit 3), Queued ones finish, none lost."""
    # Queued 5 s, Initializing 10 s; Running as long as the job asks. Queued must outlast starting
    # `wait` and its first poll on a busy box, so that the crash catches jobs before they start.
    sb = sandbox_factory(speed=0.1)
    started = [sb.create_job(duration=60) for _ in range(3)]
    for job_id in started:
        sb.wait_for_status(job_id, {"Initializing", "Running"})
    queued = [sb.create_job(duration=0.2) for _ in range(4)]
    ids = started + queued
    env = cli_env.env() | sb.env()
    with _background_cli(["wait", *ids, "--interval", "0.3", "--timeout", "90", "-o", "json"], env, tmp_path) as proc:
        _wait_for_text(tmp_path / "stderr", ids, proc)  # wait has seen every job before the crash
        assert sb.proc is not None
        sb.proc.send_signal(signal.SIGSTOP)  # freeze, note what the database says, then crash
        at_crash = _statuses_in_db(sb.state_dir)
        sb.kill()
        assert set(at_crash) == set(ids)
        # wait now meets connection errors: it must mark the view stale (the event), not give up
        _wait_for_text(tmp_path / "stderr", ["stale"], proc, timeout=60)
        sb.restart()
        code = proc.wait(60)
    stdout = (tmp_path / "stdout").read_text()
    stderr = (tmp_path / "stderr").read_text()
    assert "Traceback" not in stderr, stderr

    still_queued = [j for j in queued if at_crash[j] == "Queued"]
    assert still_queued, at_crash  # the crash caught some jobs before they started
    expected = {j: "Done" if at_crash[j] in ("Queued", "Done") else "ServerError" for j in ids}
    assert {j: expected[j] for j in started} == dict.fromkeys(started, "ServerError")
    final = {job["id"]: job["status"] for job in json.loads(stdout)}
    assert final == expected, (at_crash, stdout, stderr)
    assert code == 3, (code, stderr)  # a job lost to a crash is a failure (ServerError → 3)
    assert "stale" in stderr, stderr  # the outage was visible, and survived

    jobs = _server_jobs(sb)
    assert jobs == expected  # count before == after: nothing lost, nothing invented
    assert sb.stats()["jobs_created"] == len(ids)


async def test_create_whose_reply_is_lost_while_lookups_fail_is_neither_lost_nor_duplicated(
    sandbox_factory: SandboxFactory,
) -> None:
    """The worst case behind a 20 % fault rate: the create's reply is lost (the job exists) *and* the
    look-ups that would find it fail for a while. The client must keep looking, not give up (the job
    would be lost: it runs, nobody knows its id) and not create again (a duplicate)."""
    import asyncio
    import threading

    from perianctl.perian import models as m
    from perianctl.perian.client import IDEMPOTENCY_ENV, PerianClient, RetryPolicy

    sb = sandbox_factory(fault_rate=1.0, fault_kinds=["503"], fault_phase="after", fault_endpoints=["create"])
    stop = threading.Event()

    # The create is held 2 s by the server, so the outage surely starts before its (lost) reply.
    sb.set_faults(latency=[2.0, 2.0], latency_endpoints=["create"])

    def outage() -> None:  # once the create reached the server, fail every list until 3 look-ups failed
        sb.wait_delaying("create")
        sb.set_faults(endpoints=["create", "list"])
        while not stop.is_set() and sb.stats()["faults"]["by_endpoint"].get("list", 0) < 3:
            time.sleep(0.01)
        sb.set_faults(endpoints=["create"])

    thread = threading.Thread(target=outage)
    thread.start()
    policy = RetryPolicy(attempts=3, timeout=30, wait_initial=0.3, wait_max=0.5, wait_jitter=0.05)
    request = m.CreateJobRequest(
        requirements=m.InstanceTypeQueryInput(cpu=m.CpuQueryInput(cores=1)),
        docker_run_parameters=m.DockerRunParameters(image_name="ubuntu", command="true"),
    )
    try:
        async with PerianClient(sb.url, sb.org, sb.token, retry=policy) as client:
            job_id = await asyncio.wait_for(client.create_job(request, idempotency_key="lost-reply-1"), 30)
    finally:
        stop.set()
        thread.join(10)
    stats = sb.stats()
    assert stats["jobs_created"] == 1 and stats["faults"]["by_endpoint"].get("list", 0) > 0, stats
    job = sb.get_job(job_id)
    assert job["docker_metadata"]["docker_run_parameters"]["env_variables"][IDEMPOTENCY_ENV] == "lost-reply-1"
