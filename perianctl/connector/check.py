"""A propeller-faithful driver for any Flyte v1 connector, and the exactly-once census behind it.

``perianctl connector check`` and the connector's scenario tests share this module. It calls a
connector the way flytepropeller v1.16 does (flyteplugins go/tasks/plugins/webapi/connector/ and
pluginmachinery/internal/webapi/ at v1.16.x; summarised in docs/connector.md) -- nothing kinder:

* **CreateTask** with a deadline (``timeouts.CreateTask`` / ``defaultTimeout``: 10 s), no gRPC
  retry. An error is a retryable failure of the *attempt*: the next attempt (``retry_attempt + 1``,
  a new output prefix) calls CreateTask again, until ``retries`` is used up.
* **Same-attempt re-sends** happen only when propeller lost its state between CreateTask and
  saving the resource meta (a restart): ``restart_after`` cancels the in-flight CreateTask after
  that many seconds -- the caller hangs up -- and sends the same attempt again.
* **GetTask** right after a successful create, then every ``poll_interval`` (propeller's resync is
  30 s; a check run scales it down). Failures are counted cumulatively and never reset; more than
  ``max_system_failures`` (5) stop the polling: the attempt fails with CacheFailed if no GetTask
  ever succeeded, else the task is *frozen* at its last phase.
* **DeleteTask** only on abort (``abort_after``, or the node timeout ``task_timeout``), only with a
  resource meta, retried on error.
* **Round robin**: every call goes to the next address, like gRPC's round_robin over the pods of
  a Kubernetes Service.

Requests are real flyteidl messages: the template (perianctl's examples, or any file
``load_template`` reads) rendered per attempt as propeller renders it, the inputs ``LiteralMap``
and a ``TaskExecutionMetadata`` for a fresh execution.

Jobs are simulated "for an hour", like GPU jobs; once an owned job has been RUNNING for
``job_seconds`` the harness ends it (``POST /_sandbox/jobs/{id}/finish``), so the task succeeds,
while a job nobody owns runs on until a connector cancels it. At the end the harness cancels what is
left of the scenario's jobs.

The census asks the sandbox (``GET /_sandbox/jobs``), not the connector, which jobs exist: a job
belongs to an attempt when its command or environment carries that attempt's output prefix (what
every connector passes to ``pyflyte-execute``), so the count is the same for any connector. During
a scenario the sandbox is made impolite (:mod:`perianctl.sandbox.impolite`); when the task flow is
over the rules are cleared and the census is repeated until it converges -- no slow or stalled
request still in flight at the sandbox (its create may yet land), no unowned job left running --
or ``settle`` seconds pass: the connector's bounded reaping time.

Verdict per scenario: ``ok`` when every attempt whose CreateTask succeeded has exactly one job that
was not cancelled (and it is the job it was given), no job that no attempt owns is left uncancelled
(running, or finished on its own: either way someone paid for it), an aborted task's job is
cancelled, and no GetTask call failed (a transient PERIAN problem must never fail GetTask).

No Typer and no output formatting beyond :func:`format_table`; grpc and flyteidl only. From a test::

    task = load_task(None, [], str(tmp_path))            # perianctl's example hello template
    scenario = replace(SCENARIOS["slow-create-9s"], retries=2, job_seconds=30)
    result = await run_scenario([r.target for r in replicas], SandboxAdmin(sandbox.url), task, scenario,
                                PropellerConfig(poll_interval=0.2, settle=60))
    assert result.ok, result.verdict                     # or inspect result.attempts / .unowned / .calls
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import statistics
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
from flyteidl.admin import agent_pb2
from flyteidl.core import literals_pb2, tasks_pb2
from flyteidl.service import agent_pb2_grpc

from perianctl.connector.grpc_client import (
    build_create_request,
    job_id_from_resource_meta,
    new_execution_name,
    status_from_resource,
    synthetic_execution_metadata,
)
from perianctl.flyte.templates import PERIAN_TASK_TYPE, PERIAN_TASK_TYPE_VERSION

CANCELLED = "Cancelled"
TERMINAL_JOB = frozenset({"Done", "ServerError", "UserError", "Cancelled", "Timeout"})
CREATE, GET, DELETE = "CreateTask", "GetTask", "DeleteTask"
ORPHAN_SECONDS = 3600.0
CANCELLED_BY_CALLER = "CANCELLED_BY_CALLER"  # our own hang-up (a simulated propeller restart), not an RPC error


@dataclass(frozen=True)
class PropellerConfig:
    """The propeller settings that matter (``plugins.connector-service``: flyteplugins
    go/tasks/plugins/webapi/connector/config.go, v1.16.x), scaled for a check run."""

    create_timeout: float = 10.0
    get_timeout: float = 10.0
    delete_timeout: float = 10.0
    poll_interval: float = 1.0
    max_system_failures: int = 5
    delete_attempts: int = 10
    task_type: str = PERIAN_TASK_TYPE
    task_version: int = PERIAN_TASK_TYPE_VERSION
    settle: float = 60.0
    census_interval: float = 0.25
    task_timeout: float = 180.0
    """A node timeout: the task is aborted (DeleteTask) when it has not finished by then."""
    cleanup: bool = True
    """Cancel (through the sandbox) the scenario's jobs still running after the census."""


