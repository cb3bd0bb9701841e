"""``sandbox start | stop | status``: a detached sandbox managed through its state dir.

``start`` spawns the caller's foreground server command (``perianctl sandbox run`` without the
root CLI: ``python -m perianctl.commands.sandbox run ...``) in a new session with its output in
``<state-dir>/sandbox.log``, records the pid in ``<state-dir>/sandbox.pid`` and returns only once
``/healthz`` answers (or reports why the child died, with the last log line).

``stop`` signals a pid only after checking that the process's command line is a sandbox serving
*this* state dir: pid files go stale, pids get reused, and signalling a stranger is never
acceptable. SIGTERM first (graceful: running process-runtime jobs are stopped and recorded), then
SIGKILL if it does not exit in time.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perianctl.sandbox.config import SandboxConfig
from perianctl.sandbox.runtimes.base import SandboxStartError
from perianctl.sandbox.server import INFO_FILE, LOCK_FILE, prepare, read_info

PID_FILE = "sandbox.pid"
LOG_FILE = "sandbox.log"


@dataclass
class SandboxStatus:
    state_dir: Path
    running: bool
    pid: int | None = None
    url: str | None = None
    runtime: str | None = None
    organization: str | None = None
    started_at: float | None = None
    healthy: bool = False
    stats: dict[str, Any] | None = None

    @property
    def log_file(self) -> Path:
        return self.state_dir / LOG_FILE

    def to_json(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "healthy": self.healthy,
            "pid": self.pid,
            "url": self.url,
            "runtime": self.runtime,
            "organization": self.organization,
            "started_at": self.started_at,
            "state_dir": str(self.state_dir),
            "log_file": str(self.log_file),
            "jobs": (self.stats or {}).get("jobs"),
        }


def process_cmdline(pid: int) -> list[str] | None:
    """The argv of ``pid`` (from /proc, or ``ps`` where there is no /proc); None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return None
    except OSError:
        return None
    try:
        out = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.split() if out.returncode == 0 and out.stdout.strip() else None


def lock_holders(path: Path) -> set[int] | None:
    """Pids holding a ``flock`` on ``path`` (from /proc/locks); None where that cannot be known."""
    try:
        st = path.stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    holders = set()
    for line in table.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and "->" not in fields and fields[5] == device:
            with contextlib.suppress(ValueError):
                holders.add(int(fields[4]))
    return holders


def is_sandbox_process(pid: int, state_dir: Path) -> bool:
    """Is ``pid`` the sandbox server of ``state_dir`` (not a reused pid of something else)?

    Its command line must be a perianctl one, and -- the proof, where Linux gives it -- the pid
    must hold the state dir's exclusive lock, which only a live sandbox server of that state dir
    can. Without /proc/locks: its command line must be a sandbox ``run`` naming this state dir.
    """
    if pid <= 0:
        return False
    argv = process_cmdline(pid)
    if not argv:
        return False
    joined = " ".join(argv)
    if "perianctl" not in joined:
        return False
    holders = lock_holders(state_dir / LOCK_FILE)
    if holders is not None:
        return pid in holders
    return "sandbox" in joined and "run" in argv and str(state_dir.resolve()) in argv


def _read_pid(state_dir: Path) -> int | None:
    try:
        return int((state_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def _health(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=timeout) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError, ValueError):
        return False


def _stats(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{url}/_sandbox/stats", timeout=2.0) as response:
            data = json.loads(response.read())
    except (OSError, urllib.error.URLError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _remove_files(state_dir: Path) -> None:
    for name in (PID_FILE, INFO_FILE):
        with contextlib.suppress(OSError):
            (state_dir / name).unlink()


def status(state_dir: Path) -> SandboxStatus:
    state_dir = state_dir.expanduser().resolve()
    info = read_info(state_dir) or {}
    pid = _read_pid(state_dir) or (info.get("pid") if isinstance(info.get("pid"), int) else None)
    if pid is None or not is_sandbox_process(pid, state_dir):
        return SandboxStatus(state_dir=state_dir, running=False)
    url = info.get("url") if info.get("pid") == pid else None
    result = SandboxStatus(
        state_dir=state_dir,
        running=True,
        pid=pid,
        url=url,
        runtime=info.get("runtime"),
        organization=info.get("organization"),
        started_at=info.get("started_at"),
    )
    if url:
        result.healthy = _health(url)
        result.stats = _stats(url) if result.healthy else None
    return result


def _log_tail(state_dir: Path, lines: int = 1) -> str:
    try:
        text = (state_dir / LOG_FILE).read_text(errors="replace")
    except OSError:
        return ""
    useful = [line for line in text.splitlines() if line.strip()]
    return " | ".join(useful[-lines:])


def start(config: SandboxConfig, *, command: Sequence[str], timeout: float = 30.0) -> SandboxStatus:
    """Start a detached sandbox for ``config`` and wait until it is healthy.

    ``command`` runs a sandbox in the foreground given ``config.to_argv()`` (the CLI passes its own
    ``run``): the server side does not know the command layer above it.
    """
    config = prepare(config)  # validation, credentials file, runtime preflight: errors before detaching
    state_dir = config.state_dir
    current = status(state_dir)
    if current.running:
        raise SandboxStartError(
            f"a sandbox is already running for {state_dir} (pid {current.pid}, {current.url}); "
            "run 'perianctl sandbox stop' first"
        )
    _remove_files(state_dir)
    log_path = state_dir / LOG_FILE
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        proc = subprocess.Popen(
            [*command, *config.to_argv()],
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            cwd=str(state_dir),
            start_new_session=True,
            close_fds=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    finally:
        os.close(fd)
    (state_dir / PID_FILE).write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            _remove_files(state_dir)
            tail = _log_tail(state_dir)
            raise SandboxStartError(
                f"the sandbox exited during start-up (exit code {code})"
                + (f": {tail}" if tail else "")
                + f"; see {log_path}"
            )
        info = read_info(state_dir)
        if info and info.get("pid") == proc.pid and _health(str(info.get("url")), timeout=1.0):
            proc.returncode = 0  # detached on purpose: keep Popen from warning that it still runs
            return status(state_dir)
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(5)
    _remove_files(state_dir)
    raise SandboxStartError(f"the sandbox did not become healthy within {timeout:.0f} s; see {log_path}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
        return not (fields and fields[0] == "Z")
    except OSError:
        return True


def stop(state_dir: Path, *, timeout: float = 10.0) -> str:
    """Stop the sandbox of ``state_dir``; returns a one-line message. Never signals a stranger."""
    state_dir = state_dir.expanduser().resolve()
    info = read_info(state_dir) or {}
    pid = _read_pid(state_dir) or (info.get("pid") if isinstance(info.get("pid"), int) else None)
    if pid is None:
        return f"no sandbox is running for {state_dir}"
    if not is_sandbox_process(pid, state_dir):
        _remove_files(state_dir)
        return f"no sandbox is running for {state_dir} (removed a stale pid file for pid {pid})"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            _remove_files(state_dir)
            return f"stopped the sandbox (pid {pid})"
        time.sleep(0.05)
    if is_sandbox_process(pid, state_dir):
        os.kill(pid, signal.SIGKILL)
        end = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < end:
            time.sleep(0.05)
    _remove_files(state_dir)
    return f"killed the sandbox (pid {pid}) after it ignored SIGTERM for {timeout:.0f} s"
