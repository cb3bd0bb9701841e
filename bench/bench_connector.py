"""Benchmark: GetTask throughput and latency of a Flyte connector at 64 concurrent gRPC streams.

What propeller does to a connector all day is GetTask, so that is what is measured. The run:

1. starts a PERIAN sandbox (simulate runtime) in its own process;
2. starts each connector under test in its own process (``perianctl serve`` by default);
3. creates ``--jobs`` tasks through the connector's CreateTask (jobs stay Running);
4. for ``--duration`` seconds keeps ``--streams`` GetTask calls in flight on one channel (like
   propeller's single ClientConn) and records every call's latency;
5. in the same run, measures the baseline: the raw sandbox ``GET /job/{id}`` rate over one pooled
   httpx client at the same concurrency. A connector's GetTask is one such GET plus gRPC, so
   ``connector / raw`` says how much of the API's capacity survives the connector.

Connectors are pluggable (:class:`Connector`): ``--connector perianctl`` (default),
``--connector official`` (``pyflyte serve connector`` with ``flytekitplugins-perian-job``, made
importable by aliasing ``perian.JobStatus`` to the renamed ``WorkloadStatus`` and pointed at the
sandbox; needs ``--official-path DIR`` holding the plugin, e.g. from
``pip install --no-deps --target DIR flytekitplugins-perian-job==1.16.31``), or
``--target HOST:PORT`` for any connector that is already running against the same sandbox
(``--api-url`` etc. then describe that sandbox).

Run: ``.venv/bin/python bench/bench_connector.py [--streams 64] [--duration 10] [--jobs 64]``
(add ``--connector official --official-path DIR`` to compare; ``--json`` for machine output).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ORG, TOKEN = "bench", "bench-token-0123456789"
REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------- sandbox


def start_sandbox(state_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    code = (
        "from pathlib import Path\n"
        "from perianctl.sandbox.config import SandboxConfig\n"
        "from perianctl.sandbox.server import run\n"
        f"run(SandboxConfig(state_dir=Path({str(state_dir)!r}), port=0, organization={ORG!r}, token={TOKEN!r},"
        " access_log=False))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    info = state_dir / "sandbox.json"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if info.exists():
            try:
                return proc, json.loads(info.read_text())["url"]
            except (ValueError, KeyError):
                pass
        if proc.poll() is not None:
            raise SystemExit("the sandbox did not start")
        time.sleep(0.05)
    proc.terminate()
    raise SystemExit("the sandbox did not start in 30 s")


# ---------------------------------------------------------------------- connectors under test


@dataclass
class Connector:
    """A connector process to benchmark. Subclasses say how to start it; ``target`` is HOST:PORT."""

    name: str
    proc: subprocess.Popen[str] | None = None
    target: str = ""
    startup_s: float = 0.0

    def command(self, api_url: str, port: int) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def start(self, api_url: str) -> None:
        port = _free_port()
        cmd, extra_env = self.command(api_url, port)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PERIAN", "_FSEC_"))}
        # Fake storage keys: the official connector refuses to create without them.
        env.update(_FSEC_PERIAN_ORGANIZATION=ORG, _FSEC_PERIAN_TOKEN=TOKEN, _FSEC_AWS_ACCESS_KEY_ID="AKIABENCH",
                   _FSEC_AWS_SECRET_ACCESS_KEY="bench-secret", PYTHONUNBUFFERED="1", **extra_env)
        started = time.monotonic()
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.target = f"127.0.0.1:{port}"
        _wait_serving(self.target, self.proc)
        self.startup_s = time.monotonic() - started

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@dataclass
class PerianctlConnector(Connector):
    name: str = "perianctl serve"

    def command(self, api_url: str, port: int) -> tuple[list[str], dict[str, str]]:
        return [sys.executable, "-m", "perianctl", "--api-url", api_url, "serve", "--host", "127.0.0.1",
                "--port", str(port), "--metrics-port", "0"], {}


_OFFICIAL_SHIM = """
import os, sys
import perian
if not hasattr(perian, "JobStatus"):
    perian.JobStatus = perian.WorkloadStatus  # renamed in perian >= 0.3; the plugin still imports the old name
