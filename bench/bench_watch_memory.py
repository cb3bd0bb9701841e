"""Benchmark: memory of ``perianctl watch`` with 10,000 jobs, against 1,000 as the baseline.

Starts a sandbox (simulate runtime) in its own process and creates ``--jobs`` jobs that stay Running,
then measures, for the newest ``--baseline`` jobs and for all ``--jobs``:

* **core** (a fresh child interpreter per size and mode, so figures do not mix): ``--refreshes``
  refreshes of :class:`perianctl.jobs.follow.Poller` (the real sweep over loopback HTTP, transitions
  journalled) plus the renders ``watch`` does -- the live frame of a 40x200 terminal and the full
  table of every job -- reporting peak Python allocations (tracemalloc, in its own run because
  tracing costs memory itself) and max RSS (a run without tracemalloc), both above the RSS the
  child had after its imports;
* **CLI**: the real ``perianctl watch ID... --timeout`` subprocess in line mode and in NDJSON mode,
  its max RSS from ``wait4``.

Printed as MiB, bytes per watched job (the slope between the two sizes) and ratios 10k / 1k.
Run: ``.venv/bin/python bench/bench_watch_memory.py [--jobs 10000] [--baseline 1000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from _support import HEADERS, ORG, TOKEN, cores, goal, running_sandbox


async def create_jobs(url: str, n: int, clients: int = 10) -> list[str]:
    """``n`` Running-forever jobs, created with plain HTTP from ``clients`` connections (fast set-up)."""
    import httpx

    body = {
        "requirements": {"cpu": {"cores": 1}},
        "docker_run_parameters": {
            "image_name": "busybox",
            "image_tag": "latest",
            "env_variables": {"PERIAN_SANDBOX_SCENARIO": "slow", "PERIAN_SANDBOX_DURATION": "3600"},
        },
    }
    ids: list[str] = [""] * n

    async def worker(k: int) -> None:
        async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=60) as client:
            for i in range(k, n, clients):
                response = await client.post("/job", json=body)
                response.raise_for_status()
                ids[i] = str(response.json()["id"])

    await asyncio.gather(*(worker(k) for k in range(clients)))
    return ids


def rss_now() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --------------------------------------------------------------------------- child: one measurement


async def child_measure(url: str, ids: list[str], refreshes: int, trace: bool, journal_path: Path) -> dict[str, Any]:
    from rich.console import Console

    from perianctl.jobs.follow import Poller
    from perianctl.journal import open_journal
    from perianctl.perian.client import PerianClient
    from perianctl.ui.live import LiveTableView, render_text

    figures: dict[str, Any] = {"rss_after_imports": rss_now()}
    if trace:
        tracemalloc.start()
    seconds = []
    async with PerianClient(url, ORG, TOKEN, max_connections=100) as client:
        with open_journal(journal_path) as journal:
            poller = Poller(client, ids, interval=2.0, journal=journal, api_url=url)
            console = Console(file=io.StringIO(), force_terminal=True, width=200, height=40, color_system=None)
            view = LiveTableView(console, lambda _id: None, interval=2.0)
            view.start()
            for _ in range(refreshes):
                started = time.perf_counter()
                result = await poller.refresh()
                view.on_refresh(poller, result)
                seconds.append(time.perf_counter() - started)
                assert result.ok, result.error
            render_text(poller.watched(), lambda _id: None, width=200)
            view.finish(poller, None)
            figures["statuses"] = sorted({w.status or "-" for w in poller.watched()})
            figures["requests_per_refresh"] = poller.stats.requests / max(1, poller.stats.refreshes)
    if trace:
        figures["tracemalloc_peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    figures["max_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    figures["refresh_seconds"] = seconds
    return figures


def run_child(url: str, ids: list[str], refreshes: int, trace: bool, tmp: Path) -> dict[str, Any]:
    ids_file = tmp / f"ids-{len(ids)}.json"
    ids_file.write_text(json.dumps(ids))
    journal = tmp / f"journal-{len(ids)}-{int(trace)}.db"
    cmd = [sys.executable, __file__, "--child", url, str(ids_file), str(refreshes), str(int(trace)), str(journal)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"child failed: {out.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return data


def run_cli(url: str, ids: list[str], mode: str, timeout: float, tmp: Path) -> dict[str, Any]:
    """The real ``perianctl watch`` subprocess; max RSS from wait4 (it exits 5 at --timeout)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERIAN")}
    env.update(
        PERIAN_API_URL=url,
        PERIAN_ORGANIZATION=ORG,
        PERIAN_TOKEN=TOKEN,
        NO_COLOR="1",
        PERIANCTL_CONFIG=str(tmp / "cli" / "config.toml"),
        PERIANCTL_STATE_DIR=str(tmp / "cli" / f"{mode}"),
    )
    args = ["--no-live"] if mode == "lines" else ["-o", "json"]
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "perianctl", "watch", *ids, *args, "--interval", "1", "--timeout", f"{timeout:g}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    out_bytes = 0
    while chunk := proc.stdout.read(1 << 16):
        out_bytes += len(chunk)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 5:
        raise SystemExit(f"perianctl watch exited {proc.returncode}, expected 5 (--timeout)")
    return {"max_rss": usage.ru_maxrss * 1024, "seconds": time.perf_counter() - started, "stdout_bytes": out_bytes}


