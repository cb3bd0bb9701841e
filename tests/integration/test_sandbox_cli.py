"""``sandbox start | status | stop | run`` as real subprocesses: detach, profile, pid safety, errors."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli

from tests.plugins.cli import CliEnv, CliResult, CliRunner, assert_one_line_error
from tests.plugins.sandbox import http_client

pytestmark = pytest.mark.timeout(90)


def _sandbox_cli(cli_env: CliEnv, *args: str, timeout: float = 60) -> CliResult:
    """``python -m perianctl.commands.sandbox ...`` (no root CLI) with the isolated config/state."""
    proc = subprocess.run(
        [sys.executable, "-m", "perianctl.commands.sandbox", *args],
        env=cli_env.env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return CliResult(list(args), proc.returncode, proc.stdout, proc.stderr)


def _gone(pid: int, timeout: float = 30.0) -> bool:
    """The process has exited (a zombie waiting for init to reap it counts as exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
        except (ProcessLookupError, FileNotFoundError):
            return True
        if fields and fields[0] == "Z":
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def state(cli_env: CliEnv) -> Iterator[Path]:
    path = cli_env.state_dir / "sb"
    yield path
    _sandbox_cli(cli_env, "stop", "--state-dir", str(path), "--timeout", "5")


def test_start_status_use_stop(cli_env: CliEnv, state: Path, run_cli: CliRunner) -> None:
    started = _sandbox_cli(cli_env, "start", "--state-dir", str(state), "--port", "0", "--speed", "10")
    assert started.returncode == 0, started
    url = started.stdout.strip()
    assert url.startswith("http://127.0.0.1:") and "saved profile 'sandbox'" in started.stderr

    credentials = json.loads((state / "credentials.json").read_text())
    assert stat.S_IMODE((state / "credentials.json").stat().st_mode) == 0o600
    token = credentials["token"]
    profile = tomli.loads(cli_env.config_file.read_text())["profiles"]["sandbox"]
    assert profile == {"api_url": url, "organization": credentials["organization"], "token": token}
    with http_client(url) as client:
        assert client.get("/healthz").json()["status"] == "ok"

    status = _sandbox_cli(cli_env, "status", "--state-dir", str(state))
    assert status.returncode == 0 and url in status.stdout and "healthy" in status.stdout
    as_json = json.loads(_sandbox_cli(cli_env, "status", "--state-dir", str(state), "-o", "json").stdout)
    assert as_json["running"] and as_json["healthy"] and as_json["url"] == url and as_json["runtime"] == "simulate"

    again = _sandbox_cli(cli_env, "start", "--state-dir", str(state), "--port", "0")
    assert_one_line_error(again, 8)
    assert "already running" in again.stderr

    # The saved profile makes the rest of perianctl talk to the sandbox.
    listed = run_cli("--profile", "sandbox", "list", "-o", "json")
    assert listed.returncode == 0, listed

    pid = as_json["pid"]
    stopped = _sandbox_cli(cli_env, "stop", "--state-dir", str(state))
    assert stopped.returncode == 0 and f"stopped the sandbox (pid {pid})" in stopped.stderr
    assert _gone(pid)
    after = _sandbox_cli(cli_env, "status", "--state-dir", str(state))
    assert after.returncode == 8 and "not running" in after.stdout
    assert not (state / "sandbox.pid").exists()

    for text in (started.stdout + started.stderr, status.stdout, (state / "sandbox.log").read_text()):
        assert token not in text


def test_run_in_the_foreground_via_the_root_cli(cli_env: CliEnv) -> None:
    """``perianctl sandbox run`` with the default state dir: profile on request, ``stop`` finds it."""
    state = cli_env.state_dir / "sandbox"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "perianctl",
            "sandbox",
            "run",
            "--port",
            "0",
            "--org",
            "acme",
            "--token",
            "tok-foreground",
            "--write-profile",
        ],
        env=cli_env.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not cli_env.config_file.exists():
            assert server.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        profile = tomli.loads(cli_env.config_file.read_text())["profiles"]["sandbox"]
        assert profile["organization"] == "acme" and profile["token"] == "tok-foreground"
        with http_client(
            profile["api_url"], headers={"X-PERIAN-AUTH-ORG": "acme", "Authorization": "Bearer tok-foreground"}
        ) as client:
            assert client.get("/job").json()["status_code"] == 200
        status = _sandbox_cli(cli_env, "status", "--state-dir", str(state))
        assert status.returncode == 0 and profile["api_url"] in status.stdout
        stopped = _sandbox_cli(cli_env, "stop", "--state-dir", str(state))
        assert stopped.returncode == 0 and f"stopped the sandbox (pid {server.pid})" in stopped.stderr
        _, stderr = server.communicate(timeout=20)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0  # SIGTERM is a clean shutdown
    assert "listening on http://127.0.0.1:" in stderr and "tok-foreground" not in stderr
    assert not (state / "sandbox.json").exists()  # removed on a clean shutdown


