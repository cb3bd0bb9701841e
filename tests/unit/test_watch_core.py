"""Pure parts of watch/wait: exit-code precedence, the stop decision, back-off, rows and the live view.

No server here: these feed hand-made ``JobView`` data into the real functions and the real rich
``Live`` (rendering into a string), and read the result back through a small terminal emulator.
"""

from __future__ import annotations

import io
import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from perianctl.errors import ExitCode
from perianctl.flyte.phase import FlytePhase
from perianctl.jobs.follow import (
    Poller,
    RefreshResult,
    TransitionEvent,
    WaitFor,
    WatchedJob,
    decide,
    worst_exit_code,
)
from perianctl.perian.models import JobView
from perianctl.ui.jobs import cost_text
from perianctl.ui.live import (
    COLUMNS,
    STALE_MARKER,
    LineView,
    LiveTableView,
    NdjsonView,
    header_text,
    job_cells,
    render_text,
    transition_line,
)
from tests.support.watch import Screen

NOW = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)


def _job(job_id: str, status: str, **extra: object) -> JobView:
    data: dict[str, object] = {"id": job_id, "status": status, "created_at": NOW - timedelta(minutes=1)}
    data.update(extra)
    return JobView.model_validate(data)


def _watched(job_id: str, status: str | None, **extra: object) -> WatchedJob:
    from perianctl.flyte.phase import status_to_phase

    w = WatchedJob(job_id)
    if status is not None:
        w.job = _job(job_id, status, **extra)
        info = status_to_phase(status, errors=w.job.errors)
        w.phase, w.phase_message = info.phase, info.message
    return w


def test_precedence_failed_beats_timeout_beats_cancelled() -> None:
    assert worst_exit_code([]) is ExitCode.OK
    assert worst_exit_code([ExitCode.OK, ExitCode.JOB_CANCELLED]) is ExitCode.JOB_CANCELLED
    assert worst_exit_code([ExitCode.JOB_CANCELLED, ExitCode.TIMEOUT]) is ExitCode.TIMEOUT
    assert worst_exit_code([ExitCode.TIMEOUT, ExitCode.JOB_FAILED, ExitCode.OK]) is ExitCode.JOB_FAILED


@pytest.mark.parametrize(
    ("statuses", "wait_for", "expected"),
    [
        (["Done", "Done"], WaitFor.TERMINAL, ExitCode.OK),
        (["Done", "Running"], WaitFor.TERMINAL, None),
        (["UserError", "Running"], WaitFor.TERMINAL, None),
        (["UserError", "Running"], WaitFor.SUCCEEDED, ExitCode.JOB_FAILED),
        (["Cancelled", "Timeout"], WaitFor.TERMINAL, ExitCode.TIMEOUT),
        (["ServerError", "Cancelled"], WaitFor.TERMINAL, ExitCode.JOB_FAILED),
        (["Undefined"], WaitFor.TERMINAL, None),
        (["SomethingNew"], WaitFor.SUCCEEDED, None),
        ([None], WaitFor.TERMINAL, None),
        (["Done", "Cancelled"], WaitFor.SUCCEEDED, ExitCode.JOB_CANCELLED),
    ],
)
def test_decide(statuses: list[str | None], wait_for: WaitFor, expected: ExitCode | None) -> None:
    jobs = [_watched(f"job-{i}", s) for i, s in enumerate(statuses)]
    assert decide(jobs, wait_for) == expected


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    poller = Poller(None, [], interval=2.0, max_backoff=30.0, rng=random.Random(1))  # type: ignore[arg-type]
    assert poller.next_delay() == 2.0
    delays = []
    for errors in range(1, 9):
        poller.consecutive_errors = errors
        delays.append(poller.next_delay())
    assert all(1.0 <= d <= 30.0 for d in delays)
    assert delays[0] <= 4.0 and max(delays) > 8.0
    poller.consecutive_errors = 8
    assert len({round(poller.next_delay(), 6) for _ in range(5)}) > 1  # jittered


