"""``perianctl watch`` in a pseudo-terminal (pexpect): the live table, as a user would see it.

The raw pty output is replayed through a small terminal emulator (tests/support/watch.py),
which keeps the lines that scrolled off, so the tests can assert on the final screen *and* on
the scrollback: one table at the end, never one per refresh.
"""

from __future__ import annotations

import math
import re
import sys
import time

import pexpect

from tests.plugins.cli import CliEnv
from tests.plugins.sandbox import SandboxHandle
from tests.support.watch import Screen, cli_env_for, create_many

ROWS, COLS = 40, 200


def _spawn(cli_env: CliEnv, sandbox: SandboxHandle, *args: str) -> pexpect.spawn:
    env = cli_env_for(cli_env, sandbox, TERM="xterm-256color", COLUMNS=str(COLS), LINES=str(ROWS))
    return pexpect.spawn(
        sys.executable,
        ["-m", "perianctl", *args],
        env=env,
        dimensions=(ROWS, COLS),
        encoding="utf-8",
        codec_errors="replace",
        timeout=60,
    )


def _finish(child: pexpect.spawn, captured: str = "") -> tuple[int, str, Screen]:
    child.expect(pexpect.EOF, timeout=60)
    raw = captured + (child.before or "")
    child.close()
    screen = Screen(ROWS, COLS)
    screen.feed(raw)
    return child.exitstatus if child.exitstatus is not None else -(child.signalstatus or 0), raw, screen


HEADER = re.compile(r"^JOB\s+NAME/IMAGE\s+STATUS\s+PHASE\s+INSTANCE\s+ELAPSED\s+COST\s+MESSAGE")


def _table_headers(lines: list[str]) -> int:
    return sum(1 for line in lines if HEADER.match(line))


def test_tty_live_table_ends_with_one_final_table(sandbox: SandboxHandle, cli_env: CliEnv) -> None:
    ok = create_many(sandbox, 2, "success", duration=6.0)  # outlasts the CLI's start-up on a busy 2-core box
    bad = create_many(sandbox, 1, "fail", duration=6.0)
    started = time.monotonic()
    child = _spawn(cli_env, sandbox, "watch", *ok, *bad, "--interval", "0.2")
    code, raw, screen = _finish(child)
    seconds = time.monotonic() - started
    assert code == 3, raw

    transcript = screen.transcript()
    assert _table_headers(transcript) == 1, "\n".join(transcript)  # the table was never repeated
    assert sum("3 jobs finished: 2 SUCCEEDED · 1 FAILED" in line for line in transcript) == 1
    assert not any(line.startswith("watching ") for line in transcript)  # live frames were replaced
    rows = {job_id: next(line for line in transcript if line.startswith(job_id)) for job_id in ok + bad}
    for job_id in ok:
        assert re.search(r"ubuntu:22\.04\s+Done\s+SUCCEEDED\s+", rows[job_id]), rows[job_id]
    assert re.search(r"UserError\s+FAILED\s+.*Container exited with code 1", rows[bad[0]]), rows[bad[0]]
    assert any(line.startswith("error: 2 Done, 1 UserError") for line in transcript)

    # It was live (repainted while running), but only on change plus a ≤ 1/s clock tick:
    paints = len(re.findall(r"JOB\s+NAME/IMAGE", raw))
    counted = re.search(r"(\d+) refreshes", raw)
    assert counted, raw
    refreshes = int(counted.group(1))
    assert paints >= 2
    assert paints <= refreshes + math.ceil(seconds) + 2, (paints, refreshes, seconds)
    assert all(len(line) <= COLS for line in transcript)  # one-line rows, nothing wrapped


def test_tty_ctrl_c_detaches_without_cancelling(sandbox: SandboxHandle, cli_env: CliEnv) -> None:
    [job] = create_many(sandbox, 1, "slow", duration=30)
    child = _spawn(cli_env, sandbox, "watch", job, "--interval", "0.2")
    child.expect(r"Running\s+RUNNING", timeout=30)
    captured = child.before + child.after
    child.sendintr()
    code, raw, screen = _finish(child, captured)
    assert code == 130, raw
    transcript = screen.transcript()
    assert any(f"detached; the jobs keep running — 'perianctl delete {job}' cancels" in line for line in transcript)
    assert any(line.startswith("detached from 1 job (they keep running)") for line in transcript)
    assert _table_headers(transcript) == 1
    assert "Traceback" not in raw
    assert sandbox.get_job(job)["status"] == "Running"  # detaching never cancels


def test_tty_shows_stale_marker_and_reports_errors(sandbox: SandboxHandle, cli_env: CliEnv) -> None:
    ids = create_many(sandbox, 4, "success", duration=10.0)  # outlasts the CLI's start-up on a busy 2-core box
    child = _spawn(cli_env, sandbox, "watch", *ids, "--interval", "0.2")
    child.expect(r"Running\s+RUNNING", timeout=30)
    captured = child.before + child.after
    sandbox.set_faults(rate=1.0, kinds=["503"], endpoints=["list", "get"])
    child.expect("stale: API unreachable, retrying", timeout=30)
    captured += child.before + child.after
    time.sleep(0.2)
    sandbox.set_faults(rate=0.0)
    code, raw, screen = _finish(child, captured)
    assert code == 0, raw
    transcript = screen.transcript()
    final = next(line for line in transcript if "4 jobs finished" in line)
    assert re.search(r"\(\d+ transient API errors?\)", final), final
    assert any(re.search(r"\d+ transient API errors? \(last: .*503", line) for line in transcript), transcript
    assert _table_headers(transcript) == 1
