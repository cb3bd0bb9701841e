"""Views of a watch: a live rich table on a TTY, plain lines when piped, NDJSON events for ``-o json``.

The live table follows these lessons (flicker, scrollback, CI logs):

* ``Live(auto_refresh=False)``: we paint only when a visible cell changed, plus at most one
  paint per second while an ELAPSED/COST cell ticks. No timer repaints identical frames.
* Every row is exactly one line (``no_wrap``, ellipsis, first line of the message), and the view
  is capped to the terminal height ("… N more" summarises the rest), so rich can always move the
  cursor back over the whole frame: nothing scrolls, nothing is repeated in the scrollback.
* When the watch ends the live frame is erased and the *full* table, with a summary header, is
  printed once, so exactly one copy is left in the scrollback however tall it is.

Off a TTY (``--no-live``, CI logs, pipes) every transition is one append-only line; with
``-o json`` each line is a JSON object: ``{"event": "snapshot"|"transition"|"error"|"done", ...}``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, Protocol

from perianctl.flyte.phase import FlytePhase
from perianctl.jobs.follow import (
    Poller,
    RefreshResult,
    TransitionEvent,
    WaitResult,
    WatchedJob,
    describe_outcome,
    iso_time,
)
from perianctl.perian.pricing import job_cost
from perianctl.redact import scrub
from perianctl.text import one_line as _one_line
from perianctl.ui.jobs import cost_text, elapsed, human_duration, iso, message_for
from perianctl.ui.tables import Fit

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live

    from perianctl.perian.models import JobView

COLUMNS = ("JOB", "NAME/IMAGE", "STATUS", "PHASE", "INSTANCE", "ELAPSED", "COST", "MESSAGE")
_TICKING = (5, 6)
"""ELAPSED and COST move with the clock; a change there alone repaints at most once a second."""

PHASE_ORDER: tuple[FlytePhase, ...] = (
    FlytePhase.QUEUED,
    FlytePhase.WAITING_FOR_RESOURCES,
    FlytePhase.INITIALIZING,
    FlytePhase.RUNNING,
    FlytePhase.SUCCEEDED,
    FlytePhase.FAILED,
    FlytePhase.RETRYABLE_FAILED,
    FlytePhase.ABORTED,
    FlytePhase.UNDEFINED,
)
MESSAGE_WIDTH = 60
STALE_MARKER = "stale: API unreachable, retrying"
SLOW_REFRESH = 1.0
"""Seconds a refresh may take before a terminal view says it is waiting for PERIAN."""

Labeler = Callable[[str], str | None]
"""Job id → a human name (from the journal: what ``submit`` recorded), or None."""

# ---------------------------------------------------------------------- cells


def instance_text(job: JobView) -> str:
    """``2×A100`` from the job's accelerator requirements, else a short instance type id."""
    reqs = job.requirement_metadata.requirements if job.requirement_metadata else None
    accel = reqs.get("accelerator") if isinstance(reqs, dict) else None
    if isinstance(accel, dict) and (accel.get("name") or accel.get("no")):
        name = accel.get("name")
        if isinstance(name, list):
            name = "|".join(str(n) for n in name)
        count = accel.get("no")
        label = str(name or "GPU")
        return f"{count}×{label}" if count else label
    type_id = job.runtime_metadata.instance_type_id if job.runtime_metadata else None
    if type_id:
        return type_id[:8]
    cpu = reqs.get("cpu") if isinstance(reqs, dict) else None
    if isinstance(cpu, dict) and cpu.get("cores"):
        return f"{cpu['cores']} cores"
    return "-"


def one_line(text: str, limit: int = MESSAGE_WIDTH) -> str:
    return _one_line(text, limit)


