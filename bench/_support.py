"""What the benchmark scripts share: their credentials and a sandbox in its own process.

Not a benchmark itself. The scripts are run as ``.venv/bin/python bench/bench_x.py``, which puts
``bench/`` first on ``sys.path``, so they import this module as plain ``_support``.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ORG, TOKEN = "bench", "bench-token-0123456789"
HEADERS = {"X-PERIAN-AUTH-ORG": ORG, "Authorization": f"Bearer {TOKEN}"}
START_TIMEOUT = 30.0


def start_sandbox(state_dir: Path, *, speed: float | None = None,
                  get_latency: float | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """A simulate sandbox (access log off) serving ``ORG``/``TOKEN`` on a free loopback port; (process, url).

    A subprocess, not :class:`perianctl.sandbox.server.EmbeddedSandbox` (a thread): the server must
    not share the measuring process's GIL. ``speed`` sets ``SimTimings(speed=...)``; ``get_latency``
    delays every ``GET /job/{id}`` by that many seconds (a remote API). Left out, the defaults hold.
    """
    settings = [f"state_dir=Path({str(state_dir)!r})", "port=0", f"organization={ORG!r}", f"token={TOKEN!r}",
                "access_log=False"]
    if speed is not None:
        settings.append(f"timings=SimTimings(speed={speed!r})")
    if get_latency is not None:
        settings.append(f"faults=FaultConfig(latency=({get_latency!r}, {get_latency!r}),"
                        " latency_endpoints=frozenset({'get'}))")
    code = (
        "from pathlib import Path\n"
        "from perianctl.sandbox.config import FaultConfig, SandboxConfig, SimTimings\n"
        "from perianctl.sandbox.server import run\n"
        f"run(SandboxConfig({', '.join(settings)}))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    info = state_dir / "sandbox.json"
    deadline = time.monotonic() + START_TIMEOUT
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
    raise SystemExit(f"the sandbox did not start in {START_TIMEOUT:g} s")


def stop_sandbox(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    proc.terminate()
    proc.wait(timeout)


@contextlib.contextmanager
def running_sandbox(state_dir: Path, *, speed: float | None = None) -> Iterator[str]:
    """:func:`start_sandbox` for the ``with`` block; yields its url and stops it on the way out."""
    proc, url = start_sandbox(state_dir, speed=speed)
    try:
        yield url
    finally:
        stop_sandbox(proc)


async def sandbox_stats(url: str) -> dict[str, Any]:
    """``GET /_sandbox/stats``: jobs by status, requests per endpoint, faults injected."""
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        data: dict[str, Any] = (await client.get("/_sandbox/stats")).json()
    return data
