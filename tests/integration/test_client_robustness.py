"""An unreachable, stalled or odd PERIAN API, and local input errors: the real CLI and client over loopback.

Servers here are real sockets on 127.0.0.1: a closed port (connection refused), a server that
accepts and never answers (a stall), and a scripted HTTP server for answers the sandbox does not
give (``Retry-After: 3600``). Time bounds are hang detectors, far above what a busy box needs and
far below what the bugs cost (5-92 s per command, 307 s for ``wait``).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from perianctl.errors import UnavailableError
from perianctl.perian.client import Budget, PerianClient, RetryPolicy, api_deadline
from perianctl.perian.models import CreateJobRequest, DockerRunParameters, InstanceTypeQueryInput
from tests.plugins.cli import CliEnv, CliResult, CliRunner, assert_one_line_error
from tests.plugins.sandbox import SandboxFactory, SandboxHandle

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "templates" / "hello.pb"
JOB_ID = "3f2c1a4e-0b1d-4c5e-9f00-1234567890ab"
SECRET = "tok-s3cr3t-value"


# --------------------------------------------------------------------------- loopback servers


@pytest.fixture
def closed_url() -> str:
    """A loopback URL where nothing listens: every connect is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class StallServer:
    """Accepts every connection, reads nothing, answers nothing."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted = 0
        self.conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.conns.append(conn)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (close alone does not)
        self.sock.close()
        for conn in self.conns:
            conn.close()
        self._thread.join(5)


@pytest.fixture
def stall() -> Iterator[StallServer]:
    server = StallServer()
    try:
        yield server
    finally:
        server.close()


class _Scripted(http.server.BaseHTTPRequestHandler):
    """Every request: 503 with ``Retry-After: 3600`` (an API asking for an hour's patience)."""

    requests = 0

    def _answer(self) -> None:
        type(self).requests += 1
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        body = b'{"status_code":503,"message":"Operation failed due to a server error","detail":"maintenance"}'
        self.send_response(503)
        self.send_header("Retry-After", "3600")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def retry_after_hour() -> Iterator[tuple[str, type[_Scripted]]]:
    handler = type("Handler", (_Scripted,), {"requests": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def creds(url: str) -> list[str]:
    return ["--api-url", url, "--org", "acme", "--token", SECRET]


def timed(run_cli: CliRunner, *args: str, **kwargs: Any) -> tuple[CliResult, float]:
    started = time.monotonic()
    result = run_cli(*args, **kwargs)
    return result, time.monotonic() - started


# --------------------------------------------------------------------------- refused: fail fast, say so


@pytest.mark.parametrize("command", [["get", JOB_ID], ["list"], ["logs", JOB_ID], ["delete", "--yes", JOB_ID]])
def test_refused_read_commands_exit_8_saying_connection_refused(
    run_cli: CliRunner, closed_url: str, command: list[str]
) -> None:
    result, elapsed = timed(run_cli, *creds(closed_url), *command, timeout=60)
    assert_one_line_error(result, 8)
    assert "connection refused (3 attempts)" in result.stderr
    assert elapsed < 15, f"refused connections took {elapsed:.1f} s"


@pytest.mark.parametrize("fmt", ["json", "yaml", "name", "table"])
def test_a_failed_get_prints_no_data_on_stdout(run_cli: CliRunner, closed_url: str, fmt: str) -> None:
    # A script reading stdout must not mistake "[]" for an answer when every id failed.
    result = run_cli(*creds(closed_url), "get", JOB_ID, "-o", fmt, timeout=60)
    assert_one_line_error(result, 8)
    assert result.stdout == ""


def test_refused_submit_knows_no_job_was_created(run_cli: CliRunner, closed_url: str, cli_env: CliEnv) -> None:
    result, elapsed = timed(
        run_cli,
        *creds(closed_url),
        "submit",
        str(HELLO),
        "-i",
        "name=X",
        "--output-prefix",
        str(cli_env.root / "out"),
        timeout=90,
    )
    assert_one_line_error(result, 8)
    stderr = result.stderr
    assert "connection refused" in stderr and "no job was created" in stderr
    assert "may or may not" not in stderr
    assert elapsed < 20, f"a refused submit took {elapsed:.1f} s"


# --------------------------------------------------------------------------- stalled: bounded by the budget


@pytest.mark.parametrize("how", ["flag", "env", "profile"])
def test_a_stalled_api_is_bounded_by_the_api_timeout_setting(run_cli: CliRunner, stall: StallServer, how: str) -> None:
    args = creds(stall.url)
    env: dict[str, str] = {}
    if how == "flag":
        args = [*args, "--api-timeout", "2s"]
    elif how == "env":
        env["PERIANCTL_API_TIMEOUT"] = "2s"
    else:
        assert run_cli("config", "set", "api_timeout", "2s").returncode == 0
    result, elapsed = timed(run_cli, *args, "get", JOB_ID, env=env, timeout=90)
    assert_one_line_error(result, 8)
    assert "2.0 s budget was spent" in result.stderr
    assert stall.accepted >= 1
    assert elapsed < 20, f"a 2 s budget took {elapsed:.1f} s"


def test_a_stalled_create_is_bounded_and_honest(run_cli: CliRunner, stall: StallServer, cli_env: CliEnv) -> None:
    """The POST reached a server that never answered: the job may exist, and the CLI must say so."""
    result, elapsed = timed(
        run_cli,
        *creds(stall.url),
        "--api-timeout",
        "3s",
        "submit",
        str(HELLO),
        "-i",
        "name=X",
        "--output-prefix",
        str(cli_env.root / "out"),
        timeout=90,
    )
    assert_one_line_error(result, 8)
    stderr = result.stderr
    assert "may or may not exist" in stderr and "no job was created" not in stderr
    assert elapsed < 25, f"a 3 s budget took {elapsed:.1f} s"


def test_retries_of_503_happen_within_the_budget(run_cli: CliRunner, sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory(fault_rate=1.0, fault_kinds=["503"], fault_endpoints=["list"])
    result = run_cli(
        "--api-url", sb.url, "--org", sb.org, "--token", sb.token, "--api-timeout", "3s", "list", timeout=60
    )
    assert_one_line_error(result, 8)
    assert "HTTP 503" in result.stderr
    assert sb.stats()["faults"]["by_endpoint"]["list"] >= 2  # it did retry


def test_retry_after_is_capped_by_the_budget(run_cli: CliRunner, retry_after_hour: tuple[str, type[_Scripted]]) -> None:
    url, handler = retry_after_hour
    result, elapsed = timed(run_cli, *creds(url), "--api-timeout", "5s", "list", timeout=60)
    assert_one_line_error(result, 8)
    assert "asked to retry after" in result.stderr
    assert handler.requests == 1  # waiting an hour would not fit: it stopped instead of sleeping
    assert elapsed < 20


# --------------------------------------------------------------------------- the client's budget API


def _request() -> CreateJobRequest:
    return CreateJobRequest(
        requirements=InstanceTypeQueryInput.model_validate({"cpu": {"cores": 1}}),
        docker_run_parameters=DockerRunParameters(image_name="ubuntu", command="true"),
    )


async def test_call_budget_and_scope_bound_a_stalled_call(stall: StallServer) -> None:
    async with PerianClient(stall.url, "o", "t", retry=RetryPolicy(timeout=60)) as client:
        started = time.monotonic()
        with pytest.raises(UnavailableError) as caught:
            await client.get_job(JOB_ID, budget=1.0)
        assert caught.value.reason == "budget" and caught.value.attempts == 1
        assert "1.0 s budget" in caught.value.message
        with api_deadline(1.5), api_deadline(30) as inner:  # an inner scope never extends the outer one
            assert inner.remaining() <= 1.5
            with pytest.raises(UnavailableError, match=r"1\.5 s budget"):
                await client.list_jobs()
        assert time.monotonic() - started < 20


async def test_a_shared_budget_is_one_deadline_for_every_call(stall: StallServer) -> None:
    budget = Budget.start(1.5)
    async with PerianClient(stall.url, "o", "t", budget=budget) as client:
        results = await asyncio.gather(client.get_job(JOB_ID), client.list_jobs(), return_exceptions=True)
        assert all(isinstance(r, UnavailableError) for r in results), results
        with pytest.raises(UnavailableError, match="after 0 attempts"):
            await client.get_job(JOB_ID)  # the deadline has passed: no attempt is started


async def test_never_sent_is_exact(closed_url: str, stall: StallServer) -> None:
    async with PerianClient(closed_url, "o", "t") as client:
        with pytest.raises(UnavailableError) as refused:
            await client.create_job(_request(), idempotency_key="k-1", fresh_key=True)
    assert refused.value.never_sent and refused.value.reason == "refused"
    assert "no job was created" in refused.value.message
    async with PerianClient(closed_url, "o", "t") as client:  # the connector's path: look-up first
        with pytest.raises(UnavailableError) as looked:
            await client.create_job(_request(), idempotency_key="k-2")
    assert looked.value.never_sent and "no job was created" in looked.value.message
    async with PerianClient(stall.url, "o", "t", budget=2.0) as client:
        with pytest.raises(UnavailableError) as stalled:
            await client.create_job(_request())
    assert not stalled.value.never_sent and "may or may not exist" in stalled.value.message


# --------------------------------------------------------------------------- local input errors, before any request


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--token", "abc\ndef"], {}, "line break"),
        ([], {"PERIAN_TOKEN": "abc\x01def"}, "control character"),
        ([], {"PERIAN_TOKEN": "tök-en"}, "non-ASCII"),
        (["--org", "ac\x01me"], {}, "control character"),
        (["--api-url", "http://127.0.0.1:99999"], {}, "invalid API URL"),
        (["--api-url", "http://127.0.0.1:port"], {}, "invalid API URL"),
        (["--api-timeout", "soon"], {}, "api_timeout"),
        (["--api-timeout", "0s"], {}, "api_timeout"),
    ],
)
def test_invalid_settings_are_exit_2_before_any_request(
    run_cli: CliRunner, stall: StallServer, args: list[str], env: dict[str, str], expected: str
) -> None:
    base = {"--api-url": stall.url, "--org": "acme", "--token": SECRET}
    for flag in args[::2]:
        base.pop(flag, None)
    if "PERIAN_TOKEN" in env:
        base.pop("--token")
    flags = [x for pair in base.items() for x in pair] + args
    result = run_cli(*flags, "get", JOB_ID, env=env, timeout=60)
    assert_one_line_error(result, 2)
    assert expected in result.stderr
    assert "abc" not in result.output and "tök" not in result.output  # never the secret
    assert stall.accepted == 0


@pytest.mark.parametrize("content", ["tök-en\n", "abc\x7fdef\n", "abc\ndef\n"])
def test_bad_token_file_is_exit_2(run_cli: CliRunner, stall: StallServer, cli_env: CliEnv, content: str) -> None:
    token_file = cli_env.root / "token"
    token_file.write_text(content, encoding="utf-8")
    result = run_cli("--api-url", stall.url, "--org", "acme", "--token-file", str(token_file), "list", timeout=60)
    assert_one_line_error(result, 2)
    assert "tök" not in result.output and "abc" not in result.output
    assert stall.accepted == 0


def test_nul_in_the_organization_from_the_config_file_is_exit_2(
    run_cli: CliRunner, stall: StallServer, cli_env: CliEnv
) -> None:
    cli_env.config_file.parent.mkdir(parents=True, exist_ok=True)
    cli_env.config_file.write_text(
        f'[profiles.default]\napi_url = "{stall.url}"\norganization = "ac\\u0000me"\ntoken = "{SECRET}"\n'
    )
    result = run_cli("list", timeout=60)
    assert_one_line_error(result, 2)
    assert "organization" in result.stderr and SECRET not in result.output
    assert stall.accepted == 0


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("token", ""),
        ("token", "a\x01b"),
        ("api_timeout", "never"),
        ("api_url", "http://127.0.0.1:99999"),
        ("organization", "x\x02"),
    ],
)
def test_config_set_rejects_values_that_cannot_work(run_cli: CliRunner, cli_env: CliEnv, key: str, value: str) -> None:
    result = run_cli("config", "set", key, value)
    assert_one_line_error(result, 2)
    assert not cli_env.config_file.exists() or value not in cli_env.config_file.read_text()


async def test_the_connector_reports_a_broken_token_secret_as_invalid_not_unavailable(sandbox: SandboxHandle) -> None:
    """A token secret with a line break used to be retried for 8 s and end as UNAVAILABLE."""
    import grpc

    from tests.support.connector import Api, create_request, inprocess_server

    broken = Api(sandbox.url, sandbox.org, sandbox.token + "\nsecond-line")
    async with inprocess_server(broken) as server:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await server.tasks.CreateTask(create_request("success"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "line break" in (caught.value.details() or "") and sandbox.token not in (caught.value.details() or "")
    assert sandbox.stats()["jobs_created"] == 0


def test_config_show_tells_the_api_timeout_and_where_it_came_from(run_cli: CliRunner) -> None:
    import json

    shown = json.loads(run_cli("config", "show", "-o", "json").stdout)["settings"]
    assert shown["api_timeout"] == {"value": "30s", "source": "default"}
    assert run_cli("config", "set", "api_timeout", "2m").returncode == 0
    shown = json.loads(run_cli("config", "show", "-o", "json", env={"PERIANCTL_API_TIMEOUT": "45s"}).stdout)
    assert shown["settings"]["api_timeout"] == {"value": "45s", "source": "env PERIANCTL_API_TIMEOUT"}
