"""Watch jobs live until they end: a table that repaints only on change (one line per transition when piped, NDJSON with -o json); Ctrl-C detaches and leaves the jobs running. Exits like 'wait'."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from perianctl.commands.common import (
    IntervalOption,
    LastOption,
    TimeoutAlias,
    WaitTimeoutOption,
    make_client,
    options,
    output_option,
    resolve_job_ids,
    run,
    wait_timeout,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from perianctl.jobs.follow import WaitFor, WaitResult, WatchedJob
    from perianctl.journal import Journal
    from perianctl.ui.live import WatchView

ViewKind = Literal["live", "lines", "json", "quiet"]

INTERRUPTED = 130
DEFAULT_MAX_UNAVAILABLE = "5m"


def watch(
    ctx: typer.Context,
    job_ids: Annotated[list[str] | None, typer.Argument(help="Job ids, unique prefixes or @last; none: the job submitted last (as --last).",
                                                show_default=False)] = None,
    last: bool = LastOption,
    all_jobs: Annotated[
        bool,
        typer.Option("--all", "-A", help="Every unfinished job on the newest list page, plus jobs created meanwhile."),
    ] = False,
    interval: float = IntervalOption,
    output: Annotated[
        str, output_option("table", "json", about=" (table: live on a terminal, lines otherwise; json: NDJSON events)")
    ] = "table",
    no_live: Annotated[bool, typer.Option("--no-live", help="Plain lines, one per transition, even on a terminal.")] = False,
    timeout: str | None = WaitTimeoutOption,
    timeout_alias: str | None = TimeoutAlias,
    max_unavailable: Annotated[
        str, typer.Option("--max-unavailable", help="Give up (exit 8) after the API was unreachable this long.")
    ] = DEFAULT_MAX_UNAVAILABLE,
) -> None:
    from perianctl.errors import UsageError
    from perianctl.jobs.follow import WaitFor
    from perianctl.timeparse import parse_duration

    if output not in ("table", "json"):
        raise UsageError(f"invalid output format '{output}' (choose: table, json)")
    # No id and no --all: the job this machine submitted last, as with --last.
    ids = resolve_job_ids(ctx, job_ids, last=last or (not job_ids and not all_jobs), required=False)
    kind: ViewKind = "json" if output == "json" else ("lines" if no_live else "live")
    code = follow(
        ctx, ids, kind=kind, discover=all_jobs, wait_for=WaitFor.TERMINAL,
        timeout=wait_timeout(timeout, timeout_alias),
        interval=interval, give_up_after=parse_duration(max_unavailable, what="--max-unavailable"),
    ).exit_code
    if code:
        raise typer.Exit(code)


@dataclass(frozen=True)
class FollowOutcome:
    exit_code: int
    result: WaitResult | None
    """None when the user detached with Ctrl-C."""
    failure: str | None = None
    """With ``report_failure=False``: the error line that was not printed (the caller prints it)."""


def follow(
    ctx: typer.Context,
    ids: list[str],
    *,
    kind: ViewKind,
    wait_for: WaitFor,
    timeout: float | None,
    interval: float,
    discover: bool = False,
    give_up_after: float | None = 300.0,
    to_stderr: bool = False,
    final_output: str | None = None,
    report_failure: bool = True,
) -> FollowOutcome:
    """Run a watch/wait with the given view; handles Ctrl-C (detach, exit 130) and the summary.

    ``to_stderr`` renders the view on stderr (``submit --watch``: stdout keeps only the job id).
    ``final_output`` prints the final jobs to stdout in that ``-o`` format (``wait``).
    ``report_failure=False`` leaves the ``error:`` line of a failed outcome to the caller
    (``submit --wait`` merges it with the task's own error: one failure, one line).
    """
    import sys

    from perianctl.ui.console import error, info

    async def watching() -> tuple[WaitResult, str]:
        from perianctl.errors import PerianctlError
        from perianctl.jobs.follow import Poller
        from perianctl.jobs.follow import wait_for as wait_until
        from perianctl.journal import open_journal_best_effort
        from perianctl.perian.client import RetryPolicy
        from perianctl.ui.live import summary_line

        # Short client-side retries: a refresh that fails is retried by the poller's back-off anyway,
        # and a quick failure lets the view show "stale" instead of freezing for a minute.
        retry = RetryPolicy(attempts=2, timeout=max(10.0, interval * 3), wait_initial=0.2, wait_max=1.0)
        client = make_client(ctx, retry=retry)
        api_url = options(ctx).settings().api_url
        with open_journal_best_effort() as journal:
            labels = _Labels(journal)
            async with client:
                poller = Poller(client, ids, discover=discover, interval=interval, journal=journal, api_url=api_url,
                                give_up_after=give_up_after)
                view = _make_view(kind, labels, interval=interval, to_stderr=to_stderr)
                result: WaitResult | None = None
                failure: str | None = None
                view.start()
                try:
                    result = await wait_until(poller, wait_for=wait_for, timeout=timeout, on_refresh=view.on_refresh,
                                              on_tick=view.on_tick)
                except PerianctlError as exc:
                    failure = exc.message
                    raise
                finally:
                    view.finish(poller, result, error=failure)
                return result, summary_line(poller, result)

    try:
        result, summary = run(watching())
    except KeyboardInterrupt:
        target = ids[0] if len(ids) == 1 else "ID"
        sys.stderr.write(f"\ndetached; the jobs keep running — 'perianctl delete {target}' cancels\n")
        sys.stderr.flush()
        return FollowOutcome(INTERRUPTED, None)
    if final_output is not None and result.jobs:
        from perianctl.commands.get import show_jobs
        from perianctl.ui.output import parse_format

        shown = [job for w in result.jobs if (job := w.job) is not None]
        show_jobs(shown, parse_format(final_output), single=len(ids) == 1)
    if kind != "json":
        _print_costs(result.jobs)
    if result.exit_code:
        if not report_failure:
            return FollowOutcome(int(result.exit_code), result, failure=summary)
        error(summary)
    elif kind != "json":
        info(summary)
    return FollowOutcome(int(result.exit_code), result)


def _print_costs(watched: Sequence[WatchedJob], *, per_job: int = 5) -> None:
    """The cost of each job on stderr (final, or so far when the wait ended first); a total for several.

    One job's model at a time (``WatchedJob.job`` builds it): 10,000 models at once would cost
    more than the whole watch did."""
    from decimal import Decimal

    from perianctl.perian.pricing import job_cost, money
    from perianctl.ui.console import info
    from perianctl.ui.jobs import cost_summary

    totals: dict[str, Decimal] = {}
    seen = [w for w in watched if w.status is not None]
    for w in seen:
        job = w.job
        cost = job_cost(job) if job is not None else None
        if job is None or cost is None:
            continue
        totals[cost.rate.currency] = totals.get(cost.rate.currency, Decimal(0)) + cost.amount
        line = cost_summary(job.id or "?", cost.record()) if len(seen) <= per_job else None
        if line:
            info(line)
    if len(seen) > 1 and totals:
        info("total cost: " + ", ".join(f"{money(amount)} {currency}" for currency, amount in totals.items()))


def _make_view(kind: ViewKind, labels: _Labels, *, interval: float, to_stderr: bool) -> WatchView:
    import sys

    from perianctl.ui.console import err_console, out_console, state
    from perianctl.ui.live import LineView, LiveTableView, NdjsonView

    if kind == "json":
        return NdjsonView(labels)
    stream = sys.stderr if to_stderr else sys.stdout
    if kind == "quiet":
        return _QuietView()
    if kind == "live" and not state.verbose:  # -v logs to stderr would tear the live frame
        console = err_console() if to_stderr else out_console()
        if console.is_terminal and not console.is_dumb_terminal:
            return LiveTableView(console, labels, interval=interval)
    # An outage gets a status line on a terminal, else a reminder every 10 refreshes (5-60 s).
    status = err_console() if not state.verbose else None
    if status is not None and not (status.is_terminal and not status.is_dumb_terminal):
        status = None
    return LineView(stream, reminder_every=min(60.0, max(5.0, 10 * interval)), status_console=status)


class _QuietView:
    """No progress output at all (``-q`` with ``submit --wait``)."""

    def start(self) -> None:
        return None

    def on_refresh(self, poller: object, result: object) -> None:
        return None

    def on_tick(self, poller: object) -> None:
        return None

    def finish(self, poller: object, result: object, *, error: str | None = None) -> None:
        return None


class _Labels:
    """Job id → the name ``submit`` recorded in the journal (cached; None for unknown jobs)."""

    def __init__(self, journal: Journal | None) -> None:
        self._journal = journal
        self._cache: dict[str, str | None] = {}

    def __call__(self, job_id: str) -> str | None:
        if job_id not in self._cache:
            entry = self._journal.get(job_id) if self._journal is not None else None
            self._cache[job_id] = (entry.name or entry.image) if entry is not None else None
        return self._cache[job_id]
