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
job is followed through the connector's GetTask, polled like propeller polls it, with the views of
wait/watch (no PERIAN credentials needed): SUCCEEDED 0, FAILED/RETRYABLE_FAILED 3 (5 if PERIAN
reports a timeout), ABORTED 4, --wait-timeout reached 5.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from perianctl.commands.common import connector_target, make_client, options, output_option, run

if TYPE_CHECKING:
    from perianctl.jobs.submit import Note, SubmitPlan

_MAX_PRICE_HELP = (
    "Refuse (exit 2) unless an instance type matching the requirements costs at most this per hour; "
    "the job is pinned to the cheapest such type."
)
_MAX_COST_HELP = (
    "Budget for the job: becomes its timeout from the chosen instance type's price and billing "
    "granularity (whole units); refused (exit 2) when it buys no unit or exceeds remaining credits "
    "or the usage limit."
)
_CONNECTOR_HELP = (
    "Submit through a Flyte connector (gRPC CreateTask, as flytepropeller does); --wait then polls "
    "its GetTask. Default: the 'connector' setting; '' turns it off."
)
_PROTOCOL_HELP = (
    "Connector protocol for --connector: v1 (flyteidl, Flyte 1) or v2 (flyteidl2, Flyte 2). "
    "Default: what the server's health service says it serves (v1 when both)."
)
_STORAGE_HELP = (
    "Forward AWS_* / GOOGLE_APPLICATION_CREDENTIALS from the local env so the job can reach the output prefix."
)

Opt = typer.Option


def submit(
    ctx: typer.Context,
    template: Annotated[str, typer.Argument(help="Template file (.pb/.json/.yaml/.tgz) or path/file.py:task_name.")],
    task: Annotated[str | None, Opt("--task", help="Task to pick from a package with several.")] = None,
    image: Annotated[str | None, Opt("--image", help="Container image (overrides the template's).")] = None,
    input_pairs: Annotated[list[str] | None, Opt("--input", "-i", help="Task input NAME=VALUE (repeatable).")] = None,
    inputs_file: Annotated[
        str | None, Opt("--inputs-file", help="Inputs as JSON/YAML mapping or LiteralMap .pb.")
    ] = None,
    output_prefix: Annotated[
        str | None, Opt("--output-prefix", help="Where inputs.pb/outputs.pb live (dir, s3://, gs://).")
    ] = None,
    cores: Annotated[int | None, Opt("--cores", min=1, help="CPU cores.")] = None,
    memory: Annotated[int | None, Opt("--memory", min=1, help="RAM in GB.")] = None,
    accelerators: Annotated[int | None, Opt("--accelerators", min=0, help="Number of GPUs.")] = None,
    accelerator_type: Annotated[str | None, Opt("--accelerator-type", help="GPU type, e.g. A100, H100, L4.")] = None,
    country_code: Annotated[str | None, Opt("--country-code", help="Two-letter country code, e.g. DE.")] = None,
    provider: Annotated[str | None, Opt("--provider", help="Provider short name, e.g. ovh.")] = None,
    os_storage_size: Annotated[int | None, Opt("--os-storage-size", min=1, help="Boot disk in GB.")] = None,
    instance_type_id: Annotated[str | None, Opt("--instance-type-id", help="A specific instance type.")] = None,
    max_price_per_hour: Annotated[
        str | None, Opt("--max-price-per-hour", metavar="AMOUNT", help=_MAX_PRICE_HELP)
    ] = None,
    max_cost: Annotated[str | None, Opt("--max-cost", metavar="AMOUNT", help=_MAX_COST_HELP)] = None,
    timeout: Annotated[str | None, Opt("--timeout", help="Job timeout: seconds or 30s/5m/2h/1h30m/1d.")] = None,
    env: Annotated[list[str] | None, Opt("--env", "-e", help="Container env KEY=VALUE (repeatable).")] = None,
    secret_env: Annotated[
        list[str] | None, Opt("--secret-env", help="Forward local env var NAME as a job secret (repeatable).")
    ] = None,
    storage_credentials: Annotated[bool, Opt("--storage-credentials", help=_STORAGE_HELP)] = False,
    dry_run: Annotated[
        bool, Opt("--dry-run", help="Print the request that would be sent (secrets redacted) and exit.")
    ] = False,
    wait: Annotated[bool, Opt("--wait", help="Wait for the job; exit code tells the outcome.")] = False,
    watch: Annotated[bool, Opt("--watch", help="Watch the job live until it ends.")] = False,
    wait_timeout: Annotated[
        str | None, Opt("--wait-timeout", help="With --wait/--watch: give up after this long (exit 5).")
    ] = None,
    connector: Annotated[str | None, Opt("--connector", metavar="HOST:PORT", help=_CONNECTOR_HELP)] = None,
    protocol: Annotated[str | None, Opt("--protocol", metavar="v1|v2", help=_PROTOCOL_HELP)] = None,
    output: Annotated[str, output_option("text", "name", "json", "yaml")] = "text",
) -> None:
    from perianctl.errors import UsageError
    from perianctl.jobs import submit as use_case
    from perianctl.timeparse import parse_duration

    # Everything is validated before anything is written or sent (``plan`` creates nothing): a bad
    # flag must never leave a job behind (it runs and bills) or files for a job that does not exist.
    if wait and watch:
        raise UsageError("choose one of --wait and --watch")
    if output not in ("text", "name", "json", "yaml"):
        raise UsageError(f"invalid output format '{output}' (choose: text, name, json, yaml)")
    follow_timeout = parse_duration(wait_timeout, what="--wait-timeout") if wait_timeout else None
    job_timeout = int(parse_duration(timeout, what="--timeout")) if timeout else None
    settings = options(ctx).settings()
    target = connector_target(ctx, connector, protocol)
    flags = use_case.SubmitOptions(
        template=template,
        task=task,
        image=image,
        inputs=tuple(input_pairs or ()),
        inputs_file=inputs_file,
        output_prefix=output_prefix,
        cores=cores,
        memory=memory,
        accelerators=accelerators,
        accelerator_type=accelerator_type,
        country_code=country_code,
        provider=provider,
        os_storage_size=os_storage_size,
        instance_type_id=instance_type_id,
        max_price_per_hour=max_price_per_hour,
        max_cost=max_cost,
        timeout_seconds=job_timeout,
        env=tuple(env or ()),
        secret_env=tuple(secret_env or ()),
        storage_credentials=storage_credentials,
        dry_run=dry_run,
        connector=target,
    )
    invocation = use_case.Invocation(settings=settings, client=lambda **kw: make_client(ctx, **kw), run=run, note=_note)
    planned = use_case.plan(flags, invocation)
    if dry_run:
        _print_dry_run(planned, output)
        return
    submitted = use_case.submit(planned, invocation)
    if submitted.job_id is None:
        return
    if submitted.journal_error:  # the job exists: its id must still reach the user
        from perianctl.ui.console import warn

        warn(f"job {submitted.job_id} was not recorded in the local journal: {submitted.journal_error}")
    if not (output in ("json", "yaml") and (wait or watch)):  # with --wait, the record comes at the end
        _print_result(submitted.job_id, planned, output)
    if wait or watch:
        code, failure = _follow(
            ctx,
            submitted.job_id,
            planned,
            resource_meta=submitted.resource_meta,
            mode="watch" if watch else "wait",
            timeout=follow_timeout,
        )
        code = _report_outcome(submitted.job_id, planned, code, failure=failure, output=output)
        if code:
            raise typer.Exit(code)


