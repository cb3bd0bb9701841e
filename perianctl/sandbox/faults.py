"""Latency and fault injection, as plain ASGI middleware in front of the PERIAN routes.

Reliability code (retries, idempotent create, cancel after a lost reply) can only be tested
against a server that fails on purpose. Three kinds of fault:

* ``500`` / ``503`` -- an error envelope with that status (what an overloaded API sends);
* ``reset`` -- the connection is dropped mid-response: the client has sent the request but gets
  no usable reply. An httpx client sees a transport error (``RemoteProtocolError``), never a clean
  HTTP response.

and two phases: ``before`` (the fault replaces the request: nothing happens server-side) and
``after`` (the request is handled -- a job may be created -- and then the reply is lost). The
admin routes (``/healthz``, ``/_sandbox/*``) are never delayed or failed.

Draws come from a seeded ``random.Random`` (one stream for faults, one for latency), so with a
fixed ``seed`` and a sequential client the same requests fail on every run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

from perianctl.perian import models as m
from perianctl.sandbox.asgi import ASGIApp, Message, Receive, Scope, Send
from perianctl.sandbox.config import FaultConfig

_JOB_ID = re.compile(r"^/job/[^/]+$")
_JOB_CANCEL = re.compile(r"^/job/[^/]+/cancel$")


def classify(method: str, path: str) -> str | None:
    """The endpoint name fault options use, or ``None`` for routes that are never faulted."""
    path = path.rstrip("/") or "/"
    if path == "/job":
        return "create" if method == "POST" else "list" if method == "GET" else None
    if _JOB_CANCEL.match(path):
        return "cancel"
    if _JOB_ID.match(path):
        return "get"
    if path == "/instance-type" or path.startswith("/instance-type/"):
        return "instance-type"
    if path == "/accelerator-type" or path.startswith("/accelerator-type/"):
        return "accelerator-type"
    if path.startswith("/billing/"):
        return "billing"
    return None


class InjectedReset(Exception):
    """Raised after a response has started, so the server drops the connection (a 'reset')."""


class _ResetLogFilter(logging.Filter):
    """Keep uvicorn's error log quiet about resets we caused on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, InjectedReset)


def install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _ResetLogFilter) for f in logger.filters):
        logger.addFilter(_ResetLogFilter())


@dataclass(frozen=True)
class Fault:
    kind: str
    phase: str


class FaultState:
    """The live fault configuration and what was injected (read by ``/_sandbox/stats``)."""

    def __init__(self, config: FaultConfig) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self.injected_by_endpoint: Counter[str] = Counter()
        # Requests held by injected latency right now, by endpoint: lets a test wait for "N calls
        # are waiting on PERIAN" as an event instead of sleeping and hoping.
        self.delaying: Counter[str] = Counter()
        self._release: asyncio.Event | None = None
        self.configure(config)

    def configure(self, config: FaultConfig) -> None:
        """Apply ``config``. Switching latency off also releases the requests it holds right now,
        so a test can keep a call "waiting on PERIAN" exactly as long as it needs (an event)."""
        config.validate()
        with self._lock:
            self.config = config
            self._faults = random.Random(config.seed)
            self._latency = random.Random(None if config.seed is None else config.seed + 1)
            release, self._release = (self._release, None) if config.latency[1] <= 0 else (None, self._release)
        if release is not None:
            release.set()  # configure runs on the server's event loop (the PUT handler)

    async def hold(self, endpoint: str, delay: float) -> None:
        """Hold one request for ``delay`` seconds, or until latency is switched off."""
        with self._lock:
            if self._release is None:
                self._release = asyncio.Event()
            release = self._release
        self.delaying[endpoint] += 1  # one event loop: no lock needed
        try:
            await asyncio.wait_for(release.wait(), delay)
        except TimeoutError:
            pass
        finally:
            self.delaying[endpoint] -= 1

    def latency_for(self, endpoint: str) -> float:
        config = self.config
        low, high = config.latency
        if high <= 0 or endpoint not in config.latency_endpoints:
            return 0.0
        with self._lock:
            return low if high == low else self._latency.uniform(low, high)

    def draw(self, endpoint: str) -> Fault | None:
        config = self.config
        with self._lock:
            self.requests[endpoint] += 1
            if config.rate <= 0 or endpoint not in config.endpoints:
                return None
            if self._faults.random() >= config.rate:
                return None
            kind = self._faults.choice(config.kinds)
            phase = self._faults.choice(("before", "after")) if config.phase == "mixed" else config.phase
            self.injected[kind] += 1
            self.injected_by_endpoint[endpoint] += 1
        return Fault(kind, phase)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            config = self.config
            return {
                "injected": sum(self.injected.values()),
                "by_kind": dict(self.injected),
                "by_endpoint": dict(self.injected_by_endpoint),
                "config": {
                    "latency": list(config.latency),
                    "latency_endpoints": sorted(config.latency_endpoints),
                    "rate": config.rate,
                    "kinds": list(config.kinds),
                    "endpoints": sorted(config.endpoints),
                    "phase": config.phase,
                    "seed": config.seed,
                },
            }


class FaultMiddleware:
    """ASGI middleware: delay, then maybe fail, requests to the PERIAN routes."""

    def __init__(self, app: ASGIApp, state: FaultState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = classify(scope["method"], scope["path"])
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        delay = self.state.latency_for(endpoint)
        if delay > 0:
            await self.state.hold(endpoint, delay)
        fault = self.state.draw(endpoint)
        if fault is None:
            await self.app(scope, receive, send)
            return
        if fault.phase == "after":

            async def lose_reply(message: Message) -> None:
                return None

            try:
                await self.app(scope, receive, lose_reply)
            except Exception:  # the reply is lost anyway
                logging.getLogger("perianctl.sandbox").exception("error while handling a request before a fault")
        await self._emit(fault, send)

    @staticmethod
    async def _emit(fault: Fault, send: Send) -> None:
        if fault.kind == "reset":
            # Start a response, then fail: the server closes the connection with the body missing.
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"512")],
                }
            )
            raise InjectedReset("injected connection reset")
        status = int(fault.kind)
        body = json.dumps(
            {
                "status": "Error",
                "message": m.MESSAGE_SERVER_ERROR,
                "detail": f"Injected fault: HTTP {status} (PERIAN sandbox fault injection)",
                "status_code": status,
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
