"""Tables people copy from: full ids and statuses on 80- and 150-column terminals (a real pty), and
piped tables that are never cut and never padded (the CLI subprocess against the sandbox)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pexpect
import pytest

from tests.plugins.cli import CliEnv, CliRunner
from tests.plugins.sandbox import SandboxHandle
from tests.support.watch import Screen, cli_env_for, create_many

ROWS = 40
FAIL_ERROR = "Container exited with code 1: RuntimeError: simulated failure (PERIAN_SANDBOX_SCENARIO=fail)"
"""What the sandbox's ``fail`` scenario puts in ``errors``: 92 characters, more than tables used to keep."""
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _spawn(cli_env: CliEnv, sandbox: SandboxHandle, cols: int, *args: str) -> pexpect.spawn:
    env = cli_env_for(cli_env, sandbox, TERM="xterm-256color", COLUMNS=str(cols), LINES=str(ROWS))
    return pexpect.spawn(
        sys.executable,
        ["-m", "perianctl", *args],
        env=env,
        dimensions=(ROWS, cols),
        encoding="utf-8",
        codec_errors="replace",
        timeout=90,
    )


def _run_in_pty(cli_env: CliEnv, sandbox: SandboxHandle, cols: int, *args: str) -> tuple[int, list[str]]:
    child = _spawn(cli_env, sandbox, cols, *args)
    child.expect(pexpect.EOF)
    raw = child.before or ""
    child.close()
    screen = Screen(ROWS, cols)
    screen.feed(raw)
    return child.exitstatus if child.exitstatus is not None else -1, screen.transcript()


def _row(lines: list[str], job_id: str) -> str:
    rows = [line for line in lines if job_id in line]
    assert rows, "\n".join(lines)
    return rows[0]


@pytest.mark.parametrize("cols", [80, 150])
def test_list_get_and_wait_keep_full_ids_and_statuses_on_a_terminal(
    sandbox: SandboxHandle, cli_env: CliEnv, cols: int
) -> None:
    ok = create_many(sandbox, 2, "success")
    bad = create_many(sandbox, 1, "fail")
    for job_id in ok + bad:
        sandbox.wait_for_status(job_id)
    status = {**{j: "Done" for j in ok}, **{j: "UserError" for j in bad}}

    for args in (["list"], ["get", *ok, *bad], ["get", "-o", "wide", *ok, *bad], ["wait", *ok]):
        code, lines = _run_in_pty(cli_env, sandbox, cols, *args)
        assert code in (0, 3), (args, lines)
        assert all(len(line) <= cols for line in lines), (args, lines)
        for job_id in ok if args[0] == "wait" else ok + bad:
            row = _row(lines, job_id)  # the whole id, on one line
            assert re.search(rf"{job_id}\s+{status[job_id]}\b", row), (args, row)
        assert not any("…" in match for line in lines for match in UUID.findall(line))


@pytest.mark.parametrize("cols", [80, 150])
def test_live_watch_shows_full_ids_and_statuses(sandbox: SandboxHandle, cli_env: CliEnv, cols: int) -> None:
    """The live table while jobs run, and the final table, at 80 and 150 columns."""
    slow = create_many(sandbox, 2, "slow", duration=3)
    child = _spawn(cli_env, sandbox, cols, "watch", *slow, "--interval", "0.2")
    child.expect(r"Running", timeout=60)
    live_raw = child.before + child.after
    child.expect(pexpect.EOF, timeout=90)
    raw = live_raw + (child.before or "")
    child.close()
    assert child.exitstatus == 0, raw

    live = Screen(ROWS, cols)
    live.feed(live_raw)
    frame = live.lines()
    assert any(line.startswith("watching 2 jobs") for line in frame), "\n".join(frame)
    running = [line for line in frame if re.search(r"\b(Running|Queued|Initializing)\b", line)]
    assert running and all(UUID.search(line) for line in running), "\n".join(frame)
    for line in running:
        found = UUID.search(line)
        assert found, line
        job_id = found.group(0)
        assert job_id in slow, line
        assert re.search(rf"^{job_id}\s+(ubuntu:22\.04\s+)?(Running|Queued|Initializing)\b", line), line

    final = Screen(ROWS, cols)
    final.feed(raw)
    lines = final.transcript()
    assert all(len(line) <= cols for line in lines)
    for job_id in slow:
        assert re.search(rf"^{job_id}\s+(ubuntu:22\.04\s+)?Done\s", _row(lines, job_id)), "\n".join(lines)
    header = next(line for line in lines if line.startswith("JOB"))
    if cols == 80:  # the other columns gave way, id and status did not
        assert "MESSAGE" not in header and "STATUS" in header
    else:
        assert "NAME/IMAGE" in header and "ELAPSED" in header


