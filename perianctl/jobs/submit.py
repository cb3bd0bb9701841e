"""Submit a task template: :func:`plan` checks everything and creates nothing, :func:`submit` creates.

The split is the rule that a bad flag never leaves a job behind (it runs and bills) nor files for a
job that does not exist: :func:`plan` loads the template, builds the inputs, translates the task,
looks up the instance type when money flags ask for it, and renders the launch, but writes no file
and creates no job; a ``--dry-run`` shows what it decided (:meth:`SubmitPlan.dry_run_record`).
:func:`submit` then writes ``inputs.pb``, creates the job exactly once (through PERIAN with an
idempotency key, or through a connector's ``CreateTask``) and records it in the local journal. If
the create certainly failed (refused, or never sent), ``inputs.pb`` is removed again; if it may
have reached the API, the file stays, because that job would read it.

No Typer here and nothing printed: what the user should be told comes back as :class:`Note` s,
and the caller brings the invocation's settings, PERIAN client and coroutine runner
(:class:`Invocation`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from perianctl.errors import PerianctlError, ProtocolError, UnavailableError, UsageError
from perianctl.flyte.templates import PERIAN_TASK_TYPE

if TYPE_CHECKING:
    from flyteidl.core.literals_pb2 import LiteralMap
    from flyteidl.service.agent_pb2 import CreateTaskRequest

    from perianctl.config import Settings
    from perianctl.flyte.launch import PreparedLaunch
    from perianctl.flyte.templates import LoadedTemplate
    from perianctl.flyte.translate import JobOverrides, JobSecrets
    from perianctl.perian.client import PerianClient
    from perianctl.perian.models import CreateJobRequest
    from perianctl.perian.offers import Plan

T = TypeVar("T")

STATE_DIR_HINT = "set PERIANCTL_STATE_DIR to a writable directory, or pass --output-prefix"


class Runner(Protocol):
    """Runs a coroutine to completion; ``status`` is what to show while it takes long (or nothing)."""

    def __call__(self, coro: Coroutine[Any, Any, T], *, status: str | None = None) -> T: ...


@dataclass(frozen=True)
class Invocation:
    """What a use case needs from the command that calls it.

    ``client`` makes a PERIAN client for this invocation's settings (keyword arguments such as
    ``retry`` pass through); ``run`` runs a coroutine (the CLI shows a status line on a terminal);
    ``note`` takes each line for the user as it comes (a warning before a later error still shows).
    """

    settings: Settings
    client: Callable[..., PerianClient]
    run: Runner
    note: Callable[[Note], None] = lambda note: None
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)


@dataclass(frozen=True)
class SubmitOptions:
    """Every ``submit`` flag that shapes the job, as given (the command only resolved the connector
    target and parsed the timeout)."""

    template: str
    task: str | None = None
    image: str | None = None
    inputs: tuple[str, ...] = ()
    inputs_file: str | None = None
    output_prefix: str | None = None
    cores: int | None = None
    memory: int | None = None
    accelerators: int | None = None
    accelerator_type: str | None = None
    country_code: str | None = None
    provider: str | None = None
    os_storage_size: int | None = None
    instance_type_id: str | None = None
    max_price_per_hour: str | None = None
    max_cost: str | None = None
    timeout_seconds: int | None = None
    env: tuple[str, ...] = ()
    secret_env: tuple[str, ...] = ()
    storage_credentials: bool = False
    dry_run: bool = False
    connector: str | None = None
    """``HOST:PORT`` of a Flyte connector to submit through (already validated), or ``None``: PERIAN."""


@dataclass(frozen=True)
class Note:
    """One line for the user (stderr): ``info`` or ``warn``."""

    level: Literal["info", "warn"]
    text: str


@dataclass(frozen=True)
class SubmitPlan:
    """Everything :func:`plan` decided; nothing of it exists outside this process yet."""

    options: SubmitOptions
    loaded: LoadedTemplate
    launch: PreparedLaunch
    """Rendered template, inputs and output prefix; ``inputs.pb`` not written yet."""
    run_id: str
    own_prefix: bool
    """The output prefix is a run directory perianctl made up (no ``--output-prefix`` nor setting)."""
    api_url: str
    profile: str | None
    request: CreateJobRequest | None
    """The ``POST /job`` body (through PERIAN), secrets in it; ``None`` through a connector."""
    offer: Plan | None
    """The instance type chosen under a budget (binding) or, for ``--dry-run``, the cheapest match now."""

    @property
    def via(self) -> Literal["api", "connector"]:
        return "connector" if self.options.connector else "api"

    @property
    def idempotency_key(self) -> str:
        return f"perianctl-{self.run_id}"

    def dry_run_record(self) -> dict[str, object]:
        """Through PERIAN: the request that would be sent (secrets redacted), the instance type and budget."""
        from perianctl.redact import redact

        assert self.request is not None
        body = self.request.to_wire()
        return {
            "method": "POST",
            "url": f"{self.api_url}/job",
            "output_prefix": self.launch.output_prefix,
            "body": redact(body),
            "instance_type": self.offer.offer.record() if self.offer is not None else None,
            "budget": self.offer.record() if self.offer is not None and self.offer.budget else None,
        }

    def dry_run_note(self) -> Note | None:
        """Without a budget, which instance type the job would get now (PERIAN decides at creation)."""
        if self.offer is None or self.offer.budget or self.request is None:
            return None
        how = (
            "--instance-type-id"
            if self.request.instance_type_id
            else "the cheapest match now; PERIAN chooses at creation"
        )
        return Note("info", f"would run on {self.offer.offer.describe()} ({how})")

    def create_task_request(self) -> CreateTaskRequest:
        """Through a connector: the ``CreateTaskRequest`` that would be sent (as flytepropeller sends it)."""
        from perianctl.connector.grpc_client import build_create_request

        return build_create_request(self.launch.template, self.launch.inputs, self.launch.output_prefix)


@dataclass(frozen=True)
class Submitted:
    """A created job: its id, the connector's resource meta (through a connector), and whether the
    journal could record it (the job exists either way; its id must reach the user)."""

    job_id: str | None
    resource_meta: str | None
    journal_error: str | None = None


# --------------------------------------------------------------------------- plan


def plan(options: SubmitOptions, invocation: Invocation) -> SubmitPlan:
    """Validate every flag, the template and the inputs, and decide the job; create and write nothing.

    Raises ``UsageError`` (exit 2) for anything wrong with what was given, and with a budget a
    refusal from the offer look-up (no instance type within the cap, a budget below one billed
    unit). A look-up for ``--dry-run`` alone is best effort: a failure is a warning.
    """
    from perianctl.flyte.launch import prepare_launch
    from perianctl.flyte.translate import JobOverrides

    o = options
    if o.connector:
        lost = [
            flag
            for flag, value in (
                ("--instance-type-id", o.instance_type_id),
                ("--secret-env", o.secret_env),
                ("--storage-credentials", o.storage_credentials),
            )
            if value
        ]
        if lost:
            raise UsageError(
                f"{', '.join(lost)} cannot be sent through a connector (a CreateTaskRequest carries only the template)",
                hint="the connector forwards its own storage and registry "
                "secrets; pass the resources as --cores/--memory/--accelerators/...",
            )
    overrides = JobOverrides(
        cores=o.cores,
        memory=o.memory,
        accelerators=o.accelerators,
        accelerator_type=o.accelerator_type,
        country_code=o.country_code,
        provider=o.provider,
        os_storage_size=o.os_storage_size,
        timeout_seconds=o.timeout_seconds,
        image=o.image,
        env=parse_env(o.env),
        instance_type_id=o.instance_type_id,
        max_price_per_hour=o.max_price_per_hour,
        max_cost=o.max_cost,
    )
    loaded = _load(o, invocation.note)
    inputs = _inputs(loaded, o)
    secrets = forwarded_secrets(o.secret_env, o.storage_credentials, invocation.environ)
    offer = None if o.connector else _offer(loaded, overrides, invocation, dry_run=o.dry_run)
    settings = invocation.settings
    run_id = uuid.uuid4().hex
    configured = o.output_prefix or settings.get("output_prefix")
    prefix = str(configured) if configured else default_prefix(run_id)
    launch = prepare_launch(loaded.template, inputs, prefix, run_id=run_id, write_inputs=False)
    request = None
    if o.connector:
        from perianctl.flyte.translate import apply_overrides

        launch = replace(launch, template=apply_overrides(launch.template, overrides))
    else:
        request = _job_request(launch, overrides, secrets, offer, o.secret_env, invocation.environ)
    return SubmitPlan(
        options=o,
        loaded=loaded,
        launch=launch,
        run_id=run_id,
        own_prefix=not configured,
        api_url=settings.api_url,
        profile=settings.profile,
        request=request,
        offer=offer,
    )


def _load(o: SubmitOptions, note: Callable[[Note], None]) -> LoadedTemplate:
    from perianctl.flyte.templates import load_template

    loaded = load_template(o.template, task=o.task, image=o.image)
    if loaded.template.type != PERIAN_TASK_TYPE:
        note(
            Note(
                "warn", f"template type is '{loaded.template.type}', not 'perian_task'; submitting it to PERIAN anyway"
            )
        )
    return loaded


def _inputs(loaded: LoadedTemplate, o: SubmitOptions) -> LiteralMap:
    from pathlib import Path

    from perianctl.flyte.inputs import build_inputs

    return build_inputs(loaded.template.interface, list(o.inputs), Path(o.inputs_file) if o.inputs_file else None)


def default_prefix(run_id: str) -> str:
    """``<state dir>/runs/<run id>``; nothing is created here (see :func:`submit`)."""
    from perianctl.config import state_dir

    return str(state_dir() / "runs" / run_id)


def parse_env(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``--env KEY=VALUE`` pairs; a pair without ``=`` or with an empty key is a ``UsageError``."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--env expects KEY=VALUE, got '{pair}'")
        result[key.strip()] = value
    return result


def forwarded_secrets(
    secret_env: tuple[str, ...], storage_credentials: bool, environ: Mapping[str, str]
) -> JobSecrets | None:
    """Check ``--secret-env`` names and read ``--storage-credentials`` from the local environment.

    Every value is registered with :mod:`perianctl.redact` first, so it never shows in output,
    logs or errors. Returns the storage credentials (``None`` without ``--storage-credentials``).
    """
    from pathlib import Path

    from perianctl.flyte.translate import JobSecrets
    from perianctl.redact import register_secret

    for name in secret_env:
        if name not in environ:
            raise UsageError(f"--secret-env {name}: not set in the local environment")
        register_secret(environ[name])
    if not storage_credentials:
        return None
    gcp_path = environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    gcp = None
    if gcp_path:
        try:
            gcp = Path(gcp_path).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read GOOGLE_APPLICATION_CREDENTIALS file: {exc.strerror}") from None
    secrets = JobSecrets(
        aws_access_key_id=environ.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=environ.get("AWS_SECRET_ACCESS_KEY"),
        google_application_credentials=gcp,
    )
    for value in (secrets.aws_access_key_id, secrets.aws_secret_access_key, gcp):
        register_secret(value)
    if gcp:  # it travels as a base64 container file: scrub that form too
        import base64

        register_secret(base64.b64encode(gcp.encode()).decode())
    if not (secrets.aws_access_key_id or gcp):
        raise UsageError("--storage-credentials: neither AWS_ACCESS_KEY_ID nor GOOGLE_APPLICATION_CREDENTIALS is set")
    return secrets


def _offer(loaded: LoadedTemplate, overrides: JobOverrides, invocation: Invocation, *, dry_run: bool) -> Plan | None:
    """The instance type the job gets and what its budget allows (``--max-price-per-hour``, ``--max-cost``).

    With a budget the answer is binding: no offer within the cap, a budget below one billed unit, or one
    that remaining credits / the usage limit cannot cover refuses the submit (exit 2) before anything
    is written or created. ``--dry-run`` alone only shows the cheapest match now (PERIAN chooses when
    the job is created), and a failed look-up is a warning.
    """
    from perianctl.flyte.translate import budget_of, template_to_job_request
    from perianctl.perian.offers import check_credits, plan_budget

    budget = budget_of(loaded.template, overrides)
    if not budget and not dry_run:
        return None
    request = template_to_job_request(loaded.template, overrides=overrides)

    async def go() -> Plan:
        from perianctl.perian.client import RetryPolicy

        # Only a preview without a budget: a quick answer or none (the API may be down, or no credentials).
        retry = None if budget else RetryPolicy(attempts=2, timeout=10.0, wait_max=1.0)
        async with invocation.client(**({"retry": retry} if retry else {})) as client:
            planned = await plan_budget(client, request, budget)
            if budget.max_cost is not None:
                rate = planned.offer.rate
                problem = await check_credits(client, budget.max_cost, rate.currency if rate else "EUR")
                if problem:
                    invocation.note(Note("warn", problem))
            return planned

    try:
        planned: Plan = invocation.run(go())
    except PerianctlError as exc:
        if budget:
            raise
        invocation.note(Note("warn", f"cannot tell which instance type PERIAN would choose: {exc.message}"))
        return None
    if budget:
        invocation.note(Note("info", planned.describe()))
    return planned


def _job_request(
    launch: PreparedLaunch,
    overrides: JobOverrides,
    secrets: JobSecrets | None,
    offer: Plan | None,
    secret_env: tuple[str, ...],
    environ: Mapping[str, str],
) -> CreateJobRequest:
    """The ``POST /job`` body: the translated template, pinned by a budget, ``--secret-env`` values added."""
    from perianctl.flyte.translate import template_to_job_request
    from perianctl.perian.offers import apply_plan

    request = template_to_job_request(launch.template, overrides=overrides, secrets=secrets)
    if offer is not None and offer.budget:
        request = apply_plan(request, offer)
    return request.with_env(secrets={name: environ[name] for name in secret_env})


# --------------------------------------------------------------------------- submit


def submit(planned: SubmitPlan, invocation: Invocation) -> Submitted:
    """Create the planned job exactly once and record it in the local journal.

    ``inputs.pb`` is written right before the create and removed again only when the create
    certainly made no job (:func:`may_exist`). Errors of the create propagate; a journal that
    cannot be written does not (the job exists: :attr:`Submitted.journal_error` says why).
    """
    create = _via_connector if planned.options.connector else _via_api
    submitted = create(planned, invocation)
    if submitted.job_id is None:
        return submitted
    try:
        _journal(planned, submitted)
    except PerianctlError as exc:
        return replace(submitted, journal_error=exc.message)
    return submitted


def _via_api(planned: SubmitPlan, invocation: Invocation) -> Submitted:
    request = planned.request
    assert request is not None

    async def create() -> str:
        # A keyed create is safe to retry (each retry first looks for the job an earlier try may
        # have made), so submit is patient: against an API failing 20 % of requests, 5 tries give
        # up once in ~3,000 submits, 10 tries once in ~10 million -- still inside the 60 s budget.
        async with invocation.client() as client:
            return await client.create_job(
                request, idempotency_key=planned.idempotency_key, attempts=10, fresh_key=True
            )

    job_id = _create_or_clean_up(planned, lambda: invocation.run(create(), status="waiting for PERIAN"))
    return Submitted(job_id=job_id, resource_meta=None)


def _via_connector(planned: SubmitPlan, invocation: Invocation) -> Submitted:
    from perianctl.connector import grpc_client

    address = planned.options.connector
    assert address is not None
    launch = planned.launch
    submission = _create_or_clean_up(
        planned,
        lambda: invocation.run(
            grpc_client.submit_via_connector(address, launch.template, launch.inputs, launch.output_prefix),
            status=f"waiting for connector {address}",
        ),
    )
    return Submitted(job_id=submission.job_id, resource_meta=submission.resource_meta.decode("utf-8", "replace"))


def may_exist(exc: BaseException) -> bool:
    """After a failed create: could the job exist all the same? Only a definite answer says no.

    An HTTP answer that refused the request (auth, validation, bad request) or an error raised
    before anything was sent means no job; a network failure or timeout after sending, an
    interrupt or an unexpected error may have left one, and then its ``inputs.pb`` must stay.
    """
    if getattr(exc, "never_sent", False) or getattr(exc, "job_created", None) is False:
        return False
    return not isinstance(exc, PerianctlError) or isinstance(exc, (UnavailableError, ProtocolError))


def _create_or_clean_up(planned: SubmitPlan, create: Callable[[], T]) -> T:
    """Write the inputs, run ``create``; on a failure that certainly created nothing, remove them."""
    from perianctl.flyte.launch import discard_inputs_file

    launch = _write_inputs(planned.launch, own_prefix=planned.own_prefix)
    try:
        return create()
    except BaseException as exc:
        if not may_exist(exc):
            discard_inputs_file(launch, remove_dir=planned.own_prefix)
        raise


def _write_inputs(launch: PreparedLaunch, *, own_prefix: bool) -> PreparedLaunch:
    """Write ``inputs.pb`` right before the create, once everything else was validated."""
    from perianctl.flyte.launch import write_inputs_file

    if own_prefix and launch.needs_inputs_file:
        from perianctl.config import state_dir
        from perianctl.files import private_dir

        try:  # private (it holds the journal); `runs/<id>` below would create it 0755
            private_dir(state_dir())
        except OSError as exc:
            raise UsageError(
                f"cannot create the state directory {state_dir()}: {exc.strerror or exc}", hint=STATE_DIR_HINT
            ) from None
    try:
        return write_inputs_file(launch)
    except UsageError as exc:
        if own_prefix:
            exc.hint = exc.hint or STATE_DIR_HINT
        raise


def _journal(planned: SubmitPlan, submitted: Submitted) -> None:
    from perianctl.journal import open_journal

    assert submitted.job_id is not None
    template = planned.launch.template
    with open_journal() as journal:
        journal.record_submission(
            submitted.job_id,
            profile=planned.profile,
            api_url=planned.api_url,
            name=template.id.name or planned.loaded.source,
            image=template.container.image if template.HasField("container") else None,
            source=planned.loaded.source,
            via=planned.via,
            connector=planned.options.connector,
            resource_meta=submitted.resource_meta,
            output_prefix=planned.launch.output_prefix,
            idempotency_key=planned.idempotency_key,
        )
