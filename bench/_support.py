"""What the benchmark scripts share: their credentials and a sandbox in its own process.

Not a benchmark itself. The scripts are run as ``.venv/bin/python bench/bench_x.py``, which puts
``bench/`` first on ``sys.path``, so they import this module as plain ``_support``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ORG, TOKEN = "bench", "bench-token-0123456789"
HEADERS = {"X-PERIAN-AUTH-ORG": ORG, "Authorization": f"Bearer {TOKEN}"}
START_TIMEOUT = 30.0


def start_sandbox(
    state_dir: Path, *, speed: float | None = None, get_latency: float | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """A simulate sandbox (access log off) serving ``ORG``/``TOKEN`` on a free loopback port; (process, url).

    A subprocess, not :class:`perianctl.sandbox.server.EmbeddedSandbox` (a thread): the server must
    not share the measuring process's GIL. ``speed`` sets ``SimTimings(speed=...)``; ``get_latency``
    delays every ``GET /job/{id}`` by that many seconds (a remote API). Left out, the defaults hold.
    """
    settings = [
        f"state_dir=Path({str(state_dir)!r})",
        "port=0",
        f"organization={ORG!r}",
        f"token={TOKEN!r}",
        "access_log=False",
    ]
    if speed is not None:
        settings.append(f"timings=SimTimings(speed={speed!r})")
    if get_latency is not None:
        settings.append(
            f"faults=FaultConfig(latency=({get_latency!r}, {get_latency!r}), latency_endpoints=frozenset({{'get'}}))"
        )
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


# --------------------------------------------------------------------------- canned-response PERIAN stub

STUB_CODE = r'''
import asyncio, sys

UPSTREAM_HOST, UPSTREAM_PORT, LATENCY = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
CANNED: dict[bytes, bytes] = {}


async def upstream(raw: bytes) -> tuple[int, bytes]:
    """Forward one request to the sandbox (Connection: close) and return (status, body)."""
    reader, writer = await asyncio.open_connection(UPSTREAM_HOST, UPSTREAM_PORT)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = [l for l in head.split(b"\r\n") if not l.lower().startswith((b"connection:", b"accept-encoding:"))]
    writer.write(b"\r\n".join([*lines, b"Connection: close", b"Accept-Encoding: identity"]) + b"\r\n\r\n" + body)
    data = await reader.read(-1)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if not size:
                break
            out, rest = out + rest[:size], rest[size + 2:]
        body = out
    return int(head.split(b" ", 2)[1]), body


def response(status: int, body: bytes) -> bytes:
    return (b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % (status, len(body))
            + body)


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length) if length else b""
            method, target = head.split(b" ", 2)[:2]
            canned = method == b"GET" and target.startswith(b"/job/") and b"/" not in target[5:]
            if canned and target in CANNED:
                if LATENCY:
                    await asyncio.sleep(LATENCY)
                writer.write(CANNED[target])
                continue
            status, data = await upstream(head + body)
            if canned and status == 200:
                CANNED[target] = response(status, data)  # recorded once, replayed from now on
            writer.write(response(status, data))
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main() -> None:
    server = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
'''


def start_stub(upstream_url: str, latency: float = 0.0) -> tuple[subprocess.Popen[str], str]:
    """A canned-response PERIAN stub in front of the sandbox at ``upstream_url``; (process, url).

    ``GET /job/{id}`` is forwarded to the sandbox once, and its recorded answer is replayed from
    then on after ``latency`` seconds (a remote API's round trip costs no CPU here); everything
    else (creates, lists, cancels) is forwarded. A bare asyncio server with no HTTP framework, so
    the upstream costs almost nothing and a connector's own cost is what a benchmark sees.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(upstream_url)
    proc = subprocess.Popen(
        [sys.executable, "-c", STUB_CODE, parts.hostname or "127.0.0.1", str(parts.port), repr(latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    port = proc.stdout.readline().strip()
    if not port:
        raise SystemExit("the PERIAN stub did not start")
    return proc, f"http://127.0.0.1:{port}"


def goal(name: str, ok: bool, figure: str) -> bool:
    """Print one goal line (``GOAL PASS|MISS name: figure``) and return ``ok`` for the exit code."""
    print(f"GOAL {'PASS' if ok else 'MISS'}  {name}: {figure}")
    return ok


def cores() -> str:
    return f"{os.cpu_count()} cores (usable {len(os.sched_getaffinity(0))})"
