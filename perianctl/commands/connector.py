"""Debug a Flyte connector: drive it exactly as flytepropeller v1 does, against an impolite sandbox."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from perianctl.commands.common import command_group, output_option
from perianctl.errors import ExitCode, PerianctlError, UnavailableError, UsageError

if TYPE_CHECKING:
    from perianctl.connector.check import Scenario

connector_app = command_group("connector", __doc__)


class CheckFailed(PerianctlError):
    """A scenario broke exactly-once or the GetTask promise (exit 3, like a failed job)."""

    exit_code = ExitCode.JOB_FAILED


CHECK_HELP = """Run Flyte tasks through connector(s) at HOST:PORT[,HOST:PORT...] the way flytepropeller v1.16 does:
CreateTask with a 10 s deadline (any error = the attempt failed; the next attempt gets a new retry number),
GetTask polling (more than 5 cumulative failures freeze the task), DeleteTask on abort (retried), calls
spread round-robin over the addresses like a Kubernetes Service. For each scenario the sandbox is made
impolite (see 'perianctl sandbox impolite'), one task runs, the rules are cleared, and the sandbox's jobs
are counted until the connector converged (--settle). The table shows jobs created per attempt, jobs no
attempt owns, RPC errors by code and time to answer. Exit 0 when every scenario kept exactly one job per
attempt, left no unowned job uncancelled and answered every GetTask; 3 otherwise; 8 when the sandbox or
the connector cannot be reached."""


def _scenarios(
    names: list[str] | None,
    rules: list[str] | None,
    *,
    retries: int | None,
    job_seconds: float | None,
    abort_after: float | None,
    restart_after: float | None,
) -> list[Scenario]:
    from dataclasses import replace

    from perianctl.connector.check import DEFAULT_SCENARIOS, SCENARIOS, Scenario
    from perianctl.sandbox.impolite import ImpoliteRuleError, parse_rule, rules_from_json

    chosen: list[Scenario] = []
    wanted = list(names or [])
    if not wanted and not rules:
        wanted = list(DEFAULT_SCENARIOS)
    for name in wanted:
        if name == "all":
            chosen.extend(SCENARIOS.values())
        elif name in SCENARIOS:
            chosen.append(SCENARIOS[name])
        else:
            raise UsageError(
                f"unknown scenario '{name}' (choose from all, {', '.join(SCENARIOS)})",
                hint="'perianctl connector check --list-scenarios' describes them",
            )
    if rules:
        try:
            parsed = [parse_rule(r) for r in rules]
            rules_from_json([r.to_json() for r in parsed])
        except ImpoliteRuleError as exc:
            raise UsageError(str(exc)) from None
        chosen.append(Scenario("custom", tuple(r.spec() for r in parsed), "the --impolite rules"))
    out = []
    for scenario in chosen:
        changes: dict[str, object] = {}
        if retries is not None:
            changes["retries"] = retries
        if job_seconds is not None:
            changes["job_seconds"] = job_seconds
        if abort_after is not None:
            changes["abort_after"] = abort_after
        if restart_after is not None:
            changes["restart_after"] = restart_after
        out.append(replace(scenario, **changes))  # type: ignore[arg-type]
    return out


def _targets(values: list[str]) -> list[str]:
    from perianctl.connector.grpc_client import validate_target

    targets = [validate_target(part) for value in values for part in value.split(",") if part.strip()]
    if not targets:
        raise UsageError("give at least one connector address HOST:PORT")
    return targets


def _sandbox_url(url: str | None, state_dir: Path | None) -> str:
    if url:
        return url.rstrip("/")
    from perianctl.sandbox import daemon

    if state_dir is None:
        from perianctl.config import state_dir as default_state_dir

        state_dir = default_state_dir() / "sandbox"
    result = daemon.status(state_dir)
    if not result.running or not result.url:
        raise UnavailableError(
            f"no sandbox is running for state dir {result.state_dir}",
            hint="start one with 'perianctl sandbox start', or pass --sandbox URL",
        )
    return str(result.url).rstrip("/")


def _positive(value: float, flag: str, *, zero: bool = False) -> float:
    import math

    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise UsageError(f"{flag} must be a {'non-negative' if zero else 'positive'} number of seconds, got {value}")
    return value


@connector_app.command("check", help=CHECK_HELP)
def check(
    targets: Annotated[list[str] | None, typer.Argument(metavar="HOST:PORT[,HOST:PORT...]", show_default=False)] = None,
    sandbox: Annotated[
        str | None,
        typer.Option(
            "--sandbox",
            metavar="URL",
            help="The perianctl sandbox the connector uses [default: the running one of --state-dir].",
        ),
    ] = None,
    state_dir: Annotated[Path | None, typer.Option("--state-dir", help="Sandbox state dir, to find its URL.")] = None,
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            "--scenario",
            "-s",
            metavar="NAME",
            help="Scenario to run, repeatable ('all' = every one) [default: "
            "polite, slow-create-5s, slow-create-9s, stall-create-15s, lost-reply, refused-5s, 429-storm, "
            "slow-get-7s, abort].",
        ),
    ] = None,
    impolite: Annotated[
        list[str] | None,
        typer.Option(
            "--impolite",
            metavar="RULE",
            help="Also run a 'custom' scenario with these impolite rules (repeatable; "
            "syntax of 'perianctl sandbox impolite').",
        ),
    ] = None,
    retries: Annotated[
        int | None,
        typer.Option("--retries", min=0, max=20, help="Task retries: attempts 0..N [default: each scenario's, 0]."),
    ] = None,
    abort_after: Annotated[
        float | None,
        typer.Option("--abort-after", help="Abort every task this many seconds after its first GetTask answer."),
    ] = None,
    restart_after: Annotated[
        float | None,
        typer.Option(
            "--restart-after",
            help="Propeller 'restarts' this many seconds into each CreateTask and re-sends the "
            "same attempt (the next address).",
        ),
    ] = None,
    job_seconds: Annotated[
        float | None,
        typer.Option(
            "--job-seconds",
            help="How long a job an attempt owns runs once RUNNING, before the check ends it "
            "(Done) [default: 2]. Jobs nobody owns run for an hour unless a connector cancels them.",
        ),
    ] = None,
    create_timeout: Annotated[
        float,
        typer.Option("--create-timeout", help="CreateTask deadline (propeller timeouts.CreateTask / defaultTimeout)."),
    ] = 10.0,
    get_timeout: Annotated[float, typer.Option("--get-timeout", help="GetTask deadline.")] = 10.0,
    delete_timeout: Annotated[float, typer.Option("--delete-timeout", help="DeleteTask deadline.")] = 10.0,
    poll_interval: Annotated[
        float,
        typer.Option("--poll-interval", help="Seconds between GetTask calls (propeller's resyncInterval is 30 s)."),
    ] = 1.0,
    max_failures: Annotated[
        int,
        typer.Option(
            "--max-failures", min=0, help="GetTask failures tolerated before the task freezes (maxSystemFailures)."
        ),
    ] = 5,
    settle: Annotated[
        float,
        typer.Option("--settle", help="Seconds the connector gets, after the task, to cancel jobs no attempt owns."),
    ] = 60.0,
    task_timeout: Annotated[
        float,
        typer.Option(
            "--task-timeout",
            help="Node timeout: a task not finished by then is aborted (DeleteTask) and fails the check.",
        ),
    ] = 180.0,
    keep_jobs: Annotated[
        bool,
        typer.Option(
            "--keep-jobs",
            help="Leave the scenario's jobs running after the census (default: cancel them through the sandbox).",
        ),
    ] = False,
    template: Annotated[
        str | None,
        typer.Option(
            "--template", help="Task template sent in CreateTask [default: perianctl's examples/templates/hello.pb]."
        ),
    ] = None,
    input_pairs: Annotated[
        list[str] | None, typer.Option("--input", "-i", metavar="NAME=VALUE", help="Task input (repeatable).")
    ] = None,
    output: Annotated[str, output_option("text", "json")] = "text",
    list_scenarios: Annotated[bool, typer.Option("--list-scenarios", help="Describe the scenarios and exit.")] = False,
) -> None:
    if output not in ("text", "json"):
        raise UsageError(f"unknown output format '{output}' (text or json)")
    if list_scenarios:
        from perianctl.connector.check import SCENARIOS

        for item in SCENARIOS.values():
            rules = " ".join(item.rules) or "-"
            print(f"{item.name:<18} {rules:<28} {item.description}")
        return
    addresses = _targets(targets or [])
    for flag, value in (
        ("--create-timeout", create_timeout),
        ("--get-timeout", get_timeout),
        ("--delete-timeout", delete_timeout),
        ("--poll-interval", poll_interval),
    ):
        _positive(value, flag)
    _positive(settle, "--settle", zero=True)
    _positive(task_timeout, "--task-timeout")
    for flag, maybe in (
        ("--abort-after", abort_after),
        ("--restart-after", restart_after),
        ("--job-seconds", job_seconds),
    ):
        if maybe is not None:
            _positive(maybe, flag, zero=flag != "--job-seconds")
    chosen = _scenarios(
        scenario,
        impolite,
        retries=retries,
        job_seconds=job_seconds,
        abort_after=abort_after,
        restart_after=restart_after,
    )
    _run_check(
        addresses,
        _sandbox_url(sandbox, state_dir),
        chosen,
        template=template,
        input_pairs=list(input_pairs or []),
        output=output,
        timeouts=(create_timeout, get_timeout, delete_timeout),
        poll_interval=poll_interval,
        max_failures=max_failures,
        settle=settle,
        task_timeout=task_timeout,
        keep_jobs=keep_jobs,
    )


def _run_check(
    addresses: list[str],
    sandbox_url: str,
    chosen: list[Scenario],
    *,
    template: str | None,
    input_pairs: list[str],
    output: str,
    timeouts: tuple[float, float, float],
    poll_interval: float,
    max_failures: int,
    settle: float,
    task_timeout: float,
    keep_jobs: bool,
) -> None:
    import asyncio
    import shutil
    import tempfile

    from perianctl.connector.check import (
        ConnectorUnavailable,
        PropellerConfig,
        SandboxUnavailable,
        ScenarioResult,
        format_table,
        load_task,
        run_check,
    )

    work = tempfile.mkdtemp(prefix="perianctl-check-")
    try:
        task = load_task(template, input_pairs, work)
        config = PropellerConfig(
            create_timeout=timeouts[0],
            get_timeout=timeouts[1],
            delete_timeout=timeouts[2],
            poll_interval=poll_interval,
            max_system_failures=max_failures,
            settle=settle,
            task_timeout=task_timeout,
            cleanup=not keep_jobs,
        )

        def progress(result: ScenarioResult) -> None:
            if output == "text":
                sys.stderr.write(f"{result.scenario.name}: {result.verdict} ({result.seconds:.1f} s)\n")
                sys.stderr.flush()

        try:
            results = asyncio.run(run_check(addresses, sandbox_url, chosen, task, config, on_result=progress))
        except SandboxUnavailable as exc:
            raise UnavailableError(str(exc), hint="is it a perianctl sandbox? ('perianctl sandbox start')") from None
        except ConnectorUnavailable as exc:
            raise UnavailableError(
                str(exc), hint="is 'perianctl serve' (or another connector) listening there?"
            ) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if output == "json":
        print(
            json.dumps(
                {
                    "connectors": addresses,
                    "sandbox": sandbox_url,
                    "ok": all(r.ok for r in results),
                    "scenarios": [r.to_json() for r in results],
                },
                indent=2,
            )
        )
    else:
        print(format_table(results))
    failed = [r.scenario.name for r in results if not r.ok]
    if failed:
        raise CheckFailed(
            f"exactly-once did not hold in {len(failed)} of {len(results)} scenario(s): {', '.join(failed)}"
        )
