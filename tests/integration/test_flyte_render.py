"""Placeholder rendering, checked against propeller's template.Render behaviour."""

from __future__ import annotations

import pytest

from perianctl.flyte.inputs import build_inputs
from perianctl.flyte.render import RenderContext, render_template
from tests.support.flyte import FlyteArtifacts, build_artifacts


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> FlyteArtifacts:
    return build_artifacts(tmp_path_factory.mktemp("flyte"))


def test_render_real_flytekit_args_matches_flytekit_local_layout(artifacts: FlyteArtifacts) -> None:
    """Same result as flytekit's own render_task_template for the placeholders it knows."""
    from flytekit.extend.backend.utils import render_task_template
    from flytekit.models.task import TaskTemplate

    template = artifacts.templates["gpu_hello"]
    prefix = "s3://bucket/prefix"
    ctx = RenderContext.for_output_prefix(prefix)
    ctx.prev_checkpoint_prefix = f"{prefix}/prev_checkpoint"  # flytekit's local choice
    ours = render_template(template, ctx)
    theirs = render_task_template(TaskTemplate.from_flyte_idl(template), prefix)
    assert list(ours.container.args) == list(theirs.container.args)
    # And with propeller's first-attempt rule for the previous checkpoint.
    first = render_template(template, RenderContext.for_output_prefix(prefix))
    args = list(first.container.args)
    assert args[args.index("--prev-checkpoint") + 1] == '""'
    assert args[args.index("--inputs") + 1] == f"{prefix}/inputs.pb"


def test_render_template_copies_and_renders_custom_command(artifacts: FlyteArtifacts) -> None:
    template = artifacts.templates["echo"]
    before = template.SerializeToString()
    lm = build_inputs(template.interface, ["name=world", "count=3"], None)
    rendered = render_template(template, RenderContext(inputs=lm))
    assert template.SerializeToString() == before
    command = [v.string_value for v in rendered.custom.fields["command"].list_value.values]
    assert command == ["echo", "hello", "world", "3"]
    assert not rendered.HasField("container")
    # Other custom keys survive.
    assert rendered.custom.fields["image"].string_value == "ubuntu:22.04"
