"""``perianctl watch`` piped (not a TTY): one line per transition, NDJSON, exit codes, journal.

Real subprocesses against the sandbox's simulate runtime over loopback HTTP.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import threading
import time

from tests.plugins.cli import CliEnv, CliRunner, assert_one_line_error
from tests.plugins.sandbox import SandboxFactory, SandboxHandle
from tests.support.watch import cancel, cli_env_for, create_many, unknown_job_id

LINE = re.compile(
    r"^(?P<at>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (?P<id>[0-9a-f-]{36}) "
    r"(?:(?P<old>\w+) -> )?(?P<new>\w+) \((?P<phase>[A-Z_]+)\)(?: (?P<message>.*))?$"
)
LIFECYCLE = [
    "Queued",
    "Undefined",
    "Initializing",
    "Running",
    "Done",
    "UserError",
    "ServerError",
    "Timeout",
    "Cancelled",
]


def _transitions(stdout: str) -> dict[str, list[re.Match[str]]]:
    by_job: dict[str, list[re.Match[str]]] = {}
    for line in stdout.splitlines():
        match = LINE.match(line)
        assert match, f"not a transition line: {line!r}"
        by_job.setdefault(match["id"], []).append(match)
    return by_job


def _assert_lifecycle(matches: list[re.Match[str]], final: str, phase: str) -> None:
    statuses = [m["new"] for m in matches]
    assert statuses[-1] == final and matches[-1]["phase"] == phase
    assert sorted(statuses, key=LIFECYCLE.index) == statuses, statuses  # in lifecycle order
    assert matches[0]["old"] is None  # first sighting
    assert all(m["old"] == prev["new"] for prev, m in itertools.pairwise(matches))


def test_watch_piped_success_lines_and_history(shared_sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    ids = [*create_many(shared_sandbox, 2, "success", duration=0.6), *create_many(shared_sandbox, 1, "undefined")]
    result = run_cli("watch", *ids, "--interval", "0.2", env=shared_sandbox.env())
    assert result.returncode == 0, result  # an Undefined status on the way is waited out, not a failure
    by_job = _transitions(result.stdout)
    assert set(by_job) == set(ids)
    for job_id in ids:
        _assert_lifecycle(by_job[job_id], "Done", "SUCCEEDED")
    assert "3 job(s) succeeded" in result.stderr
    assert "\x1b[" not in result.stdout  # no live-view escapes in a pipe

    history = run_cli("get", ids[0], "--history", "-o", "json", env=shared_sandbox.env())
    assert history.returncode == 0, history
    rows = json.loads(history.stdout)
    assert [r["status"] for r in rows] == [m["new"] for m in by_job[ids[0]]]
    assert [r["at"] for r in rows] == sorted(r["at"] for r in rows)
    assert rows[-1]["phase"] == "SUCCEEDED"


def test_watch_failed_job_exits_3(shared_sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    [job] = create_many(shared_sandbox, 1, "fail", duration=0.2)
    result = run_cli("watch", job, "--interval", "0.2", env=shared_sandbox.env())
    assert result.returncode == 3, result
    matches = _transitions(result.stdout)[job]
    _assert_lifecycle(matches, "UserError", "FAILED")
    assert matches[-1]["message"].startswith("UserError:")  # the first line of the job's errors
    assert f"error: job {job} ended UserError" in result.stderr


def test_watch_timed_out_job_exits_5(shared_sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    [job] = create_many(shared_sandbox, 1, "timeout", duration=0.2)
    result = run_cli("watch", job, "--interval", "0.2", env=shared_sandbox.env())
    assert result.returncode == 5, result
    _assert_lifecycle(_transitions(result.stdout)[job], "Timeout", "FAILED")


def test_watch_cancelled_mid_run_exits_4(shared_sandbox: SandboxHandle, cli_env: CliEnv) -> None:
    [job] = create_many(shared_sandbox, 1, "slow", duration=30)
    proc = subprocess.Popen(
        [sys.executable, "-m", "perianctl", "watch", job, "--interval", "0.2"],
        env=cli_env_for(cli_env, shared_sandbox),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen = _read_until(proc, f"{job} ", "Running")  # the watch has shown it running
        cancel(shared_sandbox, job)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 4, (seen, stdout, stderr)
    matches = _transitions(seen + stdout)[job]
    assert [m["new"] for m in matches][-2:] == ["Running", "Cancelled"]
    assert matches[-1]["phase"] == "ABORTED"


def _read_until(proc: subprocess.Popen[str], *needles: str, timeout: float = 60) -> str:
    """Read the process's stdout line by line until one line contains all ``needles``."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        text += line
        if all(n in line for n in needles):
            return text
    raise AssertionError(f"never saw {needles!r} in: {text!r}")


