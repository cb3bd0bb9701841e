"""Issue 7, bad input: property-based tests over everything perianctl reads from outside.

The contract (docs/HACKING.md, "Rules"): bad input is a :class:`~perianctl.errors.PerianctlError` with a one-line
message -- the CLI prints it and exits with a documented code -- never a traceback, and never a
half-written config file or journal. Hypothesis drives the library entry points (fast, many cases);
a fixed set of nasty cases goes through the real CLI in subprocesses (slow, so few); kill tests
SIGKILL writers at random moments.

Parts: (a) template files, (b) ``--input`` values and inputs files, (c) config files, (d) API
responses (an in-process ``httpx.MockTransport`` -- the only way to make an API answer garbage on
demand -- feeding the real client and the real renderers), (e) CLI runs, (f) crash safety.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import resource
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import tomli

from perianctl.errors import ExitCode
from tests.plugins.cli import CliEnv, CliResult, run_perianctl
from tests.support.properties import JOB_ID, TEMPLATES, _valid_job

pytestmark = pytest.mark.timeout(180)
DOCUMENTED_CODES = {int(code) for code in ExitCode}


# --------------------------------------------------------------------------- (e) the CLI, end to end


class _GarbageApi:
    """A throw-away HTTP server answering every request with one canned (status, body) -- a broken PERIAN."""

    def __init__(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                self.send_response(outer.status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            do_GET = do_POST = do_PATCH = _answer

            def log_message(self, *args: Any) -> None:
                return None

        self.status, self.body = status, body
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _jobs_body(**changes: Any) -> bytes:
    job = _valid_job() | changes
    return json.dumps({"status_code": 200, "jobs": [job], "pagination": {"total_items": 1}}).encode()


# (name, args, files {name: bytes}, api (status, body) or None, config text or None, allowed exit codes)
_CLI_CASES: list[tuple[str, list[str], dict[str, bytes], tuple[int, bytes] | None, str | None, set[int]]] = [
    ("garbage template", ["submit", "{d}/t.pb", "--dry-run"], {"t.pb": os.urandom(300)}, None, None, {2}),
    ("json array template", ["submit", "{d}/t.json", "--dry-run"], {"t.json": b"[1, 2, 3]"}, None, None, {2}),
    (
        "truncated template",
        ["submit", "{d}/t.pb", "--dry-run"],
        {"t.pb": (TEMPLATES / "hello.pb").read_bytes()[:57]},
        None,
        None,
        {2},
    ),
    (
        "yaml bomb template",
        ["submit", "{d}/t.yaml", "--dry-run"],
        {
            "t.yaml": b"a: &a [x, x, x, x, x, x, x, x, x]\n"
            + b"".join(
                f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n".encode()
                for p, c in zip("abcdefgh", "bcdefghi", strict=True)
            )
        },
        None,
        None,
        {2},
    ),
    (
        "bad int input",
        ["submit", str(TEMPLATES / "add.json"), "--input", "a=1e309", "--input", "b=x", "--dry-run"],
        {},
        None,
        None,
        {2},
    ),
    (
        "newline input name",
        ["submit", str(TEMPLATES / "hello.json"), "--input", "na\nme=\x1b[2J", "--dry-run"],
        {},
        None,
        None,
        {2},
    ),
    (
        "garbage inputs file",
        ["submit", str(TEMPLATES / "hello.json"), "--inputs-file", "{d}/in.yaml", "--dry-run"],
        {"in.yaml": b"name: [unclosed\n  - : :"},
        None,
        None,
        {2},
    ),
    ("binary config", ["get", JOB_ID], {}, None, "\x00\xff\xfe garbage", {2}),
    ("config profiles not tables", ["get", JOB_ID], {}, None, "profiles = 5\n", {2}),
    ("config key with newline", ["get", JOB_ID], {}, None, '[profiles.default]\n"a\\nb\\rc" = "x"\n', {2}),
    (
        "config bad url",
        ["get", JOB_ID],
        {},
        None,
        '[profiles.default]\napi_url = "ftp://x"\norganization = "o"\ntoken = "t"\n',
        {2},
    ),
    ("token file is a directory", ["--token-file", "{d}", "get", JOB_ID], {}, None, None, {2}),
    ("api not json", ["get", JOB_ID], {}, (200, b"<html>oops</html>"), None, {8}),
    ("api wrong types", ["list"], {}, (200, b'{"status_code": 200, "jobs": "nope"}'), None, {8}),
    ("api logs a number", ["logs", JOB_ID], {}, (200, _jobs_body(logs=12345)), None, {0, 8}),
    (
        "api odd dates",
        ["get", JOB_ID, "-o", "wide"],
        {},
        (200, _jobs_body(created_at="0001-01-01T00:00:00+23:59", started_at="0001-01-01T00:00:00+23:59")),
        None,
        {0, 8},
    ),
    (
        "api price NaN",
        ["watch", JOB_ID, "-o", "json", "--timeout", "1", "--interval", "0.5"],
        {},
        (200, _jobs_body(price={"unit_price": "NaN", "currency": "EUR", "granularity": "PER_HOUR"})),
        None,
        {5},
    ),
    (
        "api price Infinity",
        ["get", JOB_ID, "-o", "json"],
        {},
        (200, _jobs_body(price={"unit_price": "Infinity", "currency": "EUR", "granularity": "PER_SECOND"})),
        None,
        {0},
    ),
    (
        "api 5 MB logs",
        ["list", "-o", "wide"],
        {},
        (200, _jobs_body(logs="y" * 5_000_000, status="Done", done_at="2026-01-01T00:10:00Z")),
        None,
        {0},
    ),
    (
        "api status a number",
        ["wait", JOB_ID, "--timeout", "1", "--interval", "0.5"],
        {},
        (200, _jobs_body(status=12345)),
        None,
        {5},
    ),
    (
        "api 422 odd detail",
        ["delete", JOB_ID, "--yes"],
        {},
        (422, b'{"detail": [{"loc": 5, "msg": ["a\\nb"]}, "x", {"loc": null}]}'),
        None,
        {2},
    ),
    ("api 500 nested detail", ["get", JOB_ID], {}, (500, b'{"detail": {"a": [1, {"b": null}]}}'), None, {8}),
    ("api status_code lies", ["get", JOB_ID], {}, (200, b'{"status_code": true, "jobs": []}'), None, {0, 7, 8}),
]


@pytest.mark.parametrize("case", _CLI_CASES, ids=[c[0] for c in _CLI_CASES])
def test_e_nasty_cli_cases_are_one_line_errors_with_documented_codes(
    case: tuple[str, list[str], dict[str, bytes], tuple[int, bytes] | None, str | None, set[int]],
    cli_env: CliEnv,
    tmp_path: Path,
) -> None:
    _name, args, files, api, config, allowed = case
    for file_name, data in files.items():
        (tmp_path / file_name).write_bytes(data)
    env = cli_env.env()
    if config is not None:
        cli_env.config_file.parent.mkdir(parents=True, exist_ok=True)
        cli_env.config_file.write_bytes(config.encode("utf-8", "surrogateescape"))
    server = _GarbageApi(*api) if api else None
    if server is not None:
        env.update(PERIAN_API_URL=server.url, PERIAN_ORGANIZATION="org", PERIAN_TOKEN="tok-props")
    elif config is None:
        env.update(PERIAN_API_URL="http://127.0.0.1:9", PERIAN_ORGANIZATION="org", PERIAN_TOKEN="tok-props")
    try:
        result = run_perianctl([a.replace("{d}", str(tmp_path)) for a in args], env=env, timeout=60)
    finally:
        if server is not None:
            server.close()
    _assert_clean_exit(result, allowed)


def _assert_clean_exit(result: CliResult, allowed: set[int]) -> None:
    assert result.returncode in DOCUMENTED_CODES - {int(ExitCode.ERROR)}, result  # 1 = an unexpected error
    assert result.returncode in allowed, result
    assert "Traceback" not in result.output and "error: unexpected " not in result.stderr, result
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    if result.returncode not in (0, 3, 4, 5):  # a job outcome is not an error line
        assert len(errors) == 1, result


# --------------------------------------------------------------------------- (f) crash safety

_CONFIG_WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from perianctl.config import save_profile
    path = Path(sys.argv[1])
    i = 0
    while True:
        i += 1
        # a big value makes each write take a while, so a kill lands mid-write often
        save_profile("default", {"organization": f"org-{i}", "token": f"{i}-" + "t" * 200_000}, config_path=path)
        sys.stdout.write(f"{i}\\n")
        sys.stdout.flush()
""")


