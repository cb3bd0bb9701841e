"""Fixtures that run the PERIAN sandbox as a real subprocess on a free loopback port.

Every test that talks to "PERIAN" uses one of these; nothing is mocked. Fixtures:

``sandbox``          function-scoped, simulate runtime, fast timings (happy path ≈ 0.5 s), fresh
                     state dir under ``tmp_path``.
``sandbox_factory``  ``sandbox_factory(runtime=..., speed=..., latency=..., fault_rate=...,
                     fault_kinds=..., fault_endpoints=..., fault_phase=..., fault_seed=...,
                     org=..., token=..., kill_grace=..., max_parallel=..., impolite=[...],
                     state_dir=...)``;
                     every sandbox it made is stopped at teardown.
``shared_sandbox``   session-scoped fast sandbox for tests that only need *a* server. Jobs of other
                     tests are visible there: filter by the ids you created.

A :class:`SandboxHandle` gives ``url``, ``org``, ``token``, ``state_dir``, ``env()`` (for CLI
subprocesses), ``headers()`` (for HTTP clients), ``stats()`` (``/_sandbox/stats``), ``kill()``
(SIGKILL) and ``restart()`` (same port and state dir), ``set_faults(...)``, plus small helpers
``create_job``, ``get_job``, ``wait_for_status`` and ``wait_delaying`` (requests held by
injected latency: wait for that event rather than sleeping).

The impolite PERIAN (:mod:`perianctl.sandbox.impolite`): ``launch_sandbox(impolite=["create=slow:7s"])``
at start-up, or live ``set_impolite([...])`` (compact strings or rule dicts; replaces the whole set),
``clear_impolite()`` and ``impolite()`` (rules + hit counters). ``jobs()`` lists every job with its
status and the attempt key / node tag / attempt a connector stamped on it (``/_sandbox/jobs``);
``jobs_by_key()`` groups them by attempt key, for counting "jobs per attempt".

Per-job behaviour of the simulate runtime is chosen in the job's env: ``PERIAN_SANDBOX_SCENARIO``
(success, fail, server-error, timeout, slow, cancel-resistant, undefined) and
``PERIAN_SANDBOX_DURATION`` (wall-clock seconds Running).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import secrets
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

FAST_SPEED = 10.0
"""Speed factor of the fixtures: Queued 0.05 s, Initializing 0.1 s, Running 0.3 s."""
SCENARIO_ENV = "PERIAN_SANDBOX_SCENARIO"
DURATION_ENV = "PERIAN_SANDBOX_DURATION"
TERMINAL = frozenset({"Done", "ServerError", "UserError", "Cancelled", "Timeout"})
START_TIMEOUT = 60.0  # a hang detector: start-up on a loaded 2-core box takes seconds


class SandboxStartFailed(RuntimeError):
    pass


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One shared context: building one per httpx client (certifi load) costs ~50 ms each."""
    return ssl.create_default_context()


def http_client(base_url: str = "", **kwargs: Any) -> httpx.Client:
    """An httpx client that is cheap to create (shared SSL context)."""
    kwargs.setdefault("timeout", 10.0)
    return httpx.Client(base_url=base_url, verify=_ssl_context(), **kwargs)


