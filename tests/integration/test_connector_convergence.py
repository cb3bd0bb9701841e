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

Propeller's deadlines are scaled down here (6 s instead of 10 s) and every impolite duration with
them, so each scenario keeps its place relative to the connector's budget (deadline - 1 s margin):
answered within it, committed just after the caller hung up, stalled past the deadline. Every
scenario runs with ``retries`` 0 and 2; two stacks (sandbox + three replicas each) take the 16 runs
from one queue, longest first (impolite rules are sandbox-wide, so one sandbox runs one scenario at
a time). Two more cases use the harness's hooks: GetTask polling of an existing task across a
refused window (``rules_after_create``), and 1,000 other jobs created between a lost reply and the
same-attempt re-send (``resend_after_success`` + ``before_resend``). Sweeps run every 0.5 s here
(``--sweep-interval``).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from perianctl.connector import check as sim
from tests.plugins.sandbox import SandboxHandle, launch_sandbox
from tests.support.connector import Api, ServeProcess

pytestmark = pytest.mark.timeout(180)

DEADLINE = 6.0  # propeller's CreateTask/GetTask deadline (10 s in our deployment snippet), scaled by 0.6
REAP_BOUND = 60.0  # the documented bound for an orphan to be cancelled (with default flags: ~15 s)
CONFIG = sim.PropellerConfig(
    create_timeout=DEADLINE, get_timeout=DEADLINE, delete_timeout=DEADLINE, poll_interval=0.3, settle=REAP_BOUND
)
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

#: The harness's scenarios with every duration scaled like the deadline (budget = 6 s - 1 s margin):
#: the comment says which side of the budget each one is on.
MATRIX: dict[str, tuple[str, ...]] = {
    "slow-create-5s": ("create=slow:3s",),  # answered well within the budget
    "slow-create-9s": ("create=slow:5.4s",),  # committed after the connector hung up, before the deadline
    "stall-create-15s": ("create=stall:9s,count=1",),  # never answered; committed after the next attempt
    "lost-reply": ("create=stall:0.2s,count=1",),  # committed, then the connection closes without a reply
    "refused-5s": ("*=refuse:3s",),  # an API restart shorter than one call's budget
    "429-storm": ("*=429:count=12,retry-after=0.6",),  # may outlast one call, not three
    "slow-get-7s": ("get=slow:4.2s",),  # GETs answered within the budget
    "resend-in-flight": ("create=slow:2.4s",),  # propeller restarts 0.6 s into CreateTask (below)
}
RUNS = [(name, retries) for name in MATRIX for retries in (0, 2)]
#: Rough cost of a run (seconds at scale): the longest are taken first, so two stacks finish together.
COST = {
    ("slow-create-9s", 2): 20,
    ("stall-create-15s", 0): 12,
    ("stall-create-15s", 2): 12,
    ("slow-get-7s", 0): 10,
    ("slow-get-7s", 2): 10,
    ("429-storm", 0): 8,
    ("429-storm", 2): 8,
}


def _scenario(name: str, retries: int) -> sim.Scenario:
    base = sim.SCENARIOS[name]
    restart = None if base.restart_after is None else base.restart_after * 0.6
    return replace(base, rules=MATRIX[name], retries=retries, job_seconds=1.2, restart_after=restart)


async def _worker(
    stack: Stack, queue: asyncio.Queue[tuple[str, int]], task: sim.TaskInput, results: list[sim.ScenarioResult]
) -> None:
    admin = sim.SandboxAdmin(stack.sandbox.url)
    targets = [p.target for p in stack.replicas]
    while not queue.empty():
        name, retries = queue.get_nowait()
        results.append(await sim.run_scenario(targets, admin, task, _scenario(name, retries), CONFIG))


