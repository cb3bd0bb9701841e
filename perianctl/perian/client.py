"""Async PERIAN Job API client on one pooled ``httpx.AsyncClient``.

Why it looks like this:

* **Retries are safe by construction.** GET and ``PATCH .../cancel`` are idempotent, so they are
  retried (exponential backoff with jitter, ``Retry-After`` honoured) on 429/500/502/503/504 and on
  transport errors. ``POST /job`` is not idempotent on the server, so it is retried only when the
  request provably never left (connect refused or never established, pool timeouts, 429) -- or,
  when the caller gives an *idempotency key*, after the client has looked for a job carrying that
  key and found none. That is how ``submit`` and the connector survive lost replies without
  creating duplicates.
* **Errors are typed** (:mod:`perianctl.errors`) from the status *and* the envelope ``detail``,
  because PERIAN reports "not found" as HTTP 400 with a known sentence.
* **Secrets stay out of logs**: the verbose HTTP log prints method, path, status and timing only.

The budget contract (one mechanism for every call):

* Every public call runs under a **budget**: a deadline on the monotonic clock. It is the earliest
  of (a) the call's ``budget=`` argument (seconds, or a shared :class:`Budget`), (b) the enclosing
  :func:`api_deadline` scope (a context variable, so it follows the task and the tasks it starts),
  and (c) the client's default (``budget=`` of the constructor: seconds per call, or one
  :class:`Budget` shared by every call; default ``RetryPolicy.timeout``).
* Each attempt's connect, write, read and pool timeouts are capped by what remains, and the whole
  attempt is bounded by it too (a server that trickles bytes cannot stretch it). Backoff and
  ``Retry-After`` are capped the same way: when the next wait would not leave time for another
  attempt, the call stops now instead of sleeping into the deadline.
* A refused connection (nothing listening, DNS failure) is retried at most
  ``RetryPolicy.connect_attempts`` times (default 3, under a second): an API that is down stays down
  for longer than a command is willing to wait, and a user should hear so at once.
* Failures are :class:`~perianctl.errors.UnavailableError` saying what happened -- ``refused``
  (connection refused / not established), ``no-answer`` (connected, no reply within the time
  left), ``status`` (5xx/429 on every attempt), ``budget`` (spent after N attempts) -- with
  ``attempts`` and ``never_sent``. ``never_sent`` is exact: it is true only when no attempt's bytes
  can have reached the server (every attempt failed before the connection existed). A create that
  never left created nothing, and :meth:`PerianClient.create_job` says exactly that ("no job was
  created"); anything else it cannot settle by a look-up is "may or may not exist".
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from perianctl import __version__
from perianctl.errors import (
    ApiError,
    AuthError,
    BadRequestError,
    InsufficientCreditsError,
    JobAlreadyDoneError,
    NoInstanceTypeMatchError,
    NotFoundError,
    ProtocolError,
    UnavailableError,
    ValidationFailed,
)
from perianctl.perian import models as m
from perianctl.perian import stamps
from perianctl.text import first_line, one_line

log = logging.getLogger("perianctl.http")


def _shown_headers(headers: httpx.Headers) -> str:
    """Headers for the ``-vv`` log: secret-looking ones (Authorization, tokens) masked."""
    from perianctl.redact import REDACTED, is_secret_key, scrub

    return ", ".join(
        f"{name}: {REDACTED if is_secret_key(name) or name.lower() == 'cookie' else scrub(value)}"
        for name, value in headers.items()
    )


def _shown_body(content: bytes, limit: int = 4000) -> str:
    """A body for the ``-vv`` log: JSON with secret keys masked, cut at ``limit`` characters."""
    import json

    from perianctl.redact import redact, scrub

    text = content.decode("utf-8", "replace")
    try:
        text = json.dumps(redact(json.loads(text)), separators=(",", ":"))
    except ValueError:
        text = scrub(text)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more characters)"


IDEMPOTENCY_ENV = stamps.IDEMPOTENCY_ENV
"""Env variable stamped into a job so a retried create can find the job an earlier try made."""

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
# Idempotent calls (GET, cancel) may also retry a plain 500: repeating them cannot do harm, and a
# transient 500 is what a busy API gateway most often answers.
IDEMPOTENT_RETRYABLE_STATUS = RETRYABLE_STATUS | {500}
_Model = TypeVar("_Model", bound=BaseModel)

# An attempt is also bounded as a whole, a little after its own (capped) timeouts would fire, so
# that those -- which classify precisely (a connect timeout is "never sent") -- normally win.
_ATTEMPT_GRACE = 0.25
# Do not start an attempt with less time than this left: it could not get an answer anyway.
_MIN_ATTEMPT = 0.05
# A keyed create keeps this share of what remains for the look-up that must follow an ambiguous
# attempt (a create that used the whole budget could not learn whether its job exists).
_CREATE_SHARE = 0.6


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to retry. The defaults suit a CLI; the connector keeps them inside propeller's 10 s.

    ``timeout`` is the default budget of one call in seconds (see the module docstring);
    ``connect_attempts`` bounds the attempts that end in a refused connection.
    """

    attempts: int = 5
    timeout: float = 60.0
    wait_initial: float = 0.25
    wait_max: float = 8.0
    wait_jitter: float = 0.5
    max_retry_after: float = 30.0
    connect_attempts: int = 3


