"""tests/unit/conftest.py keeps the unit half pure: a unit test that starts a process or opens a network socket fails.

The guard is exercised the way pytest uses it: its conftest beside a few tests, run by a real pytest in a
subprocess, whose report says which tests failed and why.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

GUARD = Path(__file__).resolve().parents[1] / "unit" / "conftest.py"

TESTS = """
import asyncio, os, pty, socket, subprocess, sys

import pytest


def test_subprocess():
    subprocess.run([sys.executable, "-c", "pass"], check=False)


def test_swallowed():
    try:
        subprocess.run(["true"], check=False)
    except Exception:
        pass


def test_fork():
    if os.fork() == 0:
        os._exit(0)


def test_pty():
    pty.fork()


def test_tcp():
    socket.create_connection(("127.0.0.1", 9), timeout=1)


def test_udp6():
    socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)


async def test_asyncio_subprocess():
    await asyncio.create_subprocess_exec("true")


@pytest.fixture
def starts_in_teardown():
    yield
    subprocess.run(["true"], check=False)


def test_teardown(starts_in_teardown):
    pass


def test_unix_socketpair_is_fine():
    a, b = socket.socketpair()
    a.close()
    b.close()


async def test_asyncio_loop_is_fine():
    await asyncio.sleep(0)


def test_pure_is_fine():
    assert sorted([3, 1, 2]) == [1, 2, 3]
"""


def test_unit_guard_fails_impure_tests_and_passes_pure_ones(tmp_path: Path) -> None:
    shutil.copy(GUARD, tmp_path / "conftest.py")
    (tmp_path / "test_purity.py").write_text(TESTS)
    report = tmp_path / "report.xml"
    args = ["-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto", f"--junitxml={report}", str(tmp_path)]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *args], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    out = proc.stdout + proc.stderr
    problems: dict[str, str] = {}
    for case in ElementTree.parse(report).iter("testcase"):
        for problem in (*case.iter("failure"), *case.iter("error")):
            problems[case.attrib["name"]] = problem.attrib.get("message", "")
    assert set(problems) == {
        "test_subprocess",
        "test_swallowed",
        "test_fork",
        "test_pty",
        "test_tcp",
        "test_udp6",
        "test_asyncio_subprocess",
        "test_teardown",
    }, out
    assert proc.returncode == 1, out
    assert "started a process" in problems["test_subprocess"], out
    assert "started a process" in problems["test_teardown"], out
    assert "opened a network socket (AF_INET)" in problems["test_tcp"], out
    assert "opened a network socket (AF_INET6)" in problems["test_udp6"], out
    assert "move this test to tests/integration/" in problems["test_pty"], out
    # Swallowing the guard's exception does not hide the violation.
    assert "unit test call: started a process" in problems["test_swallowed"], out