@dataclass
class SandboxHandle:
    """A running sandbox subprocess and how to reach it."""

    url: str
    org: str
    token: str
    state_dir: Path
    port: int
    argv: list[str] = field(repr=False)
    proc: ProcessLike | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ clients

    def env(self) -> dict[str, str]:
        """Variables that point a perianctl subprocess at this sandbox."""
        return {"PERIAN_API_URL": self.url, "PERIAN_ORGANIZATION": self.org, "PERIAN_TOKEN": self.token}

    def headers(self) -> dict[str, str]:
        return {"X-PERIAN-AUTH-ORG": self.org, "Authorization": f"Bearer {self.token}"}

    def http(self, **kwargs: Any) -> httpx.Client:
        """A plain httpx client with the auth headers (close it, or use it as a context manager)."""
        return http_client(self.url, headers=self.headers(), **kwargs)

    @property
    def log_file(self) -> Path:
        return self.state_dir / "sandbox.log"

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def stats(self) -> dict[str, Any]:
        """``GET /_sandbox/stats``: jobs by status, create calls, created jobs, faults injected."""
        with http_client(self.url) as client:
            response = client.get("/_sandbox/stats")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def _admin(self, method: str, path: str, body: Any = None, *, refused_for: float = 60.0) -> Any:
        """An admin request; connection refusals (a ``refuse`` window) are retried for ``refused_for`` s."""
        deadline = time.monotonic() + refused_for
        while True:
            try:
                with http_client(self.url) as client:
                    response = client.request(method, path, json=body)
                break
            except httpx.ConnectError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        response.raise_for_status()
        return response.json()

    def set_impolite(self, rules: Iterable[str | dict[str, Any]]) -> dict[str, Any]:
        """Replace the impolite rules: ``["create=slow:7s"]`` or ``[{"endpoint": "create", ...}]``."""
        from perianctl.sandbox.impolite import parse_rule

        body = [parse_rule(r).to_json() if isinstance(r, str) else r for r in rules]
        data: dict[str, Any] = self._admin("PUT", "/_sandbox/impolite", {"rules": body})
        return data

    def clear_impolite(self) -> dict[str, Any]:
        data: dict[str, Any] = self._admin("DELETE", "/_sandbox/impolite")
        return data

    def impolite(self) -> dict[str, Any]:
        """``GET /_sandbox/impolite``: rules with ``hits``/``active``, and whether connects are refused."""
        data: dict[str, Any] = self._admin("GET", "/_sandbox/impolite")
        return data

    def jobs(self) -> list[dict[str, Any]]:
        """Every job, oldest first: ``id``, ``status``, ``terminal``, ``idempotency_key``, ``node_tag``,
        ``attempt``, ``command``, ``env`` (``GET /_sandbox/jobs``)."""
        data: list[dict[str, Any]] = self._admin("GET", "/_sandbox/jobs")["jobs"]
        return data

    def jobs_by_key(self) -> dict[str | None, list[dict[str, Any]]]:
        """Jobs grouped by the attempt key they carry (``None``: jobs without one)."""
        groups: dict[str | None, list[dict[str, Any]]] = {}
        for job in self.jobs():
            groups.setdefault(job["idempotency_key"], []).append(job)
        return groups

    def set_faults(self, **changes: Any) -> dict[str, Any]:
        """Change fault injection live: ``rate``, ``kinds``, ``endpoints``, ``phase``, ``seed``, ``latency``."""
        with http_client(self.url) as client:
            response = client.put("/_sandbox/faults", json=changes)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    # ------------------------------------------------------------------ job helpers

    def create_job(
        self,
        command: str | None = "echo hello",
        *,
        scenario: str | None = None,
        duration: float | None = None,
        env: dict[str, Any] | None = None,
        **body: Any,
    ) -> str:
        """Create a job (cheapest CPU type unless ``body`` says otherwise) and return its id."""
        variables = dict(env or {})
        if scenario is not None:
            variables[SCENARIO_ENV] = scenario
        if duration is not None:
            variables[DURATION_ENV] = str(duration)
        params: dict[str, Any] = {"image_name": "ubuntu", "image_tag": "22.04", "command": command}
        if variables:
            params["env_variables"] = variables
        params.update(body.pop("docker_run_parameters", {}))
        payload = {"requirements": {"cpu": {"cores": 1}}, "docker_run_parameters": params, **body}
        with self.http() as client:
            response = client.post("/job", json=payload)
        assert response.status_code == 200, response.text
        job_id: str = response.json()["id"]
        return job_id

    def get_job(self, job_id: str) -> dict[str, Any]:
        with self.http() as client:
            response = client.get(f"/job/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()["jobs"][0]
        return job

    def wait_for_status(
        self, job_id: str, statuses: Iterable[str] = TERMINAL, *, timeout: float = 60.0, interval: float = 0.05
    ) -> dict[str, Any]:
        """Poll until the job's status is one of ``statuses``; returns the job.

        ``timeout`` only detects a hang: a busy CI box can be many times slower than a laptop.
        """
        wanted = set(statuses)
        deadline = time.monotonic() + timeout
        with self.http() as client:
            while True:
                response = client.get(f"/job/{job_id}")
                assert response.status_code == 200, response.text
                job: dict[str, Any] = response.json()["jobs"][0]
                if job["status"] in wanted:
                    return job
                if time.monotonic() > deadline:
                    raise AssertionError(f"job {job_id} is {job['status']}, not {sorted(wanted)} after {timeout} s")
                time.sleep(interval)

    def wait_delaying(self, endpoint: str, at_least: int = 1, *, timeout: float = 60.0) -> int:
        """Wait until ``at_least`` requests to ``endpoint`` are held by injected latency right now.

        The event "N calls are waiting on PERIAN" (``delaying`` in ``/_sandbox/stats``), instead of
        sleeping and hoping they got there. Returns the count seen; ``timeout`` only detects a hang.
        """
        deadline = time.monotonic() + timeout
        with self.http() as client:
            while True:
                response = client.get("/_sandbox/stats")
                assert response.status_code == 200, response.text
                count = int(response.json().get("delaying", {}).get(endpoint, 0))
                if count >= at_least:
                    return count
                if time.monotonic() > deadline:
                    raise AssertionError(f"{count} {endpoint} requests delayed, not {at_least}, after {timeout} s")
                time.sleep(0.02)

    # ------------------------------------------------------------------ process control

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the server (the crash test); the state dir is left as the crash left it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM), SIGKILL if it hangs. Safe to call twice."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self) -> None:
        """Stop (if still running) and start again on the same port and state dir."""
        self.stop()
        argv = list(self.argv)
        argv[argv.index("--port") + 1] = str(self.port)
        self.proc = _spawn(argv, self.state_dir)
        _wait_ready(self.proc, self.state_dir, START_TIMEOUT)


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERIAN", "_FSEC_"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ProcessLike(Protocol):
    pid: int

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


