"""The FastAPI app: PERIAN job, instance-type and accelerator-type routes plus admin routes.

Wire facts (the ``perian`` SDK 0.5.3: perian/api/job_api.py and perian/models/default_success.py,
default_client_error.py): every success and error body is the flat envelope
``{status, message, detail, status_code}`` except FastAPI's own 422 ``{"detail": [...]}``; "not
found" and "already complete" are HTTP **400** with exact ``detail`` sentences, because real
clients match on that text; a job's ``GET`` answers the list shape with one job.

Auth is checked in a dependency that reads the raw headers (not ``Header()`` parameters: the real
OpenAPI document declares none), before path, query and body validation, so an unauthenticated
caller learns nothing else -- except that a body which is not acceptable JSON at all is refused
first (422 ``json_invalid``/``value_error``, :mod:`perianctl.sandbox.strict`), as FastAPI itself
refuses malformed JSON before any dependency runs. Admin routes (``/healthz``, ``/_sandbox/*``)
need no auth: the sandbox listens on loopback and tests must read them without credentials.
"""

from __future__ import annotations

import hmac
import html
import math
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute

from perianctl import __version__
from perianctl.perian import models as m
from perianctl.perian.status import WorkloadStatus
from perianctl.sandbox import catalogue, raw, wire
from perianctl.sandbox.billing import Billing, BillingError, register_billing_routes
from perianctl.sandbox.config import FaultConfig, SandboxConfig, SandboxConfigError, parse_latency
from perianctl.sandbox.faults import FaultMiddleware, FaultState, install_log_filter
from perianctl.sandbox.impolite import ImpoliteRuleError, ImpoliteState, rules_from_json
from perianctl.sandbox.runtimes import runtime_class
from perianctl.sandbox.runtimes.base import Runtime
from perianctl.sandbox.store import TERMINAL, JobRow, JobStore
from perianctl.sandbox.strict import (
    BodyTooLarge,
    InvalidJson,
    StrictJsonRoute,
    read_json,
    too_large_response,
    validation_error_handler,
)
from perianctl.sandbox.strict import ServableJSONResponse as JSONResponse

DB_FILE = "sandbox.db"
DETAIL_NO_MATCHING_INSTANCE = "No instance type found matching the requirements"
DETAIL_INSTANCE_TYPE_QUERY_MISSING = "Please either provide a specific instance_type ID or a query"
DETAIL_ACCELERATOR_QUERY_MISSING = "Please either provide a specific accelerator_type ID or a query"
MAX_PAGE_SIZE = 1000


