"""The ``simulate`` runtime: jobs walk through PERIAN statuses on a timer, nothing is executed.

One scheduler task and one heap serve every job (no thread or task per job), and all changes due
at the same moment are written in one transaction, so thousands of jobs cost little.

Per-job behaviour comes from the job's own environment (``docker_run_parameters.env_variables``),
so a test picks an outcome without any server-side set-up:

``PERIAN_SANDBOX_SCENARIO``
    ``success`` (default): Queued → Initializing → Running → Done.
    ``fail``: … → Running → UserError, with a traceback in ``logs`` and a one-line ``errors``.
    ``server-error``: … → Running → ServerError (a lost instance).
    ``timeout``: … → Running → Timeout.
    ``slow``: like success, but runs ``slow_factor`` times longer.
    ``cancel-resistant``: a cancel is accepted, but the job only reaches Cancelled after
    ``cancel_delay``.
    ``undefined``: reports status Undefined for a while after Queued, then carries on to Done.
``PERIAN_SANDBOX_DURATION``
    Seconds the job spends Running, in *wall-clock* seconds (not divided by the speed factor), so
    a test can ask for "a job that runs about 2 s" whatever the sandbox speed.

Every other duration is a :class:`~perianctl.sandbox.config.SimTimings` base value divided by the
speed factor. A job's ``timeout_seconds`` (wall-clock) ends a longer run as Timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from dataclasses import dataclass, field

from perianctl.perian.status import WorkloadStatus as S
from perianctl.sandbox.config import SandboxConfig
from perianctl.sandbox.runtimes.base import JobSpec, Runtime
from perianctl.sandbox.store import JobRow, JobStore, JobUpdate

log = logging.getLogger("perianctl.sandbox.simulate")

SCENARIO_ENV = "PERIAN_SANDBOX_SCENARIO"
DURATION_ENV = "PERIAN_SANDBOX_DURATION"
SCENARIOS = ("success", "fail", "server-error", "timeout", "slow", "cancel-resistant", "undefined")


@dataclass
class _Sim:
    job_id: str
    scenario: str
    spec: JobSpec
    run_for: float
    phase: str = "queued"
    version: int = 0
    run_end: float = 0.0
    lines_total: int = 0
    lines_done: int = 0
    line_interval: float = 0.0
    notes: list[str] = field(default_factory=list)


def scenario_of(spec: JobSpec) -> tuple[str, list[str]]:
    """The job's scenario and notes for the logs (an unknown scenario runs as ``success``)."""
    raw = spec.env.get(SCENARIO_ENV)
    if raw is None or str(raw).strip() == "":
        return "success", []
    name = str(raw).strip().lower().replace("_", "-")
    if name in SCENARIOS:
        return name, []
    return "success", [
        f"[sandbox] unknown {SCENARIO_ENV}={raw!r}; running as 'success' (known: {', '.join(SCENARIOS)})\n"
    ]


def _duration(spec: JobSpec) -> float | None:
    raw = spec.env.get(DURATION_ENV)
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, value)


