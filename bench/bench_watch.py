"""Benchmark: what one refresh of ``perianctl watch`` costs with 1,000 watched jobs.

Starts a sandbox (simulate runtime) in its own process, creates N jobs that stay Running, then
measures per refresh, over real loopback HTTP:

* HTTP requests (counted by the sandbox itself, per endpoint) and time of a refresh (fetch, parse,
  transitions, journal writes), for the :class:`perianctl.jobs.follow.Poller` sweep *and* for the
  naive baseline (one ``GET /job/{id}`` per
  job, 100 in flight), in the same run, against the same server;
* render time of the full table (the final table, N rows) and of the live frame (capped to a
  40-row terminal), each into a ``StringIO``;
* peak Python memory of a refresh (tracemalloc) and the process's max RSS.

Run: ``.venv/bin/python bench/bench_watch.py [--jobs 1000] [--refreshes 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from _support import ORG, TOKEN, cores, goal, running_sandbox, sandbox_stats


async def sandbox_requests(url: str) -> dict[str, int]:
    data = await sandbox_stats(url)
    return {k: int(v) for k, v in data.get("requests", {}).items()}


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}


async def create_jobs(client: Any, n: int) -> list[str]:
    from perianctl.perian import models as m

    request = m.CreateJobRequest(
        requirements=m.InstanceTypeQueryInput(cpu=m.CpuQueryInput(cores=1)),
        docker_run_parameters=m.DockerRunParameters(
            image_name="busybox",
            image_tag="latest",
            env_variables={"PERIAN_SANDBOX_SCENARIO": "slow", "PERIAN_SANDBOX_DURATION": "3600"},
        ),
    )
    semaphore = asyncio.Semaphore(50)

    async def one() -> str:
        async with semaphore:
            return str(await client.create_job(request))

    return list(await asyncio.gather(*(one() for _ in range(n))))


def render_full(jobs: list[Any]) -> float:
    from perianctl.ui.live import render_text

    started = time.perf_counter()
    render_text(jobs, lambda _id: None, width=200)
    return time.perf_counter() - started


def render_live_frame(poller: Any) -> tuple[float, int]:
    """One paint of the live view (a 40x200 terminal) into a StringIO; returns (seconds, bytes of it)."""
    from rich.console import Console

    from perianctl.jobs.follow import RefreshResult
    from perianctl.ui.live import LiveTableView

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=200, height=40, color_system=None)
    view = LiveTableView(console, lambda _id: None, interval=2.0)
    view.start()
    started = time.perf_counter()
    view.on_refresh(poller, RefreshResult([], True))
    seconds = time.perf_counter() - started
    size = len(buffer.getvalue())
    view.finish(poller, None)
    return seconds, size


async def bench(url: str, n: int, refreshes: int, journal_path: Path) -> dict[str, Any]:
    from perianctl.jobs.follow import Poller
    from perianctl.journal import open_journal
    from perianctl.perian.client import PerianClient

    figures: dict[str, Any] = {"jobs": n, "refreshes": refreshes}
    async with PerianClient(url, ORG, TOKEN, max_connections=100) as client:
        started = time.perf_counter()
        ids = await create_jobs(client, n)
        figures["create_seconds"] = time.perf_counter() - started
        await asyncio.sleep(0.5)  # let them leave Queued

        fetch, requests, per_endpoint = [], [], []
        with open_journal(journal_path) as journal:  # as watch runs: transitions go to the journal
            poller = Poller(client, ids, interval=2.0, journal=journal, api_url=url)
            for _ in range(refreshes):
                before = await sandbox_requests(url)
                started = time.perf_counter()
                result = await poller.refresh()
                fetch.append(time.perf_counter() - started)
                after = await sandbox_requests(url)
                assert result.ok, result.error
                requests.append(sum(delta(after, before).values()))
                per_endpoint.append(delta(after, before))
            figures["poller_requests_per_refresh"] = statistics.mean(requests)
            figures["poller_requests_breakdown"] = per_endpoint[-1]
            figures["poller_fetch_ms_median"] = 1000 * statistics.median(fetch)
            figures["poller_fetch_ms_first"] = 1000 * fetch[0]
            figures["statuses"] = sorted({w.status or "-" for w in poller.watched()})

            renders = [render_full(poller.watched()) for _ in range(3)]
            figures["render_full_table_ms"] = 1000 * statistics.median(renders)
            frames = [render_live_frame(poller) for _ in range(3)]
            figures["render_live_frame_ms"] = 1000 * statistics.median(s for s, _ in frames)
            figures["live_frame_bytes"] = frames[0][1]

            tracemalloc.start()
            await poller.refresh()
            render_full(poller.watched())
            figures["peak_python_mib_refresh_and_render"] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()

        semaphore = asyncio.Semaphore(100)

        async def get(job_id: str) -> None:
            async with semaphore:
                await client.get_job(job_id)

        naive_fetch, naive_requests = [], []
        for _ in range(max(2, refreshes // 3)):
            before = await sandbox_requests(url)
            started = time.perf_counter()
            await asyncio.gather(*(get(job_id) for job_id in ids))
            naive_fetch.append(time.perf_counter() - started)
            naive_requests.append(sum(delta(await sandbox_requests(url), before).values()))
        figures["naive_requests_per_refresh"] = statistics.mean(naive_requests)
        figures["naive_fetch_ms_median"] = 1000 * statistics.median(naive_fetch)
    figures["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--refreshes", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp, running_sandbox(Path(tmp)) as url:
        figures = asyncio.run(bench(url, args.jobs, args.refreshes, Path(tmp) / "journal.db"))
    f = figures
    print(
        f"watch benchmark: {f['jobs']} jobs on a simulate sandbox over loopback HTTP "
        f"({f['refreshes']} refreshes; python {sys.version.split()[0]}, {cores()})"
    )
    print(f"  created {f['jobs']} jobs in {f['create_seconds']:.1f} s; statuses seen: {', '.join(f['statuses'])}")
    print(
        f"  poller : {f['poller_requests_per_refresh']:.1f} requests/refresh {f['poller_requests_breakdown']}, "
        f"refresh median {f['poller_fetch_ms_median']:.0f} ms (first, journalling {f['jobs']} first sightings: "
        f"{f['poller_fetch_ms_first']:.0f} ms)"
    )
    print(
        f"  naive  : {f['naive_requests_per_refresh']:.0f} requests/refresh (GET /job/{{id}} each, 100 in flight), "
        f"fetch median {f['naive_fetch_ms_median']:.0f} ms"
    )
    print(
        f"  ratio  : {f['naive_requests_per_refresh'] / f['poller_requests_per_refresh']:.0f}x fewer requests, "
        f"{f['naive_fetch_ms_median'] / f['poller_fetch_ms_median']:.1f}x faster fetch than naive"
    )
    print(
        f"  render : full table ({f['jobs']} rows) {f['render_full_table_ms']:.0f} ms; "
        f"live frame (40x200 terminal) {f['render_live_frame_ms']:.1f} ms, {f['live_frame_bytes']} bytes"
    )
    print(
        f"  memory : peak Python allocations during a refresh + full render "
        f"{f['peak_python_mib_refresh_and_render']:.1f} MiB; process max RSS {f['max_rss_mib']:.0f} MiB"
    )
    from perianctl.jobs.follow import MAX_PAGE_SIZE, PAGE_SLACK

    pages = -(-(f["jobs"] + PAGE_SLACK) // MAX_PAGE_SIZE)
    ok = goal(
        f"one list sweep per refresh ({pages} page(s) of {f['jobs']} jobs, no per-job GETs)",
        f["poller_requests_per_refresh"] <= pages,
        f"{f['poller_requests_per_refresh']:.1f} requests/refresh vs {f['naive_requests_per_refresh']:.0f} naive",
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
