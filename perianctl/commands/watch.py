"""Watch jobs live until they end: a table that repaints only on change (one line per transition when piped, NDJSON with -o json); Ctrl-C detaches and leaves the jobs running. Exits like 'wait'."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

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

if TYPE_CHECKING:
    from perianctl.ui.follow import ViewKind

DEFAULT_MAX_UNAVAILABLE = "5m"


def watch(
    ctx: typer.Context,
    job_ids: Annotated[
        list[str] | None,
        typer.Argument(
            help="Job ids, unique prefixes or @last; none: the job submitted last (as --last).", show_default=False
        ),
    ] = None,
    last: bool = LastOption,
    all_jobs: Annotated[
        bool,
        typer.Option("--all", "-A", help="Every unfinished job on the newest list page, plus jobs created meanwhile."),
    ] = False,
    interval: float = IntervalOption,
    output: Annotated[
        str, output_option("table", "json", about=" (table: live on a terminal, lines otherwise; json: NDJSON events)")
    ] = "table",
    no_live: Annotated[
        bool, typer.Option("--no-live", help="Plain lines, one per transition, even on a terminal.")
    ] = False,
    timeout: str | None = WaitTimeoutOption,
    timeout_alias: str | None = TimeoutAlias,
    max_unavailable: Annotated[
        str,
        typer.Option(
            "--max-unavailable", help="Give up (exit 8) after the API (or the connector) was unreachable this long."
        ),
    ] = DEFAULT_MAX_UNAVAILABLE,
    connector: str | None = ConnectorOption,
    protocol: str | None = ProtocolOption,
) -> None:
    from perianctl.errors import UsageError
    from perianctl.jobs.follow import WaitFor
    from perianctl.timeparse import parse_duration
    from perianctl.ui.follow import follow

    if output not in ("table", "json"):
        raise UsageError(f"invalid output format '{output}' (choose: table, json)")
    target = connector_target(ctx, connector, protocol)
    if target and all_jobs:
        from perianctl.jobs.backend import no_list_error

        raise no_list_error("watch --all")
    # No id and no --all: the job this machine submitted last, as with --last.
    ids = resolve_job_ids(ctx, job_ids, last=last or (not job_ids and not all_jobs), required=False, api=not target)
    kind: ViewKind = "json" if output == "json" else ("lines" if no_live else "live")
    code = follow(
        options(ctx).settings(),
        ids,
        connector=target,
        kind=kind,
        discover=all_jobs,
        wait_for=WaitFor.TERMINAL,
        timeout=wait_timeout(timeout, timeout_alias),
        on_unreadable=warn_unreadable,
        interval=interval,
        give_up_after=parse_duration(max_unavailable, what="--max-unavailable"),
    ).exit_code
    if code:
        raise typer.Exit(code)
