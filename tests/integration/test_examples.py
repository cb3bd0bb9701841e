"""examples/: committed templates are current, and their real ``pyflyte-execute`` commands work.

The job-side runs here are what the sandbox's ``process`` runtime does with these templates: run
the rendered container args as a subprocess, from an unrelated working directory, with the venv's
``bin`` on ``PATH``, ``PYTHONPATH=<repo root>`` (so ``task-module examples.hello`` imports) and
``FLYTE_FAIL_ON_ERROR=true`` (so a failing task exits non-zero, as in a Flyte pod).
"""

from __future__ import annotations

import importlib
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

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = REPO_ROOT / "examples" / "templates"
BIN_DIR = Path(sys.executable).parent

GREETING = "Hello, PERIAN! Greetings from a PERIAN job."


def load_template(name: str) -> tasks_pb2.TaskTemplate:
    template = tasks_pb2.TaskTemplate()
    template.ParseFromString((TEMPLATES / f"{name}.pb").read_bytes())
    return template


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


# --------------------------------------------------------------------------- up to date


def test_committed_templates_are_up_to_date() -> None:
    serialize = importlib.import_module("examples.serialize")
    files = serialize.render_templates()
    assert set(files) == {f"{n}.{ext}" for n in serialize.EXAMPLES for ext in ("pb", "json")}
    stale = serialize.stale_files(TEMPLATES, files)
    assert not stale, (
        f"examples/templates is stale ({', '.join(stale)}): run `.venv/bin/python examples/serialize.py`"
    )
    assert {p.name for p in TEMPLATES.iterdir()} == set(files), "unexpected files in examples/templates"


def test_serialization_is_deterministic() -> None:
    serialize = importlib.import_module("examples.serialize")
    assert serialize.render_templates() == serialize.render_templates()


@pytest.mark.parametrize(
    ("name", "module", "task_name"),
    [("hello", "examples.hello", "hello"), ("add", "examples.hello", "add"),
     ("fail", "examples.fail", "fail"), ("long", "examples.long", "long")],
)
def test_templates_are_perian_tasks_running_pyflyte_execute(name: str, module: str, task_name: str) -> None:
    template = load_template(name)
    assert template.type == "perian_task"
    assert template.custom.fields["cores"].number_value == 1.0
    args = list(template.container.args)
    assert args[:11] == [
        "pyflyte-execute", "--inputs", "{{.input}}", "--output-prefix", "{{.outputPrefix}}",
        "--raw-output-data-prefix", "{{.rawOutputDataPrefix}}", "--checkpoint-path", "{{.checkpointOutputPrefix}}",
        "--prev-checkpoint", "{{.prevCheckpointPrefix}}",
    ]
    assert args[-5:] == ["--", "task-module", module, "task-name", task_name]
    from google.protobuf import json_format

    from_json = json_format.Parse((TEMPLATES / f"{name}.json").read_text(encoding="utf-8"), tasks_pb2.TaskTemplate())
    assert from_json == template


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


def test_examples_run_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The functions themselves, without PERIAN (PERIANCTL_LOCAL_EXECUTION=function)."""
    monkeypatch.setenv("PERIANCTL_LOCAL_EXECUTION", "function")
    from examples.fail import FAILURE_MARKER, fail
    from examples.hello import add, hello
    from examples.long import long

    assert hello(name="PERIAN") == GREETING
    assert add(a=40, b=2) == 42
    assert long(seconds=0) == 0
    with pytest.raises(Exception, match=FAILURE_MARKER):
        fail(name="PERIAN")
