"""Small surprises a new user met, each fixed (the CLI as a subprocess or in a pty, against the sandbox)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pexpect
import pytest
import tomli

from tests.plugins.cli import CliEnv, CliResult, CliRunner, assert_one_line_error
from tests.plugins.sandbox import SandboxFactory, SandboxHandle
from tests.support.watch import cli_env_for, create_many

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "templates" / "hello.pb"


def test_watch_without_an_id_follows_the_last_job(sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    env = sandbox.env()
    r = run_cli("watch", env=env)
    assert_one_line_error(r, 2)  # nothing submitted from here yet
    assert "no job submitted from this machine yet" in r.stderr

    r = run_cli("submit", str(HELLO), "--input", "name=Ada", env=env)
    assert r.returncode == 0, r
    job_id = r.stdout.split()[0]
    r = run_cli("watch", env=env)
    assert r.returncode == 0, r
    assert job_id in r.stdout and "Done" in r.stdout, r


def test_delete_answered_no_cancels_nothing_and_exits_10(sandbox: SandboxHandle, cli_env: CliEnv) -> None:
    [job] = create_many(sandbox, 1, "slow", duration=60)
    child = pexpect.spawn(
        sys.executable,
        ["-m", "perianctl", "delete", job[:8]],
        env=cli_env_for(cli_env, sandbox),
        encoding="utf-8",
        timeout=60,
    )
    child.expect(r"Cancel .*\?")
    child.sendline("n")
    child.expect(pexpect.EOF)
    out = child.before or ""
    child.close()
    assert child.exitstatus == 10, out
    assert "not confirmed: nothing was cancelled" in out and "Traceback" not in out
    assert sandbox.get_job(job)["status"] != "Cancelled"


def _sandbox_cli(cli_env: CliEnv, *args: str) -> CliResult:
    proc = subprocess.run(
        [sys.executable, "-m", "perianctl", "sandbox", *args],
        env=cli_env.env(),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    return CliResult(list(args), proc.returncode, proc.stdout, proc.stderr)


def test_a_second_sandbox_gets_its_own_profile(cli_env: CliEnv) -> None:
    first_dir, second_dir = cli_env.state_dir / "sb1", cli_env.state_dir / "sb2"
    try:
        first = _sandbox_cli(cli_env, "start", "--state-dir", str(first_dir), "--port", "0")
        assert first.returncode == 0, first
        second = _sandbox_cli(cli_env, "start", "--state-dir", str(second_dir), "--port", "0")
        assert second.returncode == 0, second
        url1, url2 = first.stdout.strip(), second.stdout.strip()
        port2 = url2.rsplit(":", 1)[1]
        profiles = tomli.loads(cli_env.config_file.read_text())["profiles"]
        assert profiles["sandbox"]["api_url"] == url1  # the running one keeps its profile
        assert profiles[f"sandbox-{port2}"]["api_url"] == url2
        assert f"profile 'sandbox' belongs to the sandbox still serving at {url1}" in second.stderr
        assert f"saved profile 'sandbox-{port2}'" in second.stderr

        # Once the first is gone, starting again takes the plain name back.
        assert _sandbox_cli(cli_env, "stop", "--state-dir", str(first_dir)).returncode == 0
        assert _sandbox_cli(cli_env, "stop", "--state-dir", str(second_dir)).returncode == 0
        again = _sandbox_cli(cli_env, "start", "--state-dir", str(second_dir), "--port", "0")
        assert again.returncode == 0, again
        profiles = tomli.loads(cli_env.config_file.read_text())["profiles"]
        assert profiles["sandbox"]["api_url"] == again.stdout.strip()
    finally:
        for state in (first_dir, second_dir):
            _sandbox_cli(cli_env, "stop", "--state-dir", str(state), "--timeout", "5")


def test_a_module_the_job_cannot_import_gets_a_pythonpath_hint(
    sandbox_factory: SandboxFactory, run_cli: CliRunner
) -> None:
    sb = sandbox_factory(runtime="process")
    r = run_cli("submit", str(HELLO), "--input", "name=Ada", "--wait", env=sb.env(), cwd=REPO, timeout=180)
    assert_one_line_error(r, 3)
    assert "No module named 'examples'" in r.stderr
    assert (
        f"hint: the job could not import 'examples.hello': on a sandbox on this machine pass "
        f"--env PYTHONPATH={REPO}" in r.stderr
    ), r
    r = run_cli(
        "submit",
        str(HELLO),
        "--input",
        "name=Ada",
        "--env",
        f"PYTHONPATH={REPO}",
        "--wait",
        env=sb.env(),
        cwd=REPO,
        timeout=180,
    )
    assert r.returncode == 0 and "Hello, Ada!" in r.stdout, r


def test_logs_follow_says_it_is_waiting_for_a_queued_job(sandbox_factory: SandboxFactory, run_cli: CliRunner) -> None:
    sb = sandbox_factory(speed=0.3)  # Queued for ~1.7 s, Initializing ~3 s
    [job] = create_many(sb, 1, "success", duration=0.2)
    r = run_cli("logs", job[:8], "--follow", "--interval", "0.1", env=sb.env(), timeout=120)
    assert r.returncode == 0, r
    assert f"waiting for job {job} (Queued); nothing logged yet" in r.stderr, r
    assert r.stderr.count(f"waiting for job {job} (Queued)") == 1  # said once, not at every poll
    assert "done" in r.stdout


@pytest.mark.parametrize("command", ["wait", "watch"])
def test_wait_timeout_is_one_name_with_the_old_one_as_alias(
    sandbox: SandboxHandle, run_cli: CliRunner, command: str
) -> None:
    [job] = create_many(sandbox, 1, "slow", duration=60)
    for flag in ("--wait-timeout", "--timeout"):
        r = run_cli(command, job, flag, "0.5", "--interval", "0.1", env=sandbox.env())
        assert r.returncode == 5, r
    r = run_cli(command, job, "--wait-timeout", "1", "--timeout", "2", env=sandbox.env())
    assert_one_line_error(r, 2)
    help_text = run_cli(command, "--help").stdout
    assert "--wait-timeout" in help_text and "--timeout " not in help_text


def test_one_interval_rule_and_delete_offers_only_what_it_prints(sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    job = create_many(sandbox, 1, "success")[0]
    env = sandbox.env()
    for command in (["watch", job], ["wait", job], ["logs", job, "--follow"]):
        r = run_cli(*command, "--interval", "0.05", env=env)
        assert_one_line_error(r, 2)
        assert "0.1" in r.stderr, r
    for fmt in ("table", "wide"):
        r = run_cli("delete", job, "--yes", "-o", fmt, env=env)
        assert_one_line_error(r, 2)
        assert "choose: json, yaml, name" in r.stderr, r
    r = run_cli("delete", job, "--yes", env=env)
    assert r.returncode == 0 and r.stdout == "" and "already finished" in r.stderr, r
