"""The process runtime really runs the job's command (no shell) and reports what happened."""

from __future__ import annotations

import base64
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.sandbox import SandboxFactory, SandboxHandle

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def proc_sandbox(sandbox_factory: SandboxFactory) -> SandboxHandle:
    return sandbox_factory(runtime="process", kill_grace=0.5)


def _python(code: str) -> str:
    """A command line running ``code`` with plain ``python`` (resolved on the job's PATH)."""
    return shlex.join(["python", "-c", code])


def _create(sb: SandboxHandle, command: str | None, **params: Any) -> str:
    timeout = params.pop("timeout_seconds", None)
    extra: dict[str, Any] = {"docker_run_parameters": params}
    if timeout is not None:
        extra["timeout_seconds"] = timeout
    return sb.create_job(command, **extra)


def test_env_secrets_files_and_logs(proc_sandbox: SandboxHandle) -> None:
    code = (
        "import os, sys, json, pathlib\n"
        "print('greeting', os.environ['GREETING'], os.environ['N'])\n"
        "print('secret-len', len(os.environ['API_KEY']))\n"
        "path = os.environ['GOOGLE_APPLICATION_CREDENTIALS']\n"
        "print('file', json.load(open(path))['k'], oct(os.stat(path).st_mode & 0o777))\n"
        "print('bin-first', os.environ['PATH'].split(os.pathsep)[0] == os.path.dirname(sys.executable))\n"
        "print('inherited', 'PYTEST_CURRENT_TEST' in os.environ)\n"
        "print('cwd', pathlib.Path.cwd().name, os.environ['PERIAN_JOB_ID'] in str(pathlib.Path.cwd()))\n"
        "print('to-stderr', file=sys.stderr)\n"
    )
    job_id = _create(
        proc_sandbox,
        _python(code),
        image_name="ignored/image",
        env_variables={
            "GREETING": "hello world",
            "N": 3,
            "GOOGLE_APPLICATION_CREDENTIALS": "/data/gcp-credentials.json",
        },
        secrets={"API_KEY": "sk-abcdef"},
        container_files=[
            {
                "path": "/data/gcp-credentials.json",
                "read_only": True,
                "base64_content": base64.b64encode(b'{"k": "v"}').decode(),
            }
        ],
    )
    job = proc_sandbox.wait_for_status(job_id)
    assert job["status"] == "Done", job
    logs = job["logs"]
    for line in (
        "greeting hello world 3",
        "secret-len 9",
        "file v 0o400",
        "bin-first True",
        "inherited False",
        "cwd work True",
        "to-stderr",
    ):
        assert line in logs, logs
    assert job["errors"] is None and job["started_at"] and job["done_at"]
    # the per-job root with the secret file is gone once the job ended
    assert not (proc_sandbox.state_dir / "jobs" / job_id / "root").exists()
    assert (proc_sandbox.state_dir / "jobs" / job_id / "work").is_dir()


def test_failure_reports_stderr_tail(proc_sandbox: SandboxHandle) -> None:
    code = "import sys\nprint('working')\nprint('ValueError: bad input', file=sys.stderr)\nsys.exit(3)"
    job = proc_sandbox.wait_for_status(_create(proc_sandbox, _python(code)))
    assert job["status"] == "UserError"
    assert job["errors"].splitlines()[0] == "exit code 3: ValueError: bad input"
    assert "working" in job["logs"]


def test_bad_commands_are_user_errors(proc_sandbox: SandboxHandle) -> None:
    missing = proc_sandbox.wait_for_status(_create(proc_sandbox, "definitely-not-a-command-xyz --flag"))
    assert missing["status"] == "UserError" and "definitely-not-a-command-xyz" in missing["errors"]
    none = proc_sandbox.wait_for_status(_create(proc_sandbox, None))
    assert none["status"] == "UserError" and "no command" in none["errors"]
    unparsable = proc_sandbox.wait_for_status(_create(proc_sandbox, "echo 'unclosed"))
    assert unparsable["status"] == "UserError" and "cannot parse" in unparsable["errors"]
    no_shell = proc_sandbox.wait_for_status(_create(proc_sandbox, "echo $HOME && echo x"))
    assert no_shell["status"] == "Done" and no_shell["logs"] == "$HOME && echo x\n"
    bad_file = proc_sandbox.wait_for_status(
        _create(proc_sandbox, "true", container_files=[{"path": "/../../etc/x", "base64_content": "eA=="}])
    )
    assert bad_file["status"] == "UserError" and "invalid container file path" in bad_file["errors"]


