"""Wait until jobs end; the exit code is the outcome: 0 succeeded, 3 failed, 4 cancelled, 5 timed out or --wait-timeout reached (several jobs: failed > timed out > cancelled)."""

from __future__ import annotations

from typing import Annotated

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
    job_ids: Annotated[
        list[str] | None, typer.Argument(help="Job ids, unique prefixes of them, or @last.", show_default=False)
    ] = None,
    last: bool = LastOption,
    timeout: str | None = WaitTimeoutOption,
    timeout_alias: str | None = TimeoutAlias,
    wait_for: Annotated[
        str,
        typer.Option(
            "--for", help="terminal: until every job ended; succeeded: stop at the first job that did not succeed."
        ),
    ] = "terminal",
    interval: float = IntervalOption,
    output: Annotated[
        str, output_option("table", "wide", "json", "yaml", "name", "none", about=" of the final state on stdout")
    ] = "table",
    max_unavailable: Annotated[
        str,
        typer.Option(
            "--max-unavailable", help="Give up (exit 8) after the API (or the connector) was unreachable this long."
        ),
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
        options(ctx).settings(),
        ids,
        connector=target,
        on_unreadable=warn_unreadable,
        kind="quiet" if state.quiet else "lines",
        to_stderr=True,
        wait_for=condition,
        timeout=wait_timeout(timeout, timeout_alias),
        interval=interval,
        give_up_after=parse_duration(max_unavailable, what="--max-unavailable"),
        final_output=final,
    )
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)