class _ForkedProcess:
    """A sandbox forked by the fork server: Popen's poll/wait/send_signal/kill, by pid."""

    def __init__(self, server: _ForkServer, pid: int) -> None:
        self._server = server
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._server.poll(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"sandbox pid {self.pid}", timeout or 0)
            time.sleep(0.01)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


_REPO = Path(__file__).resolve().parents[2]


class _ForkServer:
    """``tests.support.forkserver`` for this session: sandboxes start in ~0.2 s, not ~1 s."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.support.forkserver"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=_child_env(),
                start_new_session=True,
                text=True,
                cwd=_REPO,  # ``-m tests.support.forkserver`` is found from the repository root
            )
        assert self.proc.stdout is not None
        hello = self.proc.stdout.readline()
        if not hello:
            raise SandboxStartFailed(f"the sandbox fork server did not start; see {log_path}")

    def _request(self, payload: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(payload) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SandboxStartFailed("the sandbox fork server died")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise SandboxStartFailed(f"fork server: {answer['error']}")
        return answer

    def spawn(self, argv: list[str], log: Path) -> _ForkedProcess:
        request = {"op": "spawn", "argv": argv, "log": str(log), "env": _child_env(), "cwd": os.getcwd()}
        return _ForkedProcess(self, int(self._request(request)["pid"]))

    def poll(self, pid: int) -> int | None:
        code = self._request({"op": "poll", "pid": pid})["returncode"]
        return None if code is None else int(code)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        with contextlib.suppress(OSError):
            if self.log_path.stat().st_size == 0:  # keep it only if it has something to say
                self.log_path.unlink()


_fork_server: _ForkServer | None = None


def _get_fork_server() -> _ForkServer | None:
    """The session's fork server (started on first use); None if disabled or broken."""
    global _fork_server
    if os.environ.get("PERIANCTL_SANDBOX_NO_FORKSERVER"):
        return None
    if _fork_server is not None and not _fork_server.alive():
        _fork_server = None
    if _fork_server is None:
        log = Path(tempfile.gettempdir()) / f"perianctl-sandbox-forkserver-{os.getpid()}.log"
        try:
            _fork_server = _ForkServer(log)
        except (OSError, SandboxStartFailed):
            return None
        atexit.register(_close_fork_server)
    return _fork_server


def _close_fork_server() -> None:
    global _fork_server
    if _fork_server is not None:
        _fork_server.close()
        _fork_server = None


_launched: list[ProcessLike] = []


def _spawn(argv: list[str], state_dir: Path) -> ProcessLike:
    with contextlib.suppress(OSError):
        (state_dir / "sandbox.json").unlink()
    proc: ProcessLike | None = None
    server = _get_fork_server()
    if server is not None:
        with contextlib.suppress(SandboxStartFailed):
            proc = server.spawn(["run", *argv], state_dir / "sandbox.log")
    if proc is None:
        with open(state_dir / "sandbox.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "perianctl.commands.sandbox", "run", *argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=_child_env(),
                start_new_session=True,
            )
    _launched[:] = [p for p in _launched if getattr(p, "returncode", None) is None]  # drop reaped ones
    _launched.append(proc)
    return proc


def _kill_leftovers() -> None:
    """Whatever a test forgot to stop dies with the session (never outlives pytest)."""
    while _launched:
        proc = _launched.pop()
        with contextlib.suppress(Exception):
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)