def test_transition_line_format() -> None:
    at = NOW.timestamp() + 1
    line = transition_line(TransitionEvent("abc", "Queued", "Running", "RUNNING", "Running", at))
    assert line == "2026-11-23T10:00:01Z abc Queued -> Running (RUNNING)"
    first = transition_line(TransitionEvent("abc", None, "UserError", "FAILED", "UserError: boom", at))
    assert first == "2026-11-23T10:00:01Z abc UserError (FAILED) UserError: boom"


def test_cells_are_single_line_and_truncated() -> None:
    w = _watched(
        "id-1",
        "UserError",
        errors="Traceback\x1b[31m " + "x" * 500 + "\nsecond line",
        started_at=NOW - timedelta(seconds=90),
        done_at=NOW,
        price={"unit_price": "0.50", "currency": "EUR", "granularity": "PER_MINUTE"},
        requirement_metadata={"requirements": {"accelerator": {"no": 2, "name": "A100"}}},
    )
    cells = job_cells(w, "train-model", NOW)
    assert len(cells) == len(COLUMNS)
    assert all("\n" not in c and "\x1b" not in c for c in cells)
    assert cells[1] == "train-model" and cells[2] == "UserError" and cells[3] == "FAILED"
    assert cells[4] == "2×A100" and cells[5] == "1m30s"
    assert cells[6] == "1.00 EUR"  # 2 started minutes at 0.50
    assert len(cells[7]) <= 60


def test_cost_unknown_is_dash() -> None:
    assert cost_text(_job("x", "Running", started_at=NOW - timedelta(seconds=10)), NOW) == "-"
    # A queued job has cost nothing yet: its unit price is not a cost (it used to show "0.0001 EUR").
    job = _job("x", "Queued", price={"unit_price": "0.0001", "currency": "EUR", "granularity": "PER_SECOND"})
    assert cost_text(job, NOW) == "-"


def test_cost_to_date_is_an_estimate_final_cost_is_not() -> None:
    price = {"unit_price": "1.0", "currency": "EUR", "granularity": "PER_10_MINUTES"}
    running = _job("x", "Running", price=price, started_at=NOW - timedelta(seconds=1200))
    assert cost_text(running, NOW) == "~2.00 EUR"
    done = _job("x", "Done", price=price, started_at=NOW - timedelta(seconds=1201), done_at=NOW)
    assert cost_text(done, NOW + timedelta(hours=5)) == "3.00 EUR"  # final: the clock no longer counts


def test_header_counts_and_stale_marker() -> None:
    jobs = [_watched("a", "Running"), _watched("b", "Done"), _watched("c", "Running")]
    text = header_text(jobs, stale=True, errors=2, interval=2, done=False)
    assert "watching 3 jobs" in text and "2 RUNNING" in text and "1 SUCCEEDED" in text
    assert STALE_MARKER in text and "2 errors" in text
    assert text.index("RUNNING") < text.index("SUCCEEDED")


def _poller_with(jobs: list[WatchedJob]) -> Poller:
    poller = Poller(None, [], interval=2.0)  # type: ignore[arg-type]
    poller.jobs = {w.job_id: w for w in jobs}
    return poller


def test_live_view_repaints_only_on_change_and_leaves_one_table() -> None:
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=200, height=40, color_system=None)
    jobs = [_watched(f"00000000-0000-0000-0000-00000000000{i}", "Queued") for i in range(3)]
    poller = _poller_with(jobs)
    view = LiveTableView(console, lambda _id: None, interval=2.0)
    view.start()
    ok = RefreshResult([], True)
    for _ in range(20):  # nothing changes: exactly one paint
        view.on_refresh(poller, ok)
        view.on_tick(poller)
    assert view.paints == 1
    for i, w in enumerate(jobs):  # a real change: one more paint each
        jobs[i] = _watched(w.job_id, "Done")
        poller.jobs[w.job_id] = jobs[i]
        view.on_refresh(poller, ok)
    assert view.paints == 4
    view.finish(poller, None)
    screen = Screen(40, 200)
    screen.feed(buffer.getvalue())
    transcript = screen.transcript()
    assert sum(1 for line in transcript if line.lstrip().startswith("JOB ")) == 1, transcript
    assert sum(1 for line in transcript if "Done" in line) == 3