import flytekitplugins.perian_job.connector as official
official.PERIAN_API_URL = os.environ["PERIAN_API_URL"]  # hard-coded to api.perian.cloud in the plugin
from flytekit.clis.sdk_in_container.pyflyte import main
sys.argv = ["pyflyte", "serve", "connector", "--port", sys.argv[1], "--prometheus_port", sys.argv[2]]
main()
"""


@dataclass
class OfficialConnector(Connector):
    name: str = "official (pyflyte serve connector)"
    path: Path | None = None

    def command(self, api_url: str, port: int) -> tuple[list[str], dict[str, str]]:
        if self.path is None or not (self.path / "flytekitplugins" / "perian_job").is_dir():
            raise SystemExit("--connector official needs --official-path DIR containing flytekitplugins/perian_job "
                             "(pip install --no-deps --target DIR flytekitplugins-perian-job==1.16.31)")
        env = {"PERIAN_API_URL": api_url, "PERIANCTL_FLYTE_PLUGIN": "off",
               "PYTHONPATH": os.pathsep.join([str(self.path), os.environ.get("PYTHONPATH", "")])}
        return [sys.executable, "-c", _OFFICIAL_SHIM, str(port), str(_free_port())], env


@dataclass
class RunningConnector(Connector):
    """A connector someone else started (``--target``)."""

    name: str = "external"

    def start(self, api_url: str) -> None:
        _wait_serving(self.target, None)


def cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a process (Linux /proc), to report CPU cost per call despite noisy neighbours."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_serving(target: str, proc: subprocess.Popen[str] | None, timeout: float = 60.0) -> None:
    import grpc
    from flyteidl.admin import agent_pb2
    from flyteidl.service import agent_pb2_grpc

    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        stub = agent_pb2_grpc.AgentMetadataServiceStub(channel)
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                err = proc.stderr.read() if proc.stderr else ""
                raise SystemExit(f"connector exited with {proc.returncode}:\n{err[-2000:]}")
            try:
                agents = stub.ListAgents(agent_pb2.ListAgentsRequest(), timeout=2).agents
                if any("perian_task" in a.supported_task_types for a in agents):
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise SystemExit(f"connector at {target} never served perian_task")


# ---------------------------------------------------------------------- workload


def template(index: int) -> Any:
    """A rendered ``perian_task`` template like propeller sends (no flytekit needed here)."""
    from flyteidl.core import identifier_pb2, interface_pb2, tasks_pb2, types_pb2
    from google.protobuf.struct_pb2 import Struct

    custom = Struct()
    # The sandbox keeps the job Running for an hour. Set through custom["environment"], the one
    # place both connectors read environment from (the official one ignores container.env).
    custom.update({"cores": 2.0, "memory": 8.0, "accelerators": 1.0, "accelerator_type": "A100", "country_code": "DE",
                   "environment": {"PERIAN_SANDBOX_DURATION": "3600"}})
    prefix = f"s3://bench/metadata/propeller/p-d-bench{index:015d}/n0/data/0"
    string_type = types_pb2.LiteralType(simple=types_pb2.STRING)
    return tasks_pb2.TaskTemplate(
        id=identifier_pb2.Identifier(resource_type=identifier_pb2.TASK, project="flytesnacks",
                                     domain="development", name="bench.gpu_hello", version="v1"),
        type="perian_task",
        metadata=tasks_pb2.TaskMetadata(runtime=tasks_pb2.RuntimeMetadata(
            type=tasks_pb2.RuntimeMetadata.FLYTE_SDK, version="1.16.31", flavor="python")),
        interface=interface_pb2.TypedInterface(
            inputs=interface_pb2.VariableMap(variables={"name": interface_pb2.Variable(type=string_type)}),
            outputs=interface_pb2.VariableMap(variables={"o0": interface_pb2.Variable(type=string_type)})),
        custom=custom,
        container=tasks_pb2.Container(
            image="ghcr.io/acme/flyte:abc",
            args=["pyflyte-execute", "--inputs", f"{prefix}/inputs.pb", "--output-prefix", prefix,
                  "--raw-output-data-prefix", "s3://bench/raw", "--checkpoint-path", "s3://bench/raw/cp",
                  "--prev-checkpoint", '""', "--resolver", "flytekit.core.python_auto_container.default_task_resolver",
                  "--", "task-module", "bench", "task-name", "gpu_hello"]),
    ), prefix


async def create_tasks(target: str, jobs: int) -> tuple[list[bytes], list[float]]:
    import grpc
    from flyteidl.core import literals_pb2
    from flyteidl.service import agent_pb2_grpc

    from perianctl.flyte.grpc_client import build_create_request, synthetic_execution_metadata

    metas: list[bytes] = []
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)
        for i in range(jobs):
            tmpl, prefix = template(i)
            inputs = literals_pb2.LiteralMap()
            inputs.literals["name"].scalar.primitive.string_value = "bench"
            meta = synthetic_execution_metadata(tmpl, execution_name=f"bench{i:015d}")
            started = time.perf_counter()
            response = await stub.CreateTask(build_create_request(tmpl, inputs, prefix, meta), timeout=30)
            latencies.append(time.perf_counter() - started)
            metas.append(bytes(response.resource_meta))
    return metas, latencies


@dataclass
class Result:
    name: str
    calls: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "calls": self.calls, "errors": self.errors, "per_second": round(self.rate, 1),
                "p50_ms": round(self.pct(50), 2), "p99_ms": round(self.pct(99), 2),
                "mean_ms": round(statistics.fmean(self.latencies) * 1000, 2) if self.latencies else None,
                **self.extra}


async def _drive(streams: int, duration: float, warmup: float, call: Any, result: Result) -> Result:
    stop_at = time.perf_counter() + warmup + duration
    measure_from = time.perf_counter() + warmup
    counter = iter(range(10**12))

    async def worker() -> None:
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                return
            started = time.perf_counter()
            try:
                await call(next(counter))
                ok = True
            except Exception:
                ok = False
            ended = time.perf_counter()
            if started >= measure_from:
                if ok:
                    result.calls += 1
                    result.latencies.append(ended - started)
                else:
                    result.errors += 1

    await asyncio.gather(*(worker() for _ in range(streams)))
    result.seconds = duration
    return result


async def bench_get_task(name: str, target: str, metas: list[bytes], streams: int, duration: float,
                         warmup: float, pid: int | None = None) -> Result:
    import grpc
    from flyteidl.admin import agent_pb2
    from flyteidl.service import agent_pb2_grpc

    category = agent_pb2.TaskCategory(name="perian_task", version=0)
    requests = [agent_pb2.GetTaskRequest(task_type="perian_task", resource_meta=m, task_category=category)
                for m in metas]
    phases: dict[int, int] = {}
    async with grpc.aio.insecure_channel(target) as channel:
        stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)

        async def call(i: int) -> None:
            response = await stub.GetTask(requests[i % len(requests)], timeout=10)
            phases[response.resource.phase] = phases.get(response.resource.phase, 0) + 1

        result = Result(name)
        cpu: list[float | None] = []

        async def sample_cpu() -> None:
            await asyncio.sleep(warmup)
            cpu.append(cpu_seconds(pid))
            await asyncio.sleep(duration)
            cpu.append(cpu_seconds(pid))

        sampler = asyncio.ensure_future(sample_cpu())
        await _drive(streams, duration, warmup, call, result)
        await sampler
    from flyteidl.core.execution_pb2 import TaskExecution

    if len(cpu) == 2 and cpu[0] is not None and cpu[1] is not None and result.calls:
        result.extra["server_cpu_ms_per_call"] = round((cpu[1] - cpu[0]) * 1000 / result.calls, 3)

    result.extra["phases"] = {TaskExecution.Phase.Name(k): v for k, v in sorted(phases.items())}
    return result


async def bench_raw(api_url: str, job_ids: list[str], streams: int, duration: float, warmup: float) -> Result:
    """The sandbox's own GET /job/{id} rate at ``streams`` requests in flight (one pooled client)."""
    import httpx

    headers = {"X-PERIAN-AUTH-ORG": ORG, "Authorization": f"Bearer {TOKEN}"}
    limits = httpx.Limits(max_connections=streams, max_keepalive_connections=streams)
    async with httpx.AsyncClient(base_url=api_url, headers=headers, limits=limits, timeout=10) as client:

        async def call(i: int) -> None:
            response = await client.get(f"/job/{job_ids[i % len(job_ids)]}")
            response.raise_for_status()

        return await _drive(streams, duration, warmup, call,
                            Result(f"raw sandbox GET /job/{{id}} (httpx, {streams} streams)"))


