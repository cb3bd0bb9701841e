"""Issue 10: a job's secrets do not outlive their use in any file of the sandbox's SQLite database.

The store keeps a job's secrets (env secrets, registry password, container file contents) only
until the job used them. These tests read the raw bytes of ``sandbox.db``, ``sandbox.db-wal`` and
``sandbox.db-shm`` -- not the rows: deleted rows linger in free space and in old WAL frames -- for
each secret, while the sandbox still runs, after the job ended, and after a SIGKILL and a restart.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import shlex
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.sandbox import SandboxFactory, SandboxHandle

pytestmark = pytest.mark.timeout(90)


def _secrets() -> dict[str, str]:
    tag = secrets.token_hex(8)
    return {"env": f"envsecret-{tag}", "registry": f"registrypw-{tag}", "file": f"filesecret-{tag}" * 300}


def _create(sandbox: SandboxHandle, values: dict[str, str], command: str = "true", **options: Any) -> str:
    content = base64.b64encode(values["file"].encode()).decode()  # > one page: overflow pages too
    return sandbox.create_job(
        command,
        docker_run_parameters={
            "secrets": {"API_KEY": values["env"]},
            "container_files": [{"path": "/data/key.json", "read_only": True, "base64_content": content}],
        },
        docker_registry_credentials={"url": "registry.example", "username": "me", "password": values["registry"]},
        **options,
    )


def _found(state_dir: Path, values: dict[str, str]) -> dict[str, list[str]]:
    """Which secrets (raw, or as the base64 text that was sent) are in which database file."""
    needles = {
        "env": values["env"].encode(),
        "registry": values["registry"].encode(),
        "file": base64.b64encode(values["file"].encode())[:64],
    }
    found: dict[str, list[str]] = {}
    for path in sorted(state_dir.glob("sandbox.db*")):
        data = path.read_bytes()
        hits = [name for name, needle in needles.items() if needle in data]
        if hits:
            found[path.name] = hits
    return found


@pytest.mark.parametrize("runtime", ["simulate", "process"])
def test_secrets_leave_no_trace_in_the_database_files_once_the_job_ended(
    sandbox_factory: SandboxFactory, runtime: str
) -> None:
    sandbox = sandbox_factory(runtime=runtime)
    values = _secrets()
    job_id = _create(sandbox, values)
    assert sandbox.wait_for_status(job_id)["status"] == "Done"
    # The sandbox still runs (no graceful close has checkpointed anything for us).
    assert sandbox.alive()
    assert _found(sandbox.state_dir, values) == {}


def test_secrets_of_a_job_cut_short_by_sigkill_are_scrubbed_at_restart(sandbox_factory: SandboxFactory) -> None:
    sandbox = sandbox_factory()
    values = _secrets()
    job_id = _create(sandbox, values, duration=60)  # simulate: Running for a minute, secrets still held
    sandbox.wait_for_status(job_id, {"Running"})
    sandbox.kill()
    assert _found(sandbox.state_dir, values)  # the store still held them for the running job: that is the case
    sandbox.restart()
    assert sandbox.get_job(job_id)["status"] == "ServerError"  # ended by the restart
    assert _found(sandbox.state_dir, values) == {}


def test_a_queued_job_keeps_its_secrets_across_a_restart_until_it_used_them(sandbox_factory: SandboxFactory) -> None:
    """Scrubbing at start-up must not take the secrets of a job that has yet to run."""
    sandbox = sandbox_factory(runtime="process", max_parallel=1)
    blocker = sandbox.create_job("sleep 60")
    sandbox.wait_for_status(blocker, {"Running"})
    values = _secrets()
    digest = hashlib.sha256(values["env"].encode()).hexdigest()  # the command itself is not secret
    code = f"import hashlib,os,sys; sys.exit(hashlib.sha256(os.environ['API_KEY'].encode()).hexdigest() != {digest!r})"
    job_id = _create(sandbox, values, shlex.join(["python", "-c", code]))
    assert sandbox.get_job(job_id)["status"] == "Queued"
    sandbox.kill()
    sandbox.restart()
    assert sandbox.wait_for_status(job_id)["status"] == "Done"  # its secret reached it after the restart
    assert _found(sandbox.state_dir, values) == {}
