"""Issue 7, connector load: ``perianctl serve`` under 200 concurrent GetTask streams, then SIGTERM under load.

A real ``serve`` subprocess against a real sandbox; one gRPC channel, as propeller's ClientConn,
with ``STREAMS`` calls always in flight and propeller's 10 s deadline on each:

1. every stream makes ``ROUNDS`` calls back to back (``PERIANCTL_LOAD_ROUNDS``, default 3): zero
   errors. How many calls per second that is, is a speed figure, measured by
   ``bench/bench_connector.py --mode load`` (30 s) -- not asserted here: the suite runs on busy boxes;
2. then, with PERIAN holding every GET, once at least half the streams' calls are waiting on it
   (the sandbox reports it: an event, not a sleep), SIGTERM; once the server reports NOT_SERVING,
   PERIAN answers: the held calls complete OK, calls made after NOT_SERVING fail fast with
   UNAVAILABLE (never CANCELLED: the server refuses them itself before grpc's ``stop``), and the
   process exits 0.

``tests/integration/test_serve.py`` already covers the drain of a few slow CreateTasks and the health flip;
this is the same promise at load.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from flyteidl.service import agent_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.plugins.sandbox import SandboxFactory
from tests.support import connector as support

pytestmark = pytest.mark.timeout(120)

STREAMS = int(os.environ.get("PERIANCTL_LOAD_STREAMS", "200"))
ROUNDS = int(os.environ.get("PERIANCTL_LOAD_ROUNDS", "3"))
TASKS = 50
SLOW_GET = 60.0  # PERIAN holds each GET of the SIGTERM phase at most this long; the test releases them
HANG = 60.0  # only detects a hang: a busy 2-core box may be many times slower than a laptop


@dataclass
class Call:
    started: float
    ended: float
    code: str  # "OK" or the gRPC status name


@dataclass
class Load:
    calls: list[Call] = field(default_factory=list)

    def codes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for call in self.calls:
            out[call.code] = out.get(call.code, 0) + 1
        return out


async def _create(stub: agent_pb2_grpc.AsyncAgentServiceStub) -> list[bytes]:
    requests = [support.create_request("success", duration=3600) for _ in range(TASKS)]
    responses = await asyncio.gather(*(stub.CreateTask(r, timeout=HANG) for r in requests))
    return [bytes(r.resource_meta) for r in responses]


async def _load(
    stub: agent_pb2_grpc.AsyncAgentServiceStub,
    metas: list[bytes],
    *,
    rounds: int | None = None,
    stop: asyncio.Event | None = None,
) -> Load:
    """``STREAMS`` workers calling GetTask back to back, ``rounds`` calls each, or until the server refuses.

    With ``stop`` (the server is shutting down), a worker stops at its first failure that started
    after ``stop`` was set; ``HANG`` s bound the whole run.
    """
    load = Load()
    requests = [support.get_request(m) for m in metas]
    until = time.monotonic() + HANG

    async def worker(n: int) -> None:
        i = n
        for _ in range(rounds) if rounds is not None else itertools.count():
            if time.monotonic() > until:
                raise AssertionError(f"load still running after {HANG:g} s")
            stopping = stop is not None and stop.is_set()
            started = time.monotonic()
            try:
                await stub.GetTask(requests[i % len(requests)], timeout=10)
                code = "OK"
            except grpc.aio.AioRpcError as exc:
                code = exc.code().name
            load.calls.append(Call(started, time.monotonic(), code))
            i += STREAMS
            if code != "OK" and stopping:
                return

    await asyncio.gather(*(worker(n) for n in range(STREAMS)))
    return load


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


def test_200_get_task_streams_without_errors_then_sigterm_drains_under_load(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(access_log=False)
    serve = support.ServeProcess(support.Api(sb.url, sb.org, sb.token), "--grace", "30", tmp=tmp_path).wait_ready()

    def when_waiting_then_sigterm() -> tuple[int, float]:
        # The event "half the streams' calls are waiting on PERIAN", then SIGTERM right away.
        waiting = sb.wait_delaying("get", STREAMS // 2, timeout=HANG)
        signalled_at = time.monotonic()
        serve.signal_term()
        return waiting, signalled_at

    async def scenario() -> tuple[Load, float, Load, int, float, float]:
        async with grpc.aio.insecure_channel(serve.target) as channel:
            stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            metas = await _create(stub)
            started = time.monotonic()
            steady = await _load(stub, metas, rounds=ROUNDS)
            steady_seconds = time.monotonic() - started

            sb.set_faults(latency=[SLOW_GET, SLOW_GET], latency_endpoints=["get"])
            refusing = asyncio.Event()
            drain = asyncio.ensure_future(_load(stub, metas, stop=refusing))
            waiting, signalled_at = await asyncio.to_thread(when_waiting_then_sigterm)
            while not refusing.is_set():  # the event: the server reports NOT_SERVING (or is gone)
                try:
                    check = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=HANG)
                    serving = check.status == health_pb2.HealthCheckResponse.SERVING
                except grpc.aio.AioRpcError:
                    serving = False
                if serving:
                    await asyncio.sleep(0.02)
                else:
                    refusing.set()
            refused_from = time.monotonic()
            await asyncio.to_thread(sb.set_faults, latency=[0.0, 0.0])  # PERIAN answers the held GETs now
            return steady, steady_seconds, await drain, waiting, signalled_at, refused_from

    try:
        steady, steady_seconds, draining, waiting, t_sig, t_refusing = asyncio.run(scenario())
    finally:
        sb.set_faults(latency=[0.0, 0.0])
        code, err = serve.terminate()

    ok = [c.ended - c.started for c in steady.calls if c.code == "OK"]
    print(
        f"\n{STREAMS} streams x {ROUNDS} calls: {len(ok)} GetTask OK in {steady_seconds:.1f} s, "
        f"p50 {_pct(ok, 50) * 1000:.0f} ms, p99 {_pct(ok, 99) * 1000:.0f} ms, codes {steady.codes()}"
    )
    assert steady.codes() == {"OK": STREAMS * ROUNDS}, steady.codes()  # every call answered, zero errors

    # The calls waiting on PERIAN when SIGTERM came (held there until the server said NOT_SERVING)
    # finish OK; a call still queued in a CPU-starved server when draining starts is refused like a
    # new one, with UNAVAILABLE, never CANCELLED.
    drained = [c for c in draining.calls if c.started < t_sig < c.ended and c.code == "OK"]
    after = [c for c in draining.calls if c.started > t_refusing]
    print(f"SIGTERM with {waiting} calls waiting on PERIAN: {len(drained)} drained OK, codes {draining.codes()}")
    assert len(drained) >= waiting, (len(drained), waiting)
    assert set(draining.codes()) <= {"OK", "UNAVAILABLE"}, draining.codes()
    assert after, "no call was tried after the server reported NOT_SERVING"
    assert {c.code for c in after} == {"UNAVAILABLE"}, {c.code for c in after}
    # refused, not held: a held call would end only with the 10 s deadline or the 30 s grace
    assert max(c.ended - c.started for c in after) < 8.0

    assert code == 0, err
    assert "SIGTERM received; draining" in err and "perianctl serve: stopped" in err
    assert "Traceback" not in err