def job_cells(watched: WatchedJob, label: str | None, now: datetime) -> tuple[str, ...]:
    """The eight cells of one row; every cell is a single line."""
    job = watched.job
    if job is None:
        return (watched.job_id, one_line(label or "-", 40), "…", "-", "-", "-", "-", "waiting for first answer")
    seconds = elapsed(job, now)
    phase = watched.phase.name if watched.phase is not None else "-"
    return (
        watched.job_id,
        one_line(label or job.image or "-", 40),
        job.status,
        phase,
        instance_text(job),
        human_duration(seconds),
        cost_text(job, now),
        one_line(scrub(message_for(job)) or (watched.phase_message if watched.phase_message != job.status else "")),
    )


def phase_counts(jobs: Sequence[WatchedJob]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for w in jobs:
        key = w.phase.name if w.phase is not None else "UNSEEN"
        counts[key] = counts.get(key, 0) + 1
    order = {phase.name: i for i, phase in enumerate(PHASE_ORDER)}
    return sorted(counts.items(), key=lambda item: order.get(item[0], -1))


def source_name(poller: Poller) -> str:
    """What the jobs are read from: ``PERIAN API`` or ``connector HOST:PORT`` (an outage names it)."""
    return str(getattr(poller, "source", "PERIAN API"))


def _short(poller: Poller, perian: str = "PERIAN") -> str:
    source = source_name(poller)
    return perian if source == "PERIAN API" else source


def outage_text(poller: Poller, *, now: float | None = None) -> str | None:
    """``PERIAN API unreachable since 10:00:01Z (42s, 5 failed refreshes; last: connection refused)``,
    or None while the API answers. The one wording every view uses for an outage."""
    seconds = poller.unavailable_for()
    if seconds is None:
        return None
    since = iso_time((now if now is not None else time.time()) - seconds)
    last = _one_line(scrub(poller.stats.last_error or "no answer"), 80)
    failed = poller.consecutive_errors
    return (
        f"{source_name(poller)} unreachable since {since} ({human_duration(seconds)}, {failed} failed "
        f"refresh{'es' if failed != 1 else ''}; last: {last})"
    )


def header_text(
    jobs: Sequence[WatchedJob],
    *,
    stale: bool,
    errors: int,
    interval: float,
    done: bool,
    detached: bool = False,
    outage: str | None = None,
) -> str:
    counts = " · ".join(f"{n} {phase}" for phase, n in phase_counts(jobs)) or "no jobs yet"
    noun = "job" if len(jobs) == 1 else "jobs"
    if detached:
        text = f"detached from {len(jobs)} {noun} (they keep running): {counts}"
    elif done:
        text = f"{len(jobs)} {noun} finished: {counts}"
    else:
        text = f"watching {len(jobs)} {noun}: {counts}  (every {interval:g}s; Ctrl-C detaches)"
    if stale:
        text += f"  [{STALE_MARKER}; {errors} error{'s' if errors != 1 else ''}]"
        if outage:
            text += f"  {outage}"
    elif errors:
        text += f"  ({errors} transient API error{'s' if errors != 1 else ''})"
    return text


LIVE_FIT = Fit(
    keep=frozenset({"JOB", "STATUS"}),
    give_way=("MESSAGE", "NAME/IMAGE", "INSTANCE", "COST", "ELAPSED", "PHASE"),
    floors={"MESSAGE": 12, "NAME/IMAGE": 10, "INSTANCE": 8, "COST": None, "ELAPSED": None, "PHASE": None},
    caps={
        "NAME/IMAGE": 40,
        "STATUS": 12,
        "PHASE": 21,
        "INSTANCE": 14,
        "ELAPSED": 8,
        "COST": 14,
        "MESSAGE": MESSAGE_WIDTH,
    },
)
"""How the watch table gives way on a narrow terminal: JOB and STATUS never shrink (a cut id cannot be
pasted into ``perianctl delete``); MESSAGE, NAME/IMAGE, ... shrink, then disappear (:mod:`perianctl.ui.tables`).
At 80 columns that leaves JOB, STATUS, PHASE and ELAPSED (and COST when it fits)."""


def fit_widths(rows: Sequence[Sequence[str]], width: int | None) -> list[int | None]:
    """Column widths of the watch table in ``width`` cells; ``None``: the column gave way entirely."""
    from perianctl.ui.tables import fit_widths as fit

    return fit(COLUMNS, rows, width, LIVE_FIT)


def _natural_widths(rows: Sequence[Sequence[str]], natural: list[int] | None = None) -> list[int]:
    """Widest cell per column (at least the header), grown in place when ``natural`` is given."""
    from perianctl.ui.tables import natural_widths

    return natural_widths(COLUMNS, rows, natural)


def _fit(natural: Sequence[int], width: int | None) -> list[int | None]:
    from perianctl.ui.tables import fit_natural

    return fit_natural(COLUMNS, natural, width, LIVE_FIT)


def build_table(
    rows: Sequence[Sequence[str]],
    *,
    boxed: bool = True,
    width: int | None = None,
    widths: Sequence[int | None] | None = None,
    show_header: bool = True,
) -> Any:
    """A rich Table of watch rows: one-line cells (``no_wrap`` + ellipsis), fitted to ``width``
    (or with the given column ``widths``; ``None``: the column gave way)."""
    from perianctl.ui.tables import rich_table

    table, _needed = rich_table(COLUMNS, rows, width, LIVE_FIT, boxed=boxed, widths=widths, show_header=show_header)
    return table


FULL_TABLE_CHUNK = 500
"""Rows per rich Table when the full table is printed: rich renders a whole table at once, so one
table of 10,000 rows would cost more memory than the watch itself; chunks print the same lines."""


def print_full_table(
    console: Console,
    jobs: Sequence[WatchedJob],
    labels: Labeler,
    *,
    width: int | None = None,
    now: datetime | None = None,
    chunk: int = FULL_TABLE_CHUNK,
) -> None:
    """Every job's row, as one table with one header, built ``chunk`` rows at a time.

    Two passes over the jobs (column widths first, then the rows), so only ``chunk`` rows and
    their models are alive at once, however many jobs were watched.
    """
    now = now or datetime.now(UTC)
    natural: list[int] | None = None
    for start in range(0, len(jobs), chunk):
        natural = _natural_widths(snapshot_rows(jobs[start : start + chunk], labels, now), natural)
    widths = _fit(natural or [len(name) for name in COLUMNS], width)
    for start in range(0, max(1, len(jobs)), chunk):
        rows = snapshot_rows(jobs[start : start + chunk], labels, now)
        console.print(build_table(rows, widths=widths, show_header=start == 0))


def snapshot_rows(jobs: Sequence[WatchedJob], labels: Labeler, now: datetime | None = None) -> list[tuple[str, ...]]:
    now = now or datetime.now(UTC)
    return [job_cells(w, labels(w.job_id), now) for w in jobs]


def render_text(jobs: Sequence[WatchedJob], labels: Labeler, *, width: int = 200, interval: float = 2.0) -> str:
    """The full table as plain text (used by the benchmark to time a render of N rows)."""
    import io

    from rich.console import Console
    from rich.text import Text

    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    console.print(Text(header_text(jobs, stale=False, errors=0, interval=interval, done=False)))
    print_full_table(console, jobs, labels, width=width)
    out = console.file
    assert isinstance(out, io.StringIO)
    return out.getvalue()


# ---------------------------------------------------------------------- views


class WatchView(Protocol):
    """What :func:`perianctl.jobs.follow.wait_for` drives; each output mode implements it."""

    def start(self) -> None: ...

    def on_refresh(self, poller: Poller, result: RefreshResult) -> None: ...

    def on_tick(self, poller: Poller) -> None: ...

    def finish(self, poller: Poller, result: WaitResult | None, *, error: str | None = None) -> None:
        """The watch ended: ``result`` when it ran to the end, else ``error`` or (neither) Ctrl-C."""
        ...


class LiveTableView:
    """The TTY view: repaint on change, one line per row, capped to the screen (see module doc)."""

    def __init__(self, console: Console, labels: Labeler, *, interval: float, min_tick: float = 1.0) -> None:
        self.console = console
        self.labels = labels
        self.interval = interval
        self.min_tick = min_tick
        self.paints = 0
        self._live: Live | None = None
        self._shown: tuple[Any, ...] | None = None
        self._shown_key: tuple[Any, ...] | None = None
        self._last_paint = 0.0

    def start(self) -> None:
        from rich.live import Live

        self._live = Live(
            console=self.console,
            auto_refresh=False,
            transient=False,
            screen=False,
            vertical_overflow="visible",
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start(refresh=False)

    def on_refresh(self, poller: Poller, result: RefreshResult) -> None:
        self._maybe_paint(poller)

    def on_tick(self, poller: Poller) -> None:
        self._maybe_paint(poller)

    def finish(self, poller: Poller, result: WaitResult | None, *, error: str | None = None) -> None:
        """Replace the live frame by the full table, printed once into the scrollback.

        The full table may be taller than the screen. Painting it *through* Live would break
        (rich repaints once more on ``stop()``, and cannot move the cursor above the screen's top,
        so a tall frame would be duplicated), so the live frame is erased and the table printed.
        """
        if self._live is None:
            return
        jobs = poller.watched()
        header = header_text(
            jobs,
            stale=poller.stale,
            errors=poller.stats.errors,
            interval=self.interval,
            done=result is not None,
            detached=result is None and error is None,
        )
        self._live.transient = True
        self._live.stop()
        self._live = None
        if any(w.status is not None for w in jobs):
            from rich.text import Text

            self.console.print(Text(header, style=self._header_style(header), no_wrap=True, overflow="ellipsis"))
            print_full_table(self.console, jobs, self.labels, width=self.console.size.width)
            self.paints += 1

    # ------------------------------------------------------------------

    def _visible(self, jobs: list[WatchedJob]) -> tuple[list[WatchedJob], list[WatchedJob]]:
        """Unfinished jobs first (stable order), as many as fit; the rest is summarised."""
        room = max(3, self.console.size.height - 5)
        if len(jobs) <= room:
            return jobs, []
        ordered = sorted(jobs, key=lambda w: w.terminal)
        return ordered[: room - 1], ordered[room - 1 :]

    def _maybe_paint(self, poller: Poller) -> None:
        if self._live is None:
            return
        jobs, hidden = self._visible(poller.watched())
        rows = snapshot_rows(jobs, self.labels)
        header = header_text(
            poller.watched(),
            stale=poller.stale,
            errors=poller.stats.errors,
            interval=self.interval,
            done=False,
            outage=outage_text(poller),
        )
        footer = self._footer(hidden)
        shown = (header, footer, tuple(rows))
        if shown == self._shown:
            return
        key = (header, footer, tuple(tuple(c for i, c in enumerate(r) if i not in _TICKING) for r in rows))
        now = time.monotonic()
        if key == self._shown_key and now - self._last_paint < self.min_tick:
            return  # only the clock moved, and we painted less than a second ago
        self._shown, self._shown_key, self._last_paint = shown, key, now
        self._live.update(self._frame(header, rows, hidden=footer), refresh=True)
        self.paints += 1

    @staticmethod
    def _footer(hidden: list[WatchedJob]) -> str | None:
        if not hidden:
            return None
        counts = ", ".join(f"{n} {phase}" for phase, n in phase_counts(hidden))
        return f"… and {len(hidden)} more not shown ({counts})"

    @staticmethod
    def _header_style(header: str) -> str:
        return "yellow" if STALE_MARKER in header else "bold"

    def _frame(self, header: str, rows: Sequence[Sequence[str]], *, hidden: str | None) -> RenderableType:
        from rich.console import Group
        from rich.text import Text

        parts: list[RenderableType] = [
            Text(header, style=self._header_style(header), no_wrap=True, overflow="ellipsis"),
            build_table(rows, boxed=True, width=self.console.size.width),
        ]
        if hidden:
            parts.append(Text(hidden, style="dim", no_wrap=True, overflow="ellipsis"))
        return Group(*parts)


class LineView:
    """Append-only: one plain line per transition (CI logs, pipes, ``--no-live``).

    An outage is never silent: a line when it starts, one when it ends, and in between a reminder
    every ``reminder_every`` seconds -- or, when the message stream is a terminal, a status line
    (spinner, since-when, reason, elapsed) that disappears when the API answers again.
    """

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        warn_stream: IO[str] | None = None,
        reminder_every: float = 30.0,
        status_console: Console | None = None,
    ) -> None:
        self.stream = stream
        self.warn_stream = warn_stream
        self.reminder_every = reminder_every
        self.status_console = status_console
        self._was_stale = False
        self._last_notice = 0.0
        self._status: Any = None

    def start(self) -> None:
        return None

    def on_refresh(self, poller: Poller, result: RefreshResult) -> None:
        if result.ok or not self._was_stale:
            self._stop_status()  # an answer came, or a "waiting for PERIAN" line becomes the outage's
        out = self.stream or sys.stdout
        for event in result.events:
            out.write(scrub(transition_line(event)) + "\n")
        if result.events:
            out.flush()
        if not result.ok and not self._was_stale:
            self._warn(f"warning: {iso_time(time.time())} {STALE_MARKER} ({scrub(result.error or '')})")
            self._last_notice = time.monotonic()
        elif result.ok and self._was_stale:
            self._warn(
                f"{iso_time(time.time())} {_short(poller, 'API')} reachable again after "
                f"{poller.stats.errors} error(s) so far"
            )
        self._was_stale = not result.ok
        self.on_tick(poller)

    def on_tick(self, poller: Poller) -> None:
        slow = poller.refreshing_for()
        if not self._was_stale:
            if slow is not None and slow >= SLOW_REFRESH and self.status_console is not None:
                self._show_status(f"waiting for {_short(poller)} ({slow:.0f} s)")
            return
        text = outage_text(poller)
        if text is None:
            return
        if self.status_console is not None:
            self._show_status(f"{text}; retrying")
        elif time.monotonic() - self._last_notice >= self.reminder_every:
            self._last_notice = time.monotonic()
            self._warn(f"warning: {iso_time(time.time())} still waiting: {text}; retrying")

    def finish(self, poller: Poller, result: WaitResult | None, *, error: str | None = None) -> None:
        self._stop_status()

    def _show_status(self, text: str) -> None:
        assert self.status_console is not None
        if self._status is None:
            self._status = self.status_console.status(text, spinner="dots")
            self._status.start()
        else:
            self._status.update(text)

    def _stop_status(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def _warn(self, line: str) -> None:
        warn = self.warn_stream or sys.stderr
        warn.write(line + "\n")
        warn.flush()


def transition_line(event: TransitionEvent) -> str:
    """``2026-11-23T10:00:01Z <job-id> Queued -> Running (RUNNING) message``."""
    change = f"{event.old_status} -> {event.new_status}" if event.old_status else event.new_status
    line = f"{event.at_iso} {event.job_id} {change} ({event.phase})"
    if event.message and event.message != event.new_status:
        line += f" {one_line(event.message, 200)}"
    return line


class NdjsonView:
    """``-o json``: one JSON object per line, flushed at once, for machines (no rich at all)."""

    def __init__(self, labels: Labeler, stream: IO[str] | None = None) -> None:
        self.labels = labels
        self.stream = stream
        self._snapshot_sent = False

    def _emit(self, record: dict[str, Any], jobs: Sequence[WatchedJob] | None = None) -> None:
        """One line; with ``jobs``, the record gets a last key ``"jobs"`` written one job at a time
        (the same bytes as one ``json.dumps``, without holding every job's record at once)."""
        out = self.stream or sys.stdout
        if jobs is None:
            out.write(scrub(json.dumps(record, default=str)) + "\n")
        else:
            out.write(scrub(json.dumps(record, default=str))[:-1] + ', "jobs": [')
            for i, watched in enumerate(jobs):
                out.write((", " if i else "") + scrub(json.dumps(self.record(watched), default=str)))
            out.write("]}\n")
        out.flush()

    def start(self) -> None:
        return None

    def on_refresh(self, poller: Poller, result: RefreshResult) -> None:
        now = iso_time(time.time())
        if not result.ok:
            self._emit(
                {
                    "event": "error",
                    "at": now,
                    "message": result.error,
                    "stale": True,
                    "consecutive": poller.consecutive_errors,
                    "errors": poller.stats.errors,
                }
            )
        if not self._snapshot_sent and result.ok:
            self._snapshot_sent = True
            self._emit({"event": "snapshot", "at": now}, jobs=poller.watched())
            first = {w.job_id for w in poller.watched()}
            events = [e for e in result.events if not (e.old_status is None and e.job_id in first)]
        else:
            events = result.events
        for event in events:
            self._emit(
                {
                    "event": "transition",
                    "at": event.at_iso,
                    "job_id": event.job_id,
                    "from": event.old_status,
                    "to": event.new_status,
                    "phase": event.phase,
                    "message": event.message,
                }
            )

    def on_tick(self, poller: Poller) -> None:
        return None

    def finish(self, poller: Poller, result: WaitResult | None, *, error: str | None = None) -> None:
        detached = result is None and error is None
        if result is not None:
            reason, message = result.reason, result.message
        else:
            reason, message = ("detached", "detached; the jobs keep running") if detached else ("error", error or "")
        record: dict[str, Any] = {
            "event": "done",
            "at": iso_time(time.time()),
            "detached": detached,
            "exit_code": int(result.exit_code) if result is not None else None,
            "reason": reason,
            "message": message,
            "still_running": result.still_running
            if result is not None
            else [w.job_id for w in poller.watched() if not w.terminal],
            "errors": poller.stats.errors,
            "refreshes": poller.stats.refreshes,
            "requests": poller.stats.requests,
        }
        self._emit(record, jobs=poller.watched())

    def record(self, watched: WatchedJob) -> dict[str, Any]:
        job = watched.job
        now = datetime.now(UTC)
        seconds = elapsed(job, now) if job is not None else None
        return {
            "job_id": watched.job_id,
            "name": self.labels(watched.job_id),
            "image": job.image if job is not None else None,
            "status": watched.status,
            "phase": watched.phase.name if watched.phase is not None else None,
            "message": watched.phase_message or None,
            "instance": instance_text(job) if job is not None else None,
            "elapsed_seconds": round(seconds, 3) if seconds is not None else None,
            "cost": _cost_record(job, now),
            "created_at": iso(job.created_at) if job is not None else None,
            "started_at": iso(job.started_at) if job is not None else None,
            "done_at": iso(job.done_at) if job is not None else None,
        }


def _cost_record(job: JobView | None, now: datetime) -> dict[str, Any] | None:
    cost = job_cost(job, now) if job is not None else None
    return cost.record() if cost is not None else None


def summary_line(poller: Poller, result: WaitResult | None) -> str:
    """The closing line on stderr: outcome, plus what the watch cost and any API trouble."""
    stats = poller.stats
    parts = [
        result.message
        if result is not None
        else f"detached while {describe_outcome(poller.watched()) or 'nothing was seen'}"
    ]
    cost = f"{stats.refreshes} refreshes, {stats.requests} requests"
    if stats.errors:
        cost += f", {stats.errors} transient API error{'s' if stats.errors != 1 else ''} (last: {stats.last_error})"
    parts.append(cost)
    return " · ".join(parts)
