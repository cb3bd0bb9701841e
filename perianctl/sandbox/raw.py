"""Test-only: serve a job's record with odd content, to test clients against what PERIAN really sends.

The real service answers things the sandbox never would on its own: ``null`` where a secret was
(``docker_registry_credentials.password: null``), a number where a string is expected, a status
nobody has documented yet, a field nested the wrong way, an item that is not an object. A
client must degrade that one job, never the whole list. This admin route makes any stored job
look like that over real HTTP:

``PUT /_sandbox/jobs/{job_id}/raw`` with a JSON body
    an object is deep-merged into the job's served record (``null`` *sets* ``null``; it does not
    delete); any other JSON value (a number, a string, a list) replaces the whole record.
    Answers the override now in force. Unknown job: 400 with PERIAN's "No job found" envelope; a
    body the sandbox could not serve (NaN, a lone surrogate, ...: :mod:`.strict`): 422.
``DELETE /_sandbox/jobs/{job_id}/raw``
    serve the job as stored again.

Overrides live in memory (gone after a restart) and change only what ``GET /job`` and
``GET /job/{id}`` serve; the stored job, its runtime and its status changes are untouched, so
a job keeps running and the served record keeps following it under the override. Like every
``/_sandbox/*`` route it needs no auth: never expose a sandbox beyond loopback.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from perianctl.perian import models as m
from perianctl.sandbox import wire
from perianctl.sandbox.asgi import ASGIApp, Message, Receive, Scope, Send
from perianctl.sandbox.strict import BodyTooLarge, InvalidJson, read_json, too_large_response

_SERVED = re.compile(r"^/job(/[^/]+)?/?$")
_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "No such job (PERIAN's 'No job found' envelope)",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
}


class RawOverrides:
    """Job id → the JSON to merge into (or put in place of) its served record."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, Any] = {}

    def set(self, job_id: str, value: Any) -> Any:
        with self._lock:
            current = self._by_id.get(job_id)
            merged = _merge(current, value) if isinstance(current, dict) and isinstance(value, dict) else value
            self._by_id[job_id] = merged
            return merged

    def clear(self, job_id: str) -> None:
        with self._lock:
            self._by_id.pop(job_id, None)

    def __bool__(self) -> bool:
        return bool(self._by_id)

    def apply(self, item: Any) -> Any:
        job_id = item.get("id") if isinstance(item, dict) else None
        with self._lock:
            override = self._by_id.get(job_id) if isinstance(job_id, str) else None
        if override is None:
            return item
        return _merge(item, override) if isinstance(override, dict) else override


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        out[key] = _merge(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out


class RawOverrideMiddleware:
    """Rewrites the ``jobs`` of successful ``GET /job`` and ``GET /job/{id}`` answers; idle when unused."""

    def __init__(self, app: ASGIApp, overrides: RawOverrides) -> None:
        self.app = app
        self.overrides = overrides

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "GET"
            or not self.overrides
            or not _SERVED.match(scope.get("path", ""))
        ):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    await self._send_rewritten(send, start, b"".join(chunks))
            else:
                await send(message)

        await self.app(scope, receive, capture)

    async def _send_rewritten(self, send: Send, start: Message | None, body: bytes) -> None:
        if start is None:
            return
        if start.get("status") == 200:
            try:
                payload = json.loads(body)
            except ValueError:
                payload = None
            if isinstance(payload, dict) and isinstance(payload.get("jobs"), list):
                payload["jobs"] = [self.overrides.apply(item) for item in payload["jobs"]]
                body = json.dumps(payload).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})


def install(app: FastAPI) -> None:
    """Add the admin routes and the middleware to a sandbox app (``app.state.sandbox`` must be set)."""
    overrides = RawOverrides()
    app.add_middleware(RawOverrideMiddleware, overrides=overrides)

    def _known(request: Request, job_id: str) -> bool:
        state = request.app.state.sandbox
        store = state.store
        try:
            return store is not None and store.get(job_id, state.organization) is not None
        except (ValueError, UnicodeError):  # an id the database cannot even hold
            return False

    @app.put(
        "/_sandbox/jobs/{job_id}/raw",
        tags=["sandbox"],
        responses=_RESPONSES,
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {}}}}},
    )
    async def put_raw(job_id: str, request: Request) -> JSONResponse:
        """Serve this job with odd content (test-only; see :mod:`perianctl.sandbox.raw`)."""
        try:  # strictly: what the override holds must be servable (no NaN, lone surrogates, ...)
            value = await read_json(request)
        except BodyTooLarge:
            return too_large_response()
        except InvalidJson as exc:
            return JSONResponse(wire.failure(422, f"invalid override: {exc}"), status_code=422)
        if not _known(request, job_id):
            return JSONResponse(wire.failure(400, m.DETAIL_NO_JOB_FOUND), status_code=400)
        return JSONResponse({"job_id": job_id, "override": overrides.set(job_id, value)})

    @app.delete("/_sandbox/jobs/{job_id}/raw", tags=["sandbox"])
    async def delete_raw(job_id: str) -> JSONResponse:
        overrides.clear(job_id)
        return JSONResponse({"job_id": job_id, "override": None})
