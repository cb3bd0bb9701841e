"""Async PERIAN Job API client on one pooled ``httpx.AsyncClient``.

Why it looks like this:

* **Retries are safe by construction.** GET and ``PATCH .../cancel`` are idempotent, so they are
  retried (exponential backoff with jitter, ``Retry-After`` honoured) on 429/502/503/504 and on
  transport errors. ``POST /job`` is not idempotent on the server, so it is retried only when the
  request provably never left (connect errors, pool timeouts, 429) -- or, when the caller gives an
  *idempotency key*, after the client has looked for a job carrying that key and found none.
  That is how ``submit`` and the connector survive lost replies without creating duplicates.
* **Errors are typed** (:mod:`perianctl.errors`) from the status *and* the envelope ``detail``,
  because PERIAN reports "not found" as HTTP 400 with a known sentence.
* **Secrets stay out of logs**: the verbose HTTP log prints method, path, status and timing only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import stamina
from pydantic import BaseModel, ValidationError

from perianctl import __version__
from perianctl.errors import (
    ApiError,
    AuthError,
    BadRequestError,
    JobAlreadyDoneError,
    NotFoundError,
    ProtocolError,
    UnavailableError,
    ValidationFailed,
)
from perianctl.perian import models as m
from perianctl.text import first_line, one_line

log = logging.getLogger("perianctl.http")

IDEMPOTENCY_ENV = "PERIANCTL_IDEMPOTENCY_KEY"
"""Env variable stamped into a job so a retried create can find the job an earlier try made."""

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
# Idempotent calls (GET, cancel) may also retry a plain 500: repeating them cannot do harm, and a
# transient 500 is what a busy API gateway most often answers.
IDEMPOTENT_RETRYABLE_STATUS = RETRYABLE_STATUS | {500}
_Model = TypeVar("_Model", bound=BaseModel)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to retry. The defaults suit a CLI; the connector keeps them inside propeller's 10 s."""

    attempts: int = 5
    timeout: float = 60.0
    wait_initial: float = 0.25
    wait_max: float = 8.0
    wait_jitter: float = 0.5
    max_retry_after: float = 30.0


@dataclass(frozen=True)
class CancelResult:
    job_id: str
    already_done: bool


class _RetryableResponse(Exception):
    """Raised inside the retry loop for a response worth retrying (429/502/503/504)."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


class _AmbiguousCreate(Exception):
    """A create attempt whose outcome is unknown: the server may or may not have made the job."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _retry_after_seconds(response: httpx.Response, cap: float) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        import email.utils

        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when - dt.datetime.now(dt.UTC)).total_seconds()
    return max(0.0, min(seconds, cap))


def _backoff_hook(cap: float, *, safe_exc: tuple[type[BaseException], ...]) -> Callable[[Exception], Any]:
    """Stamina hook: retry ``safe_exc`` and retryable responses, using Retry-After when given."""

    def hook(exc: Exception) -> bool | dt.timedelta:
        if isinstance(exc, _RetryableResponse):
            delay = _retry_after_seconds(exc.response, cap)
            return dt.timedelta(seconds=delay) if delay is not None else True
        return isinstance(exc, safe_exc)

    return hook


def _log_retry(details: stamina.instrumentation.RetryDetails) -> None:
    log.info(
        "retry %d of %s in %.2fs after %s", details.retry_num, details.name, details.wait_for,
        type(details.caused_by).__name__,
    )


# stamina's default hook logs every retry as a WARNING; ours logs at INFO under perianctl.http
# (shown with -v) and never includes request arguments (which may contain secrets).
stamina.instrumentation.set_on_retry_hooks([_log_retry])

# Transport errors after which the request certainly did not reach the server.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Any transport error: fine to retry for idempotent calls.
_TRANSPORT = (httpx.TransportError,)


def auth_headers(organization: str, token: str) -> dict[str, str]:
    """The two headers every PERIAN client sends. A token already starting with ``Bearer `` is kept."""
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
        return NotFoundError(
            f"{what}: HTTP 404 {short} (is the API URL right?)", status=status, detail=detail_text
        )
    if status == 400:
        if "header" in lowered:
            return AuthError(f"{what}: {short}", status=status, detail=detail_text)
        return BadRequestError(f"{what}: {short}", status=status, detail=detail_text)
    if status >= 500 or status in RETRYABLE_STATUS:
        return UnavailableError(f"{what}: PERIAN API error HTTP {status} ({short})", status=status)
    return ApiError(f"{what}: unexpected HTTP {status} ({short})", status=status, detail=detail_text)