class ApiFailure(Exception):
    """An error answered with the PERIAN envelope."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


@dataclass
class SandboxState:
    """What the routes share; ``store`` and ``runtime`` exist between lifespan start and stop."""

    config: SandboxConfig
    organization: str
    token: str
    faults: FaultState
    started_at: float = field(default_factory=time.time)
    store: JobStore | None = None
    runtime: Runtime | None = None
    impolite: ImpoliteState = field(default_factory=ImpoliteState)
    billing: Billing | None = None

    def require(self) -> tuple[JobStore, Runtime]:
        if self.store is None or self.runtime is None:
            raise ApiFailure(503, "The sandbox is starting or stopping")
        return self.store, self.runtime


def _envelope(status_code: int, detail: str) -> JSONResponse:
    return JSONResponse(wire.failure(status_code, detail), status_code=status_code)


def create_app(config: SandboxConfig, *, on_ready: Callable[[], None] | None = None) -> FastAPI:
    """A sandbox app for ``config`` (credentials must be resolved: ``organization``/``token`` set).

    ``on_ready`` is called once the store is open, crashed jobs are recovered and the runtime runs
    -- the moment the server may be announced (info file, ``EmbeddedSandbox`` start).
    """
    if not config.organization or not config.token:
        raise ValueError("create_app needs a config with organization and token set")
    billing = Billing(config.state_dir, config.organization, config.credits)
    state = SandboxState(
        config=config,
        organization=config.organization,
        token=config.token,
        faults=FaultState(config.faults),
        billing=billing,
    )
    install_log_filter()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        store = JobStore(config.state_dir / DB_FILE)
        runtime = runtime_class(config.runtime)(config, store)
        recovery = store.recover()
        runtime.recover(recovery.ended)
        await runtime.start(recovery.queued)
        billing.attach(store)
        await billing.start(runtime)
        state.store, state.runtime = store, runtime
        state.impolite.set_rules(config.impolite)
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            state.runtime = None
            await billing.stop()
            await runtime.stop()
            state.store = None
            store.close()

    app = FastAPI(
        title="PERIAN sandbox",
        version=__version__,
        lifespan=lifespan,
        docs_url="/_sandbox/docs",
        redoc_url=None,
        openapi_url="/_sandbox/openapi.json",
        default_response_class=JSONResponse,
    )
    app.router.route_class = StrictJsonRoute  # odd bodies get a 422, never a stored poison (strict.py)
    app.state.sandbox = state
    app.add_middleware(FaultMiddleware, state=state.faults)
    raw.install(app)  # test-only PUT /_sandbox/jobs/{id}/raw: serve a job with odd content

    @app.exception_handler(ApiFailure)
    async def _api_failure(_request: Request, exc: ApiFailure) -> JSONResponse:
        return _envelope(exc.status_code, exc.detail)

    app.add_exception_handler(RequestValidationError, validation_error_handler)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, _exc: Exception) -> JSONResponse:
        return _envelope(500, "")

    def authenticate(request: Request) -> str:
        org = request.headers.get("x-perian-auth-org", "").strip()
        authorization = request.headers.get("authorization", "").strip()
        if not org:
            raise ApiFailure(400, "Missing required header: X-PERIAN-AUTH-ORG")
        if not authorization:
            raise ApiFailure(400, "Missing required header: Authorization")
        token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else authorization
        if org != state.organization:
            raise ApiFailure(401, m.DETAIL_ORG_NOT_FOUND)
        if not hmac.compare_digest(token.encode(), state.token.encode()):
            raise ApiFailure(401, m.DETAIL_INVALID_TOKEN)
        return org

    _register_job_routes(app, state, authenticate)
    _register_catalogue_routes(app, authenticate)
    register_billing_routes(app, billing, authenticate)
    _register_admin_routes(app, state)
    _register_impolite_routes(app, state)
    _declare_error_responses(app)
    return app


_ENVELOPE_SCHEMA: dict[str, Any] = {
    "title": "ErrorEnvelope",
    "type": "object",
    "required": ["status", "message", "detail", "status_code"],
    "properties": {
        "status": {"type": "string"},
        "message": {"type": "string"},
        "detail": {"type": "string"},
        "status_code": {"type": "integer"},
    },
}


_NULLABLE_TEXT: dict[str, Any] = {"type": ["string", "null"]}
_OBJECT_OR_NULL: dict[str, Any] = {"type": ["object", "null"]}
_INT_OR_NULL: dict[str, Any] = {"type": ["integer", "null"]}
_JOB_VIEW_SCHEMA: dict[str, Any] = {
    "title": "JobView",
    "type": "object",
    "required": ["id", "status", "created_at", "updated_at"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "status": {"type": "string", "enum": [s.value for s in WorkloadStatus]},
        "started_at": _NULLABLE_TEXT,
        "done_at": _NULLABLE_TEXT,
        "logs": _NULLABLE_TEXT,
        "errors": _NULLABLE_TEXT,
        "price": _OBJECT_OR_NULL,
        "docker_metadata": _OBJECT_OR_NULL,
        "requirement_metadata": _OBJECT_OR_NULL,
        "runtime_metadata": _OBJECT_OR_NULL,
        "created_at": {"type": "string"},
        "updated_at": {"type": "string"},
    },
}
_PAGINATION_SCHEMA: dict[str, Any] = {
    "title": "PaginationMetadata",
    "type": "object",
    "required": ["total_items", "items_per_page", "current_page", "total_pages", "next_page", "previous_page"],
    "properties": {
        "total_items": {"type": "integer"},
        "items_per_page": {"type": "integer"},
        "current_page": {"type": "integer"},
        "total_pages": {"type": "integer"},
        "next_page": _INT_OR_NULL,
        "previous_page": _INT_OR_NULL,
    },
}


def _success(title: str, **fields: dict[str, Any]) -> dict[str, Any]:
    schema = {**_ENVELOPE_SCHEMA, "title": title}
    schema["required"] = [*_ENVELOPE_SCHEMA["required"], *fields]
    schema["properties"] = {**_ENVELOPE_SCHEMA["properties"], "status_code": {"const": 200}, **fields}
    return {"description": "Successful Response", "content": {"application/json": {"schema": schema}}}


_JOBS_SUCCESS = _success(
    "GetJobsSuccess",
    limit={"type": "integer"},
    no={"type": "integer"},
    jobs={"type": "array", "items": _JOB_VIEW_SCHEMA},
    pagination=_PAGINATION_SCHEMA,
)
_SUCCESS_RESPONSES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/job"): _success("CreateJobSuccess", id={"type": "string", "format": "uuid"}),
    ("GET", "/job"): _JOBS_SUCCESS,
    ("GET", "/job/{job_id}"): _JOBS_SUCCESS,
    ("PATCH", "/job/{job_id}/cancel"): _success("DefaultSuccess"),
}
"""The job routes' 200 bodies (the SDK's create_job_success.py, get_jobs_success.py,
default_success.py), so a fuzzer also holds successful answers to them."""


def _declare_error_responses(app: FastAPI) -> None:
    """Document in the OpenAPI document every error status the routes answer (the flat envelope above).

    Done once over all routes rather than per decorator, so that a route added later is covered
    too, and so that a fuzzer (tests/integration/test_sandbox_schema_fuzz.py) can hold every answer to the
    document: PERIAN routes answer 400 (client errors, exact ``detail`` texts), 401 (credentials),
    413 (a body over the size cap), 500 (never on purpose: fault injection) and 503 (starting or
    stopping); admin routes only what they answer.
    """

    def envelope(description: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": _ENVELOPE_SCHEMA}}}

    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        codes: dict[int, str] = {}
        if route.path == "/healthz":
            route.responses.setdefault(
                503,
                {
                    "description": "Starting or stopping",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
            )
            continue
        if route.path.startswith("/_sandbox/"):
            codes[503] = "Starting or stopping"
            if "PUT" in (route.methods or ()):
                codes |= {413: "Request body too large", 422: "Invalid configuration (nothing applied)"}
        else:
            codes |= {
                400: "Client error (PERIAN detail text)",
                401: "Unknown organization or invalid token",
                500: "Server error (injected faults only)",
                503: "Starting or stopping",
            }
            if route.body_field is not None:
                codes[413] = "Request body too large"
        for code, description in codes.items():
            route.responses.setdefault(code, envelope(description))
        for method in route.methods or ():
            if (method, route.path) in _SUCCESS_RESPONSES:
                route.responses.setdefault(200, _SUCCESS_RESPONSES[(method, route.path)])
    app.openapi_schema = None


# --------------------------------------------------------------------------- jobs


def _choose_instance(body: wire.CreateJobBody) -> catalogue.InstanceType:
    if body.instance_type_id is None and body.requirements is None:
        raise ApiFailure(400, m.DETAIL_INCORRECT_CREATE_PARAMETER)
    if body.instance_type_id is not None:
        itype = catalogue.instance_type_by_id(str(body.instance_type_id))
        if itype is None:
            raise ApiFailure(400, m.DETAIL_INSTANCE_TYPE_NOT_FOUND)
        return itype
    unknown = catalogue.unknown_accelerator_names(body.requirements)
    if unknown:
        raise ApiFailure(400, f"Unknown accelerator name '{unknown[0]}'")
    chosen = catalogue.cheapest_available(body.requirements)
    if chosen is None:
        raise ApiFailure(400, DETAIL_NO_MATCHING_INSTANCE)
    return chosen


def _new_job(body: wire.CreateJobBody, org: str, itype: catalogue.InstanceType) -> JobRow:
    params = body.docker_run_parameters or wire.DockerRunParametersIn()
    image = params.image_name or ""
    if image and params.image_tag:
        image = f"{image}:{params.image_tag}"
    storage = body.os_storage_config.size if body.os_storage_config and body.os_storage_config.size else 250
    view = {
        "price": itype.price(),
        "docker_metadata": wire.docker_metadata(params, body.docker_registry_credentials),
        "requirement_metadata": {
            "os_storage_config": {"size": storage},
            "requirements": wire.echo_requirements(body.requirements),
        },
        "runtime_metadata": {
            "instance_type_id": itype.id,
            "auto_failover_instance_type": True
            if body.auto_failover_instance_type is None
            else bool(body.auto_failover_instance_type),
            "timeout_seconds": body.timeout_seconds,
        },
    }
    spec = {
        "image": image,
        "command": params.command,
        "env": params.env_variables or {},
        "timeout_seconds": body.timeout_seconds,
        "instance_type": itype.name,
    }
    private: dict[str, Any] = {}
    if params.secrets:
        private["secrets"] = params.secrets
    if params.container_files:
        private["container_files"] = [
            f.model_dump(include={"path", "read_only", "base64_content"}) for f in params.container_files
        ]
    if body.docker_registry_credentials is not None and body.docker_registry_credentials.password:
        private["registry"] = body.docker_registry_credentials.model_dump(include={"url", "username", "password"})
    now = time.time()
    return JobRow(
        id=str(uuid.uuid4()),
        org=org,
        status=WorkloadStatus.QUEUED.value,
        created_at=now,
        updated_at=now,
        view=view,
        spec=spec,
        private=private or None,
    )


def _register_job_routes(app: FastAPI, state: SandboxState, authenticate: Callable[..., str]) -> None:
    @app.post("/job", tags=["job"])
    async def create_job(body: wire.CreateJobBody, org: str = Depends(authenticate)) -> JSONResponse:
        store, runtime = state.require()
        try:
            itype = _choose_instance(body)
            if state.billing is not None:
                state.billing.check_create(org, itype)
        except (ApiFailure, BillingError):
            store.bump("create_calls")
            raise
        job = store.insert(_new_job(body, org, itype))
        runtime.submit(job)
        return JSONResponse(wire.success(m.MESSAGE_JOB_CREATED, id=job.id))

    @app.get("/job", tags=["job"])
    async def list_jobs(limit: int = 25, page: int = 1, org: str = Depends(authenticate)) -> JSONResponse:
        store, _ = state.require()
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        page = max(1, page)
        rows, total = store.page(org, limit=limit, offset=(page - 1) * limit)
        jobs = [wire.job_view(row) for row in rows]
        return JSONResponse(
            wire.success(limit=limit, no=len(jobs), jobs=jobs, pagination=wire.pagination(total, limit, page))
        )

    @app.get("/job/{job_id}", tags=["job"])
    async def get_job(job_id: uuid.UUID, org: str = Depends(authenticate)) -> JSONResponse:
        store, _ = state.require()
        row = store.get(str(job_id), org)
        if row is None:
            raise ApiFailure(400, m.DETAIL_NO_JOB_FOUND)
        return JSONResponse(wire.success(limit=1, no=1, jobs=[wire.job_view(row)], pagination=wire.pagination(1, 1, 1)))

    @app.patch("/job/{job_id}/cancel", tags=["job"])
    async def cancel_job(job_id: uuid.UUID, org: str = Depends(authenticate)) -> JSONResponse:
        store, runtime = state.require()
        row = store.get(str(job_id), org)
        if row is None:
            raise ApiFailure(400, m.DETAIL_NO_JOB_FOUND)
        if row.terminal:
            raise ApiFailure(400, m.DETAIL_JOB_ALREADY_DONE)
        if not row.cancel_requested:
            store.mark_cancel_requested(row.id)
        runtime.cancel(row)
        return JSONResponse(wire.success())

    @app.get("/organization", tags=["organization"])
    async def organization(org: str = Depends(authenticate)) -> JSONResponse:
        """What perian-cli's ``login`` checks (not in the OpenAPI document, but used by the CLI)."""
        return JSONResponse(wire.success(organization={"name": org, "access_token": state.token}))


