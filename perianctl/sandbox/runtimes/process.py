"""The ``process`` runtime: run each job's command as a local subprocess (no container, no shell).

What a job gets, and why:

* **argv** = ``shlex.split(command)``; no shell, so nothing in a command string is interpreted
  twice. The job's image is ignored (this runtime has no containers); a job without a command
  fails as UserError.
* **environment** = a minimal base (``PATH`` with the sandbox's own Python ``bin`` directory first,
  so venv tools such as ``pyflyte-execute`` resolve; ``HOME``; ``LANG``; ``PYTHONUNBUFFERED=1`` so
  Python output reaches ``logs`` live; ``PERIAN_JOB_ID``; ``PERIAN_SANDBOX_ROOT``) plus the job's
  ``env_variables`` plus its ``secrets`` -- never the sandbox's own environment, which could leak
  credentials into job logs.
* **container files**: a file for container path ``/data/x.json`` is written to
  ``<state-dir>/jobs/<job-id>/root/data/x.json`` (``PERIAN_SANDBOX_ROOT`` points at ``root``), and
  every env or secret value that equals a container file path is rewritten to that host path, so
  ``GOOGLE_APPLICATION_CREDENTIALS=/data/gcp-credentials.json`` works unchanged. ``read_only``
  files are made 0400. ``root`` is deleted when the job ends (it holds secrets).
* **cwd** = ``<state-dir>/jobs/<job-id>/work`` (kept after the job, for inspection).
* **logs** = stdout and stderr, interleaved as they arrive, re-sent to the store twice a second
  while the job runs and capped (the oldest output is dropped first, with a marker line).
* **outcome**: exit 0 → Done; non-zero → UserError with the last stderr lines in ``errors``;
  ``timeout_seconds`` → Timeout; cancel → SIGTERM to the job's process group, SIGKILL after the
  grace period → Cancelled.

Each job runs in its own session (process group), so a cancel also stops what the command
spawned. At most ``max_parallel`` jobs run at once; the rest stay Queued.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import codecs
import contextlib
import logging
import os
import shlex
import shutil
import signal
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from perianctl.perian.status import WorkloadStatus as S
from perianctl.sandbox.config import SandboxConfig
from perianctl.sandbox.runtimes.base import JobSpec, Runtime
from perianctl.sandbox.store import JobRow, JobStore, JobUpdate

log = logging.getLogger("perianctl.sandbox.process")

FLUSH_INTERVAL = 0.5
STOPPED_ERROR = "The sandbox was stopped while the job was running"
_TRUNCATED = "[sandbox] earlier output was dropped (log size limit)\n"


class JobSetupError(Exception):
    """The job cannot be started as given (bad command, bad container file): a UserError."""


@dataclass
class Prepared:
    """A job's directories, container files (container path → host path) and environment."""

    job_dir: Path
    root: Path
    work: Path
    files: list[tuple[str, Path, bool]] = field(default_factory=list)
    job_env: dict[str, str] = field(default_factory=dict)


class LogBuffer:
    """Text output capped at ``cap`` characters; the oldest output goes first."""

    def __init__(self, cap: int) -> None:
        self.cap = max(1024, cap)
        self._chunks: deque[str] = deque()
        self._size = 0
        self.truncated = False
        self.dirty = False

    def write(self, text: str) -> None:
        if not text:
            return
        self._chunks.append(text)
        self._size += len(text)
        self.dirty = True
        while self._size > self.cap and self._chunks:
            first = self._chunks.popleft()
            excess = self._size - self.cap
            self.truncated = True
            if len(first) > excess:
                self._chunks.appendleft(first[excess:])
                self._size -= excess
            else:
                self._size -= len(first)

    def text(self) -> str:
        body = "".join(self._chunks)
        return _TRUNCATED + body if self.truncated else body


def container_path_on_host(root: Path, container_path: str) -> Path:
    """Map an absolute container path into the job's ``root`` directory (no escaping it)."""
    path = PurePosixPath(container_path)
    parts = [p for p in path.parts if p not in ("/", "", ".")]
    if not parts or ".." in parts:
        raise JobSetupError(f"invalid container file path {container_path!r}")
    return root.joinpath(*parts)


def env_text(value: Any) -> str:
    """Env values arrive as any JSON; a container sees text (JSON for non-strings)."""
    if isinstance(value, str):
        return value
    import json

    return json.dumps(value)


