"""Local journal of submitted jobs and every status transition perianctl has observed.

PERIAN keeps no status history, so the journal is where ``get --history`` comes from, and it is
how ``--last`` means "the job *I* submitted last" rather than "whatever the server lists first".
SQLite (WAL, one transaction per write, busy timeout) keeps it consistent when several perianctl
processes -- a ``watch`` and a ``submit`` -- write at once, and a crash never leaves half a row.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from perianctl.config import state_dir
from perianctl.errors import ConfigError
from perianctl.files import private_dir


class JournalError(ConfigError):
    """The journal cannot be opened or written (exit 2 where it matters, a warning where it does not)."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    profile TEXT,
    api_url TEXT,
    name TEXT,
    image TEXT,
    source TEXT,
    via TEXT,
    connector TEXT,
    resource_meta TEXT,
    output_prefix TEXT,
    idempotency_key TEXT,
    submitted_at REAL,
    last_status TEXT,
    last_message TEXT,
    last_seen REAL
);
CREATE INDEX IF NOT EXISTS jobs_submitted ON jobs (submitted_at);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    at REAL NOT NULL,
    status TEXT NOT NULL,
    phase TEXT,
    message TEXT
);
CREATE INDEX IF NOT EXISTS transitions_job ON transitions (job_id, id);
"""


@dataclass(frozen=True)
class JournalJob:
    job_id: str
    profile: str | None
    api_url: str | None
    name: str | None
    image: str | None
    source: str | None
    via: str | None
    connector: str | None
    resource_meta: str | None
    output_prefix: str | None
    submitted_at: float | None
    last_status: str | None
    last_message: str | None
    last_seen: float | None


@dataclass(frozen=True)
class Observation:
    """One sighting of a job's status (what ``observe_many`` records)."""

    job_id: str
    status: str
    phase: str | None = None
    message: str | None = None
    at: float | None = None


@dataclass(frozen=True)
class Transition:
    job_id: str
    at: float
    status: str
    phase: str | None
    message: str | None


def journal_path() -> Path:
    return state_dir() / "journal.db"


class Journal:
    """A connection to the journal database; use :func:`open_journal`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One transaction; a failed write (disk full, I/O error) is a one-line error, not a traceback."""
        try:
            with self._conn:
                yield
        except sqlite3.Error as exc:
            raise JournalError(f"cannot write the job journal ({exc})") from None

    # ------------------------------------------------------------------ writes

    def record_submission(
        self,
        job_id: str,
        *,
        profile: str | None = None,
        api_url: str | None = None,
        name: str | None = None,
        image: str | None = None,
        source: str | None = None,
        via: str = "api",
        connector: str | None = None,
        resource_meta: str | None = None,
        output_prefix: str | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        with self._writing():
            self._conn.execute(
                """INSERT INTO jobs (job_id, profile, api_url, name, image, source, via, connector,
                       resource_meta, output_prefix, idempotency_key, submitted_at)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?,?)
                   ON CONFLICT(job_id) DO UPDATE SET
                       profile=excluded.profile, api_url=excluded.api_url, name=excluded.name,
                       image=excluded.image, source=excluded.source, via=excluded.via,
                       connector=excluded.connector, resource_meta=excluded.resource_meta,
                       output_prefix=excluded.output_prefix, idempotency_key=excluded.idempotency_key,
                       submitted_at=COALESCE(jobs.submitted_at, excluded.submitted_at)""",
                (
                    job_id,
                    profile,
                    api_url,
                    name,
                    image,
                    source,
                    via,
                    connector,
                    resource_meta,
                    output_prefix,
                    idempotency_key,
                    time.time(),
                ),
            )

    def observe(
        self,
        job_id: str,
        status: str,
        *,
        phase: str | None = None,
        message: str | None = None,
        at: float | None = None,
        api_url: str | None = None,
    ) -> bool:
        """Record that ``job_id`` was seen in ``status``; returns True when that is a transition."""
        return self.observe_many([Observation(job_id, status, phase, message, at)], api_url=api_url)[0]

    def observe_many(self, observations: Iterable[Observation], *, api_url: str | None = None) -> list[bool]:
        """Record many observations in one transaction (a watch of 1,000 jobs is one commit)."""
        changed: list[bool] = []
        with self._writing():
            for obs in observations:
                changed.append(self._observe(obs, api_url))
        return changed

    def _observe(self, obs: Observation, api_url: str | None) -> bool:
        now = time.time() if obs.at is None else obs.at
        row = self._conn.execute("SELECT last_status FROM jobs WHERE job_id = ?", (obs.job_id,)).fetchone()
        if row is None:
            self._conn.execute(
                "INSERT INTO jobs (job_id, api_url, via, last_status, last_message, last_seen) VALUES (?,?,?,?,?,?)",
                (obs.job_id, api_url, "observed", obs.status, obs.message, now),
            )
            changed = True
        else:
            changed = row[0] != obs.status
            self._conn.execute(
                "UPDATE jobs SET last_status=?, last_message=?, last_seen=? WHERE job_id=?",
                (obs.status, obs.message, now, obs.job_id),
            )
        if changed:
            self._conn.execute(
                "INSERT INTO transitions (job_id, at, status, phase, message) VALUES (?,?,?,?,?)",
                (obs.job_id, now, obs.status, obs.phase, obs.message),
            )
        return changed

    # ------------------------------------------------------------------ reads

    def get(self, job_id: str) -> JournalJob | None:
        row = self._conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return JournalJob(*row) if row else None

    def last_job_id(self, *, profile: str | None = None) -> str | None:
        """The most recently *submitted* job (optionally of one profile)."""
        query = "SELECT job_id FROM jobs WHERE submitted_at IS NOT NULL"
        args: tuple[str, ...] = ()
        if profile:
            query += " AND profile = ?"
            args = (profile,)
        row = self._conn.execute(query + " ORDER BY submitted_at DESC, rowid DESC LIMIT 1", args).fetchone()
        return row[0] if row else None

    def jobs(
        self,
        *,
        limit: int | None = 50,
        offset: int = 0,
        submitted_only: bool = True,
        statuses: Iterable[str] | None = None,
    ) -> list[JournalJob]:
        """Newest first; ``limit=None`` for all; ``statuses`` filters on the last status seen."""
        where, args = _job_filter(submitted_only, statuses)
        rows = self._conn.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs {where} "
            "ORDER BY COALESCE(submitted_at, last_seen) DESC, rowid DESC LIMIT ? OFFSET ?",
            (*args, -1 if limit is None else limit, offset),
        ).fetchall()
        return [JournalJob(*row) for row in rows]

    def count(self, *, submitted_only: bool = True, statuses: Iterable[str] | None = None) -> int:
        where, args = _job_filter(submitted_only, statuses)
        row = self._conn.execute(f"SELECT COUNT(*) FROM jobs {where}", args).fetchone()
        return int(row[0])

    def ids_with_prefix(
        self, digits: str, *, api_url: str | None = None, limit: int = 20
    ) -> list[tuple[str, str | None]]:
        """``(job_id, last_status)`` of the jobs whose id (dashes ignored) starts with the hex ``digits``.

        With ``api_url``, only jobs of that API (or of none recorded). Used by :mod:`perianctl.jobs.ids`.
        """
        if not digits or any(c not in "0123456789abcdef" for c in digits):
            return []
        query = "SELECT job_id, last_status FROM jobs WHERE replace(lower(job_id), '-', '') LIKE ?"
        args: list[object] = [digits + "%"]
        if api_url:
            query += " AND (api_url IS NULL OR rtrim(api_url, '/') = rtrim(?, '/'))"
            args.append(api_url)
        rows = self._conn.execute(
            query + " ORDER BY COALESCE(submitted_at, last_seen) DESC, rowid DESC LIMIT ?", (*args, limit)
        ).fetchall()
        return [(row[0], row[1]) for row in rows]

    def history(self, job_id: str) -> list[Transition]:
        rows = self._conn.execute(
            "SELECT job_id, at, status, phase, message FROM transitions WHERE job_id = ? ORDER BY id",
            (job_id,),
        ).fetchall()
        return [Transition(*row) for row in rows]


