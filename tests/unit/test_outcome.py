"""Reading a finished task's outcome (perianctl.jobs.outcome): error.pb first, then outputs.pb."""

from __future__ import annotations

from pathlib import Path

from flyteidl.core import errors_pb2, literals_pb2, tasks_pb2, types_pb2

from perianctl.errors import ExitCode
from perianctl.jobs.outcome import TaskOutcome, read_outcome

JOB = "3f2c1a4e-0b1d-4c5e-9f00-1234567890ab"


def _template(*, outputs: bool = True) -> tasks_pb2.TaskTemplate:
    template = tasks_pb2.TaskTemplate(type="perian_task")
    template.container.image = "img:1"
    template.container.args.extend(["pyflyte-execute", "--", "task-module", "nowhere_pkg.mod", "task-name", "t"])
    if outputs:
        template.interface.outputs.variables["o0"].type.simple = types_pb2.SimpleType.INTEGER
    return template


def _write_error(prefix: Path, message: str) -> None:
    document = errors_pb2.ErrorDocument(error=errors_pb2.ContainerError(code="USER", message=message))
    (prefix / "error.pb").write_bytes(document.SerializeToString())


def test_outputs_of_a_done_task_become_values(tmp_path: Path) -> None:
    lm = literals_pb2.LiteralMap()
    lm.literals["o0"].scalar.primitive.integer = 42
    (tmp_path / "outputs.pb").write_bytes(lm.SerializeToString())
    assert read_outcome(JOB, _template(), str(tmp_path), 0) == TaskOutcome(exit_code=0, outputs={"o0": 42})


def test_an_error_document_fails_a_done_job(tmp_path: Path) -> None:
    """pyflyte-execute without FLYTE_FAIL_ON_ERROR exits 0 after the task raised: PERIAN says Done."""
    _write_error(tmp_path, "Traceback (most recent call last):\n  ...\nValueError: boom")
    outcome = read_outcome(JOB, _template(), str(tmp_path), 0)
    assert outcome.exit_code == ExitCode.JOB_FAILED and outcome.outputs is None
    assert outcome.task_error == "ValueError: boom"
    assert outcome.error == f"job {JOB} failed: task error: ValueError: boom"


def test_the_task_error_wins_over_how_the_job_ended_and_keeps_its_code(tmp_path: Path) -> None:
    _write_error(tmp_path, "ModuleNotFoundError: No module named 'nowhere_pkg'")
    outcome = read_outcome(JOB, _template(), str(tmp_path), int(ExitCode.TIMEOUT), failure="job timed out")
    assert outcome.exit_code == ExitCode.TIMEOUT
    assert outcome.error is not None and "No module named 'nowhere_pkg'" in outcome.error
    assert outcome.hint is not None and "could not import 'nowhere_pkg.mod'" in outcome.hint


def test_a_failure_without_error_document_is_the_follow_s_line(tmp_path: Path) -> None:
    outcome = read_outcome(JOB, _template(), str(tmp_path), int(ExitCode.JOB_FAILED), failure="job x failed")
    assert outcome == TaskOutcome(exit_code=int(ExitCode.JOB_FAILED), error="job x failed")


def test_missing_outputs_are_noticed_only_when_the_task_declares_some(tmp_path: Path) -> None:
    assert read_outcome(JOB, _template(), str(tmp_path), 0).missing_outputs
    assert not read_outcome(JOB, _template(outputs=False), str(tmp_path), 0).missing_outputs
    assert read_outcome(JOB, _template(), str(tmp_path), int(ExitCode.JOB_CANCELLED)) == TaskOutcome(
        exit_code=int(ExitCode.JOB_CANCELLED)
    )
