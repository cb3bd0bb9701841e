"""The CLI against odd input and an unreachable API, as a user meets it: the real entry point in a
subprocess (or a pty), a real sandbox, no mocks.

Each case is one of issue "Robust against odd data and an unreachable API": validate before
anything is created or written, one ``error:`` line with the documented exit code (never 1, never
a traceback), and long waits that say what is happening.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pexpect
import pytest

from tests.plugins.cli import CliEnv, CliResult, CliRunner, assert_one_line_error
from tests.plugins.sandbox import SandboxFactory, SandboxHandle

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "examples" / "templates"
A_JOB_ID = "3f2c1a4e-0b1d-4c5e-9f00-1234567890ab"


def _one_error(result: CliResult, code: int) -> str:
    """Exactly one ``error:`` line, the code, no traceback; returns the line."""
    assert_one_line_error(result, code)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result
    return errors[0]


def _jobs(sandbox: SandboxHandle) -> list[dict]:
    with sandbox.http() as client:
        response = client.get("/job")
    assert response.status_code == 200, response.text
    return list(response.json()["jobs"])


def _files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- validate first


def test_submit_with_invalid_wait_timeout_creates_no_job(
    sandbox: SandboxHandle, run_cli: CliRunner, cli_env: CliEnv
) -> None:
    result = run_cli(
        "submit", str(TEMPLATES / "hello.json"), "-i", "name=x", "--wait", "--wait-timeout", "zz", env=sandbox.env()
    )
    assert "--wait-timeout" in _one_error(result, 2)
    assert result.stdout == ""  # no job id: there is no job
    assert _jobs(sandbox) == []
    assert _files_under(cli_env.state_dir / "runs") == []


def test_submit_refused_by_auth_leaves_no_inputs_file(
    sandbox: SandboxHandle, run_cli: CliRunner, cli_env: CliEnv
) -> None:
    env = {**sandbox.env(), "PERIAN_TOKEN": "not-the-token"}
    result = run_cli("submit", str(TEMPLATES / "add.json"), "-i", "a=1", "-i", "b=2", env=env)
    _one_error(result, 6)
    assert _jobs(sandbox) == []
    assert _files_under(cli_env.state_dir / "runs") == []  # inputs.pb of a job that does not exist


def test_submit_with_undecodable_env_value_is_a_usage_error(sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    # "\udcff" is how Python hands over the byte 0xff from argv; subprocess sends the byte back.
    result = run_cli("submit", str(TEMPLATES / "hello.json"), "-i", "name=x", "--env", "A=\udcff", env=sandbox.env())
    assert "UTF-8" in _one_error(result, 2)
    assert _jobs(sandbox) == []


@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "NaN"])
def test_non_finite_number_in_json_template_is_a_usage_error(tmp_path: Path, run_cli: CliRunner, value: str) -> None:
    text = (TEMPLATES / "hello.json").read_text().replace('"memory": 1.0', f'"memory": {value}')
    assert value in text
    template = tmp_path / "odd.json"
    template.write_text(text)
    result = run_cli("submit", str(template), "-i", "name=x", "--dry-run")
    assert "custom.memory" in _one_error(result, 2)


def test_non_finite_number_in_yaml_template_is_a_usage_error(tmp_path: Path, run_cli: CliRunner) -> None:
    import yaml

    document = json.loads((TEMPLATES / "hello.json").read_text())
    document["custom"]["memory"] = float("inf")
    template = tmp_path / "odd.yaml"
    template.write_text(yaml.safe_dump(document))
    assert ".inf" in template.read_text()
    result = run_cli("submit", str(template), "-i", "name=x", "--dry-run")
    assert "custom.memory" in _one_error(result, 2)


def test_unwritable_state_dir_is_a_clear_error_for_submit_and_not_for_list(
    sandbox: SandboxHandle, run_cli: CliRunner, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = {**sandbox.env(), "PERIANCTL_STATE_DIR": str(blocker / "state")}
    result = run_cli("submit", str(TEMPLATES / "hello.json"), "-i", "name=x", env=env)
    line = _one_error(result, 2)
    assert "state directory" in line and "--output-prefix" in result.stderr
    assert _jobs(sandbox) == []
    listed = run_cli("list", env=env)
    assert listed.returncode == 0, listed
    assert "Traceback" not in listed.output


def test_task_file_named_like_a_stdlib_module_is_refused(tmp_path: Path, run_cli: CliRunner) -> None:
    (tmp_path / "json.py").write_text("from flytekit import task\n\n@task\ndef t(x: int) -> int:\n    return x\n")
    # Named by path from elsewhere: `python -m` run *inside* that directory would put it first on
    # sys.path and break the interpreter itself, before any perianctl code.
    result = run_cli("submit", f"{tmp_path / 'json.py'}:t", "-i", "x=1", "--dry-run", timeout=120)
    line = _one_error(result, 2)
    assert "standard-library" in line and "'json'" in line


@pytest.mark.parametrize("raised", ["KeyboardInterrupt('boom')", "SystemExit(3)", "Custom('boom')"])
def test_task_module_raising_a_base_exception_at_import_is_a_usage_error(
    tmp_path: Path, run_cli: CliRunner, raised: str
) -> None:
    (tmp_path / "boom_task.py").write_text(f"class Custom(BaseException):\n    pass\n\nraise {raised}\n")
    result = run_cli("submit", f"{tmp_path / 'boom_task.py'}:t", "--dry-run", timeout=120)
    assert "cannot import" in _one_error(result, 2)


def test_unreachable_storage_for_output_prefix_fails_fast(
    sandbox: SandboxHandle, run_cli: CliRunner, cli_env: CliEnv
) -> None:
    # The storage endpoint is a closed loopback port: as unreachable as no network at all, but
    # deterministic on a machine that has one.
    env = {**sandbox.env(), "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{_closed_port()}"}
    result = run_cli(
        "submit",
        str(TEMPLATES / "hello.json"),
        "-i",
        "name=x",
        "--output-prefix",
        "gs://bucket/run",
        env=env,
        timeout=40,
    )  # today: 6 retries and two tracebacks
    assert "cannot reach the storage endpoint" in _one_error(result, 8)
    assert _jobs(sandbox) == []


@pytest.mark.parametrize(
    "target",
    ["127.0.0.1:99999", "localhost:0", "[::1]:65536", "localhost", ":8000", "http://localhost:8000", "host:80:90"],
)
def test_malformed_connector_target_is_a_usage_error(run_cli: CliRunner, target: str) -> None:
    result = run_cli("get", A_JOB_ID, "--connector", target, timeout=30)
    line = _one_error(result, 2)
    assert "invalid --connector" in line and ("port" in line or "HOST:PORT" in line)


# --------------------------------------------------------------------------- interrupts, prompts


@pytest.mark.parametrize(
    "command",
    [
        ["list"],
        ["get", A_JOB_ID],
        ["wait", A_JOB_ID],
        ["submit", str(TEMPLATES / "add.json"), "-i", "a=1", "-i", "b=2"],
    ],
)
def test_sigint_during_start_up_exits_130_without_a_traceback(cli_env: CliEnv, command: list[str]) -> None:
    """Ctrl-C at several moments of the first ~150 ms (later too on a slow machine). A signal that
    lands before the interpreter ran any perianctl code (its own start-up: site, runpy) is the
    interpreter's to report; every one that lands in perianctl must end with exit 130 and no
    traceback."""
    with socket.socket() as silent:  # accepts connections (backlog), never answers: the command stays busy
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        env = {
            **cli_env.env(),
            "PERIAN_API_URL": f"http://127.0.0.1:{silent.getsockname()[1]}",
            "PERIAN_ORGANIZATION": "o",
            "PERIAN_TOKEN": "t",
        }
        ours = 0
        # Early moments first; later ones only until enough signals landed in perianctl (on a busy
        # machine the interpreter's own start-up can take longer than all the early ones).
        delays = (0.0, 0.01, 0.02, 0.035, 0.05, 0.07, 0.1, 0.15) * 2 + (0.2, 0.3, 0.5, 0.8, 1.2, 2.0, 3.0) * 2
        for index, delay in enumerate(delays):
            if index >= 16 and ours >= 4:
                break
            proc = subprocess.Popen(
                [sys.executable, "-m", "perianctl", "--api-timeout", "20s", *command],
                env=env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            time.sleep(delay)  # the moment of the Ctrl-C is the input here, not a wait for an event
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
            in_perianctl = re.search(r'File "[^"]*perianctl[/\\]', err) is not None
            trouble = any(word in err for word in ("Traceback", "Fatal Python error", "Could not import runpy"))
            if trouble and not in_perianctl:
                continue  # the interpreter's own start-up, before perianctl/__main__ ran
            assert not trouble, (delay, err)
            assert proc.returncode in (130, -signal.SIGINT), (delay, proc.returncode, err)
            ours += proc.returncode == 130
    assert ours >= 4  # most moments land in perianctl's code


def test_delete_declined_at_the_prompt_says_so_and_exits_10(sandbox: SandboxHandle, cli_env: CliEnv) -> None:
    job_id = sandbox.create_job(duration=60)
    env = {**cli_env.env(), **sandbox.env()}
    child = pexpect.spawn(sys.executable, ["-m", "perianctl", "delete", job_id], env=env, encoding="utf-8", timeout=30)
    child.expect(r"Cancel .*\?")
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 10, child.before
    assert "nothing was cancelled" in (child.before or "")
    assert "Traceback" not in (child.before or "")
    assert sandbox.get_job(job_id)["status"] != "Cancelled"


def test_failed_task_is_one_error_line(sandbox_factory: SandboxFactory, run_cli: CliRunner) -> None:
    sandbox = sandbox_factory(runtime="process")
    result = run_cli(
        "submit",
        str(TEMPLATES / "fail.json"),
        "-i",
        "name=x",
        "--env",
        f"PYTHONPATH={ROOT}",
        "--wait",
        env=sandbox.env(),
        timeout=180,
    )
    line = _one_error(result, 3)
    assert "task error: ValueError" in line and "UserError" not in line.split("task error:")[1]


# --------------------------------------------------------------------------- outages are never silent


def _read_until(stream: IO[str] | None, pattern: str, *, timeout: float = 60.0) -> list[str]:
    """Lines of ``stream`` (a pipe of a Popen) up to and including the first that matches ``pattern``."""
    assert stream is not None
    import selectors

    lines: list[str] = []
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    while time.monotonic() < deadline:
        if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
            break
        line = stream.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if regex.search(line):
            return lines
    raise AssertionError(f"no line matching {pattern!r} within {timeout} s; got: {lines}")


def test_wait_piped_reports_outage_start_reminders_and_end(sandbox: SandboxHandle, cli_env: CliEnv) -> None:
    job_id = sandbox.create_job(duration=600)
    env = {**cli_env.env(), **sandbox.env()}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "perianctl",
            "wait",
            job_id,
            "--interval",
            "0.2",
            "--max-unavailable",
            "1h",
            "-o",
            "none",
        ],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=1,
    )
    try:
        _read_until(proc.stderr, re.escape(job_id))  # the first observation
        sandbox.kill()
        started = _read_until(proc.stderr, r"stale: API unreachable")
        assert started[-1].startswith("warning: ")
        reminder = _read_until(proc.stderr, r"still waiting: PERIAN API unreachable since \S+Z")
        assert "failed refresh" in reminder[-1] and "last:" in reminder[-1]
        sandbox.restart()
        _read_until(proc.stderr, r"API reachable again")
    finally:
        if proc.poll() is None:  # the sandbox may have ended the job at its restart (then wait exits 3)
            proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=30)
    assert proc.returncode in (3, 130), rest
    assert "Traceback" not in rest


def test_wait_on_a_terminal_shows_the_outage_as_a_status_line(sandbox: SandboxHandle, cli_env: CliEnv) -> None:
    job_id = sandbox.create_job(duration=600)
    env = {**cli_env.env(), **sandbox.env(), "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    child = pexpect.spawn(
        sys.executable,
        ["-m", "perianctl", "wait", job_id, "--interval", "0.2", "--max-unavailable", "1h", "-o", "none"],
        env=env,
        encoding="utf-8",
        codec_errors="replace",
        timeout=60,
        dimensions=(30, 250),
    )
    try:
        child.expect(re.escape(job_id))
        sandbox.kill()
        child.expect(r"stale: API unreachable")
        child.expect(r"PERIAN API unreachable since \S+Z \(\d+s, \d+ failed refresh(es)?; last: ")
        sandbox.restart()
        child.expect(r"API reachable again")
    finally:
        if child.isalive():
            child.sendintr()
        child.expect(pexpect.EOF)
        child.close()
    assert child.exitstatus in (3, 130)
    assert "Traceback" not in (child.before or "")


def test_slow_api_shows_a_status_line_on_a_terminal(sandbox_factory: SandboxFactory, cli_env: CliEnv) -> None:
    sandbox = sandbox_factory(latency=2.5, latency_endpoints="list")
    env = {**cli_env.env(), **sandbox.env(), "TERM": "xterm-256color"}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "perianctl", "list"],
        env=env,
        encoding="utf-8",
        codec_errors="replace",
        timeout=60,
        dimensions=(30, 200),
    )
    child.expect(r"waiting for PERIAN \(\d+ s\)")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before


def test_slow_api_piped_prints_no_status_line(sandbox_factory: SandboxFactory, run_cli: CliRunner) -> None:
    sandbox = sandbox_factory(latency=1.5, latency_endpoints="list")
    result = run_cli("list", env=sandbox.env())
    assert result.returncode == 0, result
    assert "waiting for PERIAN" not in result.output


def test_watch_live_table_shows_the_outage_in_its_header(sandbox: SandboxHandle, cli_env: CliEnv) -> None:
    job_id = sandbox.create_job(duration=600)
    env = {**cli_env.env(), **sandbox.env(), "TERM": "xterm-256color", "COLUMNS": "400"}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "perianctl", "watch", job_id, "--interval", "0.2", "--max-unavailable", "1h"],
        env=env,
        encoding="utf-8",
        codec_errors="replace",
        timeout=60,
        dimensions=(30, 400),
    )
    try:
        child.expect(re.escape(job_id))
        sandbox.kill()
        child.expect(r"PERIAN API unreachable since \S+Z \(\d+s, \d+ failed refresh(es)?; last: ")
    finally:
        child.sendintr()
        child.expect(pexpect.EOF)
        child.close()
    assert child.exitstatus == 130
    assert "Traceback" not in (child.before or "")


def test_journal_that_cannot_be_opened_is_one_error_with_a_hint(run_cli: CliRunner, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = run_cli("list", "--local", env={"PERIANCTL_STATE_DIR": str(blocker / "state")})
    assert "job journal" in _one_error(result, 2)
    assert "hint: set PERIANCTL_STATE_DIR" in result.stderr


def test_submit_to_a_refused_port_leaves_no_inputs_file(run_cli: CliRunner, cli_env: CliEnv) -> None:
    env = {"PERIAN_API_URL": f"http://127.0.0.1:{_closed_port()}", "PERIAN_ORGANIZATION": "o", "PERIAN_TOKEN": "t"}
    result = run_cli("submit", str(TEMPLATES / "add.json"), "-i", "a=1", "-i", "b=2", env=env, timeout=60)
    _one_error(result, 8)
    assert _files_under(cli_env.state_dir / "runs") == []  # the request never left: no job can read them


def test_submit_whose_create_may_have_arrived_keeps_its_inputs_file(run_cli: CliRunner, cli_env: CliEnv) -> None:
    with socket.socket() as silent:  # the kernel accepts (backlog) and takes the request; nobody answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        env = {
            "PERIAN_API_URL": f"http://127.0.0.1:{silent.getsockname()[1]}",
            "PERIAN_ORGANIZATION": "o",
            "PERIAN_TOKEN": "t",
        }
        result = run_cli(
            "--api-timeout", "3s", "submit", str(TEMPLATES / "add.json"), "-i", "a=1", "-i", "b=2", env=env, timeout=60
        )
    _one_error(result, 8)
    kept = _files_under(cli_env.state_dir / "runs")
    assert [p.name for p in kept] == ["inputs.pb"]  # a job that may exist would read it


def test_status_line_on_a_terminal_names_the_retry_reason(sandbox_factory: SandboxFactory, cli_env: CliEnv) -> None:
    sandbox = sandbox_factory(fault_rate=1.0, fault_kinds="503", fault_endpoints="list")
    env = {**cli_env.env(), **sandbox.env(), "TERM": "xterm-256color"}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "perianctl", "--api-timeout", "6s", "list"],
        env=env,
        encoding="utf-8",
        codec_errors="replace",
        timeout=60,
        dimensions=(30, 200),
    )
    child.expect(r"waiting for PERIAN: HTTP 503, retrying \(\d+ s\)")
    child.expect(r"error: list jobs: ")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 8


def test_wait_on_a_terminal_says_when_the_api_is_slow_to_answer(
    sandbox_factory: SandboxFactory, cli_env: CliEnv
) -> None:
    sandbox = sandbox_factory(latency=2.5, latency_endpoints="get")
    job_id = sandbox.create_job()
    env = {**cli_env.env(), **sandbox.env(), "TERM": "xterm-256color"}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "perianctl", "wait", job_id, "-o", "none"],
        env=env,
        encoding="utf-8",
        codec_errors="replace",
        timeout=60,
        dimensions=(30, 200),
    )
    child.expect(r"waiting for PERIAN \(\d+ s\)")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before


def test_unpaired_surrogate_escape_in_an_inputs_file_is_an_input_error(tmp_path: Path, run_cli: CliRunner) -> None:
    inputs = tmp_path / "inputs.json"
    inputs.write_text('{"name": "\\ud800"}')
    result = run_cli("submit", str(TEMPLATES / "hello.json"), "--inputs-file", str(inputs), "--dry-run")
    assert "surrogate" in _one_error(result, 2)


def test_unpaired_surrogate_escape_in_a_json_template_is_a_template_error(tmp_path: Path, run_cli: CliRunner) -> None:
    text = (
        (TEMPLATES / "hello.json")
        .read_text()
        .replace('"FLYTE_FAIL_ON_ERROR": "true"', '"FLYTE_FAIL_ON_ERROR": "\\ud800"')
    )
    template = tmp_path / "odd.json"
    template.write_text(text)
    result = run_cli("submit", str(template), "-i", "name=x", "--dry-run")
    assert "surrogate" in _one_error(result, 2)