# --------------------------------------------------------------------------- catalogue


def _register_catalogue_routes(app: FastAPI, authenticate: Callable[..., str]) -> None:
    @app.post("/instance-type", tags=["instance-type"])
    async def search_instance_types(
        body: wire.InstanceTypeSearchBody,
        limit: int = 25,
        page: int = 1,
        criterion: str = "PRICE",
        _org: str = Depends(authenticate),
    ) -> JSONResponse:
        query = body.instance_type_query
        if query is None:
            raise ApiFailure(400, DETAIL_INSTANCE_TYPE_QUERY_MISSING)
        matches = catalogue.search(query)
        if criterion.upper() == "CREATED_AT":
            matches.sort(key=lambda t: t.name)
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        page = max(1, page)
        items = matches[(page - 1) * limit : page * limit]
        return JSONResponse(
            wire.success(
                limit=limit,
                no=len(items),
                instance_types=[t.view() for t in items],
                pagination=wire.pagination(len(matches), limit, page),
            )
        )

    @app.get("/instance-type/zones/available", tags=["instance-type"])
    async def available_zones(_org: str = Depends(authenticate)) -> JSONResponse:
        zones: dict[str, list[str]] = {}
        for itype in catalogue.INSTANCE_TYPES:
            names = zones.setdefault(itype.region.location, [])
            if itype.region.name not in names:
                names.append(itype.region.name)
        return JSONResponse(zones)

    @app.get("/instance-type/{instance_type_id}", tags=["instance-type"])
    async def get_instance_type(instance_type_id: str, _org: str = Depends(authenticate)) -> JSONResponse:
        itype = catalogue.instance_type_by_id(instance_type_id)
        if itype is None:
            raise ApiFailure(400, m.DETAIL_NO_INSTANCE_TYPE_FOUND)
        return JSONResponse(
            wire.success(limit=1, no=1, instance_types=[itype.view()], pagination=wire.pagination(1, 1, 1))
        )

    def accelerators(items: list[catalogue.AcceleratorType]) -> JSONResponse:
        return JSONResponse(
            wire.success(
                no=len(items),
                accelerator_types=[a.view() for a in items],
                pagination=wire.pagination(len(items), max(25, len(items)), 1),
            )
        )

    @app.get("/accelerator-type", tags=["accelerator-type"])
    async def list_accelerator_types(_org: str = Depends(authenticate)) -> JSONResponse:
        return accelerators(list(catalogue.ACCELERATOR_TYPES))

    @app.post("/accelerator-type", tags=["accelerator-type"])
    async def search_accelerator_types(
        body: wire.AcceleratorTypeSearchBody, _org: str = Depends(authenticate)
    ) -> JSONResponse:
        if body.accelerator_type_query is None:
            raise ApiFailure(400, DETAIL_ACCELERATOR_QUERY_MISSING)
        found = catalogue.search_accelerators(body.accelerator_type_query)
        if not found:
            raise ApiFailure(400, m.DETAIL_NO_ACCELERATOR_TYPE_FOUND)
        return accelerators(found)

    @app.get("/accelerator-type/{accelerator_type_id}", tags=["accelerator-type"])
    async def get_accelerator_type(accelerator_type_id: str, _org: str = Depends(authenticate)) -> JSONResponse:
        found = catalogue.accelerator_type_by_id(accelerator_type_id)
        if found is None:
            raise ApiFailure(400, m.DETAIL_NO_ACCELERATOR_TYPE_FOUND)
        return accelerators([found])