# --------------------------------------------------------------------------- parent


def mib(value: float) -> str:
    return f"{value / 2**20:7.1f} MiB"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        url, ids_file, refreshes, trace, journal = sys.argv[2:7]
        ids = json.loads(Path(ids_file).read_text())
        print(json.dumps(asyncio.run(child_measure(url, ids, int(refreshes), trace == "1", Path(journal)))))
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--baseline", type=int, default=1_000)
    parser.add_argument("--refreshes", type=int, default=3)
    parser.add_argument("--cli-timeout", type=float, default=8.0, help="seconds each CLI watch runs")
    parser.add_argument("--no-cli", action="store_true", help="skip the perianctl subprocess runs")
    parser.add_argument("--goal-bytes", type=float, default=5000, help="goal: bytes per watched job (default 5 KB)")
    args = parser.parse_args()
    sizes = [args.baseline, args.jobs]
    core: dict[int, dict[str, Any]] = {}
    cli: dict[tuple[int, str], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-watch-mem-") as name:
        tmp = Path(name)
        with running_sandbox(tmp / "sb", speed=5.0) as url:
            started = time.perf_counter()
            ids = asyncio.run(create_jobs(url, args.jobs))
            create_seconds = time.perf_counter() - started
            time.sleep(1.0)  # the newest jobs leave Queued/Initializing (speed 5: 0.3 s)
            for n in sizes:
                watched = ids[-n:]  # the newest: what people watch, and what one list sweep reaches first
                rss = run_child(url, watched, args.refreshes, False, tmp)
                traced = run_child(url, watched, args.refreshes, True, tmp)
                core[n] = rss | {"tracemalloc_peak": traced["tracemalloc_peak"]}
                if not args.no_cli:
                    for mode in ("lines", "json"):
                        cli[(n, mode)] = run_cli(url, watched, mode, args.cli_timeout, tmp)

    small, big = core[args.baseline], core[args.jobs]
    extra = args.jobs - args.baseline
    print(
        f"watch memory benchmark: {args.baseline} vs {args.jobs} watched jobs (all Running) on a simulate "
        f"sandbox over loopback HTTP ({args.refreshes} refreshes; python {sys.version.split()[0]}, "
        f"{cores()})"
    )
    print(f"  created {args.jobs} jobs in {create_seconds:.1f} s; statuses seen: {', '.join(big['statuses'])}")
    print("  core (Poller refreshes + live frame + full table), in a fresh interpreter per size:")
    for n in sizes:
        c = core[n]
        above = c["max_rss"] - c["rss_after_imports"]
        median = sorted(c["refresh_seconds"])[len(c["refresh_seconds"]) // 2]
        print(
            f"    {n:6d} jobs: tracemalloc peak {mib(c['tracemalloc_peak'])}; max RSS {mib(c['max_rss'])} "
            f"({mib(above)} above the {c['rss_after_imports'] / 2**20:.0f} MiB after imports); "
            f"refresh {median * 1000:.0f} ms, {c['requests_per_refresh']:.1f} requests/refresh"
        )
    peak_slope = (big["tracemalloc_peak"] - small["tracemalloc_peak"]) / extra
    rss_slope = ((big["max_rss"] - big["rss_after_imports"]) - (small["max_rss"] - small["rss_after_imports"])) / extra
    print(f"    per watched job: {peak_slope:.0f} bytes of peak Python allocations, {rss_slope:.0f} bytes of RSS")
    print(
        f"    ratio {args.jobs}/{args.baseline}: tracemalloc peak "
        f"{big['tracemalloc_peak'] / small['tracemalloc_peak']:.1f}x, RSS above imports "
        f"{(big['max_rss'] - big['rss_after_imports']) / max(1, small['max_rss'] - small['rss_after_imports']):.1f}x,"
        f" max RSS {big['max_rss'] / small['max_rss']:.2f}x (jobs: {args.jobs / args.baseline:.0f}x)"
    )
    slopes = {"core peak Python allocations": peak_slope, "core RSS": rss_slope}
    if cli:
        print(f"  CLI (perianctl watch ID... --timeout {args.cli_timeout:g}s, whole process):")
        for mode in ("lines", "json"):
            a, b = cli[(args.baseline, mode)], cli[(args.jobs, mode)]
            slope = (b["max_rss"] - a["max_rss"]) / extra
            slopes[f"CLI {mode} max RSS"] = slope
            print(
                f"    {mode:5}: max RSS {mib(a['max_rss'])} with {args.baseline}, {mib(b['max_rss'])} with "
                f"{args.jobs} = {b['max_rss'] / a['max_rss']:.2f}x, {slope:.0f} bytes/job; stdout "
                f"{a['stdout_bytes'] / 1024:.0f} KiB vs {b['stdout_bytes'] / 1024:.0f} KiB"
            )
    worst = max(slopes, key=lambda k: slopes[k])
    ok = goal(
        f"watch of {args.jobs} jobs <= {args.goal_bytes / 1000:g} KB per watched job (baseline: {args.baseline} jobs)",
        slopes[worst] <= args.goal_bytes,
        f"worst {slopes[worst]:.0f} bytes/job ({worst}); " + ", ".join(f"{k} {v:.0f}" for k, v in slopes.items()),
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
