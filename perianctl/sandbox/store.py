"""Durable job store: one SQLite database (WAL) per state dir, one row per job.

Why SQLite in WAL mode with ``synchronous=NORMAL``: every committed transaction is in the WAL
file before the API answers, so a sandbox killed with SIGKILL loses nothing it acknowledged
(only an OS crash could lose the last commits, which no test or demo does), while a commit costs
microseconds -- thousands of simulated jobs stay cheap. Status changes of many jobs are applied
in one transaction (:meth:`JobStore.apply`), which is how the simulate scheduler keeps up.

Rules the store enforces itself, so no runtime can get them wrong:

* a terminal status is final: updates to a job that already ended are ignored;
* ``started_at`` / ``done_at`` are set once, when a job first enters Running / a terminal status;
* on start-up (:meth:`JobStore.recover`) jobs that had started are ended as ServerError (or
  Cancelled, if a cancel was pending), and Queued jobs are handed back to the runtime.

Secrets (``private`` column: env secrets, container file contents, registry password) are kept
only until the runtime has used them, then :meth:`JobStore.scrub_private` (or the job's end)
deletes them -- and "deletes" means no copy is left in any file of the database:

* ``PRAGMA secure_delete=ON`` makes SQLite overwrite deleted content (the old row cell, freed
  overflow pages of large container files) with zeros instead of leaving it in free space;
* the old row is still in the WAL, as the page images of the transactions that wrote it, so after
  a scrub commits, ``PRAGMA wal_checkpoint(TRUNCATE)`` copies the zeroed pages into the database
  and truncates the WAL to nothing (``-shm`` holds only the WAL index, never row content);
* at start-up (after a SIGKILL, say) :meth:`JobStore.recover` drops the secrets of every job that
  ended, and a database written by an older sandbox (without secure delete, ``user_version`` 0)
  is vacuumed once, which rewrites it without its free space.

Why keep secrets in SQLite at all rather than in a 0600 file per job: the job row and its secrets
are then committed in one transaction, so a SIGKILL can never leave a job without the secrets it
needs nor secrets without a job, and there is one place to scrub. The checkpoint costs one fsync
per scrub that had something to delete, so jobs without secrets (most simulated ones) pay nothing.

Strings that cannot be stored as UTF-8 text (lone surrogates, from records of an older sandbox
that accepted them) are repaired on write (U+FFFD), and a row whose JSON cannot be read is served
with what could be read: one odd job must never stop the runtime's batches or the job list.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perianctl.perian.status import TERMINAL_STATUSES, WorkloadStatus

TERMINAL = tuple(sorted(s.value for s in TERMINAL_STATUSES))
_TERMINAL_SQL = "(" + ",".join(f"'{s}'" for s in TERMINAL) + ")"
RESTART_ERROR = (
    "The sandbox restarted while the job was running (the previous sandbox process ended "
    "unexpectedly); the job's outcome is unknown."
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    org TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    done_at REAL,
    logs TEXT,
    errors TEXT,
    view TEXT NOT NULL,
    spec TEXT NOT NULL,
    private TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,
    pid_start TEXT
);
CREATE INDEX IF NOT EXISTS jobs_org_seq ON jobs (org, seq);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_SCHEMA_VERSION = 1
"""``PRAGMA user_version``: 1 = written with ``secure_delete`` on (no stale secrets in free pages)."""
_SURROGATE = re.compile("[\ud800-\udfff]")
_COLUMNS = (
    "seq, id, org, status, created_at, updated_at, started_at, done_at, logs, errors, view, spec, "
    "private, cancel_requested, pid, pid_start"
)


@dataclass
class JobRow:
    """A job as stored. ``view`` is the echo part of the JobView; ``spec`` is what runtimes need."""

    id: str
    org: str
    status: str
    created_at: float
    updated_at: float
    view: dict[str, Any]
    spec: dict[str, Any]
    private: dict[str, Any] | None = None
    started_at: float | None = None
    done_at: float | None = None
    logs: str | None = None
    errors: str | None = None
    cancel_requested: bool = False
    pid: int | None = None
    pid_start: str | None = None
    seq: int = 0

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass(frozen=True)
class BillingRow:
    """What billing needs of a started job (see :meth:`JobStore.billing_rows`)."""

    seq: int
    id: str
    org: str
    status: str
    started_at: float
    done_at: float | None
    unit_price: Any
    granularity: str | None
    currency: str | None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass
class JobUpdate:
    """One change to one job. Fields left ``None`` are not touched.

    ``append_logs`` adds text to the end of the logs; ``logs`` replaces them (process runtimes
    re-send their capped buffer). ``at`` is the wall-clock time of the change.
    """

    job_id: str
    status: str | None = None
    at: float = field(default_factory=time.time)
    append_logs: str | None = None
    logs: str | None = None
    errors: str | None = None


@dataclass
class Recovery:
    """What :meth:`JobStore.recover` did: jobs to resume and jobs it ended (with their old pid)."""

    queued: list[JobRow]
    ended: list[JobRow]


class JobStore:
    """Thread-safe (one lock) access to the jobs database."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        new = not path.exists()
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10)
        if new:
            path.chmod(0o600)  # the private column holds secrets until they are used
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.executescript(_SCHEMA)
        if int(self._db.execute("PRAGMA user_version").fetchone()[0]) < _SCHEMA_VERSION:
            self._db.execute("UPDATE jobs SET private = NULL WHERE status IN " + _TERMINAL_SQL)
            self._db.execute("VACUUM")  # an older sandbox's free pages may still hold secrets
            self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            self._checkpoint()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _checkpoint(self) -> None:
        """Move every committed page into the database file and empty the WAL (see the module doc)."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ------------------------------------------------------------------ rows

    @staticmethod
    def _row(values: tuple[Any, ...]) -> JobRow:
        (
            seq,
            job_id,
            org,
            status,
            created,
            updated,
            started,
            done,
            logs,
            errors,
            view,
            spec,
            private,
            cancel_requested,
            pid,
            pid_start,
        ) = values
        return JobRow(
            id=job_id,
            org=org,
            status=status,
            created_at=created,
            updated_at=updated,
            started_at=started,
            done_at=done,
            logs=logs,
            errors=errors,
            view=_json_object(view),
            spec=_json_object(spec),
            private=_json_object(private) or None if private else None,
            cancel_requested=bool(cancel_requested),
            pid=pid,
            pid_start=pid_start,
            seq=seq,
        )

    def insert(self, job: JobRow, *, count_create_call: bool = True) -> JobRow:
        with self._tx() as db:
            cursor = db.execute(
                "INSERT INTO jobs (id, org, status, created_at, updated_at, started_at, done_at, logs, errors, "
                "view, spec, private) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    job.id,
                    job.org,
                    job.status,
                    job.created_at,
                    job.updated_at,
                    job.started_at,
                    job.done_at,
                    _text(job.logs),
                    _text(job.errors),
                    json.dumps(job.view),
                    json.dumps(job.spec),
                    json.dumps(job.private) if job.private else None,
                ),
            )
            job.seq = int(cursor.lastrowid or 0)
            self._bump(db, "jobs_created")
            if count_create_call:
                self._bump(db, "create_calls")
        return job

    def get(self, job_id: str, org: str | None = None) -> JobRow | None:
        sql = f"SELECT {_COLUMNS} FROM jobs WHERE id = ?"
        args: tuple[Any, ...] = (job_id,)
        if org is not None:
            sql += " AND org = ?"
            args += (org,)
        with self._lock:
            values = self._db.execute(sql, args).fetchone()
        return self._row(values) if values else None

    def page(self, org: str, *, limit: int, offset: int) -> tuple[list[JobRow], int]:
        """One page of ``org``'s jobs, newest first, and the total count."""
        with self._lock:
            total = self._db.execute("SELECT COUNT(*) FROM jobs WHERE org = ?", (org,)).fetchone()[0]
            if offset >= total:  # also keeps an offset past SQLite's 64-bit integers out of the query
                return [], int(total)
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE org = ? ORDER BY seq DESC LIMIT ? OFFSET ?",
                (org, limit, offset),
            ).fetchall()
        return [self._row(r) for r in rows], int(total)

    def non_terminal(self) -> list[JobRow]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE status NOT IN {_TERMINAL_SQL} ORDER BY seq"
            ).fetchall()
        return [self._row(r) for r in rows]

    # ------------------------------------------------------------------ updates

    def apply(self, updates: Iterable[JobUpdate]) -> list[bool]:
        """Apply updates in one transaction; each result says whether the job was still open."""
        results: list[bool] = []
        scrubbed = False
        with self._tx() as db:
            for update in updates:
                results.append(self._apply_one(db, update))
                if results[-1] and update.status in TERMINAL:
                    scrubbed |= self._drop_private(db, update.job_id)
        if scrubbed:
            self._checkpoint()
        return results

    def update(self, update: JobUpdate) -> bool:
        return self.apply([update])[0]

    @staticmethod
    def _apply_one(db: sqlite3.Connection, u: JobUpdate) -> bool:
        sets = ["updated_at = ?"]
        args: list[Any] = [u.at]
        if u.status is not None:
            sets.append("status = ?")
            args.append(u.status)
            if u.status == WorkloadStatus.RUNNING.value:
                sets.append("started_at = COALESCE(started_at, ?)")
                args.append(u.at)
            if u.status in TERMINAL:
                sets.append("done_at = COALESCE(done_at, ?)")
                args.append(u.at)
                sets.append("pid = NULL")
        if u.logs is not None:
            sets.append("logs = ?")
            args.append(_text(u.logs))
        if u.append_logs is not None:
            sets.append("logs = COALESCE(logs, '') || ?")
            args.append(_text(u.append_logs))
        if u.errors is not None:
            sets.append("errors = ?")
            args.append(_text(u.errors))
        args.append(u.job_id)
        cursor = db.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id = ? AND status NOT IN {_TERMINAL_SQL}", args)
        return cursor.rowcount > 0

    def mark_cancel_requested(self, job_id: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))

    def set_process(self, job_id: str, pid: int | None, pid_start: str | None) -> None:
        with self._tx() as db:
            db.execute("UPDATE jobs SET pid = ?, pid_start = ? WHERE id = ?", (pid, pid_start, job_id))

    @staticmethod
    def _drop_private(db: sqlite3.Connection, job_id: str) -> bool:
        return db.execute("UPDATE jobs SET private = NULL WHERE id = ? AND private IS NOT NULL", (job_id,)).rowcount > 0

    def scrub_private(self, job_id: str) -> None:
        """Forget the job's secrets once the runtime has handed them to the job (no copy left on disk)."""
        with self._tx() as db:
            scrubbed = self._drop_private(db, job_id)
        if scrubbed:
            self._checkpoint()

    # ------------------------------------------------------------------ start-up and stats

    def recover(self, *, now: float | None = None) -> Recovery:
        """End jobs a previous process left running; return them and the Queued jobs to resume."""
        now = time.time() if now is None else now
        open_jobs = self.non_terminal()
        queued = [j for j in open_jobs if j.status == WorkloadStatus.QUEUED.value and not j.cancel_requested]
        resumed = {j.id for j in queued}
        ended = [j for j in open_jobs if j.id not in resumed]
        updates = []
        for job in ended:
            if job.cancel_requested:
                updates.append(
                    JobUpdate(
                        job.id,
                        status=WorkloadStatus.CANCELLED.value,
                        at=now,
                        append_logs="[sandbox] cancelled (sandbox restarted)\n",
                    )
                )
            else:
                updates.append(
                    JobUpdate(
                        job.id,
                        status=WorkloadStatus.SERVER_ERROR.value,
                        at=now,
                        errors=RESTART_ERROR,
                        append_logs="[sandbox] sandbox restarted while the job was running\n",
                    )
                )
        if updates:
            self.apply(updates)
        # Secrets of jobs that ended while a scrub was not yet on disk (a SIGKILL in between).
        with self._tx() as db:
            db.execute(f"UPDATE jobs SET private = NULL WHERE private IS NOT NULL AND status IN {_TERMINAL_SQL}")
        self._checkpoint()
        return Recovery(queued=queued, ended=ended)

    def _bump(self, db: sqlite3.Connection, name: str, by: int = 1) -> None:
        db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, by),
        )

    def bump(self, name: str, by: int = 1) -> None:
        with self._tx() as db:
            self._bump(db, name, by)

    def counters(self) -> dict[str, int]:
        with self._lock:
            return {name: int(value) for name, value in self._db.execute("SELECT name, value FROM counters")}

    def billing_rows(self, from_seq: int) -> tuple[list[BillingRow], int]:
        """Started jobs with ``seq >= from_seq`` and the seq below which every job has ended.

        Both are read under one lock, so a job counted as ended below the returned seq really had
        ended when its row was read: the billing ledger settles those once and never reads them
        again, which keeps a check cheap however many jobs the store holds.
        """
        with self._lock:
            first_open = self._db.execute(
                f"SELECT seq FROM jobs WHERE seq >= ? AND status NOT IN {_TERMINAL_SQL} ORDER BY seq LIMIT 1",
                (from_seq,),
            ).fetchone()
            if first_open is not None:
                next_seq = int(first_open[0])
            else:
                last = self._db.execute("SELECT MAX(seq) FROM jobs").fetchone()[0]
                next_seq = int(last or 0) + 1
            rows = self._db.execute(
                # json_valid first: a record an older sandbox stored may not parse (it is then not billed)
                "SELECT seq, id, org, status, started_at, done_at, "
                "CASE WHEN json_valid(view) THEN json_extract(view, '$.price.unit_price') END, "
                "CASE WHEN json_valid(view) THEN json_extract(view, '$.price.granularity') END, "
                "CASE WHEN json_valid(view) THEN json_extract(view, '$.price.currency') END "
                "FROM jobs WHERE seq >= ? AND started_at IS NOT NULL ORDER BY seq",
                (from_seq,),
            ).fetchall()
        return [BillingRow(*row) for row in rows], next_seq

    def counts_by_status(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {status: int(count) for status, count in rows}


def _text(value: str | None) -> str | None:
    """``value`` storable as UTF-8 text: a lone surrogate would make the whole transaction fail."""
    if value is None or value.isascii():
        return value
    return _SURROGATE.sub("\ufffd", value)


def _json_object(text: str | None) -> dict[str, Any]:
    """A stored JSON object, or ``{}`` if the text cannot be read as one (a damaged old record)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}
