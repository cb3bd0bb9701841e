"""Run the sandbox: in the foreground (``sandbox run``) or in a background thread (EmbeddedSandbox).

Start-up order matters for the guarantees the rest of the project relies on:

1. validate the config, create the state dir (0700), resolve credentials;
2. run the runtime's preflight (``docker info``) -- a clear error before anything listens;
3. take an exclusive lock on the state dir, so two sandboxes never run the same jobs twice (the
   kernel drops the lock when a process dies, even by SIGKILL);
4. bind the socket ourselves (port 0 → a free port, known before uvicorn starts);
5. uvicorn's lifespan opens the store, recovers crashed jobs, starts the runtime, and only then
   writes ``<state-dir>/sandbox.json`` (pid, url, runtime; never the token). Whoever waits for
   that file (``sandbox start``, the test plugin) may use the sandbox as soon as it appears.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from perianctl.files import private_dir
from perianctl.sandbox.config import SandboxConfig, SandboxConfigError
from perianctl.sandbox.credentials import resolve_credentials, write_private
from perianctl.sandbox.runtimes import runtime_class
from perianctl.sandbox.runtimes.base import SandboxStartError

INFO_FILE = "sandbox.json"
LOCK_FILE = "sandbox.lock"
log = logging.getLogger("perianctl.sandbox")


def prepare(config: SandboxConfig) -> SandboxConfig:
    """Validate, create the state dir, resolve credentials, run the runtime preflight."""
    try:
        config.validate()
    except SandboxConfigError as exc:
        raise SandboxStartError(str(exc)) from None
    state_dir = config.state_dir.expanduser().resolve()
    try:
        private_dir(state_dir)
    except OSError as exc:
        raise SandboxStartError(f"cannot create state dir {state_dir}: {exc.strerror or exc}") from None
    organization, token = resolve_credentials(state_dir, config.organization, config.token)
    config = replace(config, state_dir=state_dir, organization=organization, token=token)
    runtime_class(config.runtime).preflight(config)
    return config


class StateDirLock:
    """An exclusive ``flock`` on ``<state-dir>/sandbox.lock`` for the life of one server."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            info = read_info(self.path.parent) or {}
            owner = f" (pid {info['pid']}, {info.get('url')})" if info.get("pid") else ""
            raise SandboxStartError(
                f"another sandbox is already using state dir {self.path.parent}{owner}; "
                "stop it or use another --state-dir"
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP (not 0): asyncio only disables Nagle on accepted sockets whose proto
    # says TCP, and with Nagle on, every keep-alive response stalls ~40 ms on the peer's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SandboxStartError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(1024)
    sock.set_inheritable(False)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def read_info(state_dir: Path) -> dict[str, Any] | None:
    """The running server's ``sandbox.json`` (may be stale: check the pid before trusting it)."""
    try:
        data = json.loads((state_dir / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_info(config: SandboxConfig, url: str) -> None:
    info = {
        "pid": os.getpid(),
        "url": url,
        "host": config.host,
        "port": int(url.rsplit(":", 1)[1]),
        "runtime": config.runtime,
        "organization": config.organization,
        "state_dir": str(config.state_dir),
        "started_at": time.time(),
    }
    write_private(config.state_dir / INFO_FILE, json.dumps(info, indent=2) + "\n")


def _remove_info(state_dir: Path) -> None:
    info = read_info(state_dir)
    if info is not None and info.get("pid") == os.getpid():
        with contextlib.suppress(OSError):
            (state_dir / INFO_FILE).unlink()


def _uvicorn_server(app: Any, config: SandboxConfig, *, quiet: bool) -> Any:
    import uvicorn

    from perianctl.sandbox.impolite import attach_uvicorn, outermost

    # The impolite PERIAN wraps the whole app (outside Starlette's error middleware): a stall must
    # reach uvicorn's connection to close it without a reply, and `refuse` closes this server's port.
    server = uvicorn.Server(
        uvicorn.Config(
            outermost(app),
            lifespan="on",
            log_config=None,
            access_log=config.access_log and not quiet,
            timeout_graceful_shutdown=5,
            timeout_keep_alive=30,
        )
    )
    attach_uvicorn(app, server)
    return server


def run(config: SandboxConfig, *, on_ready: Callable[[str, str, str], None] | None = None) -> None:
    """Serve in the foreground until SIGTERM/SIGINT. Raises SandboxStartError before listening.

    ``on_ready(url, organization, token)`` runs once the sandbox serves (``run --write-profile``).
    """
    from perianctl.sandbox.app import create_app

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = prepare(config)
    lock = StateDirLock(config.state_dir)
    lock.acquire()
    try:
        sock = bind(config.host, config.port)
        url = url_of(sock)

        def ready() -> None:
            _write_info(config, url)
            log.info(
                "PERIAN sandbox listening on %s (runtime %s, organization %s, state %s)",
                url,
                config.runtime,
                config.organization,
                config.state_dir,
            )
            if config.host not in ("127.0.0.1", "::1", "localhost"):
                log.warning(
                    "listening beyond loopback (%s): the /healthz and /_sandbox/* admin routes need no credentials",
                    config.host,
                )
            if on_ready is not None:
                assert config.organization and config.token
                on_ready(url, config.organization, config.token)

        server = _uvicorn_server(create_app(config, on_ready=ready), config, quiet=False)
        # uvicorn handles SIGTERM gracefully, then re-raises it with the previous handler: make that
        # handler a clean exit, so the clean-up below runs and the exit code is 0.
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _exit_cleanly)
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()
            _remove_info(config.state_dir)
    finally:
        lock.release()


def _exit_cleanly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


class EmbeddedSandbox:
    """A sandbox on 127.0.0.1 (port 0) in a background thread of this process.

    ``with EmbeddedSandbox(runtime="simulate") as sb: ... sb.url, sb.organization, sb.token``.
    Without ``state_dir`` a temporary one is used and removed on exit. Keyword arguments are
    :class:`SandboxConfig` fields (``timings``, ``faults``, ``runtime``, ...).
    """

    def __init__(self, config: SandboxConfig | None = None, *, state_dir: Path | None = None, **overrides: Any) -> None:
        self._tmp: str | None = None
        if config is None:
            if state_dir is None:
                self._tmp = tempfile.mkdtemp(prefix="perian-sandbox-")
                state_dir = Path(self._tmp)
            overrides.setdefault("port", 0)
            overrides.setdefault("access_log", False)
            config = SandboxConfig(state_dir=state_dir, **overrides)
        else:
            if state_dir is not None:
                overrides["state_dir"] = state_dir
            config = replace(config, **overrides)
        self.config = config
        self.url = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._lock: StateDirLock | None = None

    @property
    def organization(self) -> str:
        assert self.config.organization
        return self.config.organization

    @property
    def token(self) -> str:
        assert self.config.token
        return self.config.token

    def start(self, timeout: float = 30.0) -> EmbeddedSandbox:
        from perianctl.sandbox.app import create_app

        self.config = prepare(self.config)
        self._lock = StateDirLock(self.config.state_dir)
        self._lock.acquire()
        try:
            sock = bind(self.config.host, self.config.port)
            self.url = url_of(sock)
            ready = threading.Event()
            self._server = _uvicorn_server(create_app(self.config, on_ready=ready.set), self.config, quiet=True)
            self._thread = threading.Thread(target=self._serve, args=(sock,), name="perian-sandbox", daemon=True)
            self._thread.start()
            deadline = time.monotonic() + timeout
            while not ready.wait(0.05):
                if not self._thread.is_alive() or time.monotonic() > deadline:
                    raise SandboxStartError("the embedded sandbox did not start")
        except BaseException:
            self.stop(timeout=5)
            raise
        return self

    def _serve(self, sock: socket.socket) -> None:
        try:
            self._server.run(sockets=[sock])
        finally:
            sock.close()

    def stop(self, timeout: float = 15.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> EmbeddedSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """Environment for a perianctl subprocess talking to this sandbox."""
        return {"PERIAN_API_URL": self.url, "PERIAN_ORGANIZATION": self.organization, "PERIAN_TOKEN": self.token}
