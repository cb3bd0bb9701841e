"""A task that always fails, to see a failure travel back: job ``UserError``, Flyte ``FAILED``,
``error.pb`` under the output prefix, and ``perianctl submit --wait`` exiting with code 3.
"""

from __future__ import annotations

from flytekit import task

from examples.hello import IMAGE, JOB_ENV
from perianctl.flyte.task import PerianConfig

#: Tests and docs look for this text in the job's error message.
FAILURE_MARKER = "perianctl example failure"


@task(task_config=PerianConfig(cores=1, memory=1), container_image=IMAGE, environment=JOB_ENV)
def fail(name: str) -> str:
    """Raise ``ValueError`` with a message that is easy to find in logs and in ``error.pb``."""
    print(f"about to fail for {name!r}", flush=True)
    raise ValueError(f"{FAILURE_MARKER}: refusing to greet {name!r} (this task always fails)")
    return name  # never reached; flytekit insists on a return statement in a task with an output