# --------------------------------------------------------------------------- rendering


def _note(note: Note) -> None:
    from perianctl.ui.console import info, warn

    (warn if note.level == "warn" else info)(note.text)


def _print_dry_run(planned: SubmitPlan, output: str) -> None:
    from perianctl.ui.console import write_out
    from perianctl.ui.output import OutputFormat, emit_data

    if planned.options.connector:
        from google.protobuf import json_format

        write_out(json_format.MessageToJson(planned.create_task_request()))
        return
    emit_data(planned.dry_run_record(), OutputFormat.yaml if output == "yaml" else OutputFormat.json)
    note = planned.dry_run_note()
    if note is not None:
        _note(note)


def _print_result(job_id: str, planned: SubmitPlan, output: str) -> None:
    from perianctl.ui.console import info, write_out
    from perianctl.ui.output import OutputFormat, emit_data

    connector = planned.options.connector
    prefix = planned.launch.output_prefix
    if output in ("json", "yaml"):
        emit_data({"id": job_id, "output_prefix": prefix, "connector": connector}, OutputFormat(output))
        return
    write_out(job_id)
    if output == "text":
        info(f"submitted job {job_id}" + (f" via connector {connector}" if connector else ""))
        follow = f"perianctl get {job_id} --connector {connector}" if connector else f"perianctl watch {job_id}"
        info(f"follow it: {follow}   ·   outputs: {prefix}")


def _follow(
    ctx: typer.Context, job_id: str, planned: SubmitPlan, *, resource_meta: str | None, mode: str, timeout: float | None
) -> tuple[int, str | None]:
    """``--wait``/``--watch``: follow the new job until it ends (through the connector it was sent to,
    when it was: right even when that connector talks to another PERIAN than this profile, e.g.
    ``serve --sandbox``, and no credentials are needed here); its exit code and failure line."""
    from perianctl.commands.common import warn_unreadable
    from perianctl.ui.follow import follow_after_submit

    return follow_after_submit(
        options(ctx).settings(),
        [job_id],
        mode=mode,
        timeout=timeout,
        interval=1.0,
        connector=planned.options.connector,
        output_prefix=planned.launch.output_prefix,
        on_unreadable=warn_unreadable,
    )


def _report_outcome(job_id: str, planned: SubmitPlan, code: int, *, failure: str | None, output: str) -> int:
    """Print the task's outputs as values (or its error); returns the final exit code.

    Outputs are data, so they go to stdout: ``name = value`` lines, or inside the JSON/YAML record.
    One failure is one ``error:`` line: how the job ended and the task's own error together.
    """
    from perianctl.jobs.outcome import read_outcome
    from perianctl.ui.console import error, info, warn, write_out
    from perianctl.ui.output import OutputFormat, dump_json, emit_data

    launch = planned.launch
    outcome = read_outcome(job_id, launch.template, launch.output_prefix, code, failure=failure)
    if outcome.error:
        error(outcome.error, hint=outcome.hint)
    if outcome.missing_outputs:
        warn(f"the task wrote no outputs.pb under {launch.output_prefix}")
    if output in ("json", "yaml"):
        emit_data(
            {
                "id": job_id,
                "output_prefix": launch.output_prefix,
                "connector": planned.options.connector,
                "exit_code": outcome.exit_code,
                "outputs": outcome.outputs,
                "error": outcome.task_error,
            },
            OutputFormat(output),
        )
    elif outcome.outputs is not None:
        info("outputs:")
        for name, value in outcome.outputs.items():
            write_out(f"{name} = {value if isinstance(value, str) else dump_json(value)}")
    return outcome.exit_code
