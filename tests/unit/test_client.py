"""The async PERIAN client without a server: auth headers, and answers from an in-process transport.

Against the real sandbox over loopback: tests/integration/test_client.py.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from perianctl.perian.client import PerianClient, auth_headers
from tests.plugins.sandbox import SandboxFactory
from tests.support.client import FAST


def test_auth_headers_keep_an_explicit_bearer() -> None:
    assert auth_headers("o", "t")["Authorization"] == "Bearer t"
    assert auth_headers("o", "Bearer t")["Authorization"] == "Bearer t"
    assert auth_headers("o", "t")["X-PERIAN-AUTH-ORG"] == "o"


async def test_retry_after_is_honoured(sandbox_factory: SandboxFactory) -> None:
    """A 429 with Retry-After: the client waits at least that long before trying again."""
    calls: list[float] = []
    loop = asyncio.get_running_loop()
    state = {"n": 0}

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(loop.time())
        state["n"] += 1
        if state["n"] == 1:
            return httpx.Response(429, headers={"Retry-After": "0.4"}, json={"detail": "slow down"})
        return httpx.Response(200, json={"status_code": 200, "jobs": [], "pagination": {}})

    async with PerianClient("http://perian.test", "o", "t", retry=FAST, transport=httpx.MockTransport(handler)) as c:
        await c.list_jobs()
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.35


async def test_garbage_responses_are_protocol_errors() -> None:
    from perianctl.errors import ProtocolError

    bodies = [b"<html>oops</html>", b"[1,2]", b'{"jobs": "nope", "status_code": 200}', b"\xff\xfe"]
    for body in bodies:
        transport = httpx.MockTransport(lambda req, body=body: httpx.Response(200, content=body))
        async with PerianClient("http://perian.test", "o", "t", retry=FAST, transport=transport) as c:
            with pytest.raises(ProtocolError):
                await c.list_jobs()
    # Unknown fields and unknown statuses parse fine.
    payload = {"status_code": 200, "jobs": [{"id": "x", "status": "Hibernating", "new_field": {"a": 1}}]}
    transport = httpx.MockTransport(lambda req: httpx.Response(200, json=payload))
    async with PerianClient("http://perian.test", "o", "t", retry=FAST, transport=transport) as c:
        job = (await c.list_jobs()).jobs[0]
    assert job.status == "Hibernating" and job.workload_status is None