_JOB_COLUMNS = (
    "job_id, profile, api_url, name, image, source, via, connector, resource_meta, output_prefix, "
    "submitted_at, last_status, last_message, last_seen"
)


@contextmanager
def open_journal(path: Path | None = None) -> Iterator[Journal]:
    """Open (creating 0600 if needed) the journal; a broken file becomes a one-line error."""
    db = path or journal_path()
    try:
        private_dir(db.parent)
        if not db.exists():
            db.touch(mode=0o600)
        conn = sqlite3.connect(db, timeout=10.0, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
        raise JournalError(
            f"cannot open the job journal {db}: {reason}", hint="set PERIANCTL_STATE_DIR to a writable directory"
        ) from None
    try:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=10000")
            # WAL + NORMAL: never corrupts; a power cut may lose the last observation, not history.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
        except sqlite3.OperationalError as exc:  # disk full, I/O error, locked: the file itself is fine
            raise JournalError(f"cannot use the job journal {db} ({exc})") from None
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"the job journal {db} is damaged ({exc}); move it aside to start a new one") from None
        conn.isolation_level = "DEFERRED"
        yield Journal(conn)
    finally:
        conn.close()


@contextmanager
def open_journal_best_effort(path: Path | None = None, *, warn: Callable[[str], None]) -> Iterator[Journal | None]:
    """The journal, or ``None`` with a warning when it cannot be used.

    For commands whose journalling is a side effect (``get``, ``list``, ``watch``, ``wait``): a
    full disk or an unwritable state dir must not stop them from showing jobs. Write errors
    inside the block are reported the same way, through ``warn`` (the caller's output, e.g.
    :func:`perianctl.ui.console.warn`: the journal is a base module and writes to no terminal).
    """
    try:
        manager = open_journal(path)
        journal = manager.__enter__()
    except JournalError as exc:
        warn(f"job journal not updated: {exc.message}")
        yield None
        return
    try:
        yield journal
    except JournalError as exc:
        warn(f"job journal not updated: {exc.message}")
    finally:
        manager.__exit__(None, None, None)


def _job_filter(submitted_only: bool, statuses: Iterable[str] | None) -> tuple[str, list[object]]:
    """The WHERE clause and its arguments shared by :meth:`Journal.jobs` and :meth:`Journal.count`."""
    clauses = ["submitted_at IS NOT NULL"] if submitted_only else []
    args: list[object] = []
    if statuses is not None:
        wanted = sorted(statuses)
        clauses.append(f"last_status IN ({','.join('?' * len(wanted))})")
        args += wanted
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), args