def _wait_ready(proc: ProcessLike, state_dir: Path, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    info_path = state_dir / "sandbox.json"
    while True:
        code = proc.poll()
        if code is not None:
            tail = (state_dir / "sandbox.log").read_text(errors="replace")[-3000:]
            raise SandboxStartFailed(f"sandbox exited with code {code} during start-up:\n{tail}")
        try:
            info = json.loads(info_path.read_text())
        except (OSError, ValueError):
            info = None
        if isinstance(info, dict) and info.get("pid") == proc.pid:
            return info
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait(10)
            raise SandboxStartFailed(f"sandbox not ready after {timeout} s")
        time.sleep(0.01)


def launch_sandbox(
    state_dir: Path,
    *,
    runtime: str = "simulate",
    speed: float = FAST_SPEED,
    latency: float | str | None = None,
    latency_endpoints: str | Iterable[str] | None = None,
    fault_rate: float = 0.0,
    fault_kinds: str | Iterable[str] | None = None,
    fault_endpoints: str | Iterable[str] | None = None,
    fault_phase: str = "before",
    fault_seed: int | None = None,
    org: str = "test-org",
    token: str | None = None,
    kill_grace: float = 1.0,
    max_parallel: int = 4,
    port: int = 0,
    access_log: bool = True,
    impolite: Iterable[str] = (),
    extra_args: Iterable[str] = (),
    timeout: float = START_TIMEOUT,
) -> SandboxHandle:
    """Start ``python -m perianctl.commands.sandbox run`` and wait until it serves; see the module doc."""
    from perianctl.sandbox.credentials import write_private

    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = token or "tok_" + secrets.token_hex(12)
    # Credentials go through the state dir, never argv (as `sandbox start` does).
    write_private(state_dir / "credentials.json", json.dumps({"organization": org, "token": token}))

    def csv(value: str | Iterable[str]) -> str:
        return value if isinstance(value, str) else ",".join(value)

    argv = [
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--state-dir",
        str(state_dir),
        "--runtime",
        runtime,
        "--speed",
        repr(float(speed)),
        "--kill-grace",
        repr(float(kill_grace)),
        "--max-parallel",
        str(max_parallel),
        "--access-log" if access_log else "--no-access-log",
    ]
    if latency is not None:
        argv += ["--latency", str(latency)]
    if latency_endpoints is not None:
        argv += ["--latency-endpoints", csv(latency_endpoints)]
    if fault_rate:
        argv += ["--fault-rate", repr(float(fault_rate))]
    if fault_kinds is not None:
        argv += ["--fault-kinds", csv(fault_kinds)]
    if fault_endpoints is not None:
        argv += ["--fault-endpoints", csv(fault_endpoints)]
    argv += ["--fault-phase", fault_phase]
    if fault_seed is not None:
        argv += ["--fault-seed", str(fault_seed)]
    for rule in impolite:
        argv += ["--impolite", rule]
    argv += list(extra_args)
    proc = _spawn(argv, state_dir)
    info = _wait_ready(proc, state_dir, timeout)
    return SandboxHandle(
        url=info["url"], org=org, token=token, state_dir=state_dir, port=int(info["port"]), argv=argv, proc=proc
    )


SandboxFactory = Callable[..., SandboxHandle]


@pytest.fixture
def sandbox_factory(tmp_path: Path) -> Iterator[SandboxFactory]:
    """Make sandboxes with options (see :func:`launch_sandbox`); all are stopped at teardown."""
    handles: list[SandboxHandle] = []

    def factory(**options: Any) -> SandboxHandle:
        state_dir = options.pop("state_dir", None) or tmp_path / f"sandbox-{len(handles)}"
        handle = launch_sandbox(state_dir, **options)
        handles.append(handle)
        return handle

    yield factory
    for handle in handles:
        handle.stop()


@pytest.fixture
def sandbox(sandbox_factory: SandboxFactory) -> SandboxHandle:
    """A fresh fast simulate sandbox (own process, state dir under ``tmp_path``) for this test."""
    return sandbox_factory()


@pytest.fixture(scope="session")
def shared_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    """One fast simulate sandbox for the whole session (for tests that only need a server)."""
    handle = launch_sandbox(tmp_path_factory.mktemp("shared-sandbox"))
    yield handle
    handle.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No sandbox outlives the test session, even one a test started and forgot."""
    _kill_leftovers()
    _close_fork_server()
