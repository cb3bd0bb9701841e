"""Where a connector's GetTask spends its CPU: ``perianctl serve`` under cProfile, driven like the bench.

    .venv/bin/python bench/profile_connector.py [--seconds 5] [--streams 64] [--top 30] [--out serve.prof]

Starts a sandbox and the canned-response PERIAN stub (``_support.start_stub``, no upstream
latency), runs ``python -m cProfile -m perianctl serve`` against the stub, keeps ``--streams``
GetTask calls in flight for ``--seconds`` (``bench_connector.bench_get_task``), stops the server
with SIGTERM (it drains and exits, so cProfile writes its file) and prints the functions with the
most cumulative time per GetTask. Not a benchmark: cProfile roughly doubles the cost of Python code
and does not see grpc's C core, so read the split, not the totals (``bench_connector.py`` and
``grpc_floor.py`` give those).
"""

from __future__ import annotations

import argparse
import asyncio
import pstats
import signal
import sys
import tempfile
from pathlib import Path

import bench_connector as bc
from _support import start_sandbox, start_stub, stop_sandbox


class _Profiled(bc.PerianctlConnector):
    out: str = ""

    def command(self, api_url: str, port: int) -> tuple[list[str], dict[str, str]]:
        cmd, env = super().command(api_url, port)
        return [cmd[0], "-m", "cProfile", "-o", self.out, *cmd[1:]], env


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--streams", type=int, default=64)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--out", help="keep the profile in this file (default: a temporary one)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="profile-connector-"))
    connector = _Profiled("perianctl serve (cProfile)")
    connector.out = args.out or str(tmp / "serve.prof")
    sandbox, sandbox_url = start_sandbox(tmp / "sandbox")
    stub, api_url = start_stub(sandbox_url, 0.0)
    try:
        connector.start(api_url)
        metas, _ = asyncio.run(bc.create_tasks(connector.target, 64))
        pid = connector.proc.pid if connector.proc is not None else None
        result = asyncio.run(
            bc.bench_get_task(connector.name, connector.target, metas, args.streams, args.seconds, 1.0, pid)
        )
    finally:
        if connector.proc is not None:
            connector.proc.send_signal(signal.SIGTERM)
            connector.proc.wait(60)
        stub.terminate()
        stub.wait(10)
        stop_sandbox(sandbox, timeout=30)
    print(
        f"{result.calls} GetTask calls measured, {result.rate:.0f}/s, "
        f"{result.extra.get('server_cpu_ms_per_call')} ms of server CPU each (under cProfile)\n"
    )
    stats = pstats.Stats(connector.out, stream=sys.stdout)
    stats.sort_stats("cumulative").print_stats(r"perianctl|httpx|aiohttp|flytekit|pydantic|prometheus", args.top)


if __name__ == "__main__":
    main()
