"""The unit half of the suite is pure: a unit test that starts a process or opens a network socket fails.

``pytest -q tests/unit`` is the half a developer runs in seconds, so what lives here must not start a
sandbox, a connector, the CLI or a shell, and must not talk TCP/UDP, not even on loopback. This is
checked, not hoped: around each unit test's set-up, call and tear-down the ways to start a process
(``subprocess``/``asyncio`` subprocesses, ``os.fork``/``forkpty``/``posix_spawn``/``system``/``exec*``,
``pty.fork``/``spawn``, ``multiprocessing``) and to create an ``AF_INET``/``AF_INET6`` socket raise
:class:`ImpureUnitTest`. ``AF_UNIX`` sockets (the socketpair behind every asyncio event loop) are fine.

A violation is recorded as well as raised, so a test whose code swallows the exception (``except
Exception: fall back``) still fails. A test that needs a server or a process belongs in
``tests/integration/``.
"""

from __future__ import annotations

import _posixsubprocess
import contextlib
import os
import pty
import socket
import subprocess
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

# A library that starts a process when it is first imported is imported here, before any guard, so a
# unit test is judged by what it does and not by whether an earlier test happened to import it:
# croniter (imported by flytekit) runs `file -b` on the interpreter through platform.architecture().
with contextlib.suppress(ImportError):
    import croniter  # noqa: F401

_WHERE = "tests/unit must stay pure (no process, no network socket); move this test to tests/integration/"


class ImpureUnitTest(RuntimeError):
    """A unit test started a process or opened a network socket."""


_violations: list[str] = []


def _refuse(what: str) -> ImpureUnitTest:
    _violations.append(what)
    return ImpureUnitTest(f"{what}: {_WHERE}")


def _forbid_call(name: str) -> Callable[..., Any]:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise _refuse(f"started a process ({name})")

    return forbidden


_INET = (socket.AF_INET, socket.AF_INET6)
_real_socket_init = socket.socket.__init__


def _socket_init(self: socket.socket, family: Any = -1, type: Any = -1, proto: Any = -1, fileno: Any = None) -> None:
    # family -1 with a fileno adopts an existing socket (socket.fromfd); its family is only known afterwards.
    _real_socket_init(self, family, type, proto, fileno)
    if self.family in _INET:
        self.close()
        raise _refuse(f"opened a network socket ({socket.AddressFamily(self.family).name})")


# (object, attribute) pairs replaced while a unit test runs. subprocess (and so asyncio subprocesses)
# ends in its own alias of _posixsubprocess.fork_exec or in os.posix_spawn; multiprocessing's spawn and
# forkserver in _posixsubprocess.fork_exec; the rest are direct.
_PROCESS_STARTERS: list[tuple[Any, str]] = [
    (subprocess, "_fork_exec"),
    (_posixsubprocess, "fork_exec"),
    (os, "fork"),
    (os, "forkpty"),
    (os, "posix_spawn"),
    (os, "posix_spawnp"),
    (os, "system"),
    *((os, name) for name in ("execv", "execve", "execl", "execle", "execlp", "execlpe", "execvp", "execvpe")),
    (pty, "fork"),
    (pty, "spawn"),
]


@contextmanager
def _pure() -> Iterator[None]:
    saved: list[tuple[Any, str, Any]] = []
    try:
        for owner, name in _PROCESS_STARTERS:
            if hasattr(owner, name):
                saved.append((owner, name, getattr(owner, name)))
                setattr(owner, name, _forbid_call(f"{getattr(owner, '__name__', owner)}.{name}"))
        saved.append((socket.socket, "__init__", _real_socket_init))
        socket.socket.__init__ = _socket_init  # type: ignore[method-assign]  # the guard itself
        yield
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)


def _guarded(phase: str) -> Generator[None, object, object]:
    _violations.clear()
    with _pure():
        result = yield
    if _violations:
        found = "; ".join(dict.fromkeys(_violations))
        _violations.clear()
        pytest.fail(f"unit test {phase}: {found}. {_WHERE}", pytrace=False)
    return result


# Hooks in this conftest only run for items under tests/unit/ (pytest scopes them by directory).
@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _guarded("set-up"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _guarded("call"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    return (yield from _guarded("tear-down"))
