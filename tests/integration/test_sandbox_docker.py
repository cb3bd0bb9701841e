"""The docker runtime against a stand-in ``docker`` CLI (this machine has no Docker engine).

The stand-in records its arguments and runs the container's command as a local process, so the
runtime's real work is checked: the ``docker run`` line, secrets passed by name (never on the
command line), container files mounted at their container paths, ``docker kill`` on cancel.
"""

from __future__ import annotations

import base64
import json
import shlex
import sys
import textwrap
from pathlib import Path

import pytest

from tests.plugins.sandbox import SandboxFactory

pytestmark = pytest.mark.timeout(60)

FAKE_DOCKER = textwrap.dedent("""\
    #!{python}
    import json, os, signal, sys, time
    state = {state!r}
    args = sys.argv[1:]
    with open(os.path.join(state, "calls.jsonl"), "a") as log:
        log.write(json.dumps(args) + "\\n")
    if args[:1] == ["info"]:
        print("27.0.0-fake")
    elif args[:1] == ["run"]:
        i, env, name = 1, {{}}, None
        while args[i].startswith("--"):
            if args[i] == "--rm":
                i += 1
                continue
            flag, value = args[i], args[i + 1]
            i += 2
            if flag == "--name":
                name = value
            elif flag == "--env":
                key, _, val = value.partition("=")
                env[key] = val if "=" in value else os.environ[key]
            elif flag == "--volume":
                host, container = value.split(":")[:2]
                env["MOUNT_" + os.path.basename(container)] = open(host).read()
        image, command = args[i], args[i + 1:]
        with open(os.path.join(state, name + ".pid"), "w") as f:
            f.write(str(os.getpid()))
        os.execvpe(command[0], command, {{**env, "PATH": os.environ["PATH"], "IMAGE": image}})
    elif args[:1] == ["kill"]:
        sig = args[args.index("--signal") + 1] if "--signal" in args else "SIGKILL"
        pid = int(open(os.path.join(state, args[-1] + ".pid")).read())
        os.kill(pid, getattr(signal, sig))
""")


@pytest.fixture
def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir, state = tmp_path / "fakebin", tmp_path / "fakedocker"
    bin_dir.mkdir()
    state.mkdir()
    script = bin_dir / "docker"
    script.write_text(FAKE_DOCKER.format(python=sys.executable, state=str(state)))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")
    return state


def _calls(state: Path) -> list[list[str]]:
    return [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]


def test_docker_run_line_env_and_mounts(sandbox_factory: SandboxFactory, fake_docker: Path) -> None:
    sb = sandbox_factory(runtime="docker")
    code = "import os; print(os.environ['IMAGE'], os.environ['TOKEN'], os.environ['MODE'], os.environ['MOUNT_c.json'])"
    job_id = sb.create_job(
        shlex.join(["python", "-c", code]),
        docker_run_parameters={
            "image_name": "ghcr.io/acme/app",
            "image_tag": "v1",
            "env_variables": {"MODE": "fast"},
            "secrets": {"TOKEN": "secret-value-123"},
            "container_files": [
                {"path": "/etc/app/c.json", "read_only": True, "base64_content": base64.b64encode(b"{}").decode()}
            ],
        },
    )
    job = sb.wait_for_status(job_id)
    assert job["status"] == "Done", (job["errors"], job["logs"])
    assert job["logs"].strip() == "ghcr.io/acme/app:v1 secret-value-123 fast {}"
    run = next(call for call in _calls(fake_docker) if call[0] == "run")
    assert run[:5] == ["run", "--rm", "--name", f"perian-sandbox-{job_id}", "--label"]
    assert "secret-value-123" not in " ".join(run)  # by name only: not visible in a process listing
    assert run[run.index("TOKEN") - 1 : run.index("TOKEN") + 1] == ["--env", "TOKEN"]
    volume = run[run.index("--volume") + 1]
    assert volume.endswith(":/etc/app/c.json:ro") and f"jobs/{job_id}/root/etc/app/c.json" in volume
    assert run[run.index("ghcr.io/acme/app:v1") + 1 :] == ["python", "-c", code]


def test_docker_cancel_uses_docker_kill(sandbox_factory: SandboxFactory, fake_docker: Path) -> None:
    sb = sandbox_factory(runtime="docker", kill_grace=0.5)
    job_id = sb.create_job(shlex.join(["python", "-c", "import time; print('up', flush=True); time.sleep(60)"]))
    sb.wait_for_status(job_id, {"Running"})
    with sb.http() as client:
        assert client.patch(f"/job/{job_id}/cancel").status_code == 200
    assert sb.wait_for_status(job_id)["status"] == "Cancelled"
    kills = [call for call in _calls(fake_docker) if call[0] == "kill"]
    assert kills[0] == ["kill", "--signal", "SIGTERM", f"perian-sandbox-{job_id}"]


def test_docker_job_without_image_is_a_user_error(sandbox_factory: SandboxFactory, fake_docker: Path) -> None:
    sb = sandbox_factory(runtime="docker")
    job_id = sb.create_job("true", docker_run_parameters={"image_name": ""})
    job = sb.wait_for_status(job_id)
    assert job["status"] == "UserError" and "needs an image" in job["errors"]
