"""The Poller against the sandbox over real HTTP: request counts, transitions, staleness, journal.

Request counts come from the sandbox's own per-endpoint counters (``/_sandbox/stats``), so they
include every retry the client made.
"""

from __future__ import annotations

import asyncio

import pytest

from perianctl.errors import ExitCode, NotFoundError, UnavailableError
from perianctl.jobs.follow import Poller, WaitFor, wait_for
from perianctl.journal import open_journal
from perianctl.perian.client import PerianClient, RetryPolicy
from tests.plugins.cli import CliEnv
from tests.plugins.sandbox import SandboxHandle
from tests.support.watch import create_many, requests_by_endpoint, unknown_job_id

FAST_RETRY = RetryPolicy(attempts=2, timeout=5.0, wait_initial=0.05, wait_max=0.1)


def _client(sandbox: SandboxHandle) -> PerianClient:
    return PerianClient(sandbox.url, sandbox.org, sandbox.token, retry=FAST_RETRY)


async def test_many_jobs_cost_one_list_request_per_refresh(sandbox: SandboxHandle) -> None:
    ids = create_many(sandbox, 12, "success", duration=1.0)
    async with _client(sandbox) as client:
        poller = Poller(client, ids, interval=0.1)
        before = requests_by_endpoint(sandbox)
        lists = gets = 0
        while not poller.all_terminal:
            pending = len(poller.pending())
            result = await poller.refresh()
            assert result.ok, result.error
            if pending > poller.direct_get_threshold:
                assert (result.list_requests, result.get_requests) == (1, 0)
            else:  # the last few: a GET each is cheaper than a page full of other jobs
                assert (result.list_requests, result.get_requests) == (0, pending)
            lists += result.list_requests
            gets += result.get_requests
            assert lists + gets < 200
            await asyncio.sleep(0.05)
        after = requests_by_endpoint(sandbox)
    assert lists >= 2
    assert after.get("list", 0) - before.get("list", 0) == lists
    assert after.get("get", 0) - before.get("get", 0) == gets
    assert {w.status for w in poller.watched()} == {"Done"}
    # Finished jobs are not fetched again: with nothing pending a refresh costs nothing.
    assert (await poller.refresh()).requests == 0


async def test_depth_hint_makes_later_sweeps_one_request(sandbox: SandboxHandle) -> None:
    watched = create_many(sandbox, 4, "slow", duration=30)
    create_many(sandbox, 30)  # newer jobs push the watched ones down the newest-first list
    async with _client(sandbox) as client:
        poller = Poller(client, watched, interval=0.1)
        first = await poller.refresh()
        assert first.ok and first.list_requests >= 2 and first.get_requests == 0
        second = await poller.refresh()
        assert (second.list_requests, second.get_requests) == (1, 0)
        assert all(w.status is not None for w in poller.watched())


async def test_few_jobs_use_direct_gets_and_unknown_id_is_not_found(sandbox: SandboxHandle) -> None:
    job = sandbox.create_job(scenario="success")
    async with _client(sandbox) as client:
        poller = Poller(client, [job], interval=0.1)
        result = await poller.refresh()
        assert (result.list_requests, result.get_requests) == (0, 1)
        ghost = Poller(client, [job, unknown_job_id(), *create_many(sandbox, 3)])
        with pytest.raises(NotFoundError) as info:
            await ghost.refresh()
        assert info.value.exit_code is ExitCode.NOT_FOUND


async def test_transient_errors_keep_state_mark_stale_then_recover(sandbox: SandboxHandle) -> None:
    ids = create_many(sandbox, 5, "slow", duration=30)
    async with _client(sandbox) as client:
        poller = Poller(client, ids, interval=0.1, give_up_after=60)
        assert (await poller.refresh()).ok
        seen = {w.job_id: w.status for w in poller.watched()}
        sandbox.set_faults(rate=1.0, kinds=["503"], endpoints=["list", "get"])
        failed = await poller.refresh()
        assert not failed.ok and "503" in (failed.error or "")
        assert poller.stale and poller.stats.errors == 1
        assert {w.job_id: w.status for w in poller.watched()} == seen  # last known state kept
        assert poller.next_delay() > 0
        sandbox.set_faults(rate=0.0)
        assert (await poller.refresh()).ok
        assert not poller.stale and poller.stats.errors == 1


async def test_gives_up_after_max_unavailable(sandbox: SandboxHandle) -> None:
    job = sandbox.create_job(scenario="slow", duration=30)
    sandbox.set_faults(rate=1.0, kinds=["503"], endpoints=["get"])
    async with _client(sandbox) as client:
        poller = Poller(client, [job], interval=0.05, max_backoff=0.1, give_up_after=0.3)
        with pytest.raises(UnavailableError) as info:
            await wait_for(poller, wait_for=WaitFor.TERMINAL)
    assert info.value.exit_code is ExitCode.UNAVAILABLE
    assert "giving up" in info.value.message


async def test_transitions_are_journalled_in_order(
    sandbox: SandboxHandle, cli_env: CliEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERIANCTL_STATE_DIR", str(cli_env.state_dir))
    job = sandbox.create_job(scenario="fail", duration=0.3)
    with open_journal() as journal:
        async with _client(sandbox) as client:
            poller = Poller(client, [job], interval=0.05, journal=journal, api_url=sandbox.url)
            result = await wait_for(poller)
        history = journal.history(job)
    assert result.exit_code is ExitCode.JOB_FAILED
    statuses = [t.status for t in history]
    assert statuses[-1] == "UserError" and len(statuses) == len(set(statuses))
    order = ["Queued", "Initializing", "Running", "UserError"]
    assert [s for s in order if s in statuses] == statuses  # a subsequence of the lifecycle
    assert [t.at for t in history] == sorted(t.at for t in history)
    assert history[-1].phase == "FAILED" and (history[-1].message or "").startswith("UserError")