@dataclass(frozen=True)
class Scenario:
    """One task run under one set of impolite rules (compact ``ENDPOINT=MODE:...`` strings)."""

    name: str
    rules: tuple[str, ...] = ()
    description: str = ""
    retries: int = 0
    restart_after: float | None = None
    abort_after: float | None = None
    job_seconds: float = 2.0
    """How long an owned job runs once GetTask reports RUNNING; the harness then ends it (Done)."""
    job_scenario: str = "success"
    resend_after_success: bool = False
    """Propeller lost its state after a CreateTask *answered*: the same attempt is sent again (the
    reply of the re-send is what it keeps). ``run_scenario``'s ``before_resend`` runs in between."""
    rules_after_create: bool = False
    """The rules start once the first CreateTask succeeded (not before the task), so an existing
    task is polled while PERIAN is impolite."""


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("polite", (), "PERIAN answers at once"),
        Scenario("slow-create-5s", ("create=slow:5s",), "POST /job answers after 5 s (committed regardless)"),
        Scenario("slow-create-9s", ("create=slow:9s",), "POST /job answers after 9 s (committed regardless)"),
        Scenario(
            "stall-create-15s",
            ("create=stall:15s,count=1",),
            "the first POST /job is never answered; PERIAN commits it at 15 s",
        ),
        Scenario(
            "lost-reply",
            ("create=stall:0.2s,count=1",),
            "the first POST /job is committed, then the connection closes without a reply",
        ),
        Scenario("refused-5s", ("*=refuse:5s",), "connections refused for 5 s"),
        Scenario("429-storm", ("*=429:count=20,retry-after=1",), "20 requests answered 429, Retry-After 1"),
        Scenario("slow-get-7s", ("get=slow:7s",), "GET /job/{id} answers after 7 s"),
        Scenario(
            "resend-in-flight",
            ("create=slow:4s",),
            "propeller restarts 1 s into CreateTask and re-sends the same attempt (next replica)",
            restart_after=1.0,
        ),
        Scenario("abort", (), "the task is aborted once running: DeleteTask", abort_after=0.5),
    )
}
DEFAULT_SCENARIOS = (
    "polite",
    "slow-create-5s",
    "slow-create-9s",
    "stall-create-15s",
    "lost-reply",
    "refused-5s",
    "429-storm",
    "slow-get-7s",
    "abort",
)


# --------------------------------------------------------------------------- results


@dataclass
class Call:
    method: str
    target: str
    seconds: float
    code: str  # "OK" or a grpc.StatusCode name
    attempt: int


@dataclass
class AttemptResult:
    attempt: int
    output_prefix: str
    creates: int = 0
    resource_meta: bytes | None = None
    job_id: str | None = None
    outcome: str = "pending"  # create-failed, succeeded, failed, retryable, aborted, frozen, cache-failed, timed-out
    phases: list[str] = field(default_factory=list)
    get_failures: int = 0
    jobs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def created(self) -> bool:
        return self.resource_meta is not None

    def kept(self) -> list[dict[str, Any]]:
        """Jobs of this attempt that were not cancelled: they ran, or still run."""
        return [j for j in self.jobs if not _cancelled(j)]