# --------------------------------------------------------------------------- admin


def _number(key: str, value: Any) -> float:
    # bool is an int subclass and float("nan") parses: neither is a number of seconds or a rate.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise SandboxConfigError(f"{key} must be a number, got {type(value).__name__}")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise SandboxConfigError(f"{key} must be a number, got {str(value)[:40]!r}") from None
    if not math.isfinite(number):
        raise SandboxConfigError(f"{key} must be a finite number")
    return number


def _names(key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",")]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise SandboxConfigError(f"{key} must be a list of names or a comma-separated string")


def fault_config_from_json(current: FaultConfig, data: dict[str, Any]) -> FaultConfig:
    """Merge a ``PUT /_sandbox/faults`` body over the current fault configuration.

    Everything is checked (types, finiteness, ranges: :meth:`FaultConfig.validate`) before anything
    is applied: a bad body changes nothing. Raises :class:`SandboxConfigError`.
    """
    changes: dict[str, Any] = {}
    if "latency" in data:
        value = data["latency"]
        if isinstance(value, list) and len(value) == 2:
            changes["latency"] = (_number("latency", value[0]), _number("latency", value[1]))
        elif value is None or isinstance(value, str):
            changes["latency"] = parse_latency(value)
        else:
            changes["latency"] = (_number("latency", value),) * 2
    if "rate" in data or "fault_rate" in data:
        value = data.get("rate", data.get("fault_rate"))
        changes["rate"] = 0.0 if value is None else _number("rate", value)
    for key in ("kinds", "endpoints", "latency_endpoints"):
        if key in data:
            items = _names(key, data[key])
            changes[key] = tuple(items) if key == "kinds" else frozenset(items)
    if "phase" in data:
        if not isinstance(data["phase"], str):
            raise SandboxConfigError("phase must be a string")
        changes["phase"] = data["phase"]
    if "seed" in data:
        seed = data["seed"]
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise SandboxConfigError("seed must be an integer or null")
        changes["seed"] = seed
    return replace(current, **changes).validate()