def test_stop_never_signals_a_stranger(cli_env: CliEnv, state: Path) -> None:
    state.mkdir(parents=True)
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (state / "sandbox.pid").write_text(f"{stranger.pid}\n")
        result = _sandbox_cli(cli_env, "stop", "--state-dir", str(state))
        assert result.returncode == 0 and "stale pid file" in result.stderr
        time.sleep(0.2)
        assert stranger.poll() is None  # still alive
        assert not (state / "sandbox.pid").exists()
    finally:
        stranger.kill()
        stranger.wait()
    nothing = _sandbox_cli(cli_env, "stop", "--state-dir", str(state))
    assert nothing.returncode == 0 and "no sandbox is running" in nothing.stderr


def test_docker_runtime_without_engine_fails_clearly(cli_env: CliEnv, state: Path) -> None:
    result = _sandbox_cli(cli_env, "start", "--state-dir", str(state), "--port", "0", "--runtime", "docker")
    if result.returncode == 0:
        pytest.skip("a Docker engine is reachable here")
    assert_one_line_error(result, 8)
    assert "docker runtime:" in result.stderr
    assert "Docker" in result.stderr or "docker" in result.stderr.split("docker runtime:")[1]
    assert not (state / "sandbox.pid").exists()
    foreground = _sandbox_cli(cli_env, "run", "--state-dir", str(state), "--port", "0", "--runtime", "docker")
    assert_one_line_error(foreground, 8)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--runtime", "kubernetes"], "unknown runtime"),
        (["--fault-kinds", "teapot"], "fault kind"),
        (["--fault-endpoints", "everything"], "endpoint"),
        (["--latency", "soon"], "invalid latency"),
        (["--fault-rate", "1.5"], "fault rate"),
        (["--fault-phase", "during"], "fault phase"),
        (["--speed", "0"], "speed"),
    ],
)
def test_usage_errors(cli_env: CliEnv, state: Path, args: list[str], message: str) -> None:
    result = _sandbox_cli(cli_env, "run", "--state-dir", str(state), "--port", "0", *args)
    assert_one_line_error(result, 2)
    assert message in result.stderr


def test_port_in_use_is_a_clear_error(cli_env: CliEnv, state: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _sandbox_cli(cli_env, "run", "--state-dir", str(state), "--port", str(port))
    assert_one_line_error(result, 8)
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_root_cli_has_the_sandbox_group(run_cli: CliRunner, cli_env: CliEnv) -> None:
    helped = run_cli("sandbox", "--help")
    assert helped.returncode == 0, helped
    for command in ("start", "stop", "status", "run"):
        assert command in helped.stdout
    status = run_cli("sandbox", "status")  # default state dir: <PERIANCTL_STATE_DIR>/sandbox
    assert status.returncode == 8 and str(cli_env.state_dir / "sandbox") in status.stdout


def test_command_module_is_light() -> None:
    code = (
        "import sys; import perianctl.commands.sandbox; "
        "heavy = [m for m in ('fastapi', 'uvicorn', 'httpx', 'starlette') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
