"""What a finished task left under its output prefix: ``outputs.pb`` as values, or ``error.pb``.

Read after a job ended (``submit --wait/--watch``). A task that raised but whose container still
exited 0 (no ``FLYTE_FAIL_ON_ERROR``) leaves an ``error.pb`` behind: like flytepropeller, that is a
failure even though PERIAN said Done, so the exit code becomes 3. Nothing here prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from perianctl.errors import ExitCode

if TYPE_CHECKING:
    from flyteidl.core.tasks_pb2 import TaskTemplate


@dataclass(frozen=True)
class TaskOutcome:
    """How a task ended, as the user is told.

    ``exit_code`` is the follow's code, 3 when the task wrote an ``error.pb``. ``error`` is the one
    ``error:`` line to print (the task's own error, else ``failure``, how the job ended) with its
    ``hint``; ``task_error`` is the last line of the task's own error message. ``outputs`` holds
    the task's outputs as plain values when it succeeded and wrote them; ``missing_outputs`` says
    it succeeded, declares outputs, and wrote no ``outputs.pb``.
    """

    exit_code: int
    outputs: dict[str, object] | None = None
    task_error: str | None = None
    error: str | None = None
    hint: str | None = None
    missing_outputs: bool = False


def read_outcome(
    job_id: str, template: TaskTemplate, output_prefix: str, exit_code: int, *, failure: str | None = None
) -> TaskOutcome:
    """Read ``error.pb`` (first: it overrides a Done) or, for a success, ``outputs.pb``.

    ``exit_code`` and ``failure`` are what following the job gave (0 and ``None`` for Done).
    """
    from perianctl.flyte.launch import import_hint, read_error, read_outputs

    message = read_error(output_prefix)
    if message:
        from perianctl.text import last_line

        task_error = last_line(message)
        return TaskOutcome(
            exit_code=exit_code or int(ExitCode.JOB_FAILED),
            task_error=task_error,
            error=f"job {job_id} failed: task error: {task_error}",
            hint=import_hint(template, message),
        )
    if failure:
        return TaskOutcome(exit_code=exit_code, error=failure, hint=import_hint(template, failure))
    if exit_code != 0:
        return TaskOutcome(exit_code=exit_code)
    outputs = read_outputs(output_prefix)
    if outputs is None:
        return TaskOutcome(exit_code=0, missing_outputs=bool(template.interface.outputs.variables))
    from perianctl.flyte.inputs import literal_map_to_python

    return TaskOutcome(exit_code=0, outputs=literal_map_to_python(outputs))