_FAULTS_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "latency": {
            "anyOf": [
                {"type": "number"},
                {"type": "string"},
                {"type": "null"},
                {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
            ]
        },
        "rate": {"type": "number"},
        "kinds": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "endpoints": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "latency_endpoints": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "phase": {"type": "string"},
        "seed": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
    },
}
"""What ``PUT /_sandbox/faults`` reads (documented for fuzzers; the route parses the body itself)."""


def _register_admin_routes(app: FastAPI, state: SandboxState) -> None:
    @app.get("/healthz", tags=["sandbox"])
    async def healthz() -> JSONResponse:
        ready = state.store is not None
        return JSONResponse(
            {
                "status": "ok" if ready else "starting",
                "runtime": state.config.runtime,
                "pid": os.getpid(),
                "version": __version__,
                "organization": state.organization,
            },
            status_code=200 if ready else 503,
        )

    @app.get("/_sandbox/stats", tags=["sandbox"])
    async def stats() -> JSONResponse:
        store, _ = state.require()
        counts = store.counts_by_status()
        counters = store.counters()
        by_status = {s.value: counts.get(s.value, 0) for s in WorkloadStatus}
        by_status.update({k: v for k, v in counts.items() if k not in by_status})
        return JSONResponse(
            {
                "runtime": state.config.runtime,
                "pid": os.getpid(),
                "uptime_seconds": round(time.time() - state.started_at, 3),
                "jobs": {
                    "total": sum(counts.values()),
                    "by_status": by_status,
                    "open": sum(v for k, v in counts.items() if k not in TERMINAL),
                },
                "create_calls": counters.get("create_calls", 0),
                "jobs_created": counters.get("jobs_created", 0),
                "requests": dict(state.faults.requests),
                "delaying": {k: v for k, v in state.faults.delaying.items() if v > 0},
                "faults": state.faults.stats(),
            }
        )

    @app.get("/_sandbox/faults", tags=["sandbox"])
    async def get_faults() -> JSONResponse:
        return JSONResponse(state.faults.stats()["config"])

    @app.put(
        "/_sandbox/faults",
        tags=["sandbox"],
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": _FAULTS_BODY_SCHEMA}}}
        },
    )
    async def put_faults(request: Request) -> JSONResponse:
        """Change fault injection at run time (tests switch faults on after their set-up)."""
        try:
            data = await read_json(request)
        except BodyTooLarge:
            return too_large_response()
        except InvalidJson as exc:
            raise ApiFailure(422, f"invalid fault configuration: {exc}") from None
        try:
            if not isinstance(data, dict):
                raise SandboxConfigError("expected a JSON object")
            config = fault_config_from_json(state.faults.config, data)
        except SandboxConfigError as exc:
            raise ApiFailure(422, f"invalid fault configuration: {exc}") from None
        state.faults.configure(config)
        return JSONResponse(state.faults.stats()["config"])


