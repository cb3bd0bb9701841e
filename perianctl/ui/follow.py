"""Following jobs on a terminal or a pipe: ``watch``, ``wait`` and ``submit --wait/--watch`` share it.

:func:`follow` runs the use case (:func:`perianctl.jobs.follow.follow_jobs`, either backend) with a
view from :mod:`perianctl.ui.live` chosen for the output (live table, lines, NDJSON, nothing), then
prints the final jobs (``wait -o``), their costs and the closing line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Sequence

    from perianctl.config import Settings
    from perianctl.jobs.follow import WaitFor, WaitResult, WatchedJob
    from perianctl.journal import Journal
    from perianctl.ui.live import WatchView

ViewKind = Literal["live", "lines", "json", "quiet"]

INTERRUPTED = 130


@dataclass(frozen=True)
class FollowOutcome:
    exit_code: int
    result: WaitResult | None
    """None when the user detached with Ctrl-C."""
    failure: str | None = None
    """With ``report_failure=False``: the error line that was not printed (the caller prints it)."""


def follow(
    settings: Settings,
    ids: list[str],
    *,
    connector: str | None,
    kind: ViewKind,
    wait_for: WaitFor,
    timeout: float | None,
    interval: float,
    discover: bool = False,
    give_up_after: float | None = 300.0,
    to_stderr: bool = False,
    final_output: str | None = None,
    report_failure: bool = True,
    output_prefixes: dict[str, str] | None = None,
    on_unreadable: Callable[[str, Any], None] | None = None,
) -> FollowOutcome:
    """Run a watch/wait (:func:`perianctl.jobs.follow.follow_jobs`) with the given view; handles
    Ctrl-C (detach, exit 130) and the summary. Through the PERIAN API or ``connector`` alike.

    ``to_stderr`` renders the view on stderr (``submit --watch``: stdout keeps only the job id).
    ``final_output`` prints the final jobs to stdout in that ``-o`` format (``wait``).
    ``report_failure=False`` leaves the ``error:`` line of a failed outcome to the caller
    (``submit --wait`` merges it with the task's own error: one failure, one line).
    """
    import asyncio
    import sys

    from perianctl.jobs.follow import follow_jobs
    from perianctl.ui.console import error, info, warn
    from perianctl.ui.live import summary_line

    def make_view(journal: Journal | None) -> WatchView:
        return _make_view(kind, _Labels(journal), interval=interval, to_stderr=to_stderr)

    try:
        result, poller = asyncio.run(
            follow_jobs(
                settings,
                ids,
                connector=connector,
                make_view=make_view,
                wait_for=wait_for,
                timeout=timeout,
                interval=interval,
                discover=discover,
                give_up_after=give_up_after,
                output_prefixes=output_prefixes,
                on_unreadable=on_unreadable,
                warn=warn,
            )
        )
    except KeyboardInterrupt:
        target = ids[0] if len(ids) == 1 else "ID"
        how = f" --connector {connector}" if connector else ""
        sys.stderr.write(f"\ndetached; the jobs keep running — 'perianctl delete {target}{how}' cancels\n")
        sys.stderr.flush()
        return FollowOutcome(INTERRUPTED, None)
    summary = summary_line(poller, result)
    if final_output is not None and result.jobs:
        from perianctl.ui.jobs import show_jobs
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


def follow_after_submit(
    settings: Settings,
    job_ids: list[str],
    *,
    mode: str,
    timeout: float | None,
    interval: float,
    connector: str | None = None,
    output_prefix: str = "",
    on_unreadable: Callable[[str, Any], None] | None = None,
) -> tuple[int, str | None]:
    """``submit --wait/--watch``: follow the new job(s); the exit code (README.md, "Exit codes") and, for a
    failure, the error line (not printed: ``submit`` adds the task's own error to it).

    Through ``connector`` (``submit --connector``) the job is followed by the connector's GetTask,
    as propeller follows it: right even when the connector talks to another PERIAN than this
    profile (e.g. ``serve --sandbox``), and no credentials are needed here. ``output_prefix`` lets
    the connector report a failed task's error document.

    Progress goes to stderr (a live table on a terminal for ``watch``, one line per transition
    otherwise; nothing with ``-q``), so stdout keeps only what ``submit`` printed (the job id).
    Ctrl-C detaches (130) and never cancels the job.
    """
    from perianctl.errors import UsageError
    from perianctl.jobs.follow import WaitFor
    from perianctl.ui.console import state

    if mode not in ("wait", "watch"):
        raise UsageError(f"unknown follow mode '{mode}'")
    kind: ViewKind = "quiet" if state.quiet else ("live" if mode == "watch" else "lines")
    outcome = follow(
        settings,
        list(job_ids),
        connector=connector,
        kind=kind,
        to_stderr=True,
        wait_for=WaitFor.TERMINAL,
        timeout=timeout,
        interval=interval,
        report_failure=False,
        output_prefixes={job_id: output_prefix for job_id in job_ids} if output_prefix else None,
        on_unreadable=on_unreadable,
    )
    return outcome.exit_code, outcome.failure