def test_live_view_caps_rows_to_the_screen() -> None:
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=200, height=20, color_system=None)
    jobs = [_watched(f"job-{i:04d}", "Running" if i % 2 else "Done") for i in range(100)]
    poller = _poller_with(jobs)
    view = LiveTableView(console, lambda _id: None, interval=2.0)
    view.start()
    view.on_refresh(poller, RefreshResult([], True))
    screen = Screen(20, 200)
    screen.feed(buffer.getvalue())
    assert not screen.scrollback  # the frame fits: nothing scrolled
    assert any("more not shown" in line for line in screen.lines())
    view.finish(poller, None)  # the final frame is the whole table, once
    screen = Screen(20, 200)
    screen.feed(buffer.getvalue())
    transcript = screen.transcript()
    assert sum(1 for line in transcript if line.lstrip().startswith("JOB ")) == 1
    assert sum(1 for line in transcript if line.startswith("job-")) == 100


def test_line_and_ndjson_views() -> None:
    jobs = [_watched("a", "Running")]
    poller = _poller_with(jobs)
    out, err = io.StringIO(), io.StringIO()
    lines = LineView(out, warn_stream=err)
    event = TransitionEvent("a", "Queued", "Running", "RUNNING", "Running", NOW.timestamp())
    lines.on_refresh(poller, RefreshResult([event], True))
    poller.consecutive_errors = 1
    lines.on_refresh(poller, RefreshResult([], False, "HTTP 503"))
    lines.on_refresh(poller, RefreshResult([], False, "HTTP 503"))
    assert out.getvalue() == "2026-11-23T10:00:00Z a Queued -> Running (RUNNING)\n"
    assert err.getvalue().count(STALE_MARKER) == 1  # once per outage, not per failed refresh

    stream = io.StringIO()
    nd = NdjsonView(lambda _id: "name", stream)
    first = TransitionEvent("a", None, "Running", "RUNNING", "Running", NOW.timestamp())
    poller.consecutive_errors = 0
    nd.on_refresh(poller, RefreshResult([first], True))
    nd.on_refresh(poller, RefreshResult([event], True))
    nd.finish(poller, None)
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [r["event"] for r in records] == ["snapshot", "transition", "done"]
    assert records[0]["jobs"][0]["phase"] == FlytePhase.RUNNING.name
    assert records[1]["from"] == "Queued" and records[1]["to"] == "Running"
    assert records[2]["detached"] is True and records[2]["still_running"] == ["a"]


def test_render_text_of_many_rows() -> None:
    jobs = [_watched(f"job-{i:04d}", "Running") for i in range(50)]
    text = render_text(jobs, lambda _id: None)
    assert text.count("job-") == 50 and "watching 50 jobs" in text


@pytest.mark.parametrize("width", [200, 160, 120, 80])
def test_narrow_terminals_shrink_message_first_and_keep_the_id_whole(width: int) -> None:
    from perianctl.ui.live import fit_widths

    job_id = "3f2c1a4e-0b1d-4c5e-9f00-1234567890ab"
    row = (job_id, "a-long-task-name-" * 3, "Initializing", "INITIALIZING", "2×A100", "1h02m", "12.34 EUR", "m" * 200)
    widths = fit_widths([row], width)
    assert widths[0] == len(job_id)
    shown = [w for w in widths if w is not None]
    assert sum(shown) + 3 * (len(shown) - 1) <= width
    assert widths[2] == len("Initializing") and widths[3] == len("INITIALIZING")
    text = render_text([_watched(job_id, "Initializing")], lambda _id: "name", width=width)
    assert job_id in text and all(len(line) <= width for line in text.splitlines())


