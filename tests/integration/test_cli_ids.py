"""Job ids as people type them: unique prefixes everywhere an id is accepted (the CLI against the sandbox).

One resolver (perianctl.jobs.ids) serves get, delete, logs, watch, wait and the --connector variants:
the journal first, then a bounded scan of the API's job list; ambiguity is exit 2 naming the
candidates, no match is exit 7.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from tests.plugins.cli import CliRunner, assert_one_line_error
from tests.plugins.sandbox import SandboxHandle
from tests.support import connector as support
from tests.support.watch import create_many


def _unique_prefix(job_id: str, others: list[str]) -> str:
    """The shortest prefix (of 8+ hex digits, dashes kept) that no other id shares."""
    for size in range(8, len(job_id) + 1):
        prefix = job_id[:size]
        if not prefix.endswith("-") and not any(o != job_id and o.startswith(prefix) for o in others):
            return prefix
    return job_id


def test_a_unique_prefix_is_accepted_by_every_command(sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    env = sandbox.env()
    done = create_many(sandbox, 1, "success")[0]
    sandbox.wait_for_status(done)
    slow = create_many(sandbox, 1, "slow", duration=60)[0]
    short_done, short_slow = done[:8], slow[:8]
    if short_done == short_slow:  # astronomically unlikely; keep the test honest anyway
        short_done, short_slow = done[:13], slow[:13]

    # get (the API scan: the journal has never seen these jobs)
    r = run_cli("get", short_done, "-o", "name", env=env)
    assert r.returncode == 0, r
    assert r.stdout.strip() == done
    # without dashes and in capitals it is the same prefix
    r = run_cli("get", done.replace("-", "")[:10].upper(), "-o", "json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["id"] == done, r

    # logs, wait (an ended job: exit 0 at once)
    r = run_cli("logs", short_done, env=env)
    assert r.returncode == 0, r
    r = run_cli("wait", short_done, "-o", "name", env=env)
    assert r.returncode == 0 and r.stdout.strip() == done, r

    # watch with a prefix, piped: one line per transition naming the full id
    r = run_cli("watch", short_done, env=env)
    assert r.returncode == 0 and done in r.stdout, r

    # delete with a prefix cancels the right job
    r = run_cli("delete", short_slow, "--yes", "-o", "name", env=env)
    assert r.returncode == 0 and r.stdout.strip() == slow, r
    sandbox.wait_for_status(slow, ["Cancelled"])


def test_the_journal_answers_first_also_for_the_connector(
    sandbox: SandboxHandle, run_cli: CliRunner, tmp_path: Path
) -> None:
    """A prefix of a job the journal knows needs no API: with --connector and no PERIAN credentials
    it still resolves, and the connector is asked about the full id."""
    env = sandbox.env()
    job = create_many(sandbox, 1, "success")[0]
    sandbox.wait_for_status(job)
    assert run_cli("get", job, env=env).returncode == 0  # the journal has now seen it

    serve = support.ServeProcess(support.Api(sandbox.url, sandbox.org, sandbox.token), tmp=tmp_path).wait_ready()
    try:
        bare = {"PERIAN_API_URL": sandbox.url}  # no org, no token: only the journal can resolve
        r = run_cli("get", job[:8], "--connector", serve.target, "-o", "json", env=bare)
        assert r.returncode == 0, r
        record = json.loads(r.stdout)
        assert record["id"] == job and record["phase"] == "SUCCEEDED"
        r = run_cli("logs", job[:8], "--connector", serve.target, env=bare)
        assert r.returncode == 0, r

        # an unknown prefix, journal only: not found, saying where it looked
        unknown = "ffffffff0" if not job.startswith("ffffffff0") else "0000000000"
        r = run_cli("get", unknown, "--connector", serve.target, env=bare)
        assert_one_line_error(r, 7)
        assert f"no job id starts with '{unknown}' in the journal" in r.stderr
    finally:
        code, err = serve.terminate()
    assert code == 0, err


def test_an_ambiguous_prefix_is_a_usage_error_listing_the_candidates(
    sandbox: SandboxHandle, run_cli: CliRunner
) -> None:
    env = sandbox.env()
    ids = create_many(sandbox, 20, "slow", duration=60)  # 20 ids over 16 first digits: some share one
    by_digit: dict[str, list[str]] = defaultdict(list)
    for job_id in ids:
        by_digit[job_id[0]].append(job_id)
    digit, shared = next((d, js) for d, js in by_digit.items() if len(js) >= 2)

    for command in (["get"], ["delete", "--yes"], ["logs"], ["wait"], ["watch"]):
        r = run_cli(*command, digit, env=env)
        assert_one_line_error(r, 2)
        assert f"job id prefix '{digit}' is ambiguous" in r.stderr, r
        for job_id in shared[:5]:
            assert job_id in r.stderr, r
    assert all(sandbox.get_job(j)["status"] != "Cancelled" for j in shared)  # nothing was cancelled

    # A longer prefix of one of them is unique again.
    r = run_cli("get", _unique_prefix(shared[0], ids), "-o", "name", env=env)
    assert r.returncode == 0 and r.stdout.strip() == shared[0], r


def test_no_match_is_not_found_and_garbage_is_a_usage_error(sandbox: SandboxHandle, run_cli: CliRunner) -> None:
    env = sandbox.env()
    ids = create_many(sandbox, 3, "success")
    prefix = next(
        p for p in ("0000000", "fffffff", "abcdef0") if not any(j.replace("-", "").startswith(p) for j in ids)
    )
    for command in (["get"], ["logs"], ["wait"], ["delete", "--yes"]):
        r = run_cli(*command, prefix, env=env)
        assert_one_line_error(r, 7)
        assert f"no job id starts with '{prefix}'" in r.stderr, r
    for bad in ("not-a-uuid", "3f2c-1a4e", "g123", ids[0] + "0"):
        r = run_cli("get", bad, env=env)
        assert_one_line_error(r, 2)
        assert "invalid job id" in r.stderr, r