@dataclass(frozen=True)
class Budget:
    """A deadline on the monotonic clock, and the total it started from (for messages)."""

    deadline: float
    total: float

    @classmethod
    def start(cls, seconds: float) -> Budget:
        """A budget of ``seconds`` from now (a non-finite or huge value is capped at a day)."""
        seconds = max(0.0, min(float(seconds), 86_400.0)) if seconds == seconds else 86_400.0
        return cls(deadline=time.monotonic() + seconds, total=seconds)

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def earliest(self, other: Budget | None) -> Budget:
        return other if other is not None and other.deadline < self.deadline else self

    def describe(self) -> str:
        return f"{_seconds(self.total)} budget"


BudgetLike = float | int | Budget
_SCOPE: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("perianctl_api_budget", default=None)


def _as_budget(value: BudgetLike) -> Budget:
    return value if isinstance(value, Budget) else Budget.start(float(value))


@contextlib.contextmanager
def api_deadline(budget: BudgetLike) -> Iterator[Budget]:
    """Bound every PERIAN call made inside the block (in this task and tasks it starts) by ``budget``.

    Scopes nest: an inner scope can only shorten the deadline, never extend the outer one.
    """
    new = _as_budget(budget)
    outer = _SCOPE.get()
    effective = outer.earliest(new) if outer is not None else new
    token = _SCOPE.set(effective)
    try:
        yield effective
    finally:
        _SCOPE.reset(token)


@dataclass(frozen=True)
class CancelResult:
    job_id: str
    already_done: bool


class _AmbiguousCreate(Exception):
    """A create attempt whose outcome is unknown: the server may or may not have made the job."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        import email.utils

        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - dt.datetime.now(dt.UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def _refused(exc: BaseException) -> bool:
    """A connect error whose cause is "connection refused" (nothing listens there)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, ConnectionRefusedError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "refused" in str(exc).lower()


# Transport errors after which the request certainly did not reach the server.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Any transport error: fine to retry for idempotent calls.
_TRANSPORT = (httpx.TransportError,)


