"""Exactly one PERIAN job per task attempt against an impolite PERIAN, across three replicas.

Three ``perianctl serve`` processes behind a round-robin client, driven the way flytepropeller v1
drives a connector by the shared harness (:mod:`perianctl.connector.check`, also behind
``perianctl connector check``): CreateTask with a 10 s deadline; a failed CreateTask is a failed
attempt and the task is retried as a new attempt while ``retries`` allow; GetTask polling with the
freeze-after-five rule; same-attempt re-sends after a simulated propeller restart. The sandbox is
made impolite per scenario (slow creates that commit after the caller hung up at 5 s and 9 s, a
15 s stall that commits afterwards, a lost reply, a refused window, a 429 storm, slow GETs, a
re-send while the first create is in flight). The harness's verdict per scenario:

* every successful attempt has exactly one job that was not cancelled, and it is the one returned;
* no job that no attempt owns is left uncancelled once the connector had its reaping time;
* no GetTask call failed.

Two stacks (sandbox + three replicas each) run the matrix with ``retries`` 0 and 2 at the same
time (impolite rules are sandbox-wide, so one sandbox runs one scenario at a time). Two more
scenarios use a small driver of their own: 1,000 other jobs created between a lost reply and the
re-send, and GetTask polling across a refused window. Sweeps run every 0.5 s here
(``--sweep-interval``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.service import agent_pb2_grpc

from perianctl.connector import check as sim
from perianctl.connector.idempotency import idempotency_for
from tests.plugins.sandbox import SandboxHandle, launch_sandbox
from tests.support.connector import Api, ServeProcess, category, create_request, get_request

pytestmark = pytest.mark.timeout(180)

CREATE_DEADLINE = 10.0  # propeller's defaultTimeout / timeouts.CreateTask in our deployment snippet
GET_DEADLINE = 10.0
REAP_BOUND = 60.0  # the documented bound for an orphan to be cancelled (with default flags: ~15 s)
SWEEP_INTERVAL = "0.5"


@dataclass
class Stack:
    sandbox: SandboxHandle
    replicas: list[ServeProcess]


def _drain(proc: ServeProcess) -> threading.Thread:
    """Keep reading the replica's stderr so its logging never blocks on a full pipe."""

    def run() -> None:
        assert proc.proc.stderr is not None
        for line in proc.proc.stderr:
            proc.lines.append(line)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@contextlib.contextmanager
def _stack(tmp: Path) -> Iterator[Stack]:
    sandbox = launch_sandbox(tmp / "sandbox", access_log=False, max_parallel=64)
    api = Api(sandbox.url, sandbox.org, sandbox.token)
    procs = [ServeProcess(api, "--sweep-interval", SWEEP_INTERVAL, tmp=tmp) for _ in range(3)]
    readers: list[threading.Thread] = []
    try:
        replicas = [p.wait_ready() for p in procs]
        readers = [_drain(p) for p in replicas]
        yield Stack(sandbox, replicas)
    finally:
        for p in procs:
            p.signal_term()
        codes = []
        for p in procs:
            try:
                codes.append(p.proc.wait(timeout=30))
            except subprocess.TimeoutExpired:
                p.proc.kill()
                codes.append(p.proc.wait())
        for reader in readers:
            reader.join(timeout=5)
        sandbox.stop()
    assert all(code == 0 for code in codes), ["".join(p.lines[-20:]) for p in procs]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with _stack(tmp_path_factory.mktemp("convergence")) as made:
        yield made


@pytest.fixture(scope="module")
def second_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with _stack(tmp_path_factory.mktemp("convergence-2")) as made:
        yield made


# ---------------------------------------------------------------------- the matrix, through the harness

MATRIX = ("slow-create-5s", "slow-create-9s", "stall-create-15s", "lost-reply", "refused-5s", "429-storm",
          "slow-get-7s", "resend-in-flight")


async def _matrix(stack: Stack, retries: int, base: Path) -> list[sim.ScenarioResult]:
    task = sim.load_task(None, [], str(base))
    config = sim.PropellerConfig(poll_interval=0.3, settle=REAP_BOUND)
    admin = sim.SandboxAdmin(stack.sandbox.url)
    results = []
    for name in MATRIX:
        scenario = replace(sim.SCENARIOS[name], retries=retries, job_seconds=2.0)
        results.append(await sim.run_scenario([p.target for p in stack.replicas], admin, task, scenario, config))
    return results


