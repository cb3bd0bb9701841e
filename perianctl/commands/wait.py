"""Wait until jobs end; the exit code is the outcome: 0 succeeded, 3 failed, 4 cancelled, 5 timed out or --wait-timeout reached (several jobs: failed > timed out > cancelled)."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from perianctl.commands.common import (
    ConnectorOption,
    IntervalOption,
    LastOption,
    ProtocolOption,
    TimeoutAlias,
    WaitTimeoutOption,
    connector_target,
    options,
    output_option,
    resolve_job_ids,
    wait_timeout,
    warn_unreadable,
)


def wait(
    ctx: typer.Context,
    job_ids: Annotated[list[str] | None, typer.Argument(help="Job ids, unique prefixes of them, or @last.", show_default=False)] = None,
    last: bool = LastOption,
    timeout: str | None = WaitTimeoutOption,
    timeout_alias: str | None = TimeoutAlias,
    wait_for: Annotated[
        str,
        typer.Option("--for", help="terminal: until every job ended; succeeded: stop at the first job that did not succeed."),
    ] = "terminal",
    interval: float = IntervalOption,
    output: Annotated[
        str, output_option("table", "wide", "json", "yaml", "name", "none", about=" of the final state on stdout")
    ] = "table",
    max_unavailable: Annotated[
        str, typer.Option("--max-unavailable", help="Give up (exit 8) after the API (or the connector) was "
                          "unreachable this long.")
    ] = "5m",
    connector: str | None = ConnectorOption,
    protocol: str | None = ProtocolOption,
) -> None:
    from perianctl.errors import UsageError
    from perianctl.jobs.follow import WaitFor
    from perianctl.timeparse import parse_duration
    from perianctl.ui.console import state
    from perianctl.ui.follow import follow
    from perianctl.ui.output import parse_format

    try:
        condition = WaitFor(wait_for.lower())
    except ValueError:
        raise UsageError(f"invalid --for '{wait_for}' (choose: terminal, succeeded)") from None
    final = None if output.lower() == "none" else parse_format(output).value
    target = connector_target(ctx, connector, protocol)
    ids = resolve_job_ids(ctx, job_ids, last=last, api=not target)
    outcome = follow(
        options(ctx).settings(), ids, connector=target, on_unreadable=warn_unreadable, kind="quiet" if state.quiet else "lines", to_stderr=True, wait_for=condition,
        timeout=wait_timeout(timeout, timeout_alias), interval=interval,
        give_up_after=parse_duration(max_unavailable, what="--max-unavailable"), final_output=final,
    )
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


def follow_after_submit(
    ctx: typer.Context,
    job_ids: list[str],
    *,
    mode: Literal["wait", "watch"] | str,
    timeout: float | None,
    interval: float,
) -> tuple[int, str | None]:
    """``submit --wait/--watch``: follow the new job(s); the exit code (PRODUCT.md table) and, for a
    failure, the error line (not printed: ``submit`` adds the task's own error to it).

    Progress goes to stderr (a live table on a terminal for ``watch``, one line per transition
    otherwise; nothing with ``-q``), so stdout keeps only what ``submit`` printed (the job id).
    Ctrl-C detaches (130) and never cancels the job.
    """
    from perianctl.errors import UsageError
    from perianctl.jobs.follow import WaitFor
    from perianctl.ui.console import state
    from perianctl.ui.follow import ViewKind, follow

    if mode not in ("wait", "watch"):
        raise UsageError(f"unknown follow mode '{mode}'")
    kind: ViewKind = "quiet" if state.quiet else ("live" if mode == "watch" else "lines")
    outcome = follow(options(ctx).settings(), list(job_ids), connector=None, on_unreadable=warn_unreadable, kind=kind, to_stderr=True, wait_for=WaitFor.TERMINAL, timeout=timeout,
                     interval=interval, report_failure=False)
    return outcome.exit_code, outcome.failure


def follow_via_connector(
    target: str,
    job_id: str,
    *,
    timeout: float | None,
    interval: float,
    output_prefix: str = "",
    give_up_after: float = 300.0,
) -> tuple[int, str | None]:
    """``submit --connector --wait/--watch``: poll the connector's GetTask until the task ends.

    One line per phase change on stderr (nothing with ``-q``); the exit code follows the phase
    (:attr:`perianctl.connector.grpc_client.TaskStatus.exit_code`), 5 when ``timeout`` is reached; a
    failure's error line is returned, not printed (as :func:`follow_after_submit`).
    Ctrl-C detaches (130) and never cancels the job. Observations with PERIAN's status go into the
    journal, so ``get --history`` shows them.
    """
    import sys

    from perianctl.commands.common import run
    from perianctl.connector.grpc_client import TaskStatus, WaitTimedOut, wait_via_connector
    from perianctl.errors import PerianctlError
    from perianctl.journal import Observation, open_journal
    from perianctl.ui.console import info, state

    seen: list[tuple[str, str]] = []

    def on_status(status: TaskStatus) -> None:
        key = (status.phase_name, status.message)
        if seen and seen[-1][0] == key[0] and (seen[-1][1] == key[1] or status.phase_name == "RUNNING"):
            return
        seen.append(key)
        if not state.quiet:
            info(f"job {job_id}: {status.phase_name}" + (f" — {status.message}" if status.message else ""))
        if status.perian_status:
            try:
                with open_journal() as journal:
                    journal.observe_many([Observation(job_id, status.perian_status, status.phase_name,
                                                      status.message)])
            except PerianctlError:
                pass

    try:
        final = run(wait_via_connector(target, job_id, output_prefix=output_prefix, interval=interval,
                                       timeout=timeout, give_up_after=give_up_after, on_status=on_status))
    except KeyboardInterrupt:
        sys.stderr.write(f"\ndetached; the job keeps running — 'perianctl delete {job_id} --connector {target}' "
                         "cancels\n")
        sys.stderr.flush()
        return 130, None
    except WaitTimedOut as exc:
        return int(exc.exit_code), exc.message
    code = final.exit_code or 0
    from perianctl.ui.jobs import cost_summary

    cost = cost_summary(job_id, final.custom_info.get("cost") if isinstance(final.custom_info, dict) else None)
    if cost and not state.quiet:
        info(cost)
    if code:
        return code, f"job {job_id} ended {final.phase_name}" + (f": {final.message}" if final.message else "")
    return 0, None
