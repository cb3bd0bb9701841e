"""The demo's happy path: tasks with inputs and outputs that finish in about a second.

``hello`` greets; ``add`` shows non-string literals (ints) going in and out of ``inputs.pb`` /
``outputs.pb``. They are ordinary flytekit tasks; only ``task_config=PerianConfig(...)`` makes
them ``perian_task`` tasks.
"""

from __future__ import annotations

from flytekit import task

from perianctl.flyte.task import PerianConfig

#: The image recorded in the templates. The sandbox's ``process`` runtime ignores it (it runs the
#: command with the local venv); a real PERIAN job needs an image that has these modules.
IMAGE = "ghcr.io/flyteorg/flytekit:py3.11-1.16.31"

#: Job environment recorded in the templates (``custom.environment``). ``pyflyte-execute`` exits 0
#: even when the task raised (it only writes ``error.pb``) unless ``FLYTE_FAIL_ON_ERROR`` is true;
#: with it, a failing task fails the PERIAN job too, so ``submit --wait`` and ``watch`` see it.
JOB_ENV = {"FLYTE_FAIL_ON_ERROR": "true"}


@task(task_config=PerianConfig(cores=1, memory=1, country_code="DE"), container_image=IMAGE, environment=JOB_ENV)
def hello(name: str) -> str:
    """Return a greeting; the printed line shows up in the job's logs."""
    greeting = f"Hello, {name}! Greetings from a PERIAN job."
    print(greeting, flush=True)
    return greeting


@task(task_config=PerianConfig(cores=1, memory=1), container_image=IMAGE, environment=JOB_ENV)
def add(a: int, b: int) -> int:
    """Add two integers (int literals in, an int literal out)."""
    total = a + b
    print(f"{a} + {b} = {total}", flush=True)
    return total