def test_timeout(proc_sandbox: SandboxHandle) -> None:
    job_id = _create(
        proc_sandbox, _python("import time; print('start', flush=True); time.sleep(60)"), timeout_seconds=1
    )
    started = time.monotonic()
    job = proc_sandbox.wait_for_status(job_id)
    assert job["status"] == "Timeout" and "timeout of 1 s" in job["errors"]
    assert time.monotonic() - started < 45 and "start" in job["logs"]  # ended by the timeout, not the 60 s sleep


def test_cancel_escalates_to_sigkill(proc_sandbox: SandboxHandle) -> None:
    code = (
        "import signal, time, os\nsignal.signal(signal.SIGTERM, lambda *a: print('got TERM', flush=True))\n"
        "print('pid', os.getpid(), flush=True)\ntime.sleep(60)"
    )
    job_id = _create(proc_sandbox, _python(code))
    deadline = time.monotonic() + 60  # a hang detector
    while "pid" not in (proc_sandbox.get_job(job_id)["logs"] or ""):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pid = int(proc_sandbox.get_job(job_id)["logs"].split("pid ")[1].split()[0])
    with proc_sandbox.http() as client:
        assert client.patch(f"/job/{job_id}/cancel").status_code == 200
    job = proc_sandbox.wait_for_status(job_id)
    assert job["status"] == "Cancelled"
    assert "got TERM" in job["logs"]  # SIGTERM first, then SIGKILL after the 0.5 s grace
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_logs_refresh_while_running_and_are_capped(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    sb = sandbox_factory(runtime="process", extra_args=["--log-cap", "2000"])
    release = tmp_path / "release"  # the job runs until the test has seen its logs (an event, not a time)
    code = (
        "import os, time\nfor i in range(40):\n    print('line', i, 'x' * 80, flush=True)\n    time.sleep(0.05)\n"
        f"while not os.path.exists({str(release)!r}):\n    time.sleep(0.05)\n"
    )
    job_id = _create(sb, _python(code))
    sb.wait_for_status(job_id, {"Running"})
    deadline = time.monotonic() + 60  # a hang detector
    while not (sb.get_job(job_id)["logs"] or "").count("line"):
        assert time.monotonic() < deadline, "no logs while running"
        time.sleep(0.1)
    assert sb.get_job(job_id)["status"] == "Running"
    release.touch()
    job = sb.wait_for_status(job_id)
    assert job["status"] == "Done"
    assert job["logs"].startswith("[sandbox] earlier output was dropped")
    assert len(job["logs"]) <= 2000 + 60 and "line 39" in job["logs"]


def test_cancel_while_queued_behind_max_parallel(sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory(runtime="process", max_parallel=1, kill_grace=0.5)
    blocker = _create(sb, _python("import time; time.sleep(60)"))
    waiting = _create(sb, "true")
    sb.wait_for_status(blocker, {"Running"})
    assert sb.get_job(waiting)["status"] == "Queued"
    with sb.http() as client:
        assert client.patch(f"/job/{waiting}/cancel").status_code == 200
        assert sb.get_job(waiting)["status"] == "Cancelled"
        assert client.patch(f"/job/{blocker}/cancel").status_code == 200
    assert sb.wait_for_status(blocker)["status"] == "Cancelled"
    assert sb.get_job(waiting)["started_at"] is None


def test_graceful_stop_ends_running_jobs(sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory(runtime="process", kill_grace=0.5)
    job_id = _create(sb, _python("import time; time.sleep(60)"))
    sb.wait_for_status(job_id, {"Running"})
    sb.stop()
    sb.restart()
    job = sb.get_job(job_id)
    assert job["status"] == "ServerError" and job["errors"] == "The sandbox was stopped while the job was running"


def test_python_on_path_is_the_sandbox_interpreter(proc_sandbox: SandboxHandle) -> None:
    job = proc_sandbox.wait_for_status(_create(proc_sandbox, _python("import sys; print(sys.prefix)")))
    assert job["logs"].strip() == sys.prefix
