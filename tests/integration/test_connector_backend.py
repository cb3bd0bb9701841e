"""Every job command through ``--connector``, for any job id, on one gRPC channel per command.

A real ``perianctl serve`` (in-process grpc.aio on loopback) in front of the sandbox, behind a TCP
relay that counts the connections the CLI opens (a gRPC channel is one connection) and can go down
and come back (a connector outage). The jobs are created directly at the sandbox, as another user
or a Flyte workflow would: this machine's journal has never heard of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.plugins.cli import CliEnv, CliResult, CliRunner, assert_one_line_error
from tests.support import connector as support
from tests.support.tcpproxy import TcpRelay
from tests.support.watch import cancel, create_many, unknown_job_id

pytestmark = pytest.mark.timeout(180)


async def cli(run_cli: CliRunner, *args: str) -> CliResult:
    return await asyncio.to_thread(run_cli, *args)


@contextlib.asynccontextmanager
async def relayed_serve(sandbox: Any) -> AsyncIterator[TcpRelay]:
    """``perianctl serve`` for ``sandbox``, reached through a :class:`TcpRelay`."""
    from perianctl.connector.server import start
    from perianctl.connector.settings import ConnectorSettings, ServeOptions

    settings = ConnectorSettings(api_url=sandbox.url, organization=sandbox.org, token=sandbox.token)
    running = await start(ServeOptions(host="127.0.0.1", port=0, metrics_port=0, connector=settings))
    relay = await TcpRelay(running.port).start()
    try:
        yield relay
    finally:
        await relay.close()
        await running.shutdown(grace=1)


async def one_channel(relay: TcpRelay, run_cli: CliRunner, *args: str) -> CliResult:
    """Run a CLI command through the relay; it must have opened exactly one connection."""
    before = relay.accepted
    result = await cli(run_cli, *args, "--connector", relay.target)
    assert relay.accepted - before == 1, (relay.accepted - before, result)
    return result


async def test_job_commands_follow_any_job_through_one_channel(shared_sandbox: Any, run_cli: CliRunner) -> None:
    sb = shared_sandbox
    [ok] = create_many(sb, 1, "success", duration=0.2)
    [bad] = create_many(sb, 1, "fail", duration=0.2)
    [slow] = create_many(sb, 1, "slow", duration=60)
    async with relayed_serve(sb) as relay:
        r = await one_channel(relay, run_cli, "wait", ok, "--interval", "0.2", "-o", "json")
        assert r.returncode == 0, r
        record = json.loads(r.stdout)  # the final state, as `get --connector -o json` shows it
        assert (record["id"], record["phase"], record["status"]) == (ok, "SUCCEEDED", "Done"), r
        assert f"{ok} " in r.stderr and "succeeded" in r.stderr  # a line per transition, and the outcome

        r = await one_channel(relay, run_cli, "wait", bad, "--interval", "0.2")
        assert r.returncode == 3, r
        assert f"error: job {bad} ended UserError" in r.stderr

        r = await one_channel(relay, run_cli, "watch", ok, "--interval", "0.2")
        assert r.returncode == 0, r
        assert f"{ok} Done (SUCCEEDED)" in r.stdout

        r = await one_channel(relay, run_cli, "get", ok, bad, "-o", "json")
        assert r.returncode == 0, r
        assert [(j["id"], j["phase"]) for j in json.loads(r.stdout)] == [(ok, "SUCCEEDED"), (bad, "FAILED")]

        expected = sb.get_job(ok)["logs"]
        assert expected
        r = await one_channel(relay, run_cli, "logs", ok)
        assert r.returncode == 0 and r.stdout.strip() == expected.strip(), r

        # Following a job that runs for a while polls many times: still one channel (it was two per poll).
        [running] = create_many(sb, 1, "success", duration=1.5)
        r = await one_channel(relay, run_cli, "logs", running, "--follow", "--interval", "0.1")
        assert r.returncode == 0 and f"job {running} finished: SUCCEEDED" in r.stderr, r
        assert r.stdout.strip() == sb.get_job(running)["logs"].strip()

        sb.wait_for_status(slow, ["Running"])
        r = await one_channel(relay, run_cli, "delete", slow, "--yes")
        assert r.returncode == 0 and "DeleteTask OK" in r.stderr, r
        assert sb.wait_for_status(slow, ["Cancelled"])["status"] == "Cancelled"
        r = await one_channel(relay, run_cli, "wait", slow, "--interval", "0.2")
        assert r.returncode == 4, r

        # What was seen through the connector is in the journal: --history, and prefixes resolve from it.
        r = await cli(run_cli, "get", ok[:8], "--history", "--connector", relay.target, "-o", "json")
        assert r.returncode == 0, r
        assert [t["status"] for t in json.loads(r.stdout)][-1] == "Done"


def test_list_through_a_connector_is_a_usage_error(run_cli: CliRunner) -> None:
    r = run_cli("list", "--connector", "127.0.0.1:1")
    assert_one_line_error(r, 2)
    assert r.stderr.splitlines() == [
        "error: list is not possible through a connector: the connector protocol has "
        "no list call; use list without --connector"
    ], r
    r = run_cli("watch", "--all", "--connector", "127.0.0.1:1")
    assert_one_line_error(r, 2)
    assert len(r.stderr.splitlines()) == 1 and "watch --all is not possible through a connector" in r.stderr


def test_a_connector_that_stays_down_ends_wait_like_a_perian_outage(run_cli: CliRunner) -> None:
    target = f"127.0.0.1:{support.free_port()}"
    r = run_cli("wait", unknown_job_id(), "--connector", target, "--interval", "0.2", "--max-unavailable", "1s")
    assert_one_line_error(r, 8)
    error = next(line for line in r.stderr.splitlines() if line.startswith("error:"))
    assert error.startswith(f"error: connector {target} unavailable for "), r
    assert "failed refreshes" in error and "giving up" in error
    assert "stale: API unreachable, retrying" in r.stderr  # the outage's first line, as for PERIAN


async def test_a_connector_outage_during_wait_is_reported_and_survived(shared_sandbox: Any, cli_env: CliEnv) -> None:
    sb = shared_sandbox
    [slow] = create_many(sb, 1, "slow", duration=120)
    async with relayed_serve(sb) as relay:
        proc = subprocess.Popen(
            [sys.executable, "-m", "perianctl", "wait", slow, "--connector", relay.target, "--interval", "0.2"],
            env=cli_env.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        seen: list[str] = []

        async def until(wanted: Callable[[str], bool]) -> str:
            assert proc.stderr is not None
            while True:
                line = await asyncio.to_thread(proc.stderr.readline)
                assert line, "wait ended early:\n" + "".join(seen)
                seen.append(line)
                if wanted(line):
                    return line

        try:
            await until(lambda line: slow in line)  # the first observation
            await relay.down()
            warning = await until(lambda line: "stale" in line)
            assert warning.startswith("warning: ") and "stale: API unreachable, retrying" in warning
            assert f"via connector {relay.target}" in warning
            await relay.up()
            back = await until(lambda line: "reachable again" in line)
            assert f"connector {relay.target} reachable again" in back
            cancel(sb, slow)
            code = await asyncio.to_thread(proc.wait, 60)
        finally:
            if proc.poll() is None:
                proc.kill()
        rest = proc.stderr.read() if proc.stderr else ""
        assert code == 4, "".join(seen) + rest
        assert "transient API error" in rest  # the closing line counts the outage's failed refreshes