def _job_summary(row: JobRow) -> dict[str, Any]:
    """One job for ``GET /_sandbox/jobs``: status plus the attempt identity a connector stamped on it."""
    from perianctl.perian.stamps import ATTEMPT_ENV, IDEMPOTENCY_ENV, NODE_TAG_ENV

    params = (row.view.get("docker_metadata") or {}).get("docker_run_parameters") or {}
    env = params.get("env_variables") or {}
    attempt = env.get(ATTEMPT_ENV)
    return {
        "id": row.id,
        "status": row.status,
        "terminal": row.terminal,
        "cancel_requested": row.cancel_requested,
        "created_at": row.created_at,
        "done_at": row.done_at,
        "idempotency_key": env.get(IDEMPOTENCY_ENV),
        "node_tag": env.get(NODE_TAG_ENV),
        "attempt": int(attempt) if isinstance(attempt, str) and attempt.isdigit() else None,
        "command": params.get("command"),
        "env": env,
    }


def _register_impolite_routes(app: FastAPI, state: SandboxState) -> None:
    """The impolite PERIAN's admin API (see :mod:`perianctl.sandbox.impolite`) and the job census."""

    @app.get("/_sandbox/impolite", tags=["sandbox"])
    async def get_impolite() -> JSONResponse:
        return JSONResponse(state.impolite.snapshot())

    @app.put("/_sandbox/impolite", tags=["sandbox"])
    async def put_impolite(request: Request) -> JSONResponse:
        """Replace the whole rule set atomically: all rules are validated before any applies."""
        try:
            data = await read_json(request)
        except BodyTooLarge:
            return too_large_response()
        except InvalidJson:
            raise ApiFailure(422, 'invalid impolite rules: the body is not JSON; expected {"rules": [...]}') from None
        try:
            await state.impolite.apply(rules_from_json(data))
        except ImpoliteRuleError as exc:
            raise ApiFailure(422, f"invalid impolite rules: {exc}") from None
        return JSONResponse(state.impolite.snapshot())

    @app.delete("/_sandbox/impolite", tags=["sandbox"])
    async def delete_impolite() -> JSONResponse:
        await state.impolite.apply(())
        return JSONResponse(state.impolite.snapshot())

    @app.post(
        "/_sandbox/jobs/{job_id}/finish",
        tags=["sandbox"],
        responses={
            400: {"description": "No job with that id", "content": {"application/json": {"schema": _ENVELOPE_SCHEMA}}},
            409: {
                "description": "Not the simulate runtime",
                "content": {"application/json": {"schema": _ENVELOPE_SCHEMA}},
            },
            422: {"description": "Invalid status", "content": {"application/json": {"schema": _ENVELOPE_SCHEMA}}},
        },
    )
    async def finish_job(job_id: str, status: str = "Done") -> JSONResponse:
        """End a simulated job now (``Done`` or ``Cancelled``): a check run finishes the jobs it owns,
        while jobs nobody owns run on until a connector cancels them."""
        store, runtime = state.require()
        if status not in ("Done", "Cancelled"):
            raise ApiFailure(422, f"status must be Done or Cancelled, got {status!r}")
        finish = getattr(runtime, "finish_now", None)
        if finish is None:
            raise ApiFailure(409, f"jobs of the {state.config.runtime} runtime cannot be finished by the admin API")
        row = store.get(job_id)
        if row is None:
            raise ApiFailure(400, m.DETAIL_NO_JOB_FOUND)
        changed = False if row.terminal else bool(finish(row, status))
        row = store.get(job_id)
        assert row is not None
        return JSONResponse({"id": row.id, "status": row.status, "changed": changed})

    @app.get(
        "/_sandbox/jobs/{job_id}/log",
        tags=["sandbox"],
        response_class=HTMLResponse,
        responses={
            404: {"description": "No job with that id", "content": {"text/html": {}}},
        },
    )
    async def job_log_page(job_id: str) -> HTMLResponse:
        """The job's status and log as a web page: what the connector's log link opens in the
        sandbox (the PERIAN API's job record needs auth headers a browser does not send). The page
        reloads itself every 2 s until the job ends."""
        store, _ = state.require()
        row = store.get(job_id)
        if row is None:
            return HTMLResponse(
                f"<!doctype html><title>no such job</title><p>No job {html.escape(job_id)} in this sandbox.</p>",
                status_code=404,
            )
        refresh = "" if row.terminal else '<meta http-equiv="refresh" content="2">'
        errors = f"<h2>Errors</h2><pre>{html.escape(row.errors)}</pre>" if row.errors else ""
        page = (
            f'<!doctype html><html><head><meta charset="utf-8">{refresh}'
            f"<title>PERIAN job {html.escape(row.id)} ({html.escape(row.status)})</title>"
            "<style>body{font-family:sans-serif;margin:1.5em}pre{background:#f4f4f4;padding:1em;"
            "white-space:pre-wrap}</style></head><body>"
            f"<h1>PERIAN job {html.escape(row.id)}</h1><p>Status: <b>{html.escape(row.status)}</b>"
            f" &middot; organization {html.escape(row.org)} &middot; sandbox runtime "
            f"{html.escape(state.config.runtime)}</p>"
            f"<h2>Log</h2><pre>{html.escape(row.logs or '(no output yet)')}</pre>{errors}</body></html>"
        )
        return HTMLResponse(page)

    @app.get("/_sandbox/jobs", tags=["sandbox"])
    async def all_jobs() -> JSONResponse:
        """Every job, oldest first, with the attempt key it carries -- for counting jobs per attempt."""
        store, _ = state.require()
        rows, _total = store.page(state.organization, limit=-1, offset=0)
        rows.reverse()
        return JSONResponse({"jobs": [_job_summary(row) for row in rows]})