def test_watch_json_streams_ndjson_events(shared_sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    ok = create_many(shared_sandbox, 1, "success", duration=2.0)
    bad = create_many(shared_sandbox, 1, "server-error", duration=2.0)
    result = run_cli("watch", *ok, *bad, "--interval", "0.2", "-o", "json", env=shared_sandbox.env())
    assert result.returncode == 3, result
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "snapshot" and kinds[-1] == "done" and set(kinds[1:-1]) <= {"transition", "error"}
    assert {j["job_id"] for j in events[0]["jobs"]} == {*ok, *bad}
    done = events[-1]
    assert done["exit_code"] == 3 and done["detached"] is False and done["still_running"] == []
    final = {j["job_id"]: (j["status"], j["phase"]) for j in done["jobs"]}
    assert final == {ok[0]: ("Done", "SUCCEEDED"), bad[0]: ("ServerError", "RETRYABLE_FAILED")}
    for snap in events[0]["jobs"]:  # snapshot + transitions form one unbroken chain per job
        chain = [snap["status"]]
        for event in events:
            if event["event"] == "transition" and event["job_id"] == snap["job_id"]:
                assert event["from"] == chain[-1]
                chain.append(event["to"])
        assert chain[-1] == final[snap["job_id"]][0]
    assert "\x1b[" not in result.stdout and result.stderr.startswith("error: 1 Done, 1 ServerError")


def test_watch_unknown_job_exits_7(shared_sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    result = run_cli("watch", unknown_job_id(), "--interval", "0.2", env=shared_sandbox.env())
    assert_one_line_error(result, 7)
    assert "not found" in result.stderr


def test_watch_needs_ids_or_all(shared_sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    assert_one_line_error(run_cli("watch", env=shared_sandbox.env()), 2)
    assert_one_line_error(run_cli("watch", unknown_job_id(), "-o", "yaml", env=shared_sandbox.env()), 2)


def test_watch_all_follows_unfinished_jobs_only(sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    finished = create_many(sandbox, 1, "success")
    sandbox.wait_for_status(finished[0])
    running = create_many(sandbox, 2, "success", duration=8.0)  # outlasts the CLI's start-up on a busy 2-core box
    result = run_cli("watch", "--all", "--interval", "0.2", env=sandbox.env())
    assert result.returncode == 0, result
    by_job = _transitions(result.stdout)
    assert set(by_job) == set(running)
    assert all(matches[-1]["new"] == "Done" for matches in by_job.values())
    empty = run_cli("watch", "--all", env=sandbox.env())
    assert empty.returncode == 0 and empty.stdout == "" and "no unfinished jobs" in empty.stderr


def test_watch_survives_api_faults_and_reports_them(sandbox_factory: SandboxFactory, cli_env: CliEnv) -> None:
    sandbox = sandbox_factory(fault_rate=0.3, fault_kinds="503,reset", fault_endpoints="list,get", fault_seed=11)
    ids = create_many(sandbox, 5, "success", duration=10)  # outlasts the CLI's start-up on a busy 2-core box
    proc = subprocess.Popen(
        [sys.executable, "-m", "perianctl", "watch", *ids, "--interval", "0.2"],
        env=cli_env_for(cli_env, sandbox),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    errors: list[str] = []
    stale = threading.Event()

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            errors.append(line)
            if "stale: API unreachable, retrying" in line:
                stale.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        seen = _read_until(proc, "Running")
        sandbox.set_faults(rate=1.0)  # a full outage until watch says so: refreshes must fail
        assert stale.wait(60), "".join(errors)
        sandbox.set_faults(rate=0.3)
        stdout = proc.stdout.read() if proc.stdout is not None else ""
        proc.wait(60)
        reader.join(10)
        stderr = "".join(errors)
    finally:
        proc.kill()
    assert proc.returncode == 0, (seen, stdout, stderr)
    by_job = _transitions(seen + stdout)
    assert all(by_job[job_id][-1]["new"] == "Done" for job_id in ids)
    assert "stale: API unreachable, retrying" in stderr
    assert re.search(r"\d+ transient API errors? \(last: ", stderr), stderr
    assert sandbox.stats()["faults"]["injected"] > 0