def test_full_table_printed_in_chunks_is_one_table_with_one_header() -> None:
    """The final table of a big watch is built a chunk at a time (memory), yet reads as one table:
    the same lines as a single rich table, one header, widths from the widest cell of any chunk."""
    from rich.console import Console

    from perianctl.ui.live import build_table, print_full_table, snapshot_rows

    jobs = [
        _watched(f"job-{i:04d}", "Running" if i % 3 else "Queued", errors="x" * (i if i == 17 else 1))
        for i in range(40)
    ]
    now = NOW + timedelta(minutes=5)

    def printed(chunk: int) -> str:
        console = Console(file=io.StringIO(), width=160, color_system=None, force_terminal=False)
        print_full_table(console, jobs, lambda _id: None, width=160, now=now, chunk=chunk)
        out = console.file
        assert isinstance(out, io.StringIO)
        return out.getvalue()

    single = Console(file=io.StringIO(), width=160, color_system=None, force_terminal=False)
    single.print(build_table(snapshot_rows(jobs, lambda _id: None, now), width=160))
    assert isinstance(single.file, io.StringIO)
    whole = single.file.getvalue()
    chunked = printed(7)
    assert chunked == whole == printed(1000)
    assert chunked.count("STATUS") == 1
    assert all(f"job-{i:04d}" in chunked for i in range(40))
    assert "x" * 17 in chunked  # a wide cell in one chunk widens the column for every chunk


def test_watched_job_keeps_the_whole_view_and_answers_status_without_a_model() -> None:
    """A watched job is kept compactly (its JSON) but gives back the same view: every field, the
    unknown ones PERIAN may add, and a status we do not know."""
    job = JobView.model_validate(
        {
            "id": "j1",
            "status": "Paused",
            "created_at": "2026-11-23T09:59:00Z",
            "logs": "a\nb\n",
            "price": {"unit_price": "0.000006", "currency": "EUR", "granularity": "PER_SECOND"},
            "docker_metadata": {
                "docker_run_parameters": {"image_name": "busybox", "image_tag": "1", "env_variables": {"K": "V"}}
            },
            "requirement_metadata": {"requirements": {"accelerator": {"name": ["A100"], "no": 2}}},
            "brand_new_field": {"nested": [1, 2.5, None]},
        }
    )
    watched = WatchedJob("j1", job=job)
    assert watched.status == "Paused" and not watched.terminal and watched.exit_code is None
    assert watched.created_at == datetime(2026, 11, 23, 9, 59, tzinfo=UTC)
    again = watched.job
    assert again is not None and again.model_dump() == job.model_dump()
    assert again.image == "busybox:1" and again.model_extra == {"brand_new_field": {"nested": [1, 2.5, None]}}
    watched.job = _job("j1", "Done")
    assert watched.status == "Done" and watched.terminal and watched.exit_code is ExitCode.OK
    watched.job = None
    assert watched.job is None and watched.status is None and watched.created_at is None


@pytest.mark.parametrize("count", [0, 1, 3])
def test_ndjson_snapshot_and_done_written_job_by_job_are_plain_json_lines(count: int) -> None:
    """The snapshot and done events are streamed one job at a time (a 10,000-job watch does not
    hold every record at once) and still read as one ``json.dumps`` line each, jobs last."""
    jobs = [_watched(f"j{i}", "Running") for i in range(count)]
    poller = _poller_with(jobs)
    stream = io.StringIO()
    nd = NdjsonView(lambda job_id: f"name-{job_id}", stream)
    nd.on_refresh(poller, RefreshResult([], True))
    nd.finish(poller, None)
    lines = stream.getvalue().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["event"] for r in records] == ["snapshot", "done"]
    for line, record in zip(lines, records, strict=True):
        assert line == json.dumps(record) and list(record)[-1] == "jobs"
        assert [j["job_id"] for j in record["jobs"]] == [f"j{i}" for i in range(count)]
        assert [j["name"] for j in record["jobs"]] == [f"name-j{i}" for i in range(count)]