# ``detail`` texts saying that a create's requirements (or chosen type) match no instance type: the
# real API's create error (the ``perian`` SDK 0.5.3's perian/models/src_api_router_job_instance_type_not_found_error.py)
# and the sandbox's wording of the same answer.
_NO_MATCH_DETAILS = (m.DETAIL_INSTANCE_TYPE_NOT_FOUND.lower(), "matching the requirements")


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing (see :class:`_HttpClient`)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _HttpClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` without cookies. PERIAN authenticates every call by its headers and sets
    no cookies, but httpx hands every response to its cookie jar, which rebuilds the request as a
    ``urllib`` one (parsing its URL again) just to find no ``Set-Cookie``: about a tenth of the CPU
    of a connector's GetTask (cProfile of ``perianctl serve`` against the canned stub)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._no_cookies = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        raise AttributeError("the PERIAN client keeps no cookies")


_URL_CACHE_SIZE = 4096
"""Absolute request URLs kept per client (:meth:`PerianClient._url`): the jobs a connector polls."""


def auth_headers(organization: str, token: str) -> dict[str, str]:
    """The two headers every PERIAN client sends. A token already starting with ``Bearer `` is kept.

    Both values are checked first (:func:`perianctl.config.check_header_value`): a line break or a
    non-ASCII character cannot travel in a header, and sending would fail deep in the HTTP stack,
    be retried and end as "API unavailable" -- it is a local input error (ConfigError), at once.
    """
    from perianctl.config import check_header_value

    organization = check_header_value("organization", organization)
    token = check_header_value("token", token)
    bearer = token if token.lower().startswith("bearer ") else f"Bearer {token}"
    return {"X-PERIAN-AUTH-ORG": organization, "Authorization": bearer}


def error_from_response(response: httpx.Response, *, what: str) -> ApiError:
    """Turn a non-success response into the typed error a caller (and the exit code) needs."""
    status = response.status_code
    detail_text = ""
    body: Any = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = body.get("detail")
        if status == 422 and isinstance(detail, list):
            parts = []
            for item in detail[:3]:
                if isinstance(item, dict):
                    raw_loc = item.get("loc")  # any type at all: the body is the server's, not ours
                    loc = ".".join(str(p) for p in raw_loc if p != "body") if isinstance(raw_loc, list) else ""
                    parts.append(f"{loc}: {item.get('msg') or ''}".strip(": "))
            reason = one_line("; ".join(p for p in parts if p), 300)
            return ValidationFailed(
                f"{what}: the API rejected the request ({reason or 'validation error'})",
                status=status,
            )
        if isinstance(detail, str):
            detail_text = detail
        if not detail_text and isinstance(body.get("message"), str):
            detail_text = body["message"]
    elif response.text:
        detail_text = first_line(response.text, 300)

    lowered = detail_text.lower()
    short = first_line(detail_text, 300) or response.reason_phrase or "no detail"
    if status == 400 and any(text in lowered for text in _NO_MATCH_DETAILS):
        return NoInstanceTypeMatchError(
            f"{what}: {short}", status=status, detail=detail_text, hint="see 'perianctl offers' for what matches"
        )
    if "no job found" in lowered or "no instance type found" in lowered or ("not found" in lowered and status == 400):
        return NotFoundError(f"{what}: {short}", status=status, detail=detail_text)
    if "already complete" in lowered:
        return JobAlreadyDoneError(f"{what}: {short}", status=status, detail=detail_text)
    if status in (401, 403) or "invalid api token" in lowered or "organization could not be found" in lowered:
        return AuthError(
            f"{what}: authentication refused ({short})",
            status=status,
            detail=detail_text,
            hint="check the organization and token (perianctl config show)",
        )
    if status == 404:
        return NotFoundError(f"{what}: HTTP 404 {short} (is the API URL right?)", status=status, detail=detail_text)
    if status == 400:
        if "insufficient credit" in lowered or "insufficient quota" in lowered or "usage limit" in lowered:
            return InsufficientCreditsError(
                f"{what}: {short}",
                status=status,
                detail=detail_text,
                hint="check 'perianctl billing' (remaining credits and usage limit)",
            )
        if "header" in lowered:
            return AuthError(f"{what}: {short}", status=status, detail=detail_text)
        return BadRequestError(f"{what}: {short}", status=status, detail=detail_text)
    if status >= 500 or status in RETRYABLE_STATUS:
        return UnavailableError(f"{what}: PERIAN API error HTTP {status} ({short})", status=status)
    return ApiError(f"{what}: unexpected HTTP {status} ({short})", status=status, detail=detail_text)


class PerianClient:
    """One PERIAN organization on one API URL, over a pooled async HTTP connection.

    Use as ``async with PerianClient(...) as client:``; the connector keeps one per process.
    ``budget`` is the default budget of every call (module docstring): seconds per call, or one
    :class:`Budget` that every call of this client shares (a command-wide deadline).
    ``on_unreadable(what, problem)`` hears of each part of an answer that could not be read (see
    :func:`~perianctl.perian.models.parse_response`), once per client; default: a log warning.
    """

    def __init__(
        self,
        api_url: str,
        organization: str,
        token: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        budget: BudgetLike | None = None,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
        user_agent: str | None = None,
        on_unreadable: Callable[[str, m.Unreadable], None] | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.on_unreadable = on_unreadable
        self._reported: set[tuple[str, tuple[str, ...], bool]] = set()
        self.organization = organization
        self.retry = retry or RetryPolicy()
        self.default_budget: BudgetLike = self.retry.timeout if budget is None else budget
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._urls: dict[str, httpx.URL] = {}
        self._http = _HttpClient(
            base_url=self.api_url,
            headers={
                **auth_headers(organization, token),
                "Accept": "application/json",
                "User-Agent": user_agent or f"perianctl/{__version__}",
            },
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout, pool=connect_timeout * 2),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
            # Plain http (the sandbox) needs no TLS context; building one costs ~50 ms of start-up.
            verify=not self.api_url.startswith("http://"),
            event_hooks={"request": [self._mark_sent], "response": [self._log_response]},
        )

    async def __aenter__(self) -> PerianClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @staticmethod
    async def _mark_sent(request: httpx.Request) -> None:
        request.extensions["perianctl_sent"] = time.monotonic()

    @staticmethod
    async def _log_response(response: httpx.Response) -> None:
        """``-v``: one line per HTTP request; ``-vv``: plus headers and bodies, secrets masked.

        Status and time are known here, not when the request leaves, so the line is written once,
        with the response (httpx's own request log is silenced by the CLI for the same reason).
        """
        if not log.isEnabledFor(logging.INFO):
            return
        request = response.request
        elapsed = (time.monotonic() - request.extensions.get("perianctl_sent", time.monotonic())) * 1000
        log.info("%s %s -> %s (%.0f ms)", request.method, request.url.path, response.status_code, elapsed)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("  request headers: %s", _shown_headers(request.headers))
            try:
                body = request.content
            except httpx.RequestNotRead:
                body = b""
            if body:
                log.debug("  request body: %s", _shown_body(body))
            log.debug("  response headers: %s", _shown_headers(response.headers))
            await response.aread()
            if response.content:
                log.debug("  response body: %s", _shown_body(response.content))

    def budget_for(self, budget: BudgetLike | None = None) -> Budget:
        """The budget a call starting now runs under: the earliest of argument, scope and default."""
        effective = _as_budget(self.default_budget)
        if budget is not None:
            effective = effective.earliest(_as_budget(budget))
        return effective.earliest(_SCOPE.get())

    @contextlib.contextmanager
    def deadline(self, budget: BudgetLike) -> Iterator[Budget]:
        """:func:`api_deadline` as a method, for callers that hold a client."""
        with api_deadline(budget) as effective:
            yield effective

    # ------------------------------------------------------------------ transport with retries

    def _url(self, path: str) -> httpx.URL:
        """The absolute URL httpx builds for ``path`` under the API URL, parsed once per path: httpx
        parses and merges a relative URL on every request (pure Python, ~15% of a GetTask's CPU),
        while a connector asks for the same few job URLs over and over."""
        url = self._urls.get(path)
        if url is None:
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()
            url = self._urls[path] = self._http.build_request("GET", path).url
        return url

    def _timeouts(self, cap: float) -> httpx.Timeout:
        return httpx.Timeout(
            min(self.read_timeout, cap),
            connect=min(self.connect_timeout, cap),
            pool=min(self.connect_timeout * 2, cap),
        )

    async def _send(
        self,
        method: str,
        path: str,
        *,
        what: str,
        budget: Budget,
        safe_exc: tuple[type[BaseException], ...],
        retry_status: frozenset[int] = IDEMPOTENT_RETRYABLE_STATUS,
        share: float = 1.0,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with retries on ``safe_exc`` and ``retry_status`` within ``budget``.

        Returns the first response whose status is not retried; raises UnavailableError (see the
        module docstring) when the attempts, the refused-connect allowance or the budget run out,
        and ProtocolError for an answer that cannot be decoded. ``share`` limits one attempt to that
        share of what remains.
        """
        policy = self.retry
        attempts = refused = 0
        maybe_sent = False
        backoff = policy.wait_initial
        while True:
            remaining = budget.remaining()
            if remaining < _MIN_ATTEMPT:
                raise self._spent(what, budget, attempts, "no attempt made", never_sent=not maybe_sent)
            attempts += 1
            cap = max(_MIN_ATTEMPT, remaining * share)
            wait: float | None = None
            response: httpx.Response | None = None
            try:
                async with asyncio.timeout(cap + _ATTEMPT_GRACE):
                    response = await self._http.request(method, self._url(path), timeout=self._timeouts(cap), **kwargs)
            except TimeoutError:
                maybe_sent = True
                kind, outcome = "no-answer", f"no answer within {_seconds(cap)}"
                retryable = issubclass(httpx.ReadTimeout, safe_exc)
            except httpx.ConnectError as exc:
                refused += 1
                kind = "refused"
                outcome = "connection refused" if _refused(exc) else f"cannot connect ({first_line(str(exc), 120)})"
                retryable = refused < policy.connect_attempts
            except (httpx.ConnectTimeout, httpx.PoolTimeout):
                kind, outcome = "no-answer", f"no connection within {_seconds(min(self.connect_timeout, cap))}"
                retryable = True
            except httpx.TimeoutException as exc:
                maybe_sent = True
                kind = "no-answer"
                outcome = f"no answer within {_seconds(min(self.read_timeout, cap))}"
                retryable = isinstance(exc, safe_exc)
            except httpx.TransportError as exc:
                maybe_sent = True
                kind, outcome = "transport", f"{type(exc).__name__}: {first_line(str(exc), 120) or 'no detail'}"
                retryable = isinstance(exc, safe_exc)
            except httpx.HTTPError as exc:  # an answer that cannot be decoded (bad gzip), too many redirects
                raise ProtocolError(
                    f"{what}: unusable answer from the PERIAN API at {self.api_url} ({type(exc).__name__})"
                ) from None
            else:
                if response.status_code not in retry_status:
                    return response
                maybe_sent = True
                kind, outcome = "status", f"HTTP {response.status_code}"
                retryable = True
                after = _retry_after_seconds(response)
                if after is not None:
                    wait = min(after, policy.max_retry_after)
            if not retryable or attempts >= policy.attempts:
                raise self._give_up(what, kind, outcome, attempts, response, never_sent=not maybe_sent)
            if wait is None:
                # A refused connect is answered at once, so its retries need little spreading out.
                jitter = min(policy.wait_jitter, 0.1) if kind == "refused" else policy.wait_jitter
                wait = min(backoff, policy.wait_max) + random.uniform(0, jitter)
                backoff = min(backoff * 2, policy.wait_max)
            if wait + _MIN_ATTEMPT > budget.remaining():
                if kind == "status" and response is not None and wait > budget.remaining():
                    outcome += f", asked to retry after {_seconds(wait)}"
                raise self._spent(what, budget, attempts, outcome, never_sent=not maybe_sent, response=response)
            log.info("retry %d of %s %s in %.2fs after %s", attempts, method, path, wait, outcome)
            await asyncio.sleep(wait)

    def _give_up(
        self, what: str, kind: str, outcome: str, attempts: int, response: httpx.Response | None, *, never_sent: bool
    ) -> ApiError:
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        if response is not None:
            error = error_from_response(response, what=what)
            if not isinstance(error, UnavailableError):
                return error
            return UnavailableError(
                f"{error.message}; {tries}",
                status=error.status,
                reason="status",
                attempts=attempts,
                never_sent=never_sent,
            )
        if kind == "refused":
            message = f"{what}: cannot reach the PERIAN API at {self.api_url}: {outcome} ({tries})"
            hint = "is the API up and --api-url right? (perianctl config show)"
        elif kind == "no-answer":
            message = f"{what}: the PERIAN API at {self.api_url} gave {outcome} ({tries})"
            hint = "the API is slow or unreachable; --api-timeout sets how long to wait"
        else:
            message = f"{what}: the connection to the PERIAN API at {self.api_url} failed ({outcome}; {tries})"
            hint = "check --api-url and your network"
        return UnavailableError(message, hint=hint, reason=kind, attempts=attempts, never_sent=never_sent)

    def _spent(
        self,
        what: str,
        budget: Budget,
        attempts: int,
        last: str,
        *,
        never_sent: bool,
        response: httpx.Response | None = None,
    ) -> UnavailableError:
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        return UnavailableError(
            f"{what}: no usable answer from the PERIAN API at {self.api_url}: the {budget.describe()} "
            f"was spent after {tries} (last: {last})",
            status=response.status_code if response is not None else None,
            hint="--api-timeout (or the api_timeout setting) sets how long to wait",
            reason="budget",
            attempts=attempts,
            never_sent=never_sent,
        )

    def _parse(self, response: httpx.Response, model: type[_Model], *, what: str) -> _Model:
        if not response.is_success:
            raise error_from_response(response, what=what)
        try:
            payload = response.json()
        except ValueError:
            raise ProtocolError(
                f"{what}: the API answered HTTP {response.status_code} with a body that is not JSON",
                status=response.status_code,
            ) from None
        if not isinstance(payload, dict):
            raise ProtocolError(f"{what}: the API answered with JSON that is not an object")
        code = payload.get("status_code")
        if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599 and code != 200:
            raise error_from_response(httpx.Response(code, json=payload, request=response.request), what=what)
        try:
            result, problems = m.parse_response(model, payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first.get("loc", ()))
            shape = " ".join(f"at '{loc}': {first.get('msg')}".split())
            raise ProtocolError(f"{what}: unexpected response shape {shape}") from None
        for problem in problems:
            self._report_unreadable(what, problem)
        return result

    def _report_unreadable(self, what: str, problem: m.Unreadable) -> None:
        """Tell once per client (a watch polls the same odd job every few seconds)."""
        key = (problem.item, problem.fields, problem.skipped)
        if key in self._reported:
            return
        if len(self._reported) < 10_000:
            self._reported.add(key)
        if self.on_unreadable is not None:
            self.on_unreadable(what, problem)
        else:
            log.warning("%s: %s", what, problem.describe())

    async def _get(
        self, path: str, model: type[_Model], *, what: str, budget: BudgetLike | None = None, **kwargs: Any
    ) -> _Model:
        response = await self._send(
            "GET", path, what=what, budget=self.budget_for(budget), safe_exc=_TRANSPORT, **kwargs
        )
        return self._parse(response, model, what=what)

    # ------------------------------------------------------------------ jobs

    async def get_job(self, job_id: str, *, budget: BudgetLike | None = None) -> m.JobView:
        what = f"get job {job_id}"
        response = await self._send(
            "GET", f"/job/{quote(job_id, safe='')}", what=what, budget=self.budget_for(budget), safe_exc=_TRANSPORT
        )
        result = self._parse(response, m.GetJobsSuccess, what=what)
        if result.jobs:
            return result.jobs[0]
        raw = _raw_items(response, "jobs")
        if raw:  # the job exists, but its record is unreadable (already reported): what is known
            return m.JobView(id=job_id)
        raise NotFoundError(f"{what}: {m.DETAIL_NO_JOB_FOUND}", status=200)

    async def list_jobs(
        self, *, limit: int | None = None, page: int | None = None, budget: BudgetLike | None = None
    ) -> m.GetJobsSuccess:
        params = {k: v for k, v in (("limit", limit), ("page", page)) if v is not None}
        return await self._get("/job", m.GetJobsSuccess, what="list jobs", params=params, budget=budget)

    async def iter_jobs(
        self, *, page_size: int = 100, max_pages: int | None = None, budget: BudgetLike | None = None
    ) -> AsyncIterator[m.JobView]:
        """All jobs, newest first, following pagination until the last page (or ``max_pages``).

        ``budget`` bounds each page (pass a :class:`Budget` to bound the whole scan).
        """
        page = 1
        while True:
            result = await self.list_jobs(limit=page_size, page=page, budget=budget)
            for job in result.jobs:
                yield job
            pagination = result.pagination
            if not result.jobs or pagination is None or not pagination.next_page:
                return
            if max_pages is not None and page >= max_pages:
                return
            if pagination.next_page <= page:  # a server that loops must not hang us
                return
            page = pagination.next_page

    async def cancel_job(self, job_id: str, *, budget: BudgetLike | None = None) -> CancelResult:
        """Cancel; a job that is already terminal is reported via ``already_done`` instead of raising."""
        what = f"cancel job {job_id}"
        response = await self._send(
            "PATCH",
            f"/job/{quote(job_id, safe='')}/cancel",
            what=what,
            budget=self.budget_for(budget),
            safe_exc=_TRANSPORT,
        )
        try:
            self._parse(response, m.Envelope, what=what)
        except JobAlreadyDoneError:
            return CancelResult(job_id=job_id, already_done=True)
        return CancelResult(job_id=job_id, already_done=False)

    async def create_job(
        self,
        request: m.CreateJobRequest,
        *,
        idempotency_key: str | None = None,
        attempts: int | None = None,
        fresh_key: bool = False,
        budget: BudgetLike | None = None,
    ) -> str:
        """Create a job and return its id, within one budget for the attempts and the look-ups.

        With an ``idempotency_key`` the key is stamped into the job's environment, an existing job
        with that key is returned instead of creating another, and an attempt whose outcome is
        unknown (5xx, reset, read timeout) is followed by a look-up before the next try.
        ``attempts`` (default: the retry policy's) bounds the create attempts, not the look-ups.
        ``fresh_key=True`` says the key was just generated (``submit``), so no job can carry it yet
        and the look-up before the first POST is skipped; a re-sent key (the connector) is checked.

        Failures say what is known: "no job was created" when no attempt can have reached the
        server (``never_sent``) or every one was turned away with 429, "the job may or may not
        exist" when an attempt's outcome is unknown and no look-up could settle it.
        """
        what = "create job"
        policy = self.retry
        attempts = attempts or policy.attempts
        spend = self.budget_for(budget)
        if idempotency_key:
            request = with_idempotency_key(request, idempotency_key)
            if not fresh_key:
                try:
                    existing = await self.find_job_by_key(idempotency_key, budget=spend)
                except UnavailableError as exc:  # nothing was sent yet: nothing can exist because of us
                    raise UnavailableError(
                        f"{what}: could not check for an earlier job with the same key ({exc.message}); "
                        "no job was created",
                        hint=exc.hint,
                        status=exc.status,
                        reason=exc.reason,
                        attempts=exc.attempts,
                        never_sent=True,
                    ) from None
                if existing is not None:
                    return existing
        body = request.to_wire()
        delay = policy.wait_initial
        last: Exception | None = None
        tried = 0
        for _attempt in range(attempts):
            tried += 1
            try:
                return await self._create_once(
                    body, what=what, budget=spend, share=_CREATE_SHARE if idempotency_key else 1.0
                )
            except NoInstanceTypeMatchError as exc:
                raise NoInstanceTypeMatchError(
                    f"{what}: no instance type matches {describe_requirements(request)} "
                    f"(PERIAN: {first_line(exc.detail or '', 200) or 'no match'}); no job was created",
                    status=exc.status,
                    detail=exc.detail,
                    hint=exc.hint,
                ) from None
            except _AmbiguousCreate as exc:
                last = exc.cause
                if not idempotency_key:
                    raise UnavailableError(
                        f"{what}: no reliable answer from the API ({_describe(exc.cause)}); "
                        "the job may or may not exist",
                        hint="run 'perianctl list' before submitting again",
                        reason=getattr(exc.cause, "reason", None) or "status",
                        never_sent=False,
                    ) from None
            except UnavailableError as exc:  # provably not created by this attempt (never sent / 429)
                if last is None:
                    raise UnavailableError(
                        f"{exc.message}; no job was created",
                        hint=exc.hint,
                        status=exc.status,
                        reason=exc.reason,
                        attempts=exc.attempts,
                        never_sent=exc.never_sent,
                    ) from None
                # Earlier ambiguous attempts were looked up and not found; this one made nothing.
                last = exc
                break
            assert idempotency_key is not None
            if delay + _MIN_ATTEMPT < spend.remaining():
                await asyncio.sleep(delay)
            delay = min(delay * 2, policy.wait_max)
            # Look even after the last attempt: it may have created the job, and giving up on a job
            # that exists would lose it (it runs and bills, but nobody knows its id).
            found = await self._find_patiently(idempotency_key, spend, what=what)
            if found is not None:
                return found
            if spend.expired():
                break
        raise UnavailableError(
            f"{what}: PERIAN API unavailable after {tried} attempts ({_describe(last)}); no job with its key was found",
            reason=getattr(last, "reason", None) or "status",
            never_sent=False,
        )

    async def _find_patiently(self, key: str, budget: Budget, *, what: str) -> str | None:
        """:meth:`find_job_by_key` after an ambiguous create, retried until it answers or ``budget`` ends.

        This look-up is the only way to learn whether the job exists, so one unlucky run of failed
        list calls must not end the create: a retry could duplicate the job, and giving up without
        saying so could lose it (it runs and bills, but nobody knows its id).
        """
        delay = self.retry.wait_initial
        while True:
            try:
                return await self.find_job_by_key(key, budget=budget)
            except UnavailableError as exc:
                if delay + _MIN_ATTEMPT >= budget.remaining():
                    raise UnavailableError(
                        f"{what}: the API failed while checking whether the job was created ({exc.message}); "
                        "the job may or may not exist",
                        hint=f"look for the job whose env has {IDEMPOTENCY_ENV}={key} ('perianctl list -o json') "
                        "before submitting again",
                        reason=exc.reason,
                        attempts=exc.attempts,
                        never_sent=False,
                    ) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry.wait_max)

    async def _create_once(self, body: dict[str, Any], *, what: str, budget: Budget, share: float) -> str:
        """One create attempt. Raises UnavailableError when it provably created nothing, else
        _AmbiguousCreate for an unknown outcome."""
        try:
            # Only never-sent transport errors and 429 are retried inside; the rest is ambiguous.
            response = await self._send(
                "POST",
                "/job",
                what=what,
                budget=budget,
                safe_exc=_NEVER_SENT,
                retry_status=frozenset({429}),
                share=share,
                json=body,
            )
        except UnavailableError as exc:
            if exc.never_sent or exc.status == 429:
                raise
            raise _AmbiguousCreate(exc) from None
        except ProtocolError as exc:  # the server may have made the job all the same
            raise _AmbiguousCreate(exc) from None
        if response.status_code >= 500:
            raise _AmbiguousCreate(error_from_response(response, what=what))
        return self._parse(response, m.CreateJobSuccess, what=what).id

    async def find_job_by_key(
        self, key: str, *, max_pages: int = 3, page_size: int = 100, budget: BudgetLike | None = None
    ) -> str | None:
        """Newest-first scan for a job whose environment carries ``key`` (bounded: ``max_pages``)."""
        async for job in self.iter_jobs(page_size=page_size, max_pages=max_pages, budget=budget):
            params = job.docker_metadata.docker_run_parameters if job.docker_metadata else None
            env = params.env_variables if params else None
            if env and env.get(IDEMPOTENCY_ENV) == key and job.id:
                return job.id
        return None

    # ------------------------------------------------------------------ discovery

    async def get_instance_type(self, instance_type_id: str) -> m.InstanceTypeView | None:
        """``GET /instance-type/{id}``; an unknown id raises :class:`NotFoundError` (the API's 400)."""
        result = await self._get(
            f"/instance-type/{quote(instance_type_id, safe='')}",
            m.GetInstanceTypesSuccess,
            what=f"get instance type {instance_type_id}",
        )
        return result.instance_types[0] if result.instance_types else None

    async def query_instance_types(
        self, query: m.InstanceTypeQueryInput, *, limit: int = 25, page: int | None = None
    ) -> list[m.InstanceTypeView]:
        """``POST /instance-type``: instance types matching ``query``, cheapest first (the API's default order).

        ``limit`` is the page size (the API's default is 25); an empty list means no match. The
        price filter and ordering are the server's; callers that compare prices across billing
        granularities should use :func:`perianctl.perian.pricing.rate_of` on each ``price``.
        """
        what = "search instance types"
        params: dict[str, int] = {"limit": limit}
        if page is not None:
            params["page"] = page
        response = await self._send(
            "POST",
            "/instance-type",
            what=what,
            budget=self.budget_for(),
            safe_exc=_TRANSPORT,
            params=params,
            json={"instance_type_query": query.to_wire()},
        )
        return self._parse(response, m.GetInstanceTypesSuccess, what=what).instance_types

    search_instance_types = query_instance_types  # the earlier name

    async def list_accelerator_types(self) -> list[m.AcceleratorTypeView]:
        """``GET /accelerator-type``: the whole accelerator catalogue."""
        result = await self._get("/accelerator-type", m.GetAcceleratorTypesSuccess, what="list accelerator types")
        return result.accelerator_types

    # ------------------------------------------------------------------ billing

    async def generate_bill(
        self, start: dt.datetime | None = None, end: dt.datetime | None = None, *, currency: str = "EUR"
    ) -> m.Bill:
        """``GET /billing/generate``: one item per workload in ``[start, end]``.

        Without ``start``/``end`` the API bills last month. Naive datetimes are taken as UTC (and
        sent with an explicit offset, unlike the SDK, so the server cannot read them as local time).
        """
        params: dict[str, str] = {"organization": self.organization, "currency": currency}
        for name, moment in (("start_time", start), ("end_time", end)):
            if moment is not None:
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=dt.UTC)
                params[name] = moment.astimezone(dt.UTC).isoformat()
        return await self._get("/billing/generate", m.Bill, what="generate bill", params=params)

    async def remaining_credits(self) -> m.RemainingCredits:
        """``GET /billing/remaining-credits``: ``current_amount`` left of ``original_amount``."""
        return await self._get("/billing/remaining-credits", m.RemainingCredits, what="get remaining credits")

    async def get_usage_limits(self) -> list[m.UsageLimit]:
        """``GET /billing/limit``: the organization's usage limits (one per period type), with usage."""
        result = await self._get("/billing/limit", m.GetUsageLimitsSuccess, what="get usage limits")
        return result.usage_limits

    async def set_usage_limit(
        self, amount: Decimal | str, *, duration_type: str = "Month", currency: str = "EUR", enabled: bool = True
    ) -> m.UsageLimit | None:
        """``PUT /billing/limit``: set (replace) the limit for one period type (Day, Week, Month, Year).

        Idempotent (the same PUT twice leaves the same limit), so it is retried like a GET.
        """
        what = "set usage limit"
        body = m.UsageLimitRequest(
            limit=str(amount), currency=currency, duration_type=duration_type, is_enabled=enabled
        )
        response = await self._send(
            "PUT", "/billing/limit", what=what, budget=self.budget_for(), safe_exc=_TRANSPORT, json=body.to_wire()
        )
        return self._parse(response, m.SetUsageLimitSuccess, what=what).usage_limit

    async def top_up_credits(self, amount: Decimal | str) -> str | None:
        """``POST /billing/top-up``: the payment URL for adding ``amount`` EUR of credits.

        Not idempotent (each call is a new top-up), so it is retried only when it was never sent.
        """
        what = "top up credits"
        response = await self._send(
            "POST",
            "/billing/top-up",
            what=what,
            budget=self.budget_for(),
            safe_exc=_NEVER_SENT,
            retry_status=frozenset({429}),
            json={"amount": str(amount)},
        )
        return self._parse(response, m.CreditTopUpSuccess, what=what).payment_url


def with_idempotency_key(request: m.CreateJobRequest, key: str) -> m.CreateJobRequest:
    """A copy of ``request`` whose container environment carries the idempotency key."""
    return request.with_env(over={IDEMPOTENCY_ENV: key})


def describe_requirements(request: m.CreateJobRequest) -> str:
    """What a create asked for, in one short line: ``instance type ID`` or ``cpu.cores=4, accelerator.name=A100``."""
    if request.instance_type_id:
        return f"instance type {request.instance_type_id}"
    if request.requirements is None:
        return "the requirements (none given)"
    leaves: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, child in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), child)
        elif value not in (None, False, "", [], {}):
            leaves.append(f"{prefix}={value}")

    walk("", request.requirements.to_wire())
    return "the requirements " + (one_line(", ".join(leaves), 200) if leaves else "(any)")


def _raw_items(response: httpx.Response, field: str) -> list[Any]:
    try:
        payload = response.json()
    except ValueError:
        return []
    items = payload.get(field) if isinstance(payload, dict) else None
    return items if isinstance(items, list) else []


def _describe(exc: Exception | None) -> str:
    if exc is None:
        return "no attempt made"
    text = str(exc)
    return text if text else type(exc).__name__