@dataclass
class ScenarioResult:
    scenario: Scenario
    execution: str
    attempts: list[AttemptResult]
    calls: list[Call]
    outcome: str
    unowned: list[dict[str, Any]]
    seconds: float
    settled_in: float | None
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def verdict(self) -> str:
        return "ok" if self.ok else "FAIL: " + "; ".join(self.problems)

    def errors_by_code(self) -> dict[str, int]:
        counts = Counter(f"{c.method} {c.code}" for c in self.calls if c.code not in ("OK", CANCELLED_BY_CALLER))
        return dict(sorted(counts.items()))

    def latency(self, method: str | None = None) -> dict[str, float | None]:
        seconds = sorted(c.seconds for c in self.calls if method is None or c.method == method)
        return {"p50": _quantile(seconds, 0.50), "p99": _quantile(seconds, 0.99), "n": float(len(seconds))}

    def unowned_running(self) -> list[dict[str, Any]]:
        return [j for j in self.unowned if not j["terminal"]]

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.name,
            "description": self.scenario.description,
            "rules": list(self.scenario.rules),
            "retries": self.scenario.retries,
            "execution": self.execution,
            "outcome": self.outcome,
            "attempts": [
                {
                    "attempt": a.attempt,
                    "output_prefix": a.output_prefix,
                    "create_calls": a.creates,
                    "created": a.created,
                    "job_id": a.job_id,
                    "outcome": a.outcome,
                    "phases": a.phases,
                    "get_failures": a.get_failures,
                    "jobs": len(a.jobs),
                    "jobs_kept": len(a.kept()),
                    "job_ids": [j["id"] for j in a.jobs],
                    "job_statuses": {j["id"]: j["status"] for j in a.jobs},
                }
                for a in self.attempts
            ],
            "jobs_per_attempt": [len(a.jobs) for a in self.attempts],
            "unowned_jobs": [{"id": j["id"], "status": j["status"]} for j in self.unowned],
            "unowned_running": len(self.unowned_running()),
            "unowned_not_cancelled": sum(1 for j in self.unowned if not _cancelled(j)),
            "rpc_errors": self.errors_by_code(),
            "rpc_calls": dict(sorted(Counter(c.method for c in self.calls).items())),
            "calls": [
                {
                    "method": c.method,
                    "target": c.target,
                    "attempt": c.attempt,
                    "code": c.code,
                    "seconds": round(c.seconds, 4),
                }
                for c in self.calls
            ],
            "latency_s": {"all": self.latency(), **{m: self.latency(m) for m in (CREATE, GET, DELETE)}},
            "seconds": round(self.seconds, 3),
            "settled_in_s": None if self.settled_in is None else round(self.settled_in, 3),
            "ok": self.ok,
            "problems": self.problems,
        }


def _quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[min(98, max(0, round(q * 100) - 1))]


def _cancelled(job: dict[str, Any]) -> bool:
    return bool(job.get("status") == CANCELLED or job.get("cancel_requested"))


# --------------------------------------------------------------------------- the sandbox side


