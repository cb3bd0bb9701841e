"""Wait until jobs end; the exit code is the outcome: 0 succeeded, 3 failed, 4 cancelled, 5 timed out or --timeout reached (several jobs: failed > timed out > cancelled)."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from perianctl.commands.common import LastOption, resolve_job_ids


def wait(
    ctx: typer.Context,
    job_ids: Annotated[list[str] | None, typer.Argument(help="Job ids (or @last).", show_default=False)] = None,
    last: bool = LastOption,
    timeout: Annotated[
        str | None, typer.Option("--timeout", help="Give up after this long, e.g. 90, 30m, 1h30m (exit 5).")
    ] = None,
    wait_for: Annotated[
        str,
        typer.Option("--for", help="terminal: until every job ended; succeeded: stop at the first job that did not succeed."),
    ] = "terminal",
    interval: Annotated[float, typer.Option("--interval", min=0.2, help="Seconds between API refreshes.")] = 2.0,
    output: Annotated[
        str, typer.Option("--output", "-o", help="Final state on stdout: table, wide, json, yaml, name or none.")
    ] = "table",
    max_unavailable: Annotated[
        str, typer.Option("--max-unavailable", help="Give up (exit 8) after the API was unreachable this long.")
    ] = "5m",
) -> None:
    from perianctl.commands.watch import follow
    from perianctl.errors import UsageError
    from perianctl.timeparse import parse_duration
    from perianctl.ui.console import state
    from perianctl.ui.output import parse_format
    from perianctl.watching import WaitFor

    try:
        condition = WaitFor(wait_for.lower())
    except ValueError:
        raise UsageError(f"invalid --for '{wait_for}' (choose: terminal, succeeded)") from None
    final = None if output.lower() == "none" else parse_format(output).value
    ids = resolve_job_ids(ctx, job_ids, last=last)
    outcome = follow(
        ctx, ids, kind="quiet" if state.quiet else "lines", to_stderr=True, wait_for=condition,
        timeout=parse_duration(timeout, what="--timeout") if timeout else None, interval=interval,
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
) -> int:
    """``submit --wait/--watch``: follow the new job(s) and return the exit code (PRODUCT.md table).

    Progress goes to stderr (a live table on a terminal for ``watch``, one line per transition
    otherwise; nothing with ``-q``), so stdout keeps only what ``submit`` printed (the job id).
    Ctrl-C detaches (130) and never cancels the job.
    """
    from perianctl.commands.watch import ViewKind, follow
    from perianctl.errors import UsageError
    from perianctl.ui.console import state
    from perianctl.watching import WaitFor

    if mode not in ("wait", "watch"):
        raise UsageError(f"unknown follow mode '{mode}'")
    kind: ViewKind = "quiet" if state.quiet else ("live" if mode == "watch" else "lines")
    outcome = follow(ctx, list(job_ids), kind=kind, to_stderr=True, wait_for=WaitFor.TERMINAL, timeout=timeout,
                     interval=interval)
    return outcome.exit_code
