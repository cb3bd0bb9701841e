"""What a read command loads before its one request: no pydantic plugin discovery in the CLI.

pydantic looks for plugins (an ``importlib.metadata`` import plus a scan of every installed
distribution's entry points) when it builds its first validator; perianctl's CLI skips that, and
``PYDANTIC_DISABLE_PLUGINS`` (set to anything, even empty) hands the decision back to pydantic.
Checked on the real CLI process against the sandbox, through ``python -X importtime``.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.plugins.cli import CliEnv
from tests.plugins.sandbox import SandboxHandle


def _get_with_importtime(
    sandbox: SandboxHandle, cli_env: CliEnv, job_id: str, **extra: str
) -> tuple[dict[str, object], set[str]]:
    env = {**cli_env.env(), **sandbox.env(), **extra}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "perianctl", "get", job_id, "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "perianctl.perian.models" in modules, "importtime printed nothing useful"
    return json.loads(proc.stdout), modules


def test_get_skips_pydantic_plugin_discovery(shared_sandbox: SandboxHandle, cli_env: CliEnv) -> None:
    job_id = shared_sandbox.create_job()
    data, modules = _get_with_importtime(shared_sandbox, cli_env, job_id)
    shown = data[0] if isinstance(data, list) else data
    assert isinstance(shown, dict) and job_id in json.dumps(shown)
    assert "importlib.metadata" not in modules


def test_pydantic_disable_plugins_hands_plugin_discovery_back_to_pydantic(
    shared_sandbox: SandboxHandle, cli_env: CliEnv
) -> None:
    job_id = shared_sandbox.create_job()
    data, modules = _get_with_importtime(shared_sandbox, cli_env, job_id, PYDANTIC_DISABLE_PLUGINS="")
    assert job_id in json.dumps(data)
    assert "importlib.metadata" in modules


def test_piped_get_json_does_not_load_rich(shared_sandbox: SandboxHandle, cli_env: CliEnv) -> None:
    """Piped stdout and stderr: no spinner can be shown, so rich (the spinner's) is never imported."""
    job_id = shared_sandbox.create_job()
    data, modules = _get_with_importtime(shared_sandbox, cli_env, job_id)
    assert job_id in json.dumps(data)
    assert not {m for m in modules if m == "rich" or m.startswith("rich.")}


def test_piped_list_json_does_not_load_rich(shared_sandbox: SandboxHandle, cli_env: CliEnv) -> None:
    """list's footer ("page 1/1 · N job(s) in total") on a piped stderr is written without rich."""
    job_id = shared_sandbox.create_job()
    env = {**cli_env.env(), **shared_sandbox.env()}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "perianctl", "list", "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert job_id in proc.stdout
    lines = proc.stderr.splitlines()
    modules = {line.rsplit("|", 1)[-1].strip() for line in lines if line.startswith("import time:")}
    assert "perianctl.perian.models" in modules, "importtime printed nothing useful"
    assert not {m for m in modules if m == "rich" or m.startswith("rich.")}
    assert [line for line in lines if not line.startswith("import time:")][-1].startswith("page 1/")