async def test_impolite_matrix_with_retries_0_and_2(stack: Stack, second_stack: Stack, tmp_path: Path) -> None:
    queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    for run in sorted(RUNS, key=lambda r: -COST.get(r, 5)):
        queue.put_nowait(run)
    task = sim.load_task(None, [], str(tmp_path))
    results: list[sim.ScenarioResult] = []
    await asyncio.gather(_worker(stack, queue, task, results), _worker(second_stack, queue, task, results))
    results.sort(key=lambda r: (list(MATRIX).index(r.scenario.name), r.scenario.retries))
    print("\n" + sim.format_table(results))
    assert [(r.scenario.name, r.scenario.retries) for r in results] == RUNS  # every scenario, retries 0 and 2
    assert [r.verdict for r in results] == ["ok"] * len(results), sim.format_table(results)
    by_name = {(r.scenario.name, r.scenario.retries): r for r in results}
    # What must succeed does: a create answering within deadline - margin, a lost reply, an API
    # restart shorter than the call's budget, slow GETs, a re-send while the first create is in flight.
    for name in ("slow-create-5s", "lost-reply", "refused-5s", "slow-get-7s", "resend-in-flight"):
        for retries in (0, 2):
            assert by_name[name, retries].outcome == "succeeded", by_name[name, retries].to_json()
    assert by_name["429-storm", 2].outcome == "succeeded"  # the storm may outlast one call
    # A create PERIAN commits only after the call gave up fails the attempt; the retry owns its job.
    assert by_name["slow-create-9s", 0].outcome != "succeeded"
    assert by_name["stall-create-15s", 2].outcome == "succeeded"
    for result in results:
        for call in result.calls:
            assert call.seconds < DEADLINE, call  # answered, never timed out


# ---------------------------------------------------------------------- the harness's hooks


async def test_refused_window_answers_every_poll_of_an_existing_task_and_creates_one_job(
    stack: Stack, tmp_path: Path
) -> None:
    """The window opens once the task's CreateTask succeeded: it is polled during the window (the
    last phase, never an error), then finishes with its one job."""
    scenario = sim.Scenario("refused-while-polled", ("*=refuse:3s",), rules_after_create=True, job_seconds=4.0)
    task = sim.load_task(None, [], str(tmp_path))
    result = await sim.run_scenario(
        [p.target for p in stack.replicas], sim.SandboxAdmin(stack.sandbox.url), task, scenario, CONFIG
    )
    assert result.verdict == "ok", sim.format_table([result])  # no GetTask error among them
    assert result.outcome == "succeeded"
    assert [len(a.jobs) for a in result.attempts] == [1]
    assert sum(1 for c in result.calls if c.method == sim.GET) >= 8  # polled through the 3 s window


async def test_a_thousand_other_jobs_during_an_ambiguous_create_do_not_hide_it(stack: Stack, tmp_path: Path) -> None:
    """The reply is lost, 1,000 other jobs are created, then propeller re-sends the same attempt: the
    look-up is bounded by creation time, not by the newest 300, so the job is found again."""

    def post_all() -> None:
        with httpx.Client(base_url=stack.sandbox.url, headers=stack.sandbox.headers(), timeout=30) as client:
            body = {
                "docker_run_parameters": {"image_name": "ubuntu", "image_tag": "22.04", "command": "echo other"},
                "requirements": {"cpu": {"cores": 1}},
            }
            for _ in range(1000):
                client.post("/job", json=body).raise_for_status()

    async def thousand() -> None:
        await asyncio.to_thread(post_all)

    scenario = sim.Scenario("thousand-before-resend", ("create=stall:2s,count=1",), resend_after_success=True)
    task = sim.load_task(None, [], str(tmp_path))
    seen = [len(p.lines) for p in stack.replicas]
    result = await sim.run_scenario(
        [p.target for p in stack.replicas],
        sim.SandboxAdmin(stack.sandbox.url),
        task,
        scenario,
        CONFIG,
        before_resend=thousand,
    )
    assert result.verdict == "ok", sim.format_table([result])
    assert result.outcome == "succeeded"
    assert [(a.creates, len(a.jobs)) for a in result.attempts] == [(2, 1)]  # the re-send found it: no second job
    notes = [
        line
        for p, n in zip(stack.replicas, seen, strict=True)
        for line in p.lines[n:]
        if "returning its existing" in line
    ]
    assert notes  # the re-send was answered by adoption, not by a second POST
