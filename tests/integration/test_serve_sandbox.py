"""``perianctl serve --sandbox``: the README's connector "try it" runs the task for real.

The server is the real CLI in a subprocess; the task goes in through `perianctl submit --connector`
(a real CreateTask over gRPC), runs as a process in the in-process sandbox, writes outputs.pb, and
the log link the connector hands to Flyte opens a page with the job's log.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.plugins.cli import CliRunner, assert_one_line_error
from tests.plugins.sandbox import SandboxFactory

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    proc: subprocess.Popen[str]
    port: int
    api_url: str
    metrics_port: int
    banner: str


def _start(tmp_path: Path, *args: str) -> Served:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERIAN", "_FSEC_"))}
    env.update(
        PERIANCTL_CONFIG=str(tmp_path / "none.toml"),
        PERIANCTL_STATE_DIR=str(tmp_path / "serve-state"),
        PYTHONUNBUFFERED="1",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "perianctl", "serve", "--sandbox", "--port", "0", *args],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # ends when the process exits: no wait without an event
        seen.append(line)
        if "listening on" in line:
            port = int(line.split("listening on ")[1].split(" ")[0].rsplit(":", 1)[1])
            api_url = line.split("PERIAN API ")[1].split(" ")[0]
            metrics = line.split("metrics ")[1].split(" ")[0]
            metrics_port = int(metrics.split("/")[0].rsplit(":", 1)[1]) if metrics != "off" else 0
            return Served(proc, port, api_url, metrics_port, line)
    proc.wait(timeout=30)
    raise AssertionError("serve --sandbox did not start:\n" + "".join(seen))


def _stop(served: Served) -> None:
    served.proc.terminate()
    assert served.proc.wait(timeout=60) == 0


def _listening_addresses(port: int) -> set[str]:
    """Local addresses a TCP socket listens on for ``port``, from /proc (what `ss -ltn` shows)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if int(hex_port, 16) == port and fields[3] == "0A":  # LISTEN
                if width == 32 and address.startswith("0000000000000000FFFF0000"):  # ::ffff:a.b.c.d
                    address, width = address[24:], 8
                if width == 8:
                    found.add(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
                else:
                    found.add("::" if set(address) == {"0"} else address)
    return found


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = _start(tmp_path, "--metrics-port", "0")
    yield s
    _stop(s)


def test_try_it_runs_the_task_and_returns_its_outputs(served: Served, run_cli: CliRunner) -> None:
    r = run_cli(
        "submit",
        str(REPO_ROOT / "examples" / "templates" / "hello.pb"),
        "-i",
        "name=Ada",
        "--env",
        f"PYTHONPATH={REPO_ROOT}",
        "--connector",
        f"127.0.0.1:{served.port}",
        "--wait",
        timeout=180,
    )
    assert r.returncode == 0, r
    assert "Hello, Ada! Greetings from a PERIAN job." in r.stdout, r
    assert "wrote no outputs" not in r.output

    # The log link Flyte shows opens a page with the job's log (no API credentials in a browser).
    job_id = r.stdout.split()[0]
    got = run_cli("get", job_id, "--connector", f"127.0.0.1:{served.port}", "-o", "json")
    assert got.returncode == 0, got
    import json

    links = json.loads(got.stdout)
    links = links[0] if isinstance(links, list) else links
    uri = links["log_links"][0]["uri"]
    assert uri.startswith(served.api_url) and job_id in uri
    page = httpx.get(uri, timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Hello, Ada! Greetings from a PERIAN job." in page.text and "Done" in page.text
    assert httpx.get(uri.replace(job_id, "no-such-job"), timeout=30).status_code == 404


def test_sandbox_binds_loopback_and_metrics_follow_host(tmp_path: Path) -> None:
    s = _start(tmp_path, "--metrics-port", "0")
    try:
        assert "listening on 127.0.0.1:" in s.banner
        assert _listening_addresses(s.port) == {"127.0.0.1"}
    finally:
        _stop(s)
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        metrics_port = probe.getsockname()[1]
    s = _start(tmp_path, "--metrics-port", str(metrics_port))
    try:
        assert _listening_addresses(metrics_port) == {"127.0.0.1"}, s.banner
        assert httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30).status_code == 200
    finally:
        _stop(s)


def test_sandbox_runtime_and_port_are_chosen(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    s = _start(tmp_path, "--metrics-port", "0", "--sandbox-runtime", "simulate", "--sandbox-port", str(port))
    try:
        assert s.api_url == f"http://127.0.0.1:{port}"
        health = httpx.get(f"{s.api_url}/_sandbox/stats", timeout=30)
        assert health.status_code == 200
        assert httpx.get(f"{s.api_url}/healthz", timeout=30).json().get("runtime", "simulate") == "simulate"
    finally:
        _stop(s)


def test_bad_sandbox_options_are_usage_errors(run_cli: CliRunner) -> None:
    assert_one_line_error(run_cli("serve", "--sandbox", "--sandbox-runtime", "vm", "--port", "0"), 2)
    r = run_cli("serve", "--sandbox-port", "8081", "--port", "0", "--api-url", "http://127.0.0.1:9")
    assert_one_line_error(r, 2)
    assert "--sandbox" in r.stderr


def test_pyflyte_run_of_the_readme_example_runs_through_the_connector(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    """`pyflyte run examples/train.py wf` (local; the README's PerianConfig task, no container_image):
    flytekit serializes it, the in-process connector creates a PERIAN job, the process sandbox runs
    pyflyte-execute, and the output comes back from outputs.pb."""
    sandbox = sandbox_factory(runtime="process")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERIAN", "_FSEC_", "FLYTE"))}
    env.update(
        sandbox.env(),
        PERIANCTL_CONFIG=str(tmp_path / "none.toml"),
        PERIANCTL_STATE_DIR=str(tmp_path / "state"),
        HOME=str(tmp_path),
        COLUMNS="200",
    )
    pyflyte = Path(sys.executable).with_name("pyflyte")
    proc = subprocess.run(
        [str(pyflyte), "run", "examples/train.py", "wf", "--epochs", "4"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "An image is required" not in proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "0.0625", proc.stdout
    with httpx.Client(base_url=sandbox.url) as client:
        jobs = client.get("/_sandbox/jobs").json()["jobs"]
    assert len(jobs) == 1 and jobs[0]["status"] == "Done", jobs
