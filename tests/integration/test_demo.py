"""The main job end to end: real flytekit tasks, rendered like propeller, run by the sandbox's process
runtime through PERIAN's API contract, outputs read back from outputs.pb."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.plugins.cli import CliEnv, CliRunner
from tests.plugins.sandbox import SandboxFactory, SandboxHandle

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "examples" / "templates"


def test_readme_demo_script_runs_the_hello_task(cli_env: CliEnv) -> None:
    env = cli_env.env()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        ["bash", str(REPO / "examples" / "demo.sh"), "CI"], env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "o0 = Hello, CI! Greetings from a PERIAN job." in proc.stdout
    assert "stopped the sandbox" in proc.stderr
    assert "Done" in proc.stdout and "SUCCEEDED" in proc.stdout
    status = subprocess.run(
        [sys.executable, "-m", "perianctl", "sandbox", "status"], env=env, capture_output=True, text=True, timeout=60
    )
    assert "not running" in (status.stdout + status.stderr).lower() or status.returncode != 0


def test_hello_outputs_and_failing_task(sandbox_factory: SandboxFactory, run_cli: CliRunner, tmp_path: Path) -> None:
    sb: SandboxHandle = sandbox_factory(runtime="process")
    env = {**sb.env()}
    pythonpath = f"PYTHONPATH={REPO}"

    prefix = tmp_path / "hello-run"
    r = run_cli(
        "submit",
        str(TEMPLATES / "hello.pb"),
        "--input",
        "name=Tester",
        "--env",
        pythonpath,
        "--output-prefix",
        str(prefix),
        "--wait",
        env=env,
        timeout=180,
    )
    assert r.returncode == 0, r
    assert "o0 = Hello, Tester! Greetings from a PERIAN job." in r.stdout
    assert (prefix / "outputs.pb").is_file() and (prefix / "inputs.pb").is_file()

    r = run_cli(
        "submit",
        str(TEMPLATES / "add.pb"),
        "-i",
        "a=40",
        "-i",
        "b=2",
        "--env",
        pythonpath,
        "--wait",
        "-o",
        "json",
        env=env,
        timeout=180,
    )
    assert r.returncode == 0, r
    record = json.loads(r.stdout)
    assert record["outputs"] == {"o0": 42} and record["exit_code"] == 0

    r = run_cli(
        "submit", str(TEMPLATES / "fail.pb"), "--input", "name=Bob", "--env", pythonpath, "--wait", env=env, timeout=180
    )
    assert r.returncode == 3, r
    assert "perianctl example failure" in r.stderr
    assert "Traceback" not in r.stderr

    r = run_cli("get", "--last", "-o", "json", env=env)
    assert json.loads(r.stdout)["status"] == "UserError"
