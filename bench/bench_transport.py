"""The PERIAN client's HTTP transport: throughput, and whether a failure is classified right.

    .venv/bin/python bench/bench_transport.py [--seconds 3] [--rounds 3] [--concurrency 8,64]

:class:`~perianctl.perian.client.PerianClient` runs over a pluggable httpx transport. This script
compares, in one run and round after round (so a noisy neighbour hits them alike):

* ``perianctl`` -- our :class:`perianctl.perian.transport.AiohttpTransport`;
* ``httpx-aiohttp`` -- the ``httpx-aiohttp`` package's ``AiohttpTransport`` (when installed);
* ``httpx`` -- httpx's own transport (h11 + httpcore).

**Throughput**: ``get_job`` calls per second through the real client (retries, typed errors,
model parsing) at each concurrency, against the canned-response stub of ``_support`` in front of
a sandbox (the stub answers from memory, so the client's cost is what is measured), with the CPU
seconds this process spent per call.

**Classification**: the client decides from the exception type whether a request may have reached
PERIAN (``never_sent``); a create that "certainly never reached" PERIAN is retried, so a wrong
answer duplicates a paid job. A loopback server reads each request in full and then drops the
connection without answering (the request *was* sent); a closed port refuses the connection (it
was *not* sent). For each transport the script prints the httpx exception and the client's
``never_sent`` verdict for both. Exits 1 when our transport classifies either case wrongly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from _support import ORG, TOKEN, cores, goal, running_sandbox, start_stub

from perianctl.errors import UnavailableError
from perianctl.perian.client import PerianClient, RetryPolicy
from perianctl.perian.models import CreateJobRequest, DockerRunParameters, InstanceTypeQueryInput
from perianctl.perian.transport import AiohttpTransport


def transports(max_connections: int) -> dict[str, Callable[[], httpx.AsyncBaseTransport]]:
    found: dict[str, Callable[[], httpx.AsyncBaseTransport]] = {
        "perianctl": lambda: AiohttpTransport(max_connections=max_connections),
        "httpx": lambda: httpx.AsyncHTTPTransport(
            retries=0, limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        ),
    }
    try:
        import httpx_aiohttp
    except ImportError:
        print("httpx-aiohttp is not installed: comparing perianctl's transport with httpx's only")
    else:
        found["httpx-aiohttp"] = lambda: httpx_aiohttp.AiohttpTransport(
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        )
    return found


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def throughput(
    url: str, job_id: str, make: Callable[[], httpx.AsyncBaseTransport], concurrency: int, seconds: float
) -> tuple[float, float]:
    """(calls per second, CPU milliseconds per call) of ``get_job`` with ``concurrency`` in flight."""
    async with PerianClient(url, ORG, TOKEN, transport=make(), max_connections=concurrency) as client:
        await client.get_job(job_id)  # connect and warm up outside the measured window
        calls = 0
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal calls
            while time.perf_counter() < deadline:
                await client.get_job(job_id)
                calls += 1

        start, cpu_start = time.perf_counter(), cpu()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed, spent = time.perf_counter() - start, cpu() - cpu_start
    return calls / elapsed, spent / max(calls, 1) * 1000


async def _drop_after_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read one request in full, then close without a reply: the request reached the server."""
    with contextlib.suppress(Exception):
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line[15:]) for line in head.split(b"\r\n") if line[:15].lower() == b"content-length:"), 0)
        await reader.readexactly(length)
    writer.close()


async def classify(make: Callable[[], httpx.AsyncBaseTransport]) -> dict[str, tuple[str, bool | None]]:
    """Case -> (httpx exception the transport raised, the client's ``never_sent`` for a create)."""
    server = await asyncio.start_server(_drop_after_request, "127.0.0.1", 0)
    dropping = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    with socket.socket() as probe:  # a port nobody listens on: refused
        probe.bind(("127.0.0.1", 0))
        refusing = f"http://127.0.0.1:{probe.getsockname()[1]}"
    request = CreateJobRequest(
        requirements=InstanceTypeQueryInput(), docker_run_parameters=DockerRunParameters(image_name="alpine")
    )
    found: dict[str, tuple[str, bool | None]] = {}
    try:
        for case, url in (("sent, then dropped", dropping), ("refused", refusing)):
            raw = make()
            try:
                await raw.handle_async_request(httpx.Request("POST", f"{url}/job", content=b"{}"))
                raised = "no error"
            except Exception as exc:
                raised = type(exc).__name__
            finally:
                await raw.aclose()
            never_sent: bool | None = None
            retry = RetryPolicy(attempts=1, connect_attempts=1, timeout=5.0)
            async with PerianClient(url, ORG, TOKEN, transport=make(), retry=retry) as client:
                try:
                    await client.create_job(request, idempotency_key=None)
                except UnavailableError as exc:
                    never_sent = exc.never_sent
                except Exception as exc:  # an unclassified failure: the caller cannot decide
                    print(f"  {case}: client raised {type(exc).__name__}: {exc}")
            found[case] = (raised, never_sent)
    finally:
        server.close()
        await server.wait_closed()
    return found


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", default="8,64", help="comma-separated calls in flight")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    ok = True

    print("classification (a create; never_sent=True lets the client retry it as certainly not sent):")
    for name, make in transports(max(levels)).items():
        for case, (raised, never_sent) in (await classify(make)).items():
            right = never_sent is (case == "refused")
            print(f"  {name:14s} {case:20s} {raised:22s} never_sent={never_sent!s:5s} {'ok' if right else 'WRONG'}")
            if name == "perianctl":
                ok &= goal(f"perianctl transport: {case} classified right", right, f"never_sent={never_sent}")

    with tempfile.TemporaryDirectory(prefix="perianctl-bench-") as tmp, running_sandbox(Path(tmp)) as sandbox_url:
        stub, url = start_stub(sandbox_url)
        try:
            async with PerianClient(sandbox_url, ORG, TOKEN) as client:
                job_id = await client.create_job(
                    CreateJobRequest(
                        requirements=InstanceTypeQueryInput(),
                        docker_run_parameters=DockerRunParameters(image_name="alpine"),
                    ),
                    idempotency_key=None,
                )
            makers = transports(max(levels))
            rates: dict[tuple[str, int], list[float]] = {}
            costs: dict[tuple[str, int], list[float]] = {}
            for _ in range(args.rounds):
                for level in levels:
                    for name, make in makers.items():
                        rate, cost = await throughput(url, job_id, make, level, args.seconds)
                        rates.setdefault((name, level), []).append(rate)
                        costs.setdefault((name, level), []).append(cost)
        finally:
            stub.terminate()
            stub.wait(10)

    print(
        f"\nget_job through PerianClient against the canned stub, median of {args.rounds} rounds "
        f"of {args.seconds:g} s; {cores()}"
    )
    for level in levels:
        for name in makers:
            rate = statistics.median(rates[(name, level)])
            cost = statistics.median(costs[(name, level)])
            print(f"  {level:3d} in flight  {name:14s} {rate:8.0f} calls/s   {cost:5.2f} ms CPU per call")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
