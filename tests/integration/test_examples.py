"""examples/: committed templates are current, and their real ``pyflyte-execute`` commands work.

The job-side runs here are what the sandbox's ``process`` runtime does with these templates: run
the rendered container args as a subprocess, from an unrelated working directory, with the venv's
``bin`` on ``PATH``, ``PYTHONPATH=<repo root>`` (so ``task-module examples.hello`` imports) and
``FLYTE_FAIL_ON_ERROR=true`` (so a failing task exits non-zero, as in a Flyte pod).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from perianctl.flyte.launch import PreparedLaunch

pytest.importorskip("flytekit")

from flyteidl.core import literals_pb2, tasks_pb2

from tests.support.examples import GREETING, REPO_ROOT, load_template

BIN_DIR = Path(sys.executable).parent


def job_env() -> dict[str, str]:
    """The environment a PERIAN job (sandbox process runtime) needs for these templates."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERIAN", "_FSEC_", "FLYTE_"))}
    env["PATH"] = f"{BIN_DIR}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["FLYTE_FAIL_ON_ERROR"] = "true"
    return env


def run_job(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    assert args[0] == "pyflyte-execute"
    return subprocess.run(args, env=job_env(), cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def inputs_of(**values: object) -> literals_pb2.LiteralMap:
    literal_map = literals_pb2.LiteralMap()
    for name, value in values.items():
        primitive = literal_map.literals[name].scalar.primitive
        if isinstance(value, str):
            primitive.string_value = value
        else:
            assert isinstance(value, int)
            primitive.integer = value
    return literal_map


def flytekit_render(template: tasks_pb2.TaskTemplate, prefix: Path) -> list[str]:
    """Render with flytekit's own local-execution renderer (what ``pyflyte run`` does)."""
    from flytekit.extend.backend.utils import render_task_template
    from flytekit.models.task import TaskTemplate

    rendered = render_task_template(TaskTemplate.from_flyte_idl(template), str(prefix))
    return list(rendered.container.args)


# --------------------------------------------------------------------------- the job side


def test_hello_runs_with_flytekit_rendering(tmp_path: Path) -> None:
    prefix = tmp_path / "run"
    prefix.mkdir()
    (prefix / "inputs.pb").write_bytes(inputs_of(name="PERIAN").SerializeToString())
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    proc = run_job(flytekit_render(load_template("hello"), prefix), cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    outputs = literals_pb2.LiteralMap()
    outputs.ParseFromString((prefix / "outputs.pb").read_bytes())
    assert outputs.literals["o0"].scalar.primitive.string_value == GREETING


def _prepare(template_name: str, prefix: Path, /, **values: object) -> PreparedLaunch:
    """Inputs written and placeholders rendered exactly as ``perianctl submit`` does."""
    from perianctl.flyte.launch import prepare_launch

    return prepare_launch(load_template(template_name), inputs_of(**values), str(prefix), run_id="test-run")


def test_hello_via_prepare_launch_writes_outputs(tmp_path: Path) -> None:
    from perianctl.flyte.launch import read_outputs

    launch = _prepare("hello", tmp_path / "prefix", name="PERIAN")
    assert launch.wrote_inputs
    args = list(launch.template.container.args)
    assert not any("{{" in a for a in args), args
    proc = run_job(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert GREETING in proc.stdout
    outputs = read_outputs(launch.output_prefix)
    assert outputs is not None
    assert outputs.literals["o0"].scalar.primitive.string_value == GREETING


def test_add_returns_an_integer(tmp_path: Path) -> None:
    from perianctl.flyte.launch import read_outputs

    launch = _prepare("add", tmp_path / "prefix", a=40, b=2)
    proc = run_job(list(launch.template.container.args), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    outputs = read_outputs(launch.output_prefix)
    assert outputs is not None and outputs.literals["o0"].scalar.primitive.integer == 42


def test_fail_exits_non_zero_and_writes_error_pb(tmp_path: Path) -> None:
    from examples.fail import FAILURE_MARKER
    from perianctl.flyte.launch import read_error, read_outputs

    launch = _prepare("fail", tmp_path / "prefix", name="PERIAN")
    proc = run_job(list(launch.template.container.args), cwd=tmp_path)
    assert proc.returncode != 0  # FLYTE_FAIL_ON_ERROR=true; without it pyflyte-execute exits 0
    assert read_outputs(launch.output_prefix) is None
    message = read_error(launch.output_prefix)
    assert message is not None and FAILURE_MARKER in message and "ValueError" in message