def process_start_time(pid: int) -> str | None:
    """The kernel start time of ``pid`` (from /proc), to recognise it again after a restart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


class ProcessRuntime(Runtime):
    name = "process"

    def __init__(self, config: SandboxConfig, store: JobStore) -> None:
        super().__init__(config, store)
        self.jobs_root = config.state_dir / "jobs"
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._cancelling: set[str] = set()
        self._stopping = False
        self._slots: asyncio.Semaphore | None = None
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lifecycle

    def recover(self, ended: list[JobRow]) -> None:
        """Kill process groups a crashed sandbox left running (only if the pid is still theirs)."""
        for job in ended:
            if job.pid and job.pid_start and process_start_time(job.pid) == job.pid_start:
                with contextlib.suppress(OSError):
                    os.killpg(job.pid, signal.SIGKILL)
                    log.warning("killed orphaned process group %d of job %s", job.pid, job.id)
            shutil.rmtree(self.jobs_root / job.id / "root", ignore_errors=True)

    async def start(self, queued: list[JobRow]) -> None:
        self.jobs_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._slots = asyncio.Semaphore(self.config.max_parallel)
        for job in queued:
            self.submit(job)

    def submit(self, job: JobRow) -> None:
        task = asyncio.get_running_loop().create_task(self._run(job.id), name=f"sandbox-job-{job.id}")
        self._tasks[job.id] = task
        task.add_done_callback(lambda _task: self._forget(job.id, _task))

    def _forget(self, job_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(job_id) is task:
            del self._tasks[job_id]

    def cancel(self, job: JobRow) -> None:
        proc = self._procs.get(job.id)
        if proc is None:
            # Not started yet: end it now; its task sees a terminal job and does nothing.
            self.end(job.id, S.CANCELLED.value)
            return
        if job.id not in self._cancelling:
            self._cancelling.add(job.id)
            task = asyncio.get_running_loop().create_task(self._terminate(job.id, proc, self.config.kill_grace))
            self._background.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(self._background.discard)

    async def stop(self) -> None:
        self._stopping = True
        grace = min(self.config.kill_grace, 3.0)
        await asyncio.gather(
            *(self._terminate(job_id, proc, grace) for job_id, proc in list(self._procs.items())),
            return_exceptions=True,
        )
        tasks = list(self._tasks.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    # ------------------------------------------------------------------ hooks (docker overrides)

    def command(self, spec: JobSpec, prepared: Prepared) -> tuple[list[str], dict[str, str], Path]:
        """argv, environment and cwd of the job's process."""
        if not spec.command or not spec.command.strip():
            raise JobSetupError(
                "the process runtime runs the job's command locally and ignores the image, but this job has no command"
            )
        try:
            argv = shlex.split(spec.command)
        except ValueError as exc:
            raise JobSetupError(f"cannot parse the command: {exc}") from None
        env = {
            "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH") or os.defpath]),
            "HOME": os.environ.get("HOME") or str(prepared.work),
            "LANG": os.environ.get("LANG") or "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "PERIAN_JOB_ID": spec.job_id,
            "PERIAN_SANDBOX_ROOT": str(prepared.root),
        }
        on_host = {cpath: str(host) for cpath, host, _ in prepared.files}
        env.update({key: on_host.get(value, value) for key, value in prepared.job_env.items()})
        return argv, env, prepared.work

    async def send_signal(self, job_id: str, proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
        """Signal the job's whole process group."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

    # ------------------------------------------------------------------ one job

    def prepare(self, spec: JobSpec) -> Prepared:
        job_dir = self.jobs_root / spec.job_id
        prepared = Prepared(job_dir=job_dir, root=job_dir / "root", work=job_dir / "work")
        for directory in (job_dir, prepared.root, prepared.work):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        for item in spec.container_files:
            cpath = str(item.get("path") or "")
            host = container_path_on_host(prepared.root, cpath)
            try:
                data = base64.b64decode(str(item.get("base64_content") or ""), validate=True)
            except (binascii.Error, ValueError):
                raise JobSetupError(f"container file {cpath}: base64_content is not valid base64") from None
            host.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            read_only = bool(item.get("read_only"))
            if read_only:
                host.chmod(0o400)
            prepared.files.append((cpath, host, read_only))
        for source in (spec.env, spec.secrets):
            for key, value in source.items():
                if value is not None:
                    prepared.job_env[str(key)] = env_text(value)
        return prepared

    async def _run(self, job_id: str) -> None:
        assert self._slots is not None
        async with self._slots:
            row = self.store.get(job_id)
            if row is None or row.terminal or self._stopping:
                return
            if not self.store.update(JobUpdate(job_id, status=S.INITIALIZING.value)):
                return
            spec = JobSpec.from_row(row)
            prepared: Prepared | None = None
            try:
                prepared = self.prepare(spec)
                argv, env, cwd = self.command(spec, prepared)
                self.store.scrub_private(job_id)
                try:
                    proc = await asyncio.create_subprocess_exec(
                        *argv,
                        stdin=asyncio.subprocess.DEVNULL,
                        stdout=asyncio.subprocess.PIPE,
                        stderr=asyncio.subprocess.PIPE,
                        cwd=str(cwd),
                        env=env,
                        start_new_session=True,
                    )
                except OSError as exc:
                    raise JobSetupError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from None
                await self._supervise(job_id, spec, proc)
            except JobSetupError as exc:
                self.end(job_id, S.USER_ERROR.value, errors=str(exc), logs=f"[sandbox] {exc}\n")
            except Exception as exc:
                log.exception("job %s: runtime failure", job_id)
                self.end(job_id, S.SERVER_ERROR.value, errors=f"sandbox runtime failure: {type(exc).__name__}: {exc}")
            finally:
                if prepared is not None:
                    shutil.rmtree(prepared.root, ignore_errors=True)

    async def _supervise(self, job_id: str, spec: JobSpec, proc: asyncio.subprocess.Process) -> None:
        self._procs[job_id] = proc
        try:
            output = LogBuffer(self.config.log_cap_bytes)
            stderr_tail = LogBuffer(8192)
            assert proc.stdout is not None and proc.stderr is not None
            readers = [
                asyncio.create_task(self._pump(proc.stdout, output, None)),
                asyncio.create_task(self._pump(proc.stderr, output, stderr_tail)),
            ]
            flusher = asyncio.create_task(self._flush_logs(job_id, output))
            timed_out = False
            try:
                if self.store.update(JobUpdate(job_id, status=S.RUNNING.value)):
                    self.store.set_process(job_id, proc.pid, process_start_time(proc.pid))
                else:  # cancelled while it was starting
                    self._cancelling.add(job_id)
                    await self._terminate(job_id, proc, self.config.kill_grace)
                try:
                    await asyncio.wait_for(proc.wait(), spec.timeout_seconds)
                except TimeoutError:
                    timed_out = True
                    await self._terminate(job_id, proc, self.config.kill_grace)
                # A grandchild may hold the pipes open after the job's process ended: do not wait forever.
                _, pending = await asyncio.wait(readers, timeout=2.0)
                for task in pending:
                    task.cancel()
            finally:
                flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flusher
            self.store.update(self._outcome(job_id, spec, proc.returncode, timed_out, output, stderr_tail))
        finally:
            self._procs.pop(job_id, None)
            self._cancelling.discard(job_id)

    def _outcome(
        self, job_id: str, spec: JobSpec, code: int | None, timed_out: bool, output: LogBuffer, stderr_tail: LogBuffer
    ) -> JobUpdate:
        logs = output.text() or None
        if job_id in self._cancelling:
            return JobUpdate(job_id, status=S.CANCELLED.value, logs=(logs or "") + "[sandbox] job cancelled\n")
        if timed_out:
            return JobUpdate(
                job_id,
                status=S.TIMEOUT.value,
                logs=logs,
                errors=f"The job exceeded its timeout of {spec.timeout_seconds} s and was stopped",
            )
        if self._stopping:
            return JobUpdate(job_id, status=S.SERVER_ERROR.value, logs=logs, errors=STOPPED_ERROR)
        if code == 0:
            return JobUpdate(job_id, status=S.DONE.value, logs=logs)
        return JobUpdate(job_id, status=S.USER_ERROR.value, logs=logs, errors=_failure_text(code, stderr_tail, output))

    @staticmethod
    async def _pump(stream: asyncio.StreamReader, output: LogBuffer, tail: LogBuffer | None) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while chunk := await stream.read(65536):
            text = decoder.decode(chunk)
            output.write(text)
            if tail is not None:
                tail.write(text)
        rest = decoder.decode(b"", final=True)
        output.write(rest)
        if tail is not None:
            tail.write(rest)

    async def _flush_logs(self, job_id: str, output: LogBuffer) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            if output.dirty:
                output.dirty = False
                self.store.update(JobUpdate(job_id, logs=output.text()))

    async def _terminate(self, job_id: str, proc: asyncio.subprocess.Process, grace: float) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns once the process has exited."""
        if proc.returncode is not None:
            return
        await self.send_signal(job_id, proc, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            await self.send_signal(job_id, proc, signal.SIGKILL)
            await proc.wait()


def _failure_text(code: int | None, stderr_tail: LogBuffer, output: LogBuffer) -> str:
    """``errors`` of a failed job: a telling first line, then the last lines of stderr (or stdout)."""
    if code is not None and code < 0:
        try:
            reason = f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            reason = f"killed by signal {-code}"
    else:
        reason = f"exit code {code}"
    lines = [line for line in (stderr_tail.text() or output.text()).splitlines() if line.strip()]
    lines = [line for line in lines if line != _TRUNCATED.strip()][-10:]
    if not lines:
        return f"The command failed ({reason})"
    return f"{reason}: {lines[-1]}\n" + "\n".join(lines)
