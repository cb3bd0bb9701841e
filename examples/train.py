"""The README's ``PerianConfig`` example as a workflow, to run with flytekit itself.

    perianctl sandbox start --runtime process
    PERIANCTL_PROFILE=sandbox pyflyte run examples/train.py wf --epochs 4

``pyflyte run`` (local) sends ``train`` through perianctl's connector, in this process, to the PERIAN
API of the profile; the process sandbox runs it on this machine and the output comes back.
"""

from flytekit import task, workflow

from perianctl.flyte.task import PerianConfig


@task(task_config=PerianConfig(cores=2, memory=8, accelerators=1, accelerator_type="A100", country_code="DE"))
def train(epochs: int) -> float:
    """A stand-in for training: the loss after ``epochs`` epochs."""
    return round(0.5**epochs, 6)


@workflow
def wf(epochs: int = 3) -> float:
    return train(epochs=epochs)