async def test_impolite_matrix_with_retries_0_and_2(stack: Stack, second_stack: Stack, tmp_path: Path) -> None:
    r0, r2 = await asyncio.gather(_matrix(stack, 0, tmp_path / "r0"), _matrix(second_stack, 2, tmp_path / "r2"))
    results = r0 + r2
    print("\n" + sim.format_table(results))
    assert [r.verdict for r in results] == ["ok"] * len(results), sim.format_table(results)
    by_name = {(r.scenario.name, r.scenario.retries): r for r in results}
    # What must succeed does: a create answering within deadline - margin, a lost reply, an API
    # restart shorter than the call's budget, slow GETs, a re-send while the first create is in flight.
    for name in ("slow-create-5s", "lost-reply", "refused-5s", "slow-get-7s", "resend-in-flight"):
        for retries in (0, 2):
            assert by_name[name, retries].outcome == "succeeded", by_name[name, retries].to_json()
    assert by_name["429-storm", 2].outcome == "succeeded"  # 20 x Retry-After 1 s may outlast one call
    # A create PERIAN commits only after the call gave up fails the attempt; the retry owns its job.
    assert by_name["slow-create-9s", 0].outcome != "succeeded"
    assert by_name["stall-create-15s", 2].outcome == "succeeded"
    for result in results:
        for call in result.calls:
            assert call.seconds < sim.PropellerConfig().create_timeout, call  # answered, never timed out


# ---------------------------------------------------------------------- a small driver for two extra cases


@dataclass
class Attempt:
    number: int
    key: str
    ok: bool
    job_id: str | None
    code: str
    seconds: float


@dataclass
class Task:
    name: str
    retries: int
    node_tag: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    get_codes: Counter[str] = field(default_factory=Counter)
    last_phase: int = 0
    last_message: str = ""

    @property
    def owned(self) -> str | None:
        ok = [a for a in self.attempts if a.ok]
        return ok[-1].job_id if ok else None


class Propeller:
    """Round-robin over the replicas, one call at a time per task, as propeller's plugin does."""

    def __init__(self, targets: list[str]) -> None:
        self.channels = [grpc.aio.insecure_channel(t) for t in targets]
        stubs = [agent_pb2_grpc.AsyncAgentServiceStub(c) for c in self.channels]
        self.next = itertools.cycle(stubs).__next__

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()

    async def run(self, task: Task, *, resend_after_success: bool = False, polls: int = 2,
                  before_resend: object = None) -> Task:
        execution = f"{task.name}-{time.monotonic_ns() % 10**9}"
        for number in range(task.retries + 1):
            request = create_request("success", execution=execution, attempt=number, duration=600)
            info = idempotency_for(request.task_execution_metadata, request.output_prefix)
            task.node_tag = info.node_tag or ""
            start = time.monotonic()
            try:
                reply = await self.next().CreateTask(request, timeout=CREATE_DEADLINE)
            except grpc.aio.AioRpcError as exc:
                task.attempts.append(Attempt(number, info.key, False, None, exc.code().name,
                                             time.monotonic() - start))
                continue  # a failed CreateTask is a retryable failure of this attempt
            job_id = json.loads(reply.resource_meta)["job_id"]
            task.attempts.append(Attempt(number, info.key, True, job_id, "OK", time.monotonic() - start))
            if resend_after_success:  # propeller could not save its state: the same attempt again
                if callable(before_resend):
                    await before_resend()
                again = await self.next().CreateTask(request, timeout=CREATE_DEADLINE)
                assert json.loads(again.resource_meta)["job_id"] == job_id
            for _ in range(polls):
                await self.poll(task, reply.resource_meta)
            return task
        return task

    async def poll(self, task: Task, meta: bytes) -> None:
        try:
            resource = (await self.next().GetTask(get_request(meta), timeout=GET_DEADLINE)).resource
        except grpc.aio.AioRpcError as exc:
            task.get_codes[exc.code().name] += 1
            return
        task.get_codes["OK"] += 1
        task.last_phase, task.last_message = resource.phase, resource.message

    async def abort(self, task: Task) -> None:
        if task.owned is None:
            return
        meta = json.dumps({"job_id": task.owned}).encode()
        await self.next().DeleteTask(agent_pb2.DeleteTaskRequest(resource_meta=meta, task_category=category()),
                                     timeout=CREATE_DEADLINE)


def unowned_running(sandbox: SandboxHandle, tasks: list[Task]) -> list[dict[str, object]]:
    tags = {t.node_tag for t in tasks}
    owned = {t.owned for t in tasks}
    return [j for j in sandbox.jobs() if j["node_tag"] in tags and not j["terminal"] and j["id"] not in owned]


async def wait_reaped(sandbox: SandboxHandle, tasks: list[Task], *, after: float = 0.0) -> float:
    """Seconds until no job of these tasks runs unowned (checked after ``after`` s, when a stalled
    create may still commit)."""
    start = time.monotonic()
    await asyncio.sleep(after)
    while True:
        left = await asyncio.to_thread(unowned_running, sandbox, tasks)
        if not left:
            return time.monotonic() - start
        assert time.monotonic() - start < after + REAP_BOUND, f"still running unowned: {left}"
        await asyncio.sleep(0.2)


