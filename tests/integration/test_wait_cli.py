"""``perianctl wait``: exit codes per README.md ("Exit codes"), --for, --timeout, -o, against the sandbox.

The codes are what CI scripts branch on: 0 succeeded, 3 failed, 4 cancelled, 5 timed out (the
job's own timeout or ``--timeout``), 7 not found, 8 API unavailable; with several jobs the worst
wins, failed > timed out > cancelled.
"""

from __future__ import annotations

import json
import re
import socket
import time

import pytest

from tests.plugins.cli import CliRunner, assert_one_line_error
from tests.plugins.sandbox import SandboxHandle
from tests.support.watch import cancel, create_many, unknown_job_id


@pytest.mark.parametrize(
    ("scenario", "code", "final"),
    [("success", 0, "Done"), ("fail", 3, "UserError")],  # timeout/server-error: test_watch_cli, below
)
def test_wait_exit_code_follows_the_outcome(
    shared_sandbox: SandboxHandle, run_cli: CliRunner, scenario: str, code: int, final: str
) -> None:
    [job] = create_many(shared_sandbox, 1, scenario, duration=0.2)
    result = run_cli("wait", job, "--interval", "0.2", "-o", "json", env=shared_sandbox.env())
    assert result.returncode == code, result
    assert json.loads(result.stdout)["status"] == final  # the final state, as `get -o json` shows it
    assert f"{job} " in result.stderr  # progress: one line per observed transition, on stderr
    if code:
        assert f"error: job {job} ended {final}" in result.stderr


def test_wait_cancelled_is_4(shared_sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    [job] = create_many(shared_sandbox, 1, "slow", duration=30)
    shared_sandbox.wait_for_status(job, ["Running"])
    cancel(shared_sandbox, job)
    result = run_cli("wait", job, "--interval", "0.2", "-o", "name", env=shared_sandbox.env())
    assert result.returncode == 4, result
    assert result.stdout.strip() == job


def test_wait_timeout_reached_is_5_and_lists_running_jobs(shared_sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    slow = create_many(shared_sandbox, 1, "slow", duration=30)
    done = create_many(shared_sandbox, 1, "success", duration=0.1)
    started = time.monotonic()
    result = run_cli("wait", *slow, *done, "--timeout", "1.5", "--interval", "0.2", env=shared_sandbox.env())
    assert result.returncode == 5, result
    assert time.monotonic() - started < 30  # a hang detector: the slow job runs for minutes
    error = next(line for line in result.stderr.splitlines() if line.startswith("error:"))
    assert "gave up waiting after 1.5s" in error and "1 job(s) still running" in error
    assert slow[0] in error and done[0] not in error
    assert shared_sandbox.get_job(slow[0])["status"] == "Running"  # waiting never cancels


def test_wait_for_succeeded_stops_at_the_first_failure(shared_sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    slow = create_many(shared_sandbox, 1, "slow", duration=30)
    bad = create_many(shared_sandbox, 1, "fail", duration=0.2)
    started = time.monotonic()
    result = run_cli(
        "wait", *slow, *bad, "--for", "succeeded", "--interval", "0.2", "-o", "none", env=shared_sandbox.env()
    )
    assert result.returncode == 3, result
    assert time.monotonic() - started < 30  # a hang detector: the slow job runs for minutes
    assert "stopped early: --for succeeded" in result.stderr and result.stdout == ""


def test_wait_several_jobs_worst_outcome_wins(shared_sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    ids = [*create_many(shared_sandbox, 1, "timeout", duration=0.2), *create_many(shared_sandbox, 1, "success")]
    timed_out = run_cli("-q", "wait", *ids, "--interval", "0.2", "-o", "none", env=shared_sandbox.env())
    assert timed_out.returncode == 5, timed_out
    assert timed_out.stdout == "" and timed_out.stderr.startswith("error: ")  # -q: no progress lines
    ids.append(create_many(shared_sandbox, 1, "fail", duration=0.2)[0])
    failed = run_cli("wait", *ids, "--interval", "0.2", env=shared_sandbox.env())
    assert failed.returncode == 3, failed
    assert failed.stdout.count("\n") >= 3  # the final table: header + 3 rows


def test_wait_errors(shared_sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    missing = run_cli("wait", unknown_job_id(), "--interval", "0.2", env=shared_sandbox.env())
    assert_one_line_error(missing, 7)
    assert_one_line_error(run_cli("wait", unknown_job_id(), "--for", "running", env=shared_sandbox.env()), 2)
    assert_one_line_error(run_cli("wait", env=shared_sandbox.env()), 2)
    assert_one_line_error(run_cli("wait", "--last", env=shared_sandbox.env()), 2)
    wrong_token = {**shared_sandbox.env(), "PERIAN_TOKEN": "not-the-token"}
    assert_one_line_error(run_cli("wait", unknown_job_id(), env=wrong_token), 6)


def test_wait_api_unreachable_is_8(run_cli: CliRunner) -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {"PERIAN_API_URL": f"http://127.0.0.1:{port}", "PERIAN_ORGANIZATION": "o", "PERIAN_TOKEN": "t"}
    result = run_cli("wait", unknown_job_id(), "--interval", "0.2", "--max-unavailable", "1", env=env)
    assert_one_line_error(result, 8)
    assert "giving up" in result.stderr


def test_submit_wait_uses_the_same_exit_codes(sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    result = run_cli(
        "submit",
        "examples/templates/hello.json",
        "--input",
        "name=ci",
        "--wait",
        "-o",
        "name",
        "--env",
        "PERIAN_SANDBOX_SCENARIO=fail",
        env=sandbox.env(),
        timeout=120,
    )
    assert result.returncode == 3, result
    job = result.stdout.strip()  # stdout keeps only the id; progress went to stderr
    assert re.fullmatch(r"[0-9a-f-]{36}", job), result
    assert f"{job} " in result.stderr and "UserError (FAILED)" in result.stderr
    history = run_cli("get", "--last", "--history", "-o", "json", env=sandbox.env())
    rows = json.loads(history.stdout)
    assert rows and rows[-1]["status"] == "UserError" and {r["job_id"] for r in rows} == {job}
