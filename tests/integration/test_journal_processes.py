"""The local journal shared by concurrent processes (the pure journal tests are in tests/unit/test_journal.py)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from perianctl.journal import open_journal


def _writer(db: str, worker: int) -> None:
    with open_journal(Path(db)) as journal:
        for i in range(50):
            job = f"w{worker}-{i}"
            journal.record_submission(job)
            journal.observe(job, "Queued")
            journal.observe(job, "Done")


def test_concurrent_processes_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(db), w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with open_journal(db) as journal:
        jobs = journal.jobs(limit=1000)
        assert len(jobs) == 200
        assert all(len(journal.history(j.job_id)) == 2 for j in jobs)
