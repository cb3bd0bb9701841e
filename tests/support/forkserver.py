"""A fork server that starts sandbox processes in milliseconds instead of a second.

Most of a sandbox's start-up is importing FastAPI, pydantic and uvicorn. Test suites start a
fresh sandbox per test, so the test plugin keeps one *fork server* per session: a process that
has imported everything once and forks a new, fully independent sandbox process (own session,
own state dir, own port) per request. The forked process then runs exactly what
``python -m perianctl.commands.sandbox run ...`` would.

Protocol (JSON lines on stdin/stdout; one client, one request at a time):

* ``{"op": "spawn", "argv": [...], "log": "/path/sandbox.log", "env": {...}, "cwd": "/x"}`` →
  ``{"pid": 123}`` (``env``/``cwd`` optional: the child gets the caller's environment, as a
  subprocess would, not the one the fork server started with)
* ``{"op": "poll", "pid": 123}`` → ``{"returncode": null | int}`` (exit status once reaped;
  negative = killed by that signal, as in :mod:`subprocess`)

The server reaps its children itself (SIGCHLD), so a killed sandbox never lingers as a zombie,
and exits when its stdin closes. It never starts threads or event loops, which keeps ``fork``
safe.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from types import FrameType
from typing import Any

_exited: dict[int, int] = {}


_PRELOAD = (
    "fastapi",
    "uvicorn",
    "uvicorn.lifespan.on",
    "uvicorn.protocols.http.h11_impl",
    "perianctl.commands.sandbox",
    "perianctl.sandbox.app",
    "perianctl.sandbox.server",
    "perianctl.sandbox.runtimes.simulate",
    "perianctl.sandbox.runtimes.process",
)


def _preload() -> None:
    import importlib

    for name in _PRELOAD:
        importlib.import_module(name)


def _reap(_signum: int = 0, _frame: FrameType | None = None) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _exited[pid] = os.waitstatus_to_exitcode(status)


def _child(argv: list[str], log_path: str, env: dict[str, str] | None, cwd: str | None) -> None:
    """In the forked child: become an independent sandbox process. Never returns."""
    code = 1
    try:
        os.setsid()
        for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDONLY)
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(devnull)
        os.close(log)
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        if cwd:
            os.chdir(cwd)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 -- the process's own std streams
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.argv = [sys.executable, "-m", "perianctl.commands.sandbox", *argv]
        from perianctl.commands.sandbox import main

        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # pragma: no cover - reported in the sandbox log
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _answer(out: Any, payload: dict[str, Any]) -> None:
    out.write(json.dumps(payload) + "\n")
    out.flush()


def serve() -> None:
    _preload()
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in pytest must not kill the server mid-request
    control_in = os.fdopen(os.dup(0), "r")
    control_out = os.fdopen(os.dup(1), "w")
    _answer(control_out, {"ready": True, "pid": os.getpid()})
    for line in control_in:
        try:
            request = json.loads(line)
            op = request.get("op")
            if op == "spawn":
                pid = os.fork()
                if pid == 0:
                    control_in.close()
                    control_out.close()
                    _child(
                        [str(a) for a in request["argv"]], str(request["log"]), request.get("env"), request.get("cwd")
                    )
                _exited.pop(pid, None)  # a reused pid must not report an old exit
                _answer(control_out, {"pid": pid})
            elif op == "poll":
                _reap()
                _answer(control_out, {"returncode": _exited.get(int(request["pid"]))})
            else:
                _answer(control_out, {"error": f"unknown op {op!r}"})
        except Exception as exc:  # keep serving; the client sees the error
            _answer(control_out, {"error": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    serve()
