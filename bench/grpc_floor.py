"""The floor under any Python connector: CPU per GetTask of a grpc.aio server that answers at once.

    .venv/bin/python bench/grpc_floor.py [--duration 5] [--streams 64]

A server process whose GetTask returns a constant ``GetTaskResponse`` (no PERIAN call, no
translation) is driven exactly like ``bench_connector.py`` drives a connector; its CPU seconds
per call are what grpc's asyncio server costs by itself on this machine. A connector built on
``grpc.aio`` cannot cost less; ``bench_connector.py`` compares a connector's figure with it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time

from _support import cores

SERVER = r"""
import asyncio, sys
import grpc
from flyteidl.admin import agent_pb2
from flyteidl.service import agent_pb2_grpc

class Servicer(agent_pb2_grpc.AsyncAgentServiceServicer):
    async def GetTask(self, request, context):
        return agent_pb2.GetTaskResponse(resource=agent_pb2.Resource(phase=4, message="running"))

async def main():
    server = grpc.aio.server()
    agent_pb2_grpc.add_AsyncAgentServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()

asyncio.run(main())
"""


def floor_cpu_ms(duration: float, streams: int, warmup: float = 1.0) -> tuple[float, float]:
    """(server CPU ms per GetTask, calls per second) of the do-nothing grpc.aio server."""
    from bench_connector import Result, _drive, cpu_seconds, get_task_requests

    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        target = f"127.0.0.1:{proc.stdout.readline().strip()}"

        async def run() -> tuple[Result, float]:
            import grpc
            from flyteidl.service import agent_pb2_grpc

            requests = get_task_requests([b"{}"])
            async with grpc.aio.insecure_channel(target) as channel:
                stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)

                async def call(i: int) -> None:
                    await stub.GetTask(requests[0], timeout=10)

                result = Result("grpc.aio floor")
                cpu: list[float | None] = []

                async def sample() -> None:
                    await asyncio.sleep(warmup)
                    cpu.append(cpu_seconds(proc.pid))
                    await asyncio.sleep(duration)
                    cpu.append(cpu_seconds(proc.pid))

                sampler = asyncio.ensure_future(sample())
                await _drive(streams, duration, warmup, call, result)
                await sampler
                used = (cpu[1] or 0.0) - (cpu[0] or 0.0)
                return result, used

        result, used = asyncio.run(run())
        return used * 1000 / max(1, result.calls), result.rate
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--streams", type=int, default=64)
    args = parser.parse_args()
    started = time.perf_counter()
    ms, rate = floor_cpu_ms(args.duration, args.streams)
    print(
        f"grpc.aio do-nothing GetTask server, {args.streams} streams, {args.duration:g} s, {cores()}, "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}: {ms:.3f} ms CPU per call, "
        f"{rate:.0f} calls/s ({time.perf_counter() - started:.0f} s)"
    )


if __name__ == "__main__":
    main()
