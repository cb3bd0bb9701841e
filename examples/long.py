"""A task that runs for a while and prints progress: for ``watch``, ``logs --follow`` and cancel."""

from __future__ import annotations

import time

from flytekit import task

from examples.hello import IMAGE, JOB_ENV
from perianctl.flyte.task import PerianConfig


@task(task_config=PerianConfig(cores=1, memory=1), container_image=IMAGE, environment=JOB_ENV)
def long(seconds: int) -> int:
    """Sleep ``seconds`` seconds, one progress line per second; return how many seconds it slept."""
    seconds = max(0, seconds)
    for step in range(1, seconds + 1):
        time.sleep(1)
        print(f"progress: {step}/{seconds} s", flush=True)
    print("done", flush=True)
    return seconds