class SandboxAdmin:
    """The sandbox's admin API (no credentials; loopback): impolite rules and the job census."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _request(self, method: str, path: str, body: Any = None, *, refused_for: float = 60.0) -> Any:
        data = None if body is None else json.dumps(body).encode()
        deadline = time.monotonic() + refused_for
        while True:
            request = urllib.request.Request(
                f"{self.url}{path}", data=data, method=method, headers={"content-type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read().decode() or "null")
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode(errors="replace")[:300]
                raise SandboxUnavailable(f"{method} {path}: HTTP {exc.code}: {detail}") from None
            except (urllib.error.URLError, OSError) as exc:
                # a refuse window closes the admin port too: wait it out
                reason = getattr(exc, "reason", exc)
                if isinstance(reason, ConnectionRefusedError) and time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                raise SandboxUnavailable(f"cannot reach the sandbox at {self.url}: {reason}") from None

    def set_rules(self, rules: Iterable[str]) -> None:
        """Rules in the compact syntax, which the admin API parses itself (this module drives any
        sandbox over HTTP and imports none of it)."""
        self._request("PUT", "/_sandbox/impolite", {"rules": list(rules)})

    def clear_rules(self) -> None:
        self._request("DELETE", "/_sandbox/impolite")

    def in_flight(self) -> int:
        """Slow/stalled requests the sandbox has not finished: their work (a create) may still land."""
        data = self._request("GET", "/_sandbox/impolite")
        return int(data.get("in_flight", 0)) if isinstance(data, dict) else 0

    def finish(self, job_id: str, status: str = "Done") -> None:
        """End a simulated job now (``POST /_sandbox/jobs/{id}/finish``)."""
        self._request("POST", f"/_sandbox/jobs/{job_id}/finish?status={status}")

    def jobs(self) -> list[dict[str, Any]]:
        data = self._request("GET", "/_sandbox/jobs")
        if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
            raise SandboxUnavailable(f"{self.url} has no job census (/_sandbox/jobs): is it a perianctl sandbox?")
        return list(data["jobs"])

    def check(self) -> None:
        """Fail early, with one line, when the URL is not a reachable sandbox with the impolite API."""
        self._request("GET", "/_sandbox/impolite", refused_for=0)
        self.jobs()


class SandboxUnavailable(Exception):
    """The sandbox's admin API cannot be used; one line."""


class ConnectorUnavailable(Exception):
    """A connector address accepts no connection; one line."""


def _job_text(job: dict[str, Any]) -> str:
    command = job.get("command")
    parts = [" ".join(command) if isinstance(command, list) else str(command or "")]
    parts.extend(str(v) for v in (job.get("env") or {}).values())
    return "\n".join(parts)


def attribute(
    jobs: Iterable[dict[str, Any]], execution: str, attempts: Sequence[AttemptResult]
) -> tuple[dict[int, list[dict[str, Any]]], list[dict[str, Any]]]:
    """Jobs of ``execution`` by attempt (their output prefix), and the ones no attempt prefix names."""
    patterns = [(a.attempt, re.compile(re.escape(a.output_prefix) + r"(?![0-9A-Za-z_])")) for a in attempts]
    by_attempt: dict[int, list[dict[str, Any]]] = {a.attempt: [] for a in attempts}
    stray: list[dict[str, Any]] = []
    for job in jobs:
        text = _job_text(job)
        if execution not in text:
            continue
        owner = next((n for n, pattern in patterns if pattern.search(text)), None)
        if owner is None:
            stray.append(job)
        else:
            by_attempt[owner].append(job)
    return by_attempt, stray


# --------------------------------------------------------------------------- the propeller side


class RoundRobin:
    """One channel per connector address; each call takes the next one (gRPC round_robin)."""

    def __init__(self, targets: Sequence[str], *, max_message_mb: int = 64) -> None:
        if not targets:
            raise ValueError("no connector address")
        limit = max_message_mb * 1024 * 1024
        self.channels = [
            grpc.aio.insecure_channel(
                t,
                options=[
                    ("grpc.enable_retries", 0),
                    ("grpc.max_receive_message_length", limit),
                    ("grpc.max_send_message_length", limit),
                ],
            )
            for t in targets
        ]
        self._stubs = [
            (t, agent_pb2_grpc.AsyncAgentServiceStub(c)) for t, c in zip(targets, self.channels, strict=True)
        ]
        self._next = itertools.cycle(self._stubs).__next__

    async def ready(self, timeout: float) -> None:
        """Every address accepts a connection within ``timeout`` s, else :class:`ConnectorUnavailable`."""
        for (target, _), channel in zip(self._stubs, self.channels, strict=True):
            try:
                await asyncio.wait_for(channel.channel_ready(), timeout)
            except TimeoutError:
                raise ConnectorUnavailable(f"no connector answers at {target} (waited {timeout:g} s)") from None

    def next(self) -> tuple[str, agent_pb2_grpc.AsyncAgentServiceStub]:
        return self._next()

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()