class SimulateRuntime(Runtime):
    name = "simulate"

    def __init__(self, config: SandboxConfig, store: JobStore) -> None:
        super().__init__(config, store)
        self._sims: dict[str, _Sim] = {}
        self._heap: list[tuple[float, int, str, int]] = []
        self._counter = itertools.count()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ API side

    async def start(self, queued: list[JobRow]) -> None:
        for job in queued:
            self.submit(job)
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="sandbox-simulate")

    def submit(self, job: JobRow) -> None:
        spec = JobSpec.from_row(job)
        scenario, notes = scenario_of(spec)
        timings = self.config.timings
        run_for = _duration(spec)
        if run_for is None:
            run_for = timings.scaled(timings.running)
            if scenario == "slow":
                run_for *= timings.slow_factor
        sim = _Sim(job_id=job.id, scenario=scenario, spec=spec, run_for=run_for, notes=notes)
        self._sims[job.id] = sim
        self._schedule(sim, time.monotonic() + timings.scaled(timings.queued))

    def cancel(self, job: JobRow) -> None:
        sim = self._sims.get(job.id)
        if sim is not None and sim.scenario == "cancel-resistant" and sim.phase != "queued":
            if sim.phase != "cancelling":
                sim.phase = "cancelling"
                self.store.update(JobUpdate(job.id, append_logs="received a cancel request; shutting down slowly\n"))
                self._schedule(sim, time.monotonic() + self.config.timings.scaled(self.config.timings.cancel_delay))
            return
        self._sims.pop(job.id, None)
        started = job.status != S.QUEUED.value
        self.end(job.id, S.CANCELLED.value, logs="[sandbox] job cancelled\n" if started else None)

    def finish_now(self, job: JobRow, status: str) -> bool:
        """End a job at once with ``status`` (admin ``POST /_sandbox/jobs/{id}/finish``): a check run
        lets owned jobs finish when it wants, while jobs nobody owns keep running until cancelled."""
        self._sims.pop(job.id, None)
        return self.end(job.id, status, logs=f"[sandbox] ended by the admin API ({status})\n")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # ------------------------------------------------------------------ scheduler

    def _schedule(self, sim: _Sim, due: float) -> None:
        sim.version += 1
        heapq.heappush(self._heap, (due, next(self._counter), sim.job_id, sim.version))
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            now = time.monotonic()
            batch: list[JobUpdate] = []
            wall = time.time()
            while self._heap and self._heap[0][0] <= now:
                _, _, job_id, version = heapq.heappop(self._heap)
                sim = self._sims.get(job_id)
                if sim is None or sim.version != version:
                    continue
                try:
                    self._advance(sim, now, wall, batch)
                except Exception:  # one broken job must not stop the others
                    log.exception("simulate: job %s failed to advance", job_id)
                    self._sims.pop(job_id, None)
            if batch:
                try:
                    self.store.apply(batch)
                except Exception:
                    log.exception("simulate: could not store %d updates", len(batch))
            self._wake.clear()
            delay = self._heap[0][0] - time.monotonic() if self._heap else None
            if delay is None or delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)

    def _advance(self, sim: _Sim, now: float, wall: float, batch: list[JobUpdate]) -> None:
        timings = self.config.timings
        job_id = sim.job_id
        if sim.phase == "queued":
            if sim.scenario == "undefined":
                sim.phase = "undefined"
                batch.append(JobUpdate(job_id, status=S.UNDEFINED.value, at=wall))
                self._schedule(sim, now + timings.scaled(timings.undefined))
            else:
                sim.phase = "initializing"
                batch.append(JobUpdate(job_id, status=S.INITIALIZING.value, at=wall))
                self._schedule(sim, now + timings.scaled(timings.initializing))
        elif sim.phase == "undefined":
            sim.phase = "initializing"
            batch.append(JobUpdate(job_id, status=S.INITIALIZING.value, at=wall))
            self._schedule(sim, now + timings.scaled(timings.initializing))
        elif sim.phase == "initializing":
            self._enter_running(sim, now, wall, batch)
        elif sim.phase == "running":
            if now >= sim.run_end - 1e-6:
                self._finish(sim, wall, batch)
            else:
                sim.lines_done += 1
                percent = min(99, int(100 * sim.lines_done / (sim.lines_total + 1)))
                batch.append(JobUpdate(job_id, at=wall, append_logs=f"step {sim.lines_done}: {percent}% done\n"))
                self._schedule(sim, min(now + sim.line_interval, sim.run_end))
        elif sim.phase == "cancelling":
            self._sims.pop(job_id, None)
            batch.append(
                JobUpdate(job_id, status=S.CANCELLED.value, at=wall, append_logs="stopped after the cancel request\n")
            )

    def _enter_running(self, sim: _Sim, now: float, wall: float, batch: list[JobUpdate]) -> None:
        spec = sim.spec
        sim.phase = "running"
        run_for = sim.run_for
        if spec.timeout_seconds is not None and spec.timeout_seconds < run_for:
            run_for = float(spec.timeout_seconds)
            sim.scenario = "timeout"
        sim.run_end = now + run_for
        sim.lines_total = max(3, min(int(run_for), 120))
        sim.line_interval = run_for / (sim.lines_total + 1)
        image = spec.image or "(no image)"
        text = "".join(sim.notes) + (
            f"[sandbox] simulated run of {image} on {spec.instance_type or 'an instance'}\n"
            f"$ {spec.command or '(image default command)'}\n"
        )
        batch.append(JobUpdate(sim.job_id, status=S.RUNNING.value, at=wall, append_logs=text))
        self._schedule(sim, min(now + sim.line_interval, sim.run_end))

    def _finish(self, sim: _Sim, wall: float, batch: list[JobUpdate]) -> None:
        self._sims.pop(sim.job_id, None)
        scenario = sim.scenario
        if scenario == "fail":
            batch.append(
                JobUpdate(
                    sim.job_id,
                    status=S.USER_ERROR.value,
                    at=wall,
                    append_logs=(
                        'Traceback (most recent call last):\n  File "/app/main.py", line 7, in <module>\n'
                        f"RuntimeError: simulated failure ({SCENARIO_ENV}=fail)\n"
                    ),
                    errors=f"Container exited with code 1: RuntimeError: simulated failure ({SCENARIO_ENV}=fail)",
                )
            )
        elif scenario == "server-error":
            batch.append(
                JobUpdate(
                    sim.job_id,
                    status=S.SERVER_ERROR.value,
                    at=wall,
                    append_logs="[sandbox] lost contact with the instance\n",
                    errors=f"The instance was preempted by the provider (simulated, {SCENARIO_ENV}=server-error)",
                )
            )
        elif scenario == "timeout":
            limit = sim.spec.timeout_seconds
            what = f"its timeout of {limit} s" if limit is not None else "its timeout"
            batch.append(
                JobUpdate(
                    sim.job_id,
                    status=S.TIMEOUT.value,
                    at=wall,
                    append_logs="[sandbox] timeout reached; stopping the container\n",
                    errors=f"The job exceeded {what} and was stopped",
                )
            )
        else:
            batch.append(JobUpdate(sim.job_id, status=S.DONE.value, at=wall, append_logs="done\n"))