class PerianClient:
    """One PERIAN organization on one API URL, over a pooled async HTTP connection.

    Use as ``async with PerianClient(...) as client:``; the connector keeps one per process.
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
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
        user_agent: str | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.organization = organization
        self.retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(
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
            event_hooks={"response": [self._log_response]},
        )

    async def __aenter__(self) -> PerianClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @staticmethod
    async def _log_response(response: httpx.Response) -> None:
        if log.isEnabledFor(logging.DEBUG):
            request = response.request
            elapsed = response.elapsed.total_seconds() * 1000 if hasattr(response, "_elapsed") else 0.0
            log.debug("%s %s -> %s (%.0f ms)", request.method, request.url.path, response.status_code, elapsed)

    # ------------------------------------------------------------------ transport with retries

    async def _send(self, method: str, path: str, *, what: str, safe_exc: tuple[type[BaseException], ...],
                    retry_status: frozenset[int] = IDEMPOTENT_RETRYABLE_STATUS, **kwargs: Any) -> httpx.Response:
        """Send with retries on ``safe_exc`` and ``retry_status``; map exhaustion to UnavailableError."""
        policy = self.retry
        try:
            async for attempt in stamina.retry_context(
                on=_backoff_hook(policy.max_retry_after, safe_exc=safe_exc),
                attempts=policy.attempts,
                timeout=policy.timeout,
                wait_initial=policy.wait_initial,
                wait_max=policy.wait_max,
                wait_jitter=policy.wait_jitter,
            ):
                with attempt:
                    response = await self._http.request(method, path, **kwargs)
                    if response.status_code in retry_status:
                        raise _RetryableResponse(response)
                    return response
        except _RetryableResponse as exc:
            raise error_from_response(exc.response, what=what) from None
        except httpx.TransportError as exc:
            raise UnavailableError(
                f"{what}: cannot reach the PERIAN API at {self.api_url} ({type(exc).__name__})",
                hint="check --api-url and your network",
            ) from None
        except httpx.HTTPError as exc:  # an answer that cannot be decoded (bad gzip), too many redirects
            raise ProtocolError(
                f"{what}: unusable answer from the PERIAN API at {self.api_url} ({type(exc).__name__})"
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

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
            raise error_from_response(
                httpx.Response(code, json=payload, request=response.request), what=what
            )
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first.get("loc", ()))
            shape = " ".join(f"at '{loc}': {first.get('msg')}".split())
            raise ProtocolError(f"{what}: unexpected response shape {shape}") from None

    async def _get(self, path: str, model: type[_Model], *, what: str, **kwargs: Any) -> _Model:
        response = await self._send("GET", path, what=what, safe_exc=_TRANSPORT, **kwargs)
        return self._parse(response, model, what=what)

    # ------------------------------------------------------------------ jobs

    async def get_job(self, job_id: str) -> m.JobView:
        what = f"get job {job_id}"
        result = await self._get(f"/job/{quote(job_id, safe='')}", m.GetJobsSuccess, what=what)
        if not result.jobs:
            raise NotFoundError(f"{what}: {m.DETAIL_NO_JOB_FOUND}", status=200)
        return result.jobs[0]

    async def list_jobs(self, *, limit: int | None = None, page: int | None = None) -> m.GetJobsSuccess:
        params = {k: v for k, v in (("limit", limit), ("page", page)) if v is not None}
        return await self._get("/job", m.GetJobsSuccess, what="list jobs", params=params)

    async def iter_jobs(self, *, page_size: int = 100, max_pages: int | None = None) -> AsyncIterator[m.JobView]:
        """All jobs, newest first, following pagination until the last page (or ``max_pages``)."""
        page = 1
        while True:
            result = await self.list_jobs(limit=page_size, page=page)
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

    async def cancel_job(self, job_id: str) -> CancelResult:
        """Cancel; a job that is already terminal is reported via ``already_done`` instead of raising."""
        what = f"cancel job {job_id}"
        response = await self._send(
            "PATCH", f"/job/{quote(job_id, safe='')}/cancel", what=what, safe_exc=_TRANSPORT
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
    ) -> str:
        """Create a job and return its id.

        With an ``idempotency_key`` the key is stamped into the job's environment, an existing job
        with that key is returned instead of creating another, and an attempt whose outcome is
        unknown (5xx, reset, read timeout) is followed by a look-up before the next try.
        ``attempts`` (default: the retry policy's) bounds the create attempts, not the look-ups.
        ``fresh_key=True`` says the key was just generated (``submit``), so no job can carry it yet
        and the look-up before the first POST is skipped; a re-sent key (the connector) is checked.
        """
        what = "create job"
        policy = self.retry
        attempts = attempts or policy.attempts
        deadline = time.monotonic() + policy.timeout
        if idempotency_key:
            request = with_idempotency_key(request, idempotency_key)
            if not fresh_key:
                existing = await self._find_patiently(idempotency_key, deadline, what=what)
                if existing is not None:
                    return existing
        body = request.to_wire()
        delay = policy.wait_initial
        last: Exception | None = None
        for _attempt in range(attempts):
            try:
                return await self._create_once(body, what=what)
            except _AmbiguousCreate as exc:
                last = exc.cause
                if not idempotency_key:
                    raise UnavailableError(
                        f"{what}: no reliable answer from the API ({_describe(exc.cause)}); "
                        "the job may or may not exist",
                        hint="run 'perianctl list' before submitting again",
                    ) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, policy.wait_max)
            assert idempotency_key is not None
            # Look even after the last attempt: it may have created the job, and giving up on a job
            # that exists would lose it (it runs and bills, but nobody knows its id).
            found = await self._find_patiently(idempotency_key, deadline, what=what)
            if found is not None:
                return found
            if time.monotonic() >= deadline:
                break
        raise UnavailableError(f"{what}: PERIAN API unavailable after {attempts} attempts "
                               f"({_describe(last)}); no job with its key was found")

    async def _find_patiently(self, key: str, deadline: float, *, what: str) -> str | None:
        """:meth:`find_job_by_key` after an ambiguous create, retried until it answers or ``deadline``.

        This look-up is the only way to learn whether the job exists, so one unlucky run of failed
        list calls must not end the create: a retry could duplicate the job, and giving up without
        saying so could lose it (it runs and bills, but nobody knows its id).
        """
        delay = self.retry.wait_initial
        while True:
            try:
                return await self.find_job_by_key(key)
            except UnavailableError as exc:
                if time.monotonic() + delay >= deadline:
                    raise UnavailableError(
                        f"{what}: the API failed while checking whether the job was created ({exc.message}); "
                        "the job may or may not exist",
                        hint=f"look for the job whose env has {IDEMPOTENCY_ENV}={key} ('perianctl list -o json') "
                        "before submitting again",
                    ) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry.wait_max)

    async def _create_once(self, body: dict[str, Any], *, what: str) -> str:
        try:
            # Only never-sent transport errors and 429 are retried inside; the rest is ambiguous.
            response = await self._send(
                "POST", "/job", what=what, safe_exc=_NEVER_SENT, retry_status=frozenset({429}), json=body
            )
        except (UnavailableError, ProtocolError) as exc:  # the server may have made the job all the same
            raise _AmbiguousCreate(exc) from None
        except httpx.TransportError as exc:  # read timeout, reset after sending
            raise _AmbiguousCreate(exc) from None
        if response.status_code >= 500:
            raise _AmbiguousCreate(error_from_response(response, what=what))
        return self._parse(response, m.CreateJobSuccess, what=what).id

    async def find_job_by_key(self, key: str, *, max_pages: int = 3, page_size: int = 100) -> str | None:
        """Newest-first scan for a job whose environment carries ``key`` (bounded: ``max_pages``)."""
        async for job in self.iter_jobs(page_size=page_size, max_pages=max_pages):
            params = job.docker_metadata.docker_run_parameters if job.docker_metadata else None
            env = params.env_variables if params else None
            if env and env.get(IDEMPOTENCY_ENV) == key and job.id:
                return job.id
        return None

    # ------------------------------------------------------------------ discovery

    async def get_instance_type(self, instance_type_id: str) -> m.InstanceTypeView | None:
        result = await self._get(
            f"/instance-type/{quote(instance_type_id, safe='')}",
            m.GetInstanceTypesSuccess,
            what=f"get instance type {instance_type_id}",
        )
        return result.instance_types[0] if result.instance_types else None

    async def search_instance_types(
        self, query: m.InstanceTypeQueryInput, *, limit: int = 25
    ) -> list[m.InstanceTypeView]:
        what = "search instance types"
        response = await self._send(
            "POST", "/instance-type", what=what, safe_exc=_TRANSPORT,
            params={"limit": limit}, json={"instance_type_query": query.to_wire()},
        )
        return self._parse(response, m.GetInstanceTypesSuccess, what=what).instance_types

    async def list_accelerator_types(self) -> list[m.AcceleratorTypeView]:
        result = await self._get("/accelerator-type", m.GetAcceleratorTypesSuccess, what="list accelerator types")
        return result.accelerator_types


def with_idempotency_key(request: m.CreateJobRequest, key: str) -> m.CreateJobRequest:
    """A copy of ``request`` whose container environment carries the idempotency key."""
    params = request.docker_run_parameters.model_copy(
        update={"env_variables": {**(request.docker_run_parameters.env_variables or {}), IDEMPOTENCY_ENV: key}}
    )
    return request.model_copy(update={"docker_run_parameters": params})


def _describe(exc: Exception | None) -> str:
    if exc is None:
        return "no attempt made"
    text = str(exc)
    return text if text else type(exc).__name__