async def bench_raw_aiohttp(api_url: str, job_ids: list[str], streams: int, duration: float,
                            warmup: float) -> Result:
    """The same GETs with aiohttp: what the API can serve when the client is not the bottleneck."""
    import aiohttp

    headers = {"X-PERIAN-AUTH-ORG": ORG, "Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=streams)) as session:

        async def call(i: int) -> None:
            async with session.get(f"{api_url}/job/{job_ids[i % len(job_ids)]}") as response:
                response.raise_for_status()
                await response.read()

        return await _drive(streams, duration, warmup, call,
                            Result(f"raw sandbox GET /job/{{id}} (aiohttp, {streams} streams)"))


# ---------------------------------------------------------------------- main


def _connectors(args: argparse.Namespace) -> list[Connector]:
    chosen: list[Connector] = []
    for name in args.connector or ["perianctl"]:
        if name == "perianctl":
            chosen.append(PerianctlConnector())
        elif name == "official":
            chosen.append(OfficialConnector(path=Path(args.official_path) if args.official_path else None))
        else:
            raise SystemExit(f"unknown connector {name!r} (perianctl, official)")
    for target in args.target or []:
        chosen.append(RunningConnector(name=f"external {target}", target=target))
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=64, help="concurrent GetTask calls in flight")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per connector")
    parser.add_argument("--warmup", type=float, default=1.5, help="seconds run before measuring")
    parser.add_argument("--jobs", type=int, default=64, help="tasks created and polled")
    parser.add_argument("--raw-streams", type=int, default=8, help="second, gentler concurrency for the baseline")
    parser.add_argument("--connector", action="append", choices=["perianctl", "official"],
                        help="connector(s) to start and measure (repeatable; default perianctl)")
    parser.add_argument("--official-path", help="directory holding flytekitplugins/perian_job (for 'official')")
    parser.add_argument("--target", action="append", help="an already running connector HOST:PORT (repeatable)")
    parser.add_argument("--api-url", help="use this running sandbox instead of starting one (org/token: bench)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="bench-connector-")
    sandbox = None
    api_url = args.api_url
    if not api_url:
        sandbox, api_url = start_sandbox(Path(tmp.name) / "sandbox")
    results: list[Result] = []
    try:
        for connector in _connectors(args):
            connector.start(api_url)
            try:
                metas, create_lat = asyncio.run(create_tasks(connector.target, args.jobs))
                pid = connector.proc.pid if connector.proc is not None else None
                result = asyncio.run(bench_get_task(connector.name, connector.target, metas, args.streams,
                                                    args.duration, args.warmup, pid))
                result.extra["create_p50_ms"] = round(statistics.median(create_lat) * 1000, 2)
                result.extra["startup_s"] = round(connector.startup_s, 2)
                results.append(result)
            finally:
                connector.stop()
        job_ids = [json.loads(m)["job_id"] for m in metas]
        # The API's rate at the same concurrency, and at a gentler one (the sandbox degrades with
        # many connections); ratios are against the better of the two, so they are not flattering.
        raws = [asyncio.run(bench_raw(api_url, job_ids, n, args.duration, args.warmup))
                for n in sorted({args.streams, args.raw_streams})]
        raws.append(asyncio.run(bench_raw_aiohttp(api_url, job_ids, args.streams, args.duration, args.warmup)))
        raw = max(raws, key=lambda r: r.rate)
    finally:
        if sandbox is not None:
            sandbox.terminate()
            sandbox.wait(timeout=30)
        tmp.cleanup()

    report = {
        "streams": args.streams, "duration_s": args.duration, "jobs": args.jobs,
        "cpus": os.cpu_count(), "python": sys.version.split()[0],
        "baseline": raw.summary(),
        "baselines": [r.summary() for r in raws],
        "connectors": [dict(r.summary(), ratio_to_raw=round(r.rate / raw.rate, 3) if raw.rate else None)
                       for r in results],
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"GetTask at {args.streams} concurrent streams, {args.duration:g} s each, {args.jobs} Running jobs, "
          f"{report['cpus']} CPUs (client, connector and sandbox share them)")
    width = max(len(r.name) for r in [*results, *raws]) + 2
    print(f"{'':{width}}{'calls/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}{'vs raw':>9}")
    for r in [*results, *raws]:
        ratio = f"{r.rate / raw.rate:.2f}x" if raw.rate and r not in raws else ""
        print(f"{r.name:{width}}{r.rate:>10.0f}{r.pct(50):>10.1f}{r.pct(99):>10.1f}{r.errors:>8}{ratio:>9}")
    for r in results:
        extras = ", ".join(f"{k}={v}" for k, v in r.extra.items())
        print(f"  {r.name}: {extras}")


if __name__ == "__main__":
    main()
