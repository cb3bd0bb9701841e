"""An impolite PERIAN: per-endpoint slowness, stalls, refused connections and 429 storms.

The fault injection of :mod:`perianctl.sandbox.faults` models an API that fails quickly. What
breaks a connector in production is an API that is merely *impolite*:

``slow``
    The request is handled after ``seconds``, **whether or not the caller is still there**. The
    body is read first, so a create whose caller hung up (a 10 s gRPC deadline, a 6 s read timeout)
    is still committed -- what PERIAN does, and what the fault injection's ``--latency`` cannot
    model: it sleeps *before* the app reads the body, so a hung-up caller cancels the work.
    ``commit: false`` restores that: if the caller hung up during the wait, nothing is done.
``stall``
    The request is accepted and never answered. After ``seconds`` the connection is closed without
    a single byte of reply; with ``commit`` (the default) the work is done at that moment.
``refuse``
    For ``seconds`` from when the rule is set, new TCP connections get ``ECONNREFUSED``: the
    listening socket is closed, idle keep-alive connections are closed, and after the window the
    same port is bound again. Applies to every endpoint (``"*"``), the admin routes included.
``429``
    Matching requests get a PERIAN-shaped ``429`` with ``Retry-After: retry_after``. ``count``
    and/or ``seconds`` (a window from when the rule is set) bound the storm.

A rule is ``{"endpoint", "mode", "seconds", "count", "retry_after", "commit"}``; ``count`` limits
a rule to the first N requests it matches (``null`` = all). Rules are checked in order and the
first live one that matches a request applies to it. The rule set is replaced atomically (admin
``PUT /_sandbox/impolite``, or ``--impolite`` at start-up) after validating all of it. The admin
routes (``/healthz``, ``/_sandbox/*``) are never slowed or refused with 429.

Compact syntax (``--impolite`` and ``perianctl sandbox impolite``)::

    ENDPOINT=MODE[:ITEM[,ITEM...]]     ITEM = DURATION | count=N | retry-after=DURATION | commit=yes|no

    create=slow:7s   create=stall:15s,count=1   get=slow:7s   *=refuse:10s
    *=429:count=20,retry-after=2   cancel=slow:3s,commit=no

This module needs no FastAPI: it is plain ASGI middleware plus the rule model, so the CLI can
parse rules without importing the server stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from perianctl.sandbox.asgi import ASGIApp, Message, Receive, Scope, Send
from perianctl.sandbox.config import ENDPOINTS, SandboxConfigError

MODES = ("slow", "stall", "refuse", "429")
RULE_ENDPOINTS = ("*", *ENDPOINTS)
RULE_KEYS = frozenset({"endpoint", "mode", "seconds", "count", "retry_after", "commit"})
MAX_SECONDS = 24 * 3600.0
DEFAULT_RETRY_AFTER = 1.0
DETAIL_TOO_MANY_REQUESTS = "Too many requests, please retry later"
log = logging.getLogger("perianctl.sandbox")


class ImpoliteRuleError(SandboxConfigError):
    """A rule that cannot work; one line fit for a user (the admin API answers it as a 422)."""


# --------------------------------------------------------------------------- rules


def _number(value: Any, what: str, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ImpoliteRuleError(f"{what} must be a number, got {json.dumps(value)}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or number > MAX_SECONDS:
        raise ImpoliteRuleError(f"{what} must be a finite number of seconds between 0 and {MAX_SECONDS:g}, got {value}")
    return number


@dataclass(frozen=True)
class ImpoliteRule:
    """One impolite behaviour (see the module docstring)."""

    endpoint: str
    mode: str
    seconds: float = 0.0
    count: int | None = None
    retry_after: float = DEFAULT_RETRY_AFTER
    commit: bool = True

    def validate(self) -> ImpoliteRule:
        if self.endpoint not in RULE_ENDPOINTS:
            raise ImpoliteRuleError(f"unknown endpoint '{self.endpoint}' (choose from {', '.join(RULE_ENDPOINTS)})")
        if self.mode not in MODES:
            raise ImpoliteRuleError(f"unknown mode '{self.mode}' (choose from {', '.join(MODES)})")
        _number(self.seconds, "seconds")
        _number(self.retry_after, "retry_after")
        if self.count is not None and (
            isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1
        ):
            raise ImpoliteRuleError(f"count must be a whole number >= 1 or null, got {self.count!r}")
        if self.mode == "refuse":
            if self.endpoint != "*":
                raise ImpoliteRuleError("refuse closes the port for every endpoint: use endpoint '*'")
            if self.seconds <= 0:
                raise ImpoliteRuleError("refuse needs a window: seconds > 0")
            if self.count is not None:
                raise ImpoliteRuleError("refuse is bounded by seconds, not count")
        if self.mode in ("slow", "stall") and self.seconds <= 0:
            raise ImpoliteRuleError(f"{self.mode} needs seconds > 0")
        return self

    @classmethod
    def from_json(cls, data: Any) -> ImpoliteRule:
        """Strict: unknown keys, wrong types, NaN/Infinity and fields that do not apply are errors."""
        if not isinstance(data, dict):
            raise ImpoliteRuleError(f"a rule must be a JSON object, got {json.dumps(data)}")
        unknown = sorted(set(data) - RULE_KEYS)
        if unknown:
            known = ", ".join(sorted(RULE_KEYS))
            raise ImpoliteRuleError(f"unknown rule field(s) {', '.join(unknown)} (known: {known})")
        for key in ("endpoint", "mode"):
            if not isinstance(data.get(key), str):
                raise ImpoliteRuleError(f"a rule needs '{key}' as a string")
        mode = data["mode"].strip().lower()
        if "retry_after" in data and mode != "429":
            raise ImpoliteRuleError("retry_after applies to mode 429 only")
        commit = data.get("commit", True)
        if not isinstance(commit, bool):
            raise ImpoliteRuleError(f"commit must be true or false, got {json.dumps(commit)}")
        count = data.get("count")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
            raise ImpoliteRuleError(f"count must be a whole number >= 1 or null, got {json.dumps(count)}")
        seconds = _number(data.get("seconds", 0.0), "seconds")
        retry_after = _number(data.get("retry_after", DEFAULT_RETRY_AFTER), "retry_after")
        assert seconds is not None and retry_after is not None
        return cls(
            endpoint=data["endpoint"].strip().lower(),
            mode=mode,
            seconds=seconds,
            count=count,
            retry_after=retry_after,
            commit=commit,
        ).validate()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "endpoint": self.endpoint,
            "mode": self.mode,
            "seconds": self.seconds,
            "count": self.count,
            "commit": self.commit,
        }
        if self.mode == "429":
            data["retry_after"] = self.retry_after
        return data

    def spec(self) -> str:
        """The compact form; ``parse_rule(rule.spec()) == rule``."""
        items: list[str] = []
        if self.seconds:
            items.append(f"{_plain(self.seconds)}s")
        if self.count is not None:
            items.append(f"count={self.count}")
        if self.mode == "429" and self.retry_after != DEFAULT_RETRY_AFTER:
            items.append(f"retry-after={_plain(self.retry_after)}s")
        if not self.commit:
            items.append("commit=no")
        return f"{self.endpoint}={self.mode}" + (":" + ",".join(items) if items else "")


def _plain(seconds: float) -> str:
    """``7.0`` → ``7``, ``0.25`` → ``0.25``, ``1e-05`` → ``0.00001``: exact and re-parseable."""
    from decimal import Decimal

    return format(Decimal(repr(float(seconds))).normalize(), "f")


def _duration(text: str, what: str) -> float:
    from perianctl.timeparse import NANOS, parse_duration_nanos

    try:
        seconds = parse_duration_nanos(text) / NANOS
    except ValueError as exc:
        raise ImpoliteRuleError(f"{what}: {exc}") from None
    checked = _number(seconds, what)
    assert checked is not None
    return checked


RULE_SYNTAX = (
    "ENDPOINT=MODE[:ITEM,...] with ENDPOINT one of "
    + ", ".join(RULE_ENDPOINTS)
    + ", MODE one of "
    + ", ".join(MODES)
    + ", ITEM a duration (7s), count=N, retry-after=DURATION or commit=yes|no; "
    "e.g. create=slow:7s, create=stall:15s,count=1, *=refuse:10s, *=429:count=20,retry-after=2"
)


def parse_rule(text: str) -> ImpoliteRule:
    """Parse the compact syntax (module docstring); raises :class:`ImpoliteRuleError`."""
    raw = text.strip()
    head, sep, tail = raw.partition(":")
    endpoint, eq, mode = head.partition("=")
    if not eq or not endpoint.strip() or not mode.strip():
        raise ImpoliteRuleError(f"invalid impolite rule '{raw}': expected {RULE_SYNTAX}")
    data: dict[str, Any] = {"endpoint": endpoint.strip().lower(), "mode": mode.strip().lower()}
    for item in (part.strip() for part in tail.split(",")) if sep else ():
        if not item:
            continue
        key, has_value, value = item.partition("=")
        key = key.strip().lower().replace("_", "-")
        if not has_value:
            if "seconds" in data:
                raise ImpoliteRuleError(f"invalid impolite rule '{raw}': two durations")
            data["seconds"] = _duration(item, f"rule '{raw}'")
        elif key == "count":
            if not value.strip().isdigit():
                raise ImpoliteRuleError(f"invalid impolite rule '{raw}': count must be a whole number")
            data["count"] = int(value)
        elif key == "retry-after":
            data["retry_after"] = _duration(value, f"rule '{raw}' retry-after")
        elif key == "commit":
            flag = value.strip().lower()
            if flag not in ("yes", "no", "true", "false", "1", "0"):
                raise ImpoliteRuleError(f"invalid impolite rule '{raw}': commit must be yes or no")
            data["commit"] = flag in ("yes", "true", "1")
        elif key in ("seconds", "for"):
            data["seconds"] = _duration(value, f"rule '{raw}'")
        else:
            raise ImpoliteRuleError(f"invalid impolite rule '{raw}': unknown item '{item}' (expected {RULE_SYNTAX})")
    try:
        return ImpoliteRule.from_json(data)
    except ImpoliteRuleError as exc:
        raise ImpoliteRuleError(f"invalid impolite rule '{raw}': {exc}") from None


def rules_from_json(data: Any) -> tuple[ImpoliteRule, ...]:
    """The body of ``PUT /_sandbox/impolite``: ``{"rules": [...]}`` (or a bare list); a rule is a JSON
    object (:meth:`ImpoliteRule.to_json`) or a string in the compact syntax (``"get=slow:7s"``)."""
    if isinstance(data, dict):
        extra = sorted(set(data) - {"rules"})
        if extra:
            raise ImpoliteRuleError(f'unknown field(s) {", ".join(extra)}: expected {{"rules": [...]}}')
        data = data.get("rules")
    if not isinstance(data, list):
        raise ImpoliteRuleError('expected {"rules": [RULE, ...]}')
    rules = []
    for index, item in enumerate(data):
        try:
            rules.append(parse_rule(item) if isinstance(item, str) else ImpoliteRule.from_json(item))
        except ImpoliteRuleError as exc:
            raise ImpoliteRuleError(f"rule {index}: {exc}") from None
    if sum(1 for r in rules if r.mode == "refuse") > 1:
        raise ImpoliteRuleError("at most one refuse rule (one window) at a time")
    return tuple(rules)


# --------------------------------------------------------------------------- live state


class Listener:
    """What a ``refuse`` window needs from the server: stop accepting, then accept again."""

    def serving(self) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    async def reopen(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class _Armed:
    rule: ImpoliteRule
    set_at: float
    hits: int = 0  # requests the rule applied to
    committed: int = 0  # of those, handled (the work was done), whether or not the reply arrived
    dropped: int = 0  # of those, not handled: the caller hung up first (commit=false, or mid-body)

    def live(self, now: float) -> bool:
        if self.rule.count is not None and self.hits >= self.rule.count:
            return False
        if self.rule.mode in ("429", "refuse") and self.rule.seconds > 0:
            return now < self.set_at + self.rule.seconds
        return True


@dataclass
class ImpoliteState:
    """The live rule set, its hit counters, and the refuse window (read by ``GET /_sandbox/impolite``)."""

    armed: list[_Armed] = field(default_factory=list)
    listener: Listener | None = None
    clock: Callable[[], float] = time.monotonic
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _window: asyncio.Task[None] | None = None
    _refusing_until: float | None = None
    set_at_wall: float | None = None
    in_flight: int = 0  # slow/stall requests not finished yet, across rule sets (their work may still land)

    def set_rules(self, rules: Iterable[ImpoliteRule]) -> None:
        """Replace the rule set (already validated). Call from the event loop (a refuse window starts here)."""
        rules = tuple(rules)
        refuse = next((r for r in rules if r.mode == "refuse"), None)
        if refuse is not None and self.listener is None:
            raise ImpoliteRuleError("refuse is not available: this server cannot close its port")
        now = self.clock()
        with self._lock:
            self.armed = [_Armed(rule, now) for rule in rules]
            self.set_at_wall = time.time() if rules else None
        self._end_window()
        if refuse is not None:
            self._start_window(refuse.seconds)

    def clear(self) -> None:
        self.set_rules(())

    async def apply(self, rules: Iterable[ImpoliteRule]) -> None:
        """:meth:`set_rules` for the admin API: when it answers, a refuse window is in force.

        Closing idle keep-alive connections completes on the next turns of the event loop; yielding
        here first means a pooled client can never slip a request onto one after the reply.
        """
        self.set_rules(rules)
        for _ in range(3):
            await asyncio.sleep(0)

    def match(self, endpoint: str) -> _Armed | None:
        """The first live rule for ``endpoint`` (counted as a hit), or None."""
        now = self.clock()
        with self._lock:
            for armed in self.armed:
                rule = armed.rule
                if rule.mode == "refuse" or rule.endpoint not in ("*", endpoint) or not armed.live(now):
                    continue
                armed.hits += 1
                if rule.mode in ("slow", "stall"):
                    self.in_flight += 1
                return armed
        return None

    def outcome(self, armed: _Armed, *, committed: bool) -> None:
        with self._lock:
            self.in_flight -= 1
            if committed:
                armed.committed += 1
            else:
                armed.dropped += 1

    def snapshot(self) -> dict[str, Any]:
        now = self.clock()
        with self._lock:
            rules = [
                {
                    **a.rule.to_json(),
                    "spec": a.rule.spec(),
                    "hits": a.hits,
                    "committed": a.committed,
                    "dropped": a.dropped,
                    "active": a.live(now),
                }
                for a in self.armed
            ]
            refusing = self._refusing_until is not None and now < self._refusing_until
            return {
                "rules": rules,
                "set_at": self.set_at_wall,
                "in_flight": self.in_flight,
                "refusing": refusing,
                "refusing_for": round(self._refusing_until - now, 3) if refusing and self._refusing_until else 0.0,
            }

    # -- refuse window ------------------------------------------------------------

    def _start_window(self, seconds: float) -> None:
        """Refuse at once when serving (a ``PUT`` answers only once connects are refused); at
        start-up (``--impolite``, applied before the port is served) as soon as it is served."""
        assert self.listener is not None
        if self.listener.serving():
            self._close(seconds)
            self._window = asyncio.get_running_loop().create_task(self._reopen_after(seconds))
        else:
            self._window = asyncio.get_running_loop().create_task(self._reopen_after(seconds, close=True))

    def _close(self, seconds: float) -> None:
        assert self.listener is not None
        self.listener.close()
        with self._lock:
            self._refusing_until = self.clock() + seconds
            for armed in self.armed:
                if armed.rule.mode == "refuse":
                    armed.hits += 1

    async def _reopen_after(self, seconds: float, *, close: bool = False) -> None:
        if close:
            assert self.listener is not None
            while not self.listener.serving():
                await asyncio.sleep(0.01)
            self._close(seconds)
        await asyncio.sleep(seconds)
        self._window = None
        await self._reopen()

    async def _reopen(self) -> None:
        with self._lock:
            self._refusing_until = None
        if self.listener is not None:
            await self.listener.reopen()

    def _end_window(self) -> None:
        """A new rule set ends a refuse window early (the port is bound again at once)."""
        if self._window is not None:
            self._window.cancel()
            self._window = None
            asyncio.get_running_loop().create_task(self._reopen())


class UvicornListener(Listener):
    """Closes and re-binds the listening sockets of a running ``uvicorn.Server``.

    ``close`` stops accepting (the kernel then refuses connects) and closes idle keep-alive
    connections, so a client with a connection pool sees the refusal too -- as it would when the
    API restarts. Requests in progress finish. ``reopen`` binds the same address again and serves
    it with the same protocol factory, replacing the entry in ``server.servers`` so uvicorn's
    shutdown closes the new socket.
    """

    def __init__(self, server: Any, bind: Callable[[str, int], Any]) -> None:
        self.server = server
        self.bind = bind
        self._closed: list[tuple[Any, tuple[Any, ...], Any]] = []  # (asyncio server, address, factory)

    def serving(self) -> bool:
        return bool(getattr(self.server, "started", False) and getattr(self.server, "servers", None))

    def close(self) -> None:
        for aio_server in list(getattr(self.server, "servers", [])):
            sockets = aio_server.sockets or ()
            if not sockets:
                continue
            address = sockets[0].getsockname()
            factory = getattr(aio_server, "_protocol_factory", None)
            aio_server.close()
            self._closed.append((aio_server, address, factory))
        state = getattr(self.server, "server_state", None)
        for connection in list(getattr(state, "connections", ())):
            with contextlib.suppress(Exception):
                connection.shutdown()

    async def reopen(self) -> None:
        loop = asyncio.get_running_loop()
        closed, self._closed = self._closed, []
        for old, address, factory in closed:
            if getattr(self.server, "should_exit", False) or factory is None:
                continue
            sock = None
            for _ in range(100):  # the port may linger for a moment; never give up quietly
                try:
                    sock = self.bind(address[0], address[1])
                    break
                except Exception as exc:  # SandboxStartError or OSError
                    log.warning("impolite: cannot re-bind %s:%s yet (%s)", address[0], address[1], exc)
                    await asyncio.sleep(0.1)
            if sock is None:
                log.error("impolite: could not re-bind %s:%s after a refuse window", address[0], address[1])
                continue
            new = await loop.create_server(factory, sock=sock, backlog=1024)
            servers = self.server.servers
            servers[servers.index(old)] = new
            log.info("impolite: refuse window over, accepting on %s:%s again", address[0], address[1])


def outermost(app: Any) -> ImpoliteMiddleware:
    """The sandbox app wrapped in its impolite middleware, as the server must run it (outside every
    Starlette middleware, so ``send`` is the server's own and a stall can close the connection)."""
    from perianctl.sandbox.faults import classify

    return ImpoliteMiddleware(app, app.state.sandbox.impolite, classify)


def attach_uvicorn(app: Any, server: Any) -> None:
    """Let ``refuse`` rules close and re-bind ``server``'s port (called by the sandbox's server module)."""
    from perianctl.sandbox.server import bind

    state: ImpoliteState = app.state.sandbox.impolite
    state.listener = UvicornListener(server, bind)


# --------------------------------------------------------------------------- middleware


def too_many_requests(retry_after: float) -> tuple[dict[str, Any], str]:
    """The 429 body (PERIAN's error envelope) and the ``Retry-After`` value."""
    body = {
        "status": "Error",
        "message": "Operation failed due to a client error",
        "detail": DETAIL_TOO_MANY_REQUESTS,
        "status_code": 429,
    }
    value = _plain(retry_after)
    return body, value


def _transport_of(send: Send) -> Any:
    """The connection's transport, through uvicorn's bound ``send`` (None for other servers)."""
    cycle = getattr(send, "__self__", None)
    return getattr(cycle, "transport", None)


class ImpoliteMiddleware:
    """ASGI middleware applying the live :class:`ImpoliteState` to the PERIAN routes."""

    def __init__(self, app: ASGIApp, state: ImpoliteState, classify: Callable[[str, str], str | None]) -> None:
        self.app = app
        self.state = state
        self.classify = classify

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = self.classify(scope["method"], scope["path"])
        armed = self.state.match(endpoint) if endpoint is not None else None
        if armed is None:
            await self.app(scope, receive, send)
            return
        rule = armed.rule
        if rule.mode == "429":
            await self._send_429(send, rule.retry_after)
            return
        body = await self._read_body(receive)
        if body is None:  # the caller hung up before sending the whole request: nothing to do
            self.state.outcome(armed, committed=False)
            return
        if rule.mode == "slow":
            await self._slow(armed, scope, body, receive, send)
        else:
            await self._stall(armed, scope, self._replay(body, receive), send)

    async def _slow(self, armed: _Armed, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
        rule = armed.rule
        if rule.commit:
            await asyncio.sleep(rule.seconds)
        else:
            hung_up = asyncio.ensure_future(self._disconnected(receive))
            done, _ = await asyncio.wait({hung_up}, timeout=rule.seconds)
            if done:
                self.state.outcome(armed, committed=False)
                return  # commit=false: the caller left, the work is dropped (today's --latency)
            hung_up.cancel()
        # uvicorn's send is a no-op once the caller is gone, so the work is done either way.
        try:
            await self.app(scope, self._replay(body, receive), send)
        finally:
            self.state.outcome(armed, committed=True)

    async def _stall(self, armed: _Armed, scope: Scope, receive: Receive, send: Send) -> None:
        rule = armed.rule
        await asyncio.sleep(rule.seconds)
        if rule.commit:

            async def lose_reply(_message: Message) -> None:
                return None

            try:
                await self.app(scope, receive, lose_reply)
            except Exception:  # the reply is lost anyway
                log.exception("impolite: error while committing a stalled request")
            finally:
                self.state.outcome(armed, committed=True)
        else:
            self.state.outcome(armed, committed=False)
        transport = _transport_of(send)
        if transport is None:
            from perianctl.sandbox.faults import InjectedReset

            raise InjectedReset("stall over: connection closed without a reply")
        transport.close()
        for _ in range(3):  # let connection_lost run, so the server does not answer a 500
            await asyncio.sleep(0)

    @staticmethod
    async def _read_body(receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    def _replay(body: bytes, receive: Receive) -> Receive:
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    @staticmethod
    async def _disconnected(receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    @staticmethod
    async def _send_429(send: Send, retry_after: float) -> None:
        body, header = too_many_requests(retry_after)
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"retry-after", header.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
