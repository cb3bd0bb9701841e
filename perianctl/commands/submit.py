"""Submit a Flyte task template (.pb, TaskSpec, package .tgz, JSON, YAML or file.py:task) to PERIAN.

Loads the template, builds its typed inputs (-i NAME=VALUE, --inputs-file) and writes inputs.pb
under --output-prefix, renders the container's placeholders as flytepropeller does, translates the
task into a PERIAN job (the connector's own code: image, command, resources, env, secrets), creates
it exactly once, records it in the local journal and prints its id. --wait blocks until the job
ends and exits with its outcome (0 done, 3 failed, 4 cancelled, 5 timed out); --watch shows it live.

With --connector HOST:PORT (or the 'connector' setting) the task goes through a Flyte connector
instead: a real CreateTaskRequest over gRPC, as flytepropeller sends it (rendered template, inputs,
output prefix, task execution metadata; 10 s deadline). The resource flags (--cores, --memory,
--accelerators, --accelerator-type, --country-code, --provider, --os-storage-size), --image, --env and
--timeout are written into the template (custom keys, container image/env, metadata.timeout), since
the template is all a connector receives. --instance-type-id, --secret-env and --storage-credentials
cannot travel that way: the connector uses its own server-side secrets. With --wait/--watch the
job is followed through the connector's GetTask, polled like propeller polls it (one line per phase
change; no PERIAN credentials needed): SUCCEEDED 0, FAILED/RETRYABLE_FAILED 3 (5 if PERIAN reports
a timeout), ABORTED 4, --wait-timeout reached 5.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from perianctl.commands.common import connector_target, make_client, options, output_option, run

if TYPE_CHECKING:
    from decimal import Decimal

    from perianctl.flyte.launch import PreparedLaunch
    from perianctl.flyte.templates import LoadedTemplate
    from perianctl.flyte.translate import JobOverrides, JobSecrets
    from perianctl.perian.client import PerianClient
    from perianctl.perian.offers import Plan

T = TypeVar("T")


def submit(
    ctx: typer.Context,
    template: Annotated[str, typer.Argument(help="Template file (.pb/.json/.yaml/.tgz) or path/file.py:task_name.")],
    task: Annotated[str | None, typer.Option("--task", help="Task to pick from a package with several.")] = None,
    image: Annotated[str | None, typer.Option("--image", help="Container image (overrides the template's).")] = None,
    input_pairs: Annotated[list[str] | None, typer.Option("--input", "-i", help="Task input NAME=VALUE (repeatable).")] = None,
    inputs_file: Annotated[str | None, typer.Option("--inputs-file", help="Inputs as JSON/YAML mapping or LiteralMap .pb.")] = None,
    output_prefix: Annotated[str | None, typer.Option("--output-prefix", help="Where inputs.pb/outputs.pb live (dir, s3://, gs://).")] = None,
    cores: Annotated[int | None, typer.Option("--cores", min=1, help="CPU cores.")] = None,
    memory: Annotated[int | None, typer.Option("--memory", min=1, help="RAM in GB.")] = None,
    accelerators: Annotated[int | None, typer.Option("--accelerators", min=0, help="Number of GPUs.")] = None,
    accelerator_type: Annotated[str | None, typer.Option("--accelerator-type", help="GPU type, e.g. A100, H100, L4.")] = None,
    country_code: Annotated[str | None, typer.Option("--country-code", help="Two-letter country code, e.g. DE.")] = None,
    provider: Annotated[str | None, typer.Option("--provider", help="Provider short name, e.g. ovh.")] = None,
    os_storage_size: Annotated[int | None, typer.Option("--os-storage-size", min=1, help="Boot disk in GB.")] = None,
    instance_type_id: Annotated[str | None, typer.Option("--instance-type-id", help="A specific instance type.")] = None,
    max_price_per_hour: Annotated[str | None, typer.Option("--max-price-per-hour", metavar="AMOUNT", help="Refuse (exit 2) unless an instance type matching the requirements costs at most this per hour; the job is pinned to the cheapest such type.")] = None,
    max_cost: Annotated[str | None, typer.Option("--max-cost", metavar="AMOUNT", help="Budget for the job: becomes its timeout from the chosen instance type's price and billing granularity (whole units); refused (exit 2) when it buys no unit or exceeds remaining credits or the usage limit.")] = None,
    timeout: Annotated[str | None, typer.Option("--timeout", help="Job timeout: seconds or 30s/5m/2h/1h30m/1d.")] = None,
    env: Annotated[list[str] | None, typer.Option("--env", "-e", help="Container env KEY=VALUE (repeatable).")] = None,
    secret_env: Annotated[list[str] | None, typer.Option("--secret-env", help="Forward local env var NAME as a job secret (repeatable).")] = None,
    storage_credentials: Annotated[bool, typer.Option("--storage-credentials", help="Forward AWS_* / GOOGLE_APPLICATION_CREDENTIALS from the local env so the job can reach the output prefix.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the request that would be sent (secrets redacted) and exit.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the job; exit code tells the outcome.")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Watch the job live until it ends.")] = False,
    wait_timeout: Annotated[str | None, typer.Option("--wait-timeout", help="With --wait/--watch: give up after this long (exit 5).")] = None,
    connector: Annotated[str | None, typer.Option("--connector", metavar="HOST:PORT", help="Submit through a Flyte connector (gRPC CreateTask, as flytepropeller does); --wait then polls its GetTask. Default: the 'connector' setting; '' turns it off.")] = None,
    protocol: Annotated[str | None, typer.Option("--protocol", metavar="v1|v2", help="Connector protocol for --connector: v1 (flyteidl, Flyte 1) or v2 (flyteidl2, Flyte 2). Default: what the server's health service says it serves (v1 when both).")] = None,
    output: Annotated[str, output_option("text", "name", "json", "yaml")] = "text",
) -> None:
    from perianctl.errors import PerianctlError, UsageError
    from perianctl.flyte.translate import JobOverrides
    from perianctl.timeparse import parse_duration

    # Everything is validated before anything is written or sent: a bad flag must never leave a
    # job behind (it runs and bills) or files for a job that does not exist.
    if wait and watch:
        raise UsageError("choose one of --wait and --watch")
    if output not in ("text", "name", "json", "yaml"):
        raise UsageError(f"invalid output format '{output}' (choose: text, name, json, yaml)")
    follow_timeout = parse_duration(wait_timeout, what="--wait-timeout") if wait_timeout else None
    job_timeout = int(parse_duration(timeout, what="--timeout")) if timeout else None
    settings = options(ctx).settings()
    connector = connector_target(ctx, connector, protocol)
    if connector:
        lost = [flag for flag, value in (("--instance-type-id", instance_type_id), ("--secret-env", secret_env),
                                         ("--storage-credentials", storage_credentials)) if value]
        if lost:
            raise UsageError(f"{', '.join(lost)} cannot be sent through a connector (a CreateTaskRequest carries "
                             "only the template)", hint="the connector forwards its own storage and registry "
                             "secrets; pass the resources as --cores/--memory/--accelerators/...")
    overrides = JobOverrides(
        cores=cores, memory=memory, accelerators=accelerators, accelerator_type=accelerator_type,
        country_code=country_code, provider=provider, os_storage_size=os_storage_size,
        timeout_seconds=job_timeout, image=image, env=_parse_env(env), instance_type_id=instance_type_id,
        max_price_per_hour=max_price_per_hour, max_cost=max_cost,
    )
    loaded = _load(template, task=task, image=image)
    inputs = _inputs(loaded, input_pairs or [], inputs_file)
    secrets = _secrets(secret_env or [], storage_credentials)
    plan = None if connector else _plan(ctx, loaded, overrides, dry_run=dry_run)  # before anything is written
    run_id = uuid.uuid4().hex
    own_prefix = not (output_prefix or settings.get("output_prefix"))
    prefix = _default_prefix(run_id) if own_prefix else str(output_prefix or settings.get("output_prefix"))
    from perianctl.flyte.launch import prepare_launch

    launch = prepare_launch(loaded.template, inputs, prefix, run_id=run_id, write_inputs=False)
    if connector:
        import dataclasses

        from perianctl.flyte.translate import apply_overrides

        launch = dataclasses.replace(launch, template=apply_overrides(launch.template, overrides))
        job_id, resource_meta = _via_connector(ctx, connector, launch, dry_run=dry_run, output=output,
                                               own_prefix=own_prefix)
    else:
        job_id, resource_meta = _via_api(ctx, launch, overrides, secrets, run_id=run_id, dry_run=dry_run,
                                         output=output, secret_env=secret_env or [], plan=plan,
                                         own_prefix=own_prefix)
    if job_id is None:  # dry run
        return
    try:
        _journal(ctx, job_id, loaded, launch, connector=connector, resource_meta=resource_meta, run_id=run_id)
    except PerianctlError as exc:  # the job exists: its id must still reach the user
        from perianctl.ui.console import warn

        warn(f"job {job_id} was not recorded in the local journal: {exc.message}")
    machine = output in ("json", "yaml")
    if not (machine and (wait or watch)):  # with --wait, the JSON record comes at the end, with outputs
        _print_result(job_id, launch, output, connector=connector)
    if wait or watch:
        _follow(ctx, job_id, mode="watch" if watch else "wait", timeout=follow_timeout, launch=launch,
                connector=connector, resource_meta=resource_meta, output=output)


# --------------------------------------------------------------------------- steps


def _load(source: str, *, task: str | None, image: str | None) -> LoadedTemplate:
    from perianctl.flyte.templates import load_template
    from perianctl.ui.console import warn

    loaded = load_template(source, task=task, image=image)
    if loaded.template.type != "perian_task":
        warn(f"template type is '{loaded.template.type}', not 'perian_task'; submitting it to PERIAN anyway")
    return loaded


def _inputs(loaded: LoadedTemplate, pairs: list[str], inputs_file: str | None):
    from pathlib import Path

    from perianctl.flyte.inputs import build_inputs

    return build_inputs(loaded.template.interface, pairs, Path(inputs_file) if inputs_file else None)


def _default_prefix(run_id: str) -> str:
    """``<state dir>/runs/<run id>``; nothing is created here (see :func:`_write_inputs`)."""
    from perianctl.config import state_dir

    return str(state_dir() / "runs" / run_id)


def _write_inputs(launch: PreparedLaunch, *, own_prefix: bool) -> PreparedLaunch:
    """Write ``inputs.pb`` right before the create, once everything else was validated."""
    from perianctl.errors import UsageError
    from perianctl.flyte.launch import write_inputs_file

    if own_prefix and launch.needs_inputs_file:
        from perianctl.config import state_dir
        from perianctl.files import private_dir

        try:  # private (it holds the journal); `runs/<id>` below would create it 0755
            private_dir(state_dir())
        except OSError as exc:
            raise UsageError(
                f"cannot create the state directory {state_dir()}: {exc.strerror or exc}",
                hint="set PERIANCTL_STATE_DIR to a writable directory, or pass --output-prefix",
            ) from None
    try:
        return write_inputs_file(launch)
    except UsageError as exc:
        if own_prefix:
            exc.hint = exc.hint or "set PERIANCTL_STATE_DIR to a writable directory, or pass --output-prefix"
        raise


def _may_exist(exc: BaseException) -> bool:
    """After a failed create: could the job exist all the same? Only a definite answer says no.

    An HTTP answer that refused the request (auth, validation, bad request) or an error raised
    before anything was sent means no job; a network failure or timeout after sending, an
    interrupt or an unexpected error may have left one, and then its ``inputs.pb`` must stay.
    """
    from perianctl.errors import PerianctlError, ProtocolError, UnavailableError

    if getattr(exc, "never_sent", False) or getattr(exc, "job_created", None) is False:
        return False
    return not isinstance(exc, PerianctlError) or isinstance(exc, (UnavailableError, ProtocolError))


def _create_or_clean_up(launch: PreparedLaunch, create: Callable[[], T], *, own_prefix: bool) -> T:
    """Write the inputs, run ``create``; on a failure that certainly created nothing, remove them."""
    from perianctl.flyte.launch import discard_inputs_file

    launch = _write_inputs(launch, own_prefix=own_prefix)
    try:
        return create()
    except BaseException as exc:
        if not _may_exist(exc):
            discard_inputs_file(launch, remove_dir=own_prefix)
        raise


def _parse_env(pairs: list[str] | None) -> dict[str, str]:
    from perianctl.errors import UsageError

    result: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--env expects KEY=VALUE, got '{pair}'")
        result[key.strip()] = value
    return result


def _secrets(secret_env: list[str], storage_credentials: bool) -> JobSecrets | None:
    import os
    from pathlib import Path

    from perianctl.errors import UsageError
    from perianctl.flyte.translate import JobSecrets
    from perianctl.redact import register_secret

    for name in secret_env:
        if name not in os.environ:
            raise UsageError(f"--secret-env {name}: not set in the local environment")
        register_secret(os.environ[name])
    if not storage_credentials:
        return None
    gcp_path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    gcp = None
    if gcp_path:
        try:
            gcp = Path(gcp_path).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read GOOGLE_APPLICATION_CREDENTIALS file: {exc.strerror}") from None
    secrets = JobSecrets(
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
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


def _plan(ctx: typer.Context, loaded: LoadedTemplate, overrides: JobOverrides, *, dry_run: bool) -> Plan | None:
    """The instance type the job gets and what its budget allows (``--max-price-per-hour``, ``--max-cost``).

    With a budget the answer is binding: no offer within the cap, a budget below one billed unit, or one
    that remaining credits / the usage limit cannot cover refuses the submit (exit 2) before anything
    is written or created. ``--dry-run`` alone only shows the cheapest match now (PERIAN chooses when
    the job is created), and a failed look-up is a warning.
    """
    from perianctl.errors import PerianctlError
    from perianctl.flyte.translate import budget_of, template_to_job_request
    from perianctl.perian.offers import plan_budget
    from perianctl.ui.console import info, warn

    budget = budget_of(loaded.template, overrides)
    if not budget and not dry_run:
        return None
    request = template_to_job_request(loaded.template, overrides=overrides)

    async def go() -> Plan:
        from perianctl.perian.client import RetryPolicy

        # Only a preview without a budget: a quick answer or none (the API may be down, or no credentials).
        retry = None if budget else RetryPolicy(attempts=2, timeout=10.0, wait_max=1.0)
        async with make_client(ctx, **({"retry": retry} if retry else {})) as client:
            planned = await plan_budget(client, request, budget)
            if budget.max_cost is not None:
                await _check_credits(client, budget.max_cost, planned)
            return planned

    try:
        plan = run(go())
    except PerianctlError as exc:
        if budget:
            raise
        warn(f"cannot tell which instance type PERIAN would choose: {exc.message}")
        return None
    if budget:
        info(plan.describe())
    return plan


async def _check_credits(client: PerianClient, max_cost: Decimal, plan: Plan) -> None:
    """Refuse a budget that remaining credits or the usage limit cannot cover (see :func:`_plan`)."""
    from perianctl.perian.offers import check_credits
    from perianctl.ui.console import warn

    rate = plan.offer.rate
    problem = await check_credits(client, max_cost, rate.currency if rate else "EUR")
    if problem:
        warn(problem)


def _via_api(
    ctx: typer.Context,
    launch: PreparedLaunch,
    overrides: JobOverrides,
    secrets: JobSecrets | None,
    *,
    run_id: str,
    dry_run: bool,
    output: str,
    secret_env: list[str],
    own_prefix: bool,
    plan: Plan | None = None,
) -> tuple[str | None, str | None]:
    import os

    from perianctl.flyte.translate import template_to_job_request
    from perianctl.perian.offers import apply_plan

    request = template_to_job_request(launch.template, overrides=overrides, secrets=secrets)
    if plan is not None and plan.budget:
        request = apply_plan(request, plan)
    if secret_env:
        params = request.docker_run_parameters
        merged = {**(params.secrets or {}), **{name: os.environ[name] for name in secret_env}}
        request = request.model_copy(
            update={"docker_run_parameters": params.model_copy(update={"secrets": merged})}
        )
    if dry_run:
        _print_dry_run(ctx, request.to_wire(), launch, output, plan=plan)
        return None, None

    async def create() -> str:
        # A keyed create is safe to retry (each retry first looks for the job an earlier try may
        # have made), so submit is patient: against an API failing 20 % of requests, 5 tries give
        # up once in ~3,000 submits, 10 tries once in ~10 million -- still inside the 60 s budget.
        async with make_client(ctx) as client:
            return await client.create_job(
                request, idempotency_key=f"perianctl-{run_id}", attempts=10, fresh_key=True
            )

    return _create_or_clean_up(launch, lambda: run(create(), status="waiting for PERIAN"), own_prefix=own_prefix), None


def _print_dry_run(ctx: typer.Context, body: dict[str, object], launch: PreparedLaunch, output: str, *,
                   plan: Plan | None = None) -> None:
    from perianctl.redact import redact
    from perianctl.ui.console import info
    from perianctl.ui.output import OutputFormat, emit_data

    settings = options(ctx).settings()
    emit_data(
        {
            "method": "POST",
            "url": f"{settings.api_url}/job",
            "output_prefix": launch.output_prefix,
            "body": redact(body),
            "instance_type": plan.offer.record() if plan is not None else None,
            "budget": plan.record() if plan is not None and plan.budget else None,
        },
        OutputFormat.yaml if output == "yaml" else OutputFormat.json,
    )
    if plan is not None and not plan.budget:
        how = "--instance-type-id" if body.get("instance_type_id") else "the cheapest match now; PERIAN chooses at creation"
        info(f"would run on {plan.offer.describe()} ({how})")


def _via_connector(
    ctx: typer.Context, address: str, launch: PreparedLaunch, *, dry_run: bool, output: str, own_prefix: bool
) -> tuple[str | None, str | None]:
    from perianctl.connector import grpc_client

    if dry_run:
        from google.protobuf import json_format

        from perianctl.ui.console import write_out

        request = grpc_client.build_create_request(launch.template, launch.inputs, launch.output_prefix)
        write_out(json_format.MessageToJson(request))
        return None, None
    submission = _create_or_clean_up(launch, lambda: run(
        grpc_client.submit_via_connector(address, launch.template, launch.inputs, launch.output_prefix),
        status=f"waiting for connector {address}",
    ), own_prefix=own_prefix)
    return submission.job_id, submission.resource_meta.decode("utf-8", "replace")


def _journal(
    ctx: typer.Context,
    job_id: str,
    loaded: LoadedTemplate,
    launch: PreparedLaunch,
    *,
    connector: str | None,
    resource_meta: str | None,
    run_id: str,
) -> None:
    from perianctl.journal import open_journal

    settings = options(ctx).settings()
    template = launch.template
    name = template.id.name or loaded.source
    image = template.container.image if template.HasField("container") else None
    with open_journal() as journal:
        journal.record_submission(
            job_id, profile=settings.profile, api_url=settings.api_url, name=name, image=image,
            source=loaded.source, via="connector" if connector else "api", connector=connector,
            resource_meta=resource_meta, output_prefix=launch.output_prefix,
            idempotency_key=f"perianctl-{run_id}",
        )


def _print_result(job_id: str, launch: PreparedLaunch, output: str, *, connector: str | None) -> None:
    from perianctl.ui.console import info, write_out
    from perianctl.ui.output import OutputFormat, emit_data

    if output in ("json", "yaml"):
        emit_data(
            {"id": job_id, "output_prefix": launch.output_prefix, "connector": connector},
            OutputFormat(output),
        )
        return
    write_out(job_id)
    if output == "text":
        info(f"submitted job {job_id}" + (f" via connector {connector}" if connector else ""))
        follow = f"perianctl get {job_id} --connector {connector}" if connector else f"perianctl watch {job_id}"
        info(f"follow it: {follow}   ·   outputs: {launch.output_prefix}")


def _follow(
    ctx: typer.Context,
    job_id: str,
    *,
    mode: str,
    timeout: float | None,
    launch: PreparedLaunch,
    connector: str | None,
    resource_meta: str | None,
    output: str,
) -> None:
    from perianctl.commands.wait import follow_after_submit, follow_via_connector

    if connector:
        # Through the connector, as propeller follows it: right even when the connector talks to
        # another PERIAN than this profile (e.g. `serve --sandbox`), and needs no credentials here.
        code, failure = follow_via_connector(connector, job_id, timeout=timeout, interval=1.0,
                                             output_prefix=launch.output_prefix)
    else:
        code, failure = follow_after_submit(ctx, [job_id], mode=mode, timeout=timeout, interval=1.0)
    code = _report_task_result(job_id, launch, code, output=output, connector=connector, failure=failure)
    if code:
        raise typer.Exit(code)


def _report_task_result(
    job_id: str, launch: PreparedLaunch, code: int, *, output: str, connector: str | None,
    failure: str | None = None,
) -> int:
    """Print the task's outputs as values (or its error.pb message); returns the final exit code.

    Outputs are data, so they go to stdout: ``name = value`` lines, or inside the JSON/YAML record.
    A task that raised but whose container still exited 0 (no FLYTE_FAIL_ON_ERROR) leaves an
    ``error.pb`` behind: like flytepropeller, that is a failure even though PERIAN said Done.
    One failure is one ``error:`` line: ``failure`` (how the job ended, from the follow) and the
    task's own error are printed together.
    """
    from perianctl.errors import ExitCode
    from perianctl.flyte.launch import import_hint, read_error, read_outputs
    from perianctl.ui.console import error, info, warn, write_out
    from perianctl.ui.output import OutputFormat, dump_json, emit_data

    values: dict[str, object] | None = None
    task_error: str | None = None
    message = read_error(launch.output_prefix)
    if message:
        from perianctl.text import last_line

        task_error = last_line(message)
        error(f"job {job_id} failed: task error: {task_error}", hint=import_hint(launch.template, message))
        code = code or int(ExitCode.JOB_FAILED)
    elif failure:
        error(failure, hint=import_hint(launch.template, failure))
    elif code == 0:
        outputs = read_outputs(launch.output_prefix)
        if outputs is None:
            if launch.template.interface.outputs.variables:
                warn(f"the task wrote no outputs.pb under {launch.output_prefix}")
        else:
            from perianctl.flyte.inputs import literal_map_to_python

            values = literal_map_to_python(outputs)
    if output in ("json", "yaml"):
        emit_data(
            {"id": job_id, "output_prefix": launch.output_prefix, "connector": connector, "exit_code": code,
             "outputs": values, "error": task_error},
            OutputFormat(output),
        )
    elif values is not None:
        info("outputs:")
        for name, value in values.items():
            write_out(f"{name} = {value if isinstance(value, str) else dump_json(value)}")
    return code
