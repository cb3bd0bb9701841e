"""``perianctl connector check``: a propeller-faithful harness that reports what the sandbox really holds.

The CLI runs as a subprocess against real ``perianctl serve`` replicas and a sandbox subprocess.
The connector may legitimately fail impolite scenarios; these tests assert that the harness tells
the truth about it (job counts, ownership, statuses, RPC errors, exit code), not that the connector
is perfect.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.cli import CliRunner, assert_one_line_error
from tests.plugins.sandbox import SandboxHandle
from tests.support.connector import Api, ServeProcess

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def replicas(sandbox: SandboxHandle, tmp_path: Path) -> Iterator[list[ServeProcess]]:
    api = Api(sandbox.url, sandbox.org, sandbox.token)
    procs = [ServeProcess(api, tmp=tmp_path) for _ in range(2)]
    try:
        yield [p.wait_ready() for p in procs]
    finally:
        for proc in procs:
            proc.terminate()


def check(run_cli: CliRunner, replicas: list[ServeProcess], sandbox: SandboxHandle, *args: str) -> Any:
    targets = ",".join(p.target for p in replicas)
    result = run_cli(
        "connector", "check", targets, "--sandbox", sandbox.url, "-o", "json", "--keep-jobs", *args, timeout=200
    )
    assert "Traceback" not in result.stderr, result
    report = json.loads(result.stdout)
    assert result.returncode == (0 if report["ok"] else 3), result
    return report


def sandbox_truth(sandbox: SandboxHandle, execution: str) -> dict[str, dict[str, Any]]:
    """The sandbox's own jobs for one execution (the name is in every job's command)."""

    def text(command: str | list[str] | None) -> str:
        return " ".join(command) if isinstance(command, list) else str(command or "")

    return {j["id"]: j for j in sandbox.jobs() if execution in text(j["command"])}


def assert_truthful(report: dict[str, Any], sandbox: SandboxHandle) -> dict[str, dict[str, Any]]:
    truth = sandbox_truth(sandbox, report["execution"])
    reported = {i for a in report["attempts"] for i in a["job_ids"]} | {j["id"] for j in report["unowned_jobs"]}
    assert reported == set(truth), (report, truth)  # every job counted once, none invented or missed
    for attempt in report["attempts"]:
        assert attempt["jobs"] == len(attempt["job_ids"])
        for job_id, status in attempt["job_statuses"].items():
            if status in ("Done", "Cancelled", "UserError", "ServerError", "Timeout"):
                assert truth[job_id]["status"] == status  # terminal statuses never change
        if attempt["created"]:
            assert attempt["job_id"] in truth  # CreateTask's job exists in PERIAN
    creates = [c for c in report["calls"] if c["method"] == "CreateTask"]
    assert len(creates) == sum(a["create_calls"] for a in report["attempts"])
    errors: dict[str, int] = {}
    for call in report["calls"]:
        if call["code"] not in ("OK", "CANCELLED_BY_CALLER"):
            key = f"{call['method']} {call['code']}"
            errors[key] = errors.get(key, 0) + 1
    assert errors == report["rpc_errors"]
    return truth


def test_polite_scenario_one_job_and_exit_0(
    run_cli: CliRunner, replicas: list[ServeProcess], sandbox: SandboxHandle
) -> None:
    report = check(
        run_cli,
        replicas,
        sandbox,
        "-s",
        "polite",
        "-s",
        "abort",
        "--job-seconds",
        "1",
        "--settle",
        "10",
        "--poll-interval",
        "0.2",
    )
    assert report["ok"] is True
    polite, abort = report["scenarios"]
    for scenario in (polite, abort):
        truth = assert_truthful(scenario, sandbox)
        assert scenario["jobs_per_attempt"] == [1] and len(truth) == 1
        assert scenario["unowned_running"] == 0 and scenario["rpc_errors"] == {}
    assert polite["outcome"] == "succeeded"
    assert sandbox_truth(sandbox, polite["execution"])[polite["attempts"][0]["job_id"]]["status"] == "Done"
    assert abort["outcome"] == "aborted" and abort["rpc_calls"]["DeleteTask"] >= 1
    abort_job = abort["attempts"][0]["job_id"]
    assert sandbox.wait_for_status(abort_job, {"Cancelled"})["status"] == "Cancelled"
    # round robin: consecutive calls alternate between the two replicas
    targets = [c["target"] for c in polite["calls"]]
    assert all(a != b for a, b in itertools.pairwise(targets)) and len(set(targets)) == 2


def test_impolite_create_is_reported_as_the_sandbox_holds_it(
    run_cli: CliRunner, replicas: list[ServeProcess], sandbox: SandboxHandle
) -> None:
    # PERIAN takes 2 s to create and commits even when the caller has gone; propeller allows 2.5 s,
    # of which the connector keeps 1 s of margin (below that it would not post at all). --settle 70
    # outlasts the connector's documented reaping bound (60 s), so nothing changes after the census.
    report = check(
        run_cli,
        replicas,
        sandbox,
        "--impolite",
        "create=slow:2s",
        "--create-timeout",
        "2.5",
        "--retries",
        "1",
        "--settle",
        "70",
        "--poll-interval",
        "0.2",
    )
    (custom,) = report["scenarios"]
    truth = assert_truthful(custom, sandbox)
    assert custom["rules"] == ["create=slow:2s"] and len(custom["attempts"]) == 2
    # no CreateTask can succeed within 2.5 s - margin when PERIAN needs 2 s (the code is the connector's choice)
    assert sum(n for key, n in custom["rpc_errors"].items() if key.startswith("CreateTask ")) == 2
    assert all(not a["created"] for a in custom["attempts"])
    # ...and yet PERIAN committed jobs: every one is unowned; those not cancelled make the check fail
    assert len(custom["unowned_jobs"]) == len(truth) >= 1
    not_cancelled = [j for j in truth.values() if j["status"] != "Cancelled" and not j["cancel_requested"]]
    assert custom["unowned_not_cancelled"] == len(not_cancelled)
    # jobs nobody owns never finish by themselves: not cancelled means still running
    assert custom["unowned_running"] == len(not_cancelled) == sum(not j["terminal"] for j in not_cancelled)
    assert report["ok"] is (not not_cancelled)


def test_restart_resends_the_same_attempt_to_the_next_replica(
    run_cli: CliRunner, replicas: list[ServeProcess], sandbox: SandboxHandle
) -> None:
    # propeller "restarts" 0.3 s into a CreateTask that PERIAN answers after 1 s (and commits anyway)
    report = check(
        run_cli,
        replicas,
        sandbox,
        "--impolite",
        "create=slow:1s",
        "--restart-after",
        "0.3",
        "--job-seconds",
        "1",
        "--settle",
        "20",
        "--poll-interval",
        "0.2",
    )
    (custom,) = report["scenarios"]
    assert_truthful(custom, sandbox)
    creates = [c for c in custom["calls"] if c["method"] == "CreateTask"]
    assert [c["attempt"] for c in creates] == [0, 0] and len(custom["attempts"]) == 1
    assert creates[0]["code"] == "CANCELLED_BY_CALLER" and creates[0]["target"] != creates[1]["target"]
    assert custom["attempts"][0]["create_calls"] == 2


def test_get_failures_freeze_polling_after_five(
    run_cli: CliRunner, replicas: list[ServeProcess], sandbox: SandboxHandle
) -> None:
    # the job outlives the node timeout, so an abort must really cancel it
    report = check(
        run_cli,
        replicas,
        sandbox,
        "--impolite",
        "get=slow:1.5s",
        "--get-timeout",
        "0.5",
        "--job-seconds",
        "60",
        "--settle",
        "2",
        "--poll-interval",
        "0.1",
        "--task-timeout",
        "10",
    )
    (custom,) = report["scenarios"]
    assert_truthful(custom, sandbox)
    gets = [c for c in custom["calls"] if c["method"] == "GetTask"]
    failures = [i for i, c in enumerate(gets) if c["code"] != "OK"]
    if len(failures) > 5:
        # propeller stops polling at the 6th cumulative failure: no GetTask after it
        assert failures[5] == len(gets) - 1
        assert custom["outcome"] in ("frozen", "cache-failed") and report["ok"] is False
    elif custom["outcome"] == "timed-out":
        # GetTask answered, but never saw the job finish: the node timeout aborted the task
        assert custom["rpc_calls"]["DeleteTask"] >= 1 and report["ok"] is False
        assert any("task timeout" in p for p in custom["problems"])
        job_id = custom["attempts"][0]["job_id"]
        assert sandbox.wait_for_status(job_id, {"Cancelled"}, timeout=30)["status"] == "Cancelled"
    else:
        assert custom["outcome"] == "succeeded"
    assert report["ok"] is (not failures and custom["outcome"] == "succeeded" and custom["unowned_not_cancelled"] == 0)


def test_bad_input_is_a_usage_error(run_cli: CliRunner, sandbox: SandboxHandle) -> None:
    for args in (
        ["nohost"],
        ["127.0.0.1:1", "--sandbox", sandbox.url, "-s", "nope"],
        ["127.0.0.1:1", "--sandbox", sandbox.url, "--impolite", "create=nap:1s"],
        ["127.0.0.1:1", "--sandbox", sandbox.url, "--poll-interval", "0"],
    ):
        assert_one_line_error(run_cli("connector", "check", *args), 2)


def test_unreachable_connector_or_sandbox_is_exit_8(run_cli: CliRunner, sandbox: SandboxHandle) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    assert_one_line_error(run_cli("connector", "check", f"127.0.0.1:{free}", "--sandbox", sandbox.url), 8)
    assert_one_line_error(run_cli("connector", "check", "127.0.0.1:1", "--sandbox", f"http://127.0.0.1:{free}"), 8)
    assert sandbox.impolite()["rules"] == []  # nothing was changed