def test_piped_tables_are_never_cut_nor_padded(sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    [bad] = create_many(sandbox, 1, "fail")
    [ok] = create_many(sandbox, 1, "success")
    sandbox.wait_for_status(bad)
    sandbox.wait_for_status(ok)
    env = {**sandbox.env(), "COLUMNS": "80"}
    for args in (["get", bad, ok], ["get", "-o", "wide", bad, ok], ["list"], ["wait", bad, ok]):
        r = run_cli(*args, env=env)
        assert r.returncode in (0, 3), r
        lines = r.stdout.splitlines()
        assert lines and not any(line != line.rstrip() for line in lines), r  # no trailing padding
        assert FAIL_ERROR in _row(lines, bad), r  # the whole message, though longer than 80
        assert re.search(rf"^{ok}\s+Done\s", _row(lines, ok)), r
        header = lines[0].split()
        assert header[0] == "ID"


def test_list_status_filter_spans_pages_and_says_when_nothing_matches(
    sandbox: SandboxHandle, run_cli: CliRunner
) -> None:
    env = sandbox.env()
    done = create_many(sandbox, 3, "success")
    for job_id in done:
        sandbox.wait_for_status(job_id)
    create_many(sandbox, 6, "slow", duration=60)  # newer, not Done: the first page has no Done job

    r = run_cli("list", "-s", "Done", "-n", "3", "-o", "name", env=env)
    assert r.returncode == 0, r
    assert r.stdout.split() == list(reversed(done))  # all 3, though they sit behind 6 newer jobs
    r = run_cli("list", "-s", "Done", "-n", "2", "-o", "name", env=env)
    assert r.stdout.split() == [done[2], done[1]] and "next: --page 2" in r.stderr, r
    r = run_cli("list", "-s", "Done", "-n", "2", "--page", "2", "-o", "name", env=env)
    assert r.stdout.split() == [done[0]], r

    r = run_cli("list", "-s", "UserError", env=env)
    assert r.returncode == 0 and r.stdout == "", r
    assert "no jobs match --status UserError" in r.stderr, r


def test_list_status_filter_is_bounded_with_a_note(sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    from perianctl.commands.list import MATCH_PAGE_SIZE, MAX_MATCH_PAGES

    create_many(sandbox, MATCH_PAGE_SIZE * MAX_MATCH_PAGES + 5, "slow", duration=600)
    r = run_cli("list", "-s", "Done", env=sandbox.env(), timeout=120)
    assert r.returncode == 0 and r.stdout == "", r
    assert "no jobs match --status Done" in r.stderr
    assert f"note: only the newest {MATCH_PAGE_SIZE * MAX_MATCH_PAGES} jobs" in r.stderr and "--all" in r.stderr


def test_list_local_honours_all_page_and_limit(sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    env = sandbox.env()
    template = Path(__file__).resolve().parents[2] / "examples" / "templates" / "hello.pb"
    submitted = []
    for i in range(5):
        r = run_cli("submit", str(template), "--input", f"name=n{i}", env=env)
        assert r.returncode == 0, r
        submitted.append(r.stdout.strip().splitlines()[0])
    newest_first = list(reversed(submitted))

    r = run_cli("list", "--local", "-n", "2", "-o", "name", env=env)
    assert r.stdout.split() == newest_first[:2] and "page 1/3" in r.stderr and "--page 2" in r.stderr, r
    r = run_cli("list", "--local", "-n", "2", "--page", "3", "-o", "name", env=env)
    assert r.stdout.split() == newest_first[4:], r
    r = run_cli("list", "--local", "-n", "2", "--all", "-o", "name", env=env)
    assert r.stdout.split() == newest_first, r
    r = run_cli("list", "--local", "-s", "UserError", env=env)
    assert r.stdout == "" and "no jobs in the journal match --status UserError" in r.stderr, r
