"""get / list / delete / logs through the real CLI subprocess against the real sandbox."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import yaml

from tests.plugins.cli import CliRunner, assert_one_line_error
from tests.plugins.sandbox import SandboxHandle


def test_get_formats(sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    env = sandbox.env()
    job_id = sandbox.create_job("echo hi")
    sandbox.wait_for_status(job_id)

    r = run_cli("get", job_id, "-o", "json", env=env)
    assert r.returncode == 0, r
    record = json.loads(r.stdout)
    assert record["id"] == job_id and record["status"] == "Done" and record["flyte_phase"] == "SUCCEEDED"

    r = run_cli("get", job_id, "-o", "yaml", env=env)
    assert yaml.safe_load(r.stdout)["id"] == job_id

    r = run_cli("get", job_id, "-o", "name", env=env)
    assert r.stdout.strip() == job_id

    r = run_cli("get", job_id, env=env)
    assert r.returncode == 0 and job_id in r.stdout and "SUCCEEDED" in r.stdout and "ubuntu:22.04" in r.stdout

    r = run_cli("get", job_id, "-o", "wide", env=env)
    assert "INSTANCE TYPE" in r.stdout and "PRICE" in r.stdout

    other = sandbox.create_job("echo two", scenario="slow")
    r = run_cli("get", job_id, other, "-o", "json", env=env)
    assert [j["id"] for j in json.loads(r.stdout)] == [job_id, other]


def test_get_errors_have_exit_codes(sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    env = sandbox.env()
    missing = str(uuid.uuid4())
    r = run_cli("get", missing, env=env)
    assert_one_line_error(r, 7)
    assert "No job found" in r.stderr

    assert_one_line_error(run_cli("get", "not-a-uuid", env=env), 2)
    assert_one_line_error(run_cli("get", missing, "-o", "xml", env=env), 2)
    assert_one_line_error(run_cli("get", missing, env={**env, "PERIAN_TOKEN": "wrong"}), 6)
    assert_one_line_error(run_cli("get", "--last", env=env), 2)
    r = run_cli("get", missing, env={**env, "PERIAN_API_URL": "http://127.0.0.1:9"}, timeout=120)
    assert_one_line_error(r, 8)

    # One good and one missing id: the good one is printed, the exit code says not found.
    good = sandbox.create_job("echo ok")
    r = run_cli("get", good, missing, "-o", "name", env=env)
    assert r.returncode == 7 and r.stdout.strip() == good


def test_list_pagination_status_filter_and_local(sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    env = sandbox.env()
    ids = [sandbox.create_job(f"echo {i}") for i in range(5)]
    slow = sandbox.create_job("sleep", scenario="slow", duration=60)  # Running throughout, however busy the box
    for job_id in ids:
        sandbox.wait_for_status(job_id)

    r = run_cli("list", "--limit", "2", "-o", "name", env=env)
    assert r.returncode == 0, r
    assert r.stdout.split() == [slow, ids[-1]]
    assert "page 1/3" in r.stderr and "--page 2" in r.stderr

    r = run_cli("list", "--limit", "2", "--page", "3", "-o", "json", env=env)
    assert [j["id"] for j in json.loads(r.stdout)] == [ids[1], ids[0]]

    r = run_cli("list", "--all", "--limit", "2", "--status", "Done", "-o", "name", env=env)
    assert set(r.stdout.split()) == set(ids)

    r = run_cli("list", "--status", "done,running,queued,initializing", "-o", "name", env=env)
    assert slow in r.stdout.split()

    assert_one_line_error(run_cli("list", "--status", "Sleeping", env=env), 2)
    assert_one_line_error(run_cli("list", "--limit", "0", env=env), 2)

    # list --local shows what `get`/`list` observed; nothing submitted from here yet.
    r = run_cli("list", "--local", "-o", "json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout) == []


def test_delete_is_idempotent_and_safe_without_tty(sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    env = sandbox.env()
    job_id = sandbox.create_job("sleep", scenario="slow", duration=60)  # Running throughout

    r = run_cli("delete", job_id, env=env)  # no TTY, no --yes: refuse, do nothing
    assert_one_line_error(r, 2)
    assert "--yes" in r.stderr
    assert sandbox.get_job(job_id)["status"] != "Cancelled"

    r = run_cli("delete", job_id, "--yes", env=env)
    assert r.returncode == 0, r
    assert "cancel requested" in r.stderr
    sandbox.wait_for_status(job_id, ["Cancelled"])

    r = run_cli("cancel", job_id, "--yes", "-o", "json", env=env)
    assert r.returncode == 0, r
    assert json.loads(r.stdout) == [
        {"id": job_id, "result": "already_done", "message": "already finished; nothing to cancel"}
    ]
    assert run_cli("delete", job_id, "--yes", "--strict", env=env).returncode == 1

    missing = str(uuid.uuid4())
    assert_one_line_error(run_cli("delete", missing, "--yes", env=env), 7)
    assert run_cli("delete", missing, "--yes", "--ignore-not-found", env=env).returncode == 0


def test_logs_snapshot_tail_and_follow(sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    env = sandbox.env()
    job_id = sandbox.create_job("echo hi", duration=1.0)
    r = run_cli("logs", job_id, "--follow", "--interval", "0.1", env=env)
    assert r.returncode == 0, r
    followed = r.stdout
    assert followed.strip(), r
    final = sandbox.get_job(job_id)
    assert final["status"] == "Done"
    assert followed.rstrip("\n") == (final["logs"] or "").rstrip("\n"), "follow printed duplicates or gaps"

    r = run_cli("logs", job_id, env=env)
    assert r.stdout.rstrip("\n") == final["logs"].rstrip("\n")
    r = run_cli("logs", job_id, "--tail", "1", env=env)
    assert r.stdout.strip() == final["logs"].strip().splitlines()[-1]
    r = run_cli("logs", job_id, "-o", "json", env=env)
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert lines and all(line["job_id"] == job_id for line in lines)

    failing = sandbox.create_job("false", scenario="fail")
    r = run_cli("logs", failing, "--follow", "--interval", "0.1", env=env)
    assert r.returncode == 3, r


def test_read_commands_work_when_the_journal_is_unusable(
    sandbox: SandboxHandle, run_cli: CliRunner, tmp_path: Path
) -> None:
    """Journalling is a side effect of get/list/watch: a broken state dir costs a warning, not the answer."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    env = {**sandbox.env(), "PERIANCTL_STATE_DIR": str(blocker / "state")}
    job_id = sandbox.create_job("echo hi")
    sandbox.wait_for_status(job_id)
    r = run_cli("get", job_id, "-o", "json", env=env)
    assert r.returncode == 0, r
    assert json.loads(r.stdout)["id"] == job_id
    assert "journal not updated" in r.stderr
    r = run_cli("watch", job_id, env=env)
    assert r.returncode == 0, r
    assert_one_line_error(run_cli("get", "--last", env=env), 2)