def check(sandbox: SandboxHandle, tasks: list[Task]) -> None:
    by_key: dict[str | None, list[dict[str, object]]] = {}
    for job in sandbox.jobs():
        by_key.setdefault(job["idempotency_key"], []).append(job)
    for task in tasks:
        for attempt in task.attempts:
            if attempt.ok:
                assert [j["id"] for j in by_key.get(attempt.key, [])] == [attempt.job_id], (task, by_key.get(
                    attempt.key))
        assert all(code == "OK" for code in task.get_codes), task.get_codes
        for attempt in task.attempts:
            assert attempt.seconds < CREATE_DEADLINE, attempt  # answered before the deadline, never after


async def wait_late_commits(sandbox: SandboxHandle, tasks: list[Task], failed: int) -> None:
    """Wait until ``failed`` failed attempts have the job PERIAN committed after the caller gave up."""
    keys = {a.key for t in tasks for a in t.attempts if not a.ok}
    start = time.monotonic()
    while True:
        have = {j["idempotency_key"] for j in await asyncio.to_thread(sandbox.jobs)} & keys
        if len(have) >= failed:
            return
        assert time.monotonic() - start < 40, f"only {len(have)} of {failed} late creates committed"
        await asyncio.sleep(0.2)


async def scenario(stack: Stack, rules: list[str], *, expect_ok: dict[int, bool] | None,
                   late_commits: int = 0, clear_after: bool = True, **run: Any) -> list[Task]:
    stack.sandbox.clear_impolite()
    stack.sandbox.set_impolite(rules)
    propeller = Propeller([p.target for p in stack.replicas])
    try:
        tasks = [Task(f"r{r}", retries=r) for r in (0, 2)]
        await asyncio.gather(*(propeller.run(t, **run) for t in tasks))
        if clear_after:
            stack.sandbox.clear_impolite()
        await wait_late_commits(stack.sandbox, tasks, late_commits)
        await wait_reaped(stack.sandbox, tasks)
        check(stack.sandbox, tasks)
        for task in tasks:
            assert expect_ok is None or (task.owned is not None) == expect_ok[task.retries], task
        for task in tasks:
            await propeller.abort(task)
        await wait_reaped(stack.sandbox, [Task("none", 0, node_tag=t.node_tag) for t in tasks])
    finally:
        stack.sandbox.clear_impolite()
        await propeller.close()
    return tasks


# ---------------------------------------------------------------------- cases the harness has no hook for


async def test_refused_window_answers_every_call_in_time_and_creates_at_most_one_job(stack: Stack) -> None:
    """A task created before the window is polled during it (last phase, no error); tasks started in
    the window fail their attempts or succeed after it, never with a second job."""
    propeller = Propeller([p.target for p in stack.replicas])
    try:
        before = await propeller.run(Task("before", 0), polls=1)
        assert before.owned is not None
        meta = json.dumps({"job_id": before.owned}).encode()

        async def poll_in_window() -> None:
            for _ in range(3):
                await propeller.poll(before, meta)

        stack.sandbox.set_impolite(["*=refuse:3s"])
        tasks = [Task(f"r{r}", retries=r) for r in (0, 2)]
        await asyncio.gather(poll_in_window(), *(propeller.run(t) for t in tasks))
        stack.sandbox.clear_impolite()
        await wait_reaped(stack.sandbox, [before, *tasks])
        check(stack.sandbox, [before, *tasks])
        assert before.get_codes["OK"] == 4
        for task in [before, *tasks]:
            await propeller.abort(task)
    finally:
        stack.sandbox.clear_impolite()
        await propeller.close()


async def test_a_thousand_other_jobs_during_an_ambiguous_create_do_not_hide_it(stack: Stack) -> None:
    """The reply is lost, 1,000 other jobs are created, then propeller re-sends the same attempt: the
    look-up is bounded by creation time, not by the newest 300, so the job is found again."""

    async def thousand() -> None:
        def post_all() -> None:
            with httpx.Client(base_url=stack.sandbox.url, headers=stack.sandbox.headers(), timeout=30) as client:
                body = {"docker_run_parameters": {"image_name": "ubuntu", "image_tag": "22.04",
                                                  "command": "echo other"},
                        "requirements": {"cpu": {"cores": 1}}}
                for _ in range(1000):
                    client.post("/job", json=body).raise_for_status()

        await asyncio.to_thread(post_all)

    ran = False

    async def once() -> None:
        nonlocal ran
        if not ran:
            ran = True
            await thousand()

    tasks = await scenario(stack, ["create=stall:2s,count=1"], expect_ok={0: True, 2: True},
                           resend_after_success=True, before_resend=once)
    assert all(len(t.attempts) == 1 for t in tasks)
    metrics_note = [line for p in stack.replicas for line in p.lines if "returning its existing" in line]
    assert metrics_note  # the re-sends were answered by adoption, not by a second POST
