"""The local journal: transitions recorded once, --last semantics, damage handling.

Concurrent writer processes: tests/integration/test_journal_processes.py.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from perianctl.errors import ConfigError
from perianctl.journal import open_journal, open_journal_best_effort


def test_transitions_are_recorded_once_in_order(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    with open_journal(db) as journal:
        journal.record_submission("job-1", profile="p", name="hello", source="t.pb")
        assert journal.observe("job-1", "Queued", phase="QUEUED", at=1.0)
        assert not journal.observe("job-1", "Queued", phase="QUEUED", at=2.0)
        assert journal.observe("job-1", "Running", phase="RUNNING", at=3.0)
        assert journal.observe("job-1", "Done", phase="SUCCEEDED", message="ok", at=4.0)
        history = journal.history("job-1")
        assert [(t.status, t.at) for t in history] == [("Queued", 1.0), ("Running", 3.0), ("Done", 4.0)]
        job = journal.get("job-1")
        assert job is not None and job.last_status == "Done" and job.name == "hello"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_last_is_the_last_submitted_not_the_last_observed(tmp_path: Path) -> None:
    with open_journal(tmp_path / "j.db") as journal:
        assert journal.last_job_id() is None
        journal.record_submission("a", profile="p1")
        journal.record_submission("b", profile="p2")
        journal.observe("c", "Running")  # seen via `get`, never submitted here
        assert journal.last_job_id() == "b"
        assert journal.last_job_id(profile="p1") == "a"
        assert [j.job_id for j in journal.jobs()] == ["b", "a"]
        assert {j.job_id for j in journal.jobs(submitted_only=False)} == {"a", "b", "c"}


def test_damaged_journal_is_a_one_line_error(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    db.write_bytes(b"this is not a sqlite database at all" * 100)
    with pytest.raises(ConfigError, match="damaged"), open_journal(db):
        pass


def test_best_effort_journal_reports_through_the_callers_warn(tmp_path: Path) -> None:
    """A journal that cannot be used is reported through the caller's ``warn`` (the journal itself
    writes to no terminal) and the command carries on without it."""
    db = tmp_path / "j.db"
    db.write_bytes(b"this is not a sqlite database at all" * 100)
    warnings: list[str] = []
    with open_journal_best_effort(db, warn=warnings.append) as journal:
        assert journal is None
    assert len(warnings) == 1 and warnings[0].startswith("job journal not updated:") and "damaged" in warnings[0]

    good = tmp_path / "good.db"
    with open_journal_best_effort(good, warn=warnings.append) as journal:
        assert journal is not None
        journal.observe("job-1", "Queued", phase="QUEUED", at=1.0)
    assert len(warnings) == 1