def test_f_config_file_is_old_or_new_never_partial_under_sigkill(tmp_path: Path) -> None:
    """A writer rewriting the config in a loop is SIGKILLed at random moments: the file always parses
    and is one complete version; no temp file is left except, at most, the one being written."""
    path = tmp_path / "cfg" / "config.toml"
    rnd = random.Random(7)
    seen_versions = set()
    for _ in range(12):
        proc = subprocess.Popen([sys.executable, "-c", _CONFIG_WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        complete = rnd.randint(1, 4)
        for _ in range(complete):  # wait for that many complete writes (an event, not a sleep) ...
            assert proc.stdout.readline(), "the writer died"
        time.sleep(rnd.uniform(0.0, 0.05))  # ... then kill at a random moment of a later one
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
        data = tomli.loads(path.read_text())
        profile = data["profiles"]["default"]
        version = int(profile["organization"].removeprefix("org-"))
        assert version >= complete
        assert profile["token"] == f"{version}-" + "t" * 200_000  # the whole token of the same version
        seen_versions.add(version)
        assert oct(path.stat().st_mode & 0o777) == oct(0o600)
        leftovers = [p for p in path.parent.iterdir() if p.name not in ("config.toml", "config.toml.lock")]
        assert len(leftovers) <= 1, leftovers  # only a temp file of the killed write can remain
        for stale in leftovers:
            stale.unlink()
    assert len(seen_versions) > 1


def test_f_config_set_killed_at_random_points_through_the_cli(run_cli: Any, cli_env: CliEnv) -> None:
    """``perianctl config set`` itself, killed anywhere from start-up to exit."""
    assert run_cli("config", "set", "organization", "org-0").returncode == 0
    rnd = random.Random(11)
    values = {"org-0"}
    for i in range(1, 9):
        value = f"org-{i}"
        values.add(value)
        proc = subprocess.Popen(
            [sys.executable, "-m", "perianctl", "config", "set", "organization", value],
            env=cli_env.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rnd.uniform(0.1, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        data = tomli.loads(cli_env.config_file.read_text())
        assert data["profiles"]["default"]["organization"] in values


def _limited(limit: int) -> Callable[[], None]:
    def pre_exec() -> None:  # writes beyond `limit` bytes fail with EFBIG, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return pre_exec


def test_f_a_failed_config_write_is_one_line_and_keeps_the_old_file(cli_env: CliEnv) -> None:
    env = cli_env.env()
    assert run_perianctl(["config", "set", "organization", "small"], env=env).returncode == 0
    before = cli_env.config_file.read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "perianctl", "config", "set", "token", "t" * 20_000],
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=_limited(4096),
        timeout=60,
    )
    result = CliResult(["config", "set"], proc.returncode, proc.stdout, proc.stderr)
    _assert_clean_exit(result, {2})
    assert "cannot write config file" in result.stderr
    assert cli_env.config_file.read_bytes() == before
    assert sorted(p.name for p in cli_env.config_file.parent.iterdir()) == ["config.toml", "config.toml.lock"]


_JOURNAL_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from perianctl.journal import Observation, open_journal
    with open_journal(Path(sys.argv[1])) as journal:
        batch = 0
        while True:
            batch += 1
            job = f"{sys.argv[2]}-job-{batch}"
            journal.record_submission(job, name="n" * 1000, source="s" * 1000)
            # one transaction: 50 transitions of this job, all or nothing
            journal.observe_many([Observation(job, f"S{k}", "RUNNING", "m" * 500) for k in range(50)])
            sys.stdout.write("go\\n")  # this batch is committed
            sys.stdout.flush()
""")


def test_f_journal_survives_sigkill_during_a_burst_of_writes(tmp_path: Path) -> None:
    db = tmp_path / "state" / "journal.db"
    rnd = random.Random(5)
    for run in range(8):
        proc = subprocess.Popen(
            [sys.executable, "-c", _JOURNAL_WRITER, str(db), f"run{run}"], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        for _ in range(1 + run % 3):  # that many batches committed (an event), then a kill at a random moment
            assert proc.stdout.readline() == "go\n"
        time.sleep(rnd.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
        with contextlib.closing(sqlite3.connect(db)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            counts = conn.execute("SELECT job_id, COUNT(*) FROM transitions GROUP BY job_id").fetchall()
            assert {n for _, n in counts} <= {50}, counts  # every batch whole, none half-written
            orphans = conn.execute(
                "SELECT COUNT(*) FROM transitions WHERE job_id NOT IN (SELECT job_id FROM jobs)"
            ).fetchone()
            assert orphans == (0,)
    from perianctl.journal import open_journal

    with open_journal(db) as journal:  # and perianctl itself still opens and uses it
        journal.observe("run0-job-1", "Done")
        assert journal.history("run0-job-1")[-1].status == "Done"
        assert len(journal.jobs(limit=100_000)) > 8


def test_f_submit_prints_the_job_id_even_when_the_journal_cannot_be_written(cli_env: CliEnv, sandbox: Any) -> None:
    """The job exists once the API said so: a journal write failing afterwards must not hide its id."""
    env = cli_env.env() | sandbox.env()
    args = ["submit", str(TEMPLATES / "hello.json"), "--input", "name=x", "-o", "name"]
    assert run_perianctl(args, env=env).returncode == 0  # creates the journal
    proc = subprocess.run(
        [sys.executable, "-m", "perianctl", *args],
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=_limited(3000),
        timeout=60,
    )
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    job_id = proc.stdout.strip()
    assert "was not recorded in the local journal" in proc.stderr
    assert sandbox.get_job(job_id)["id"] == job_id
    assert sandbox.stats()["jobs_created"] == 2
