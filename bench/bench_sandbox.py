"""Benchmark: how fast the sandbox creates and completes jobs, against its own raw request rate.

Starts a sandbox (simulate runtime, access log off) in its own process and drives it over loopback
HTTP from this process with ``--clients`` concurrent httpx clients (one connection each):

* **baseline**: ``GET /healthz`` -- no auth, no store, no body: the raw cost of a request through
  uvicorn + FastAPI + the fault middleware on this machine;
* **create**: ``POST /job`` (auth, body validation, instance-type search, one SQLite insert);
* **get**: ``GET /job/{id}`` (auth, one SQLite read, JSON of one job);
* **complete**: a burst of ``--jobs`` creates at a high simulation speed, timed until every job is
  Done (the simulate scheduler's throughput: three status transitions per job, batched writes).

Rates are jobs (or requests) per second; ratios are against the baseline measured in the same run,
so they compare across machines. Run: ``.venv/bin/python bench/bench_sandbox.py [--jobs 1000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _support import HEADERS, running_sandbox, sandbox_stats

JOB = {
    "requirements": {"cpu": {"cores": 1}},
    "docker_run_parameters": {"image_name": "busybox", "image_tag": "latest", "command": "true"},
}


async def drive(url: str, n: int, clients: int, request: Callable[[Any, int], Awaitable[Any]]) -> tuple[float, list]:
    """``n`` requests spread over ``clients`` concurrent clients; returns (seconds, results)."""
    import httpx

    results: list[Any] = [None] * n
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    pool = [httpx.AsyncClient(base_url=url, headers=HEADERS, limits=limits, timeout=60) for _ in range(clients)]

    async def worker(k: int) -> None:
        for i in range(k, n, clients):
            results[i] = await request(pool[k], i)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        return time.perf_counter() - started, results
    finally:
        for client in pool:
            await client.aclose()


async def healthz(client: Any, _i: int) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200, response.text


async def create(client: Any, _i: int) -> str:
    response = await client.post("/job", json=JOB)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def bench_requests(url: str, n: int, clients: int, rounds: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    await drive(url, min(n, 200), clients, healthz)  # warm up connections and code paths
    base, creates, gets = [], [], []
    ids: list[str] = []
    for _ in range(rounds):  # interleaved, so a noisy neighbour hurts each measurement alike
        base.append(n / (await drive(url, n, clients, healthz))[0])
        seconds, made = await drive(url, n, clients, create)
        creates.append(n / seconds)
        ids = list(made)

        async def get(client: Any, i: int, ids: list[str] = ids) -> None:
            response = await client.get(f"/job/{ids[i]}")
            assert response.status_code == 200, response.text

        gets.append(n / (await drive(url, n, clients, get))[0])
    figures["healthz_per_s"] = statistics.median(base)
    figures["create_per_s"] = statistics.median(creates)
    figures["get_per_s"] = statistics.median(gets)
    figures["samples"] = {"healthz": base, "create": creates, "get": gets}
    return figures


async def bench_completion(url: str, n: int, clients: int) -> dict[str, Any]:
    """Create ``n`` jobs as fast as possible; time until the simulate runtime has finished them all."""
    before = await sandbox_stats(url)
    done_before = before["jobs"]["by_status"].get("Done", 0)
    started = time.perf_counter()
    create_seconds, _ = await drive(url, n, clients, create)
    while True:
        data = await sandbox_stats(url)
        if data["jobs"]["by_status"].get("Done", 0) - done_before >= n:
            break
        if time.perf_counter() - started > 600:
            raise SystemExit(f"jobs not done after 600 s: {data['jobs']}")
        await asyncio.sleep(0.02)
    total = time.perf_counter() - started
    return {"complete_seconds": total, "complete_create_seconds": create_seconds, "complete_per_s": n / total}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000, help="requests per measurement and jobs to complete")
    parser.add_argument("--clients", type=int, default=10, help="concurrent HTTP clients")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of baseline/create/get")
    parser.add_argument(
        "--speed",
        type=float,
        default=200.0,
        help="simulation speed for the completion run (200: a job's life is ~23 ms)",
    )
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp,
        running_sandbox(Path(tmp) / "sb", speed=args.speed) as url,
    ):
        figures = asyncio.run(bench_requests(url, args.jobs, args.clients, args.rounds))
        figures |= asyncio.run(bench_completion(url, args.jobs, args.clients))
        db_bytes = sum(p.stat().st_size for p in (Path(tmp) / "sb").glob("sandbox.db*"))
    f = figures
    total_jobs = args.jobs * (args.rounds + 1)
    print(
        f"sandbox benchmark: simulate runtime over loopback HTTP, {args.clients} concurrent clients, "
        f"{args.jobs} requests per measurement, median of {args.rounds} interleaved rounds "
        f"(python {sys.version.split()[0]}, {os.cpu_count()} cpus; load generator in the same machine)"
    )
    print(f"  baseline GET /healthz : {f['healthz_per_s']:7.0f} req/s  (raw server overhead)")
    print(
        f"  POST /job (create)    : {f['create_per_s']:7.0f} jobs/s  = {f['create_per_s'] / f['healthz_per_s']:.2f}"
        " x baseline"
    )
    print(
        f"  GET /job/{{id}}         : {f['get_per_s']:7.0f} req/s  = {f['get_per_s'] / f['healthz_per_s']:.2f}"
        " x baseline"
    )
    print(
        f"  complete {args.jobs} jobs   : {f['complete_per_s']:7.0f} jobs/s = "
        f"{f['complete_per_s'] / f['healthz_per_s']:.2f} x baseline, {f['complete_per_s'] / f['create_per_s']:.2f}"
        f" x create rate ({f['complete_seconds']:.2f} s from the first create to the last Done; creating took "
        f"{f['complete_create_seconds']:.2f} s; speed {args.speed:g})"
    )
    print(
        f"  store: {total_jobs} jobs in {db_bytes / 2**20:.1f} MiB of SQLite "
        f"({db_bytes / total_jobs:.0f} bytes/job incl. WAL)"
    )
    spread = {k: f"{min(v):.0f}-{max(v):.0f}" for k, v in f["samples"].items()}
    print(f"  spread across rounds (req/s): {spread}")


if __name__ == "__main__":
    main()