@dataclass
class TaskInput:
    """What every attempt sends: the registered template (unrendered) and the inputs."""

    template: tasks_pb2.TaskTemplate
    inputs: literals_pb2.LiteralMap
    output_base: str


def _attempt_template(task: TaskInput, scenario: Scenario, prefix: str, unique_key: str) -> tasks_pb2.TaskTemplate:
    from perianctl.flyte.launch import prepare_launch
    from perianctl.flyte.translate import JobOverrides, apply_overrides

    launch = prepare_launch(task.template, task.inputs, prefix, run_id=unique_key, write_inputs=True)
    # Every job runs "for an hour", as GPU jobs do: the harness ends the jobs attempts own (Done) once
    # they ran job_seconds, so a job nobody owns keeps running until a connector cancels it.
    env = {"PERIAN_SANDBOX_SCENARIO": scenario.job_scenario, "PERIAN_SANDBOX_DURATION": f"{ORPHAN_SECONDS:g}"}
    return apply_overrides(launch.template, JobOverrides(env=env))


class Propeller:
    """Drives one task through its attempts, recording every call (see the module docstring)."""

    def __init__(
        self,
        pool: RoundRobin,
        config: PropellerConfig,
        *,
        sandbox: SandboxAdmin | None = None,
        clock: Callable[[], float] = time.monotonic,
        before_resend: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.pool = pool
        self.config = config
        self.sandbox = sandbox
        self.clock = clock
        self.before_resend = before_resend
        self.calls: list[Call] = []
        self._deadline = float("inf")

    async def _rpc(self, method: str, attempt: int, request: Any, timeout: float) -> tuple[Any, str]:
        target, stub = self.pool.next()
        started = self.clock()
        try:
            response = await getattr(stub, method)(request, timeout=timeout)
            code = "OK"
        except grpc.aio.AioRpcError as exc:
            response, code = None, exc.code().name
        except asyncio.CancelledError:
            self.calls.append(Call(method, target, self.clock() - started, CANCELLED_BY_CALLER, attempt))
            raise
        self.calls.append(Call(method, target, self.clock() - started, code, attempt))
        return response, code

    async def _create(
        self, request: agent_pb2.CreateTaskRequest, rec: AttemptResult, restart_after: float | None
    ) -> bytes | None:
        """CreateTask; with ``restart_after``, propeller 'restarts' mid-call and re-sends the same attempt."""
        timeout = self.config.create_timeout
        if restart_after is not None:
            rec.creates += 1
            call = asyncio.ensure_future(self._rpc(CREATE, rec.attempt, request, timeout))
            done, _ = await asyncio.wait({call}, timeout=restart_after)
            if done:  # answered before the "restart": propeller saw the outcome, nothing is re-sent
                response, code = call.result()
                return bytes(response.resource_meta) if code == "OK" else None
            call.cancel()  # the old propeller is gone: its call is cancelled (the caller hangs up)
            with contextlib.suppress(asyncio.CancelledError):
                await call
        rec.creates += 1
        response, code = await self._rpc(CREATE, rec.attempt, request, timeout)
        return bytes(response.resource_meta) if code == "OK" else None

    async def run(
        self, task: TaskInput, scenario: Scenario, execution: str, *, node_id: str = "n0"
    ) -> tuple[list[AttemptResult], str]:
        """All attempts of one task; returns them and the task's outcome."""
        attempts: list[AttemptResult] = []
        outcome = "failed"
        rules_set = False
        self._deadline = self.clock() + self.config.task_timeout
        for attempt in range(scenario.retries + 1):
            if self.clock() >= self._deadline:
                outcome = "timed-out"
                break
            prefix = f"{task.output_base.rstrip('/')}/{execution}/{node_id}/data/{attempt}"
            rec = AttemptResult(attempt=attempt, output_prefix=prefix)
            attempts.append(rec)
            template = _attempt_template(task, scenario, prefix, f"{execution}-{node_id}-{attempt}")
            metadata = synthetic_execution_metadata(
                template, execution_name=execution, node_id=node_id, retry_attempt=attempt
            )
            request = build_create_request(template, task.inputs, prefix, metadata)
            meta = await self._create(request, rec, scenario.restart_after)
            if meta is not None and scenario.resend_after_success:
                if self.before_resend is not None:
                    await self.before_resend()
                meta = await self._create(request, rec, None)  # propeller keeps the re-send's answer
            if meta is None:
                rec.outcome = "create-failed"  # a retryable failure: the next attempt
                continue
            if scenario.rules_after_create and self.sandbox is not None and not rules_set:
                rules_set = True
                await asyncio.to_thread(self.sandbox.set_rules, scenario.rules)
            rec.resource_meta = meta
            rec.job_id = job_id_from_resource_meta(meta)
            rec.outcome = await self._monitor(rec, scenario, prefix)
            if rec.outcome == "retryable":
                continue
            outcome = rec.outcome
            break
        else:
            outcome = "failed"  # every attempt failed
        return attempts, outcome

    async def _monitor(self, rec: AttemptResult, scenario: Scenario, prefix: str) -> str:
        cfg = self.config
        category = agent_pb2.TaskCategory(name=cfg.task_type, version=cfg.task_version)
        get = agent_pb2.GetTaskRequest(
            task_type=cfg.task_type, resource_meta=rec.resource_meta, task_category=category, output_prefix=prefix
        )
        first_ok: float | None = None
        finish_at: float | None = None
        while True:
            if finish_at is not None and self.clock() >= finish_at:
                finish_at = float("inf")
                await self._finish_job(rec)
            if (
                scenario.abort_after is not None
                and first_ok is not None
                and self.clock() - first_ok >= scenario.abort_after
            ):
                await self._abort(rec, category)
                return "aborted"
            if self.clock() >= self._deadline:  # the node timeout: propeller aborts the task
                await self._abort(rec, category)
                return "timed-out"
            response, code = await self._rpc(GET, rec.attempt, get, cfg.get_timeout)
            if code != "OK":
                rec.get_failures += 1  # cumulative, never reset (propeller's SyncFailureCount)
                if rec.get_failures > cfg.max_system_failures:
                    return "frozen" if first_ok is not None else "cache-failed"
            else:
                status = status_from_resource(response.resource)
                rec.phases.append(status.phase_name)
                first_ok = first_ok if first_ok is not None else self.clock()
                if status.phase_name == "RUNNING" and finish_at is None:
                    finish_at = self.clock() + scenario.job_seconds
                if status.phase_name == "SUCCEEDED":
                    return "succeeded"
                if status.phase_name in ("FAILED", "ABORTED"):
                    return "failed"
                if status.phase_name in ("RETRYABLE_FAILED", "UNDEFINED"):
                    return "retryable"  # UNDEFINED falls back to state RETRYABLE_FAILURE (plugin.go Status)
            await asyncio.sleep(cfg.poll_interval)

    async def _finish_job(self, rec: AttemptResult) -> None:
        """The owned job has run long enough: end it (Done) through the sandbox."""
        if self.sandbox is None or rec.job_id is None:
            return  # another connector's resource meta: the job runs on (the task timeout ends it)
        with contextlib.suppress(SandboxUnavailable):
            await asyncio.to_thread(self.sandbox.finish, rec.job_id)

    async def _abort(self, rec: AttemptResult, category: agent_pb2.TaskCategory) -> None:
        cfg = self.config
        request = agent_pb2.DeleteTaskRequest(
            task_type=cfg.task_type, resource_meta=rec.resource_meta, task_category=category
        )
        for _ in range(cfg.delete_attempts):  # an error makes propeller retry the abort next round
            _, code = await self._rpc(DELETE, rec.attempt, request, cfg.delete_timeout)
            if code == "OK":
                return
            await asyncio.sleep(cfg.poll_interval)


# --------------------------------------------------------------------------- one scenario


def unowned_jobs(attempts: Sequence[AttemptResult], stray: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Jobs of the execution that no attempt owns: an attempt owns only the job its CreateTask returned.

    So the jobs of an attempt whose CreateTask failed, duplicates next to an attempt's job, and jobs
    that carry no attempt's prefix are all unowned: nobody will ever poll or abort them.
    """
    owned = {rec.job_id for rec in attempts if rec.created and rec.job_id}
    for rec in attempts:  # a resource meta without a job id (another connector): its first live job
        if rec.created and rec.job_id is None and rec.kept():
            owned.add(rec.kept()[0]["id"])
    return [*(j for rec in attempts for j in rec.jobs if j["id"] not in owned), *stray]


def judge(
    attempts: Sequence[AttemptResult],
    unowned: Sequence[dict[str, Any]],
    calls: Sequence[Call],
    outcome: str,
    *,
    max_failures: int = 5,
) -> list[str]:
    """What broke exactly-once (or the GetTask promise) in a finished scenario; empty = ok."""
    problems: list[str] = []
    for rec in attempts:
        if not rec.created:
            continue
        mine = [j for j in rec.jobs if rec.job_id is None or j["id"] == rec.job_id]
        if rec.job_id is None and len(rec.kept()) != 1 and rec.outcome not in ("aborted", "timed-out"):
            problems.append(f"attempt {rec.attempt}: {len(rec.kept())} jobs not cancelled (want 1)")
        elif not mine:
            problems.append(f"attempt {rec.attempt}: the job CreateTask returned does not exist")
        elif rec.outcome in ("aborted", "timed-out") and any(not _cancelled(j) and not j["terminal"] for j in mine):
            problems.append(f"attempt {rec.attempt}: aborted (DeleteTask), but its job still runs")
        elif rec.outcome not in ("aborted", "timed-out") and all(_cancelled(j) for j in mine):
            problems.append(f"attempt {rec.attempt}: its job was cancelled although the task needed it")
    loose = [j for j in unowned if not _cancelled(j)]
    if loose:
        running = sum(1 for j in loose if not j["terminal"])
        problems.append(f"{len(loose)} unowned job(s) not cancelled ({running} still running)")
    get_errors = sum(1 for c in calls if c.method == GET and c.code != "OK")
    if get_errors:
        problems.append(f"{get_errors} GetTask error(s)")
    if outcome in ("frozen", "cache-failed"):
        problems.append(f"task {outcome} (more than {max_failures} GetTask failures)")
    if outcome == "timed-out":
        last = next((rec.phases[-1] for rec in reversed(attempts) if rec.phases), "no phase")
        problems.append(f"task did not finish before the task timeout (last phase {last}); aborted")
    return problems


async def run_scenario(
    targets: Sequence[str],
    sandbox: SandboxAdmin,
    task: TaskInput,
    scenario: Scenario,
    config: PropellerConfig | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    before_resend: Callable[[], Awaitable[None]] | None = None,
) -> ScenarioResult:
    """Apply the scenario's rules, drive one task, clear the rules, take the census until it settles.

    ``before_resend`` runs between a successful CreateTask and its re-send
    (:attr:`Scenario.resend_after_success`): what else happens at PERIAN while propeller restarts.
    """
    config = config or PropellerConfig()
    execution = new_execution_name()
    pool = RoundRobin(targets)
    propeller = Propeller(pool, config, sandbox=sandbox, clock=clock, before_resend=before_resend)
    started = clock()
    if not scenario.rules_after_create:
        await asyncio.to_thread(sandbox.set_rules, scenario.rules)
    try:
        attempts, outcome = await propeller.run(task, scenario, execution)
    finally:
        await asyncio.to_thread(sandbox.clear_rules)
        await pool.close()
    flow_done = clock()
    settled_in: float | None = None
    while True:
        pending = await asyncio.to_thread(sandbox.in_flight)
        jobs = await asyncio.to_thread(sandbox.jobs)
        by_attempt, stray = attribute(jobs, execution, attempts)
        for rec in attempts:
            rec.jobs = by_attempt[rec.attempt]
        unowned = unowned_jobs(attempts, stray)
        loose = [j for j in unowned if not j["terminal"] and not j["cancel_requested"]]
        if not loose and not pending:
            settled_in = clock() - flow_done
            break
        if clock() - flow_done >= config.settle:
            break
        await asyncio.sleep(config.census_interval)
    problems = judge(attempts, unowned, propeller.calls, outcome, max_failures=config.max_system_failures)
    # clean up: nothing of this check keeps running in the sandbox (the census above is the record)
    for job in [j for rec in attempts for j in rec.jobs] + stray if config.cleanup else []:
        if not job["terminal"]:
            with contextlib.suppress(SandboxUnavailable):
                await asyncio.to_thread(sandbox.finish, job["id"], "Cancelled")
    return ScenarioResult(
        scenario=scenario,
        execution=execution,
        attempts=attempts,
        calls=propeller.calls,
        outcome=outcome,
        unowned=unowned,
        seconds=clock() - started,
        settled_in=settled_in,
        problems=problems,
    )


async def run_check(
    targets: Sequence[str],
    sandbox_url: str,
    scenarios: Sequence[Scenario],
    task: TaskInput,
    config: PropellerConfig | None = None,
    on_result: Callable[[ScenarioResult], None] | None = None,
) -> list[ScenarioResult]:
    """Every scenario in turn (impolite rules are sandbox-wide, so never two at once)."""
    sandbox = SandboxAdmin(sandbox_url)
    await asyncio.to_thread(sandbox.check)
    probe = RoundRobin(targets)
    try:
        await probe.ready(5.0)
    finally:
        await probe.close()
    results = []
    for scenario in scenarios:
        result = await run_scenario(targets, sandbox, task, scenario, config)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


# --------------------------------------------------------------------------- task input and output


def default_template_path() -> Path | None:
    """perianctl's example ``hello`` template, when running from a checkout."""
    path = Path(__file__).resolve().parents[2] / "examples" / "templates" / "hello.pb"
    return path if path.is_file() else None


def load_task(template: str | None, input_pairs: Sequence[str], output_base: str) -> TaskInput:
    """The template and inputs every attempt sends (``PerianctlError`` subclasses on bad input)."""
    from perianctl.errors import UsageError
    from perianctl.flyte.inputs import build_inputs
    from perianctl.flyte.templates import load_template

    source = template or (str(default_template_path()) if default_template_path() else None)
    if source is None:
        raise UsageError(
            "no --template given and perianctl's example templates are not installed",
            hint="pass --template FILE (a TaskTemplate .pb/.json, a package, or file.py:task)",
        )
    loaded = load_template(source)
    pairs = list(input_pairs)
    variables = loaded.template.interface.inputs.variables
    if not pairs and "name" in variables:
        pairs = ["name=perian"]
    inputs = build_inputs(loaded.template.interface, pairs, None, optional=loaded.optional_inputs)
    return TaskInput(template=loaded.template, inputs=inputs, output_base=output_base)


def scenario_named(name: str, *, retries: int | None = None) -> Scenario:
    scenario = SCENARIOS[name]
    return scenario if retries is None else replace(scenario, retries=retries)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def format_table(results: Sequence[ScenarioResult]) -> str:
    """The human table: one row per scenario."""
    headers = (
        "scenario",
        "retries",
        "attempts",
        "jobs/attempt",
        "unowned running",
        "unowned kept",
        "rpc errors",
        "p50 ms",
        "p99 ms",
        "outcome",
        "verdict",
    )
    rows = []
    for r in results:
        errors = r.errors_by_code()
        latency = r.latency()
        rows.append(
            (
                r.scenario.name,
                str(r.scenario.retries),
                str(len(r.attempts)),
                "/".join(str(len(a.jobs)) for a in r.attempts) or "-",
                str(len(r.unowned_running())),
                str(sum(1 for j in r.unowned if not _cancelled(j))),
                ", ".join(f"{k}×{v}" for k, v in errors.items()) or "none",
                _ms(latency["p50"]),
                _ms(latency["p99"]),
                r.outcome,
                "ok" if r.ok else "FAIL",
            )
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines += [f"{r.scenario.name}: {problem}" for r in results for problem in r.problems]
    return "\n".join(lines)
