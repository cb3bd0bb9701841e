"""Prepare a task launch the way flytepropeller does: inputs written, placeholders rendered.

``submit`` uses this for both paths: talking to PERIAN directly (then the connector's translation
turns the rendered template into a CreateJobRequest) and talking to a connector over gRPC (then the
rendered template, inputs and output prefix are exactly what propeller would send in CreateTask).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from perianctl.flyte import storage

if TYPE_CHECKING:
    from flyteidl.core.errors_pb2 import ContainerError
    from flyteidl.core.literals_pb2 import LiteralMap
    from flyteidl.core.tasks_pb2 import TaskTemplate

INPUTS_FILE = "inputs.pb"
OUTPUTS_FILE = "outputs.pb"
ERROR_FILE = "error.pb"

_INPUT_PLACEHOLDER = re.compile(r"\{\{\s*[.$]\s*(input|inputprefix)\s*\}\}", re.IGNORECASE)


@dataclass(frozen=True)
class PreparedLaunch:
    template: TaskTemplate
    """The template with container args (and a custom ``command``) rendered."""
    inputs: LiteralMap
    output_prefix: str
    inputs_uri: str
    wrote_inputs: bool
    needs_inputs_file: bool = False
    """Whether the task reads ``inputs.pb`` (or has inputs): :func:`write_inputs_file` writes it."""


def reads_inputs_file(template: TaskTemplate) -> bool:
    """Does the task read ``inputs.pb`` itself (pyflyte-execute style)?"""
    args = list(template.container.args) if template.HasField("container") else []
    command = template.custom.fields.get("command") if template.HasField("custom") else None
    if command is not None and command.HasField("list_value"):
        args += [v.string_value for v in command.list_value.values]
    elif command is not None and command.HasField("string_value"):
        args.append(command.string_value)
    return any(_INPUT_PLACEHOLDER.search(a) for a in args)


def prepare_launch(
    template: TaskTemplate,
    inputs: LiteralMap,
    output_prefix: str,
    *,
    run_id: str,
    write_inputs: bool = True,
) -> PreparedLaunch:
    """Render the template's placeholders and (``write_inputs``) write ``<prefix>/inputs.pb`` when the
    task reads it. ``submit`` passes ``write_inputs=False`` and calls :func:`write_inputs_file` only
    once every flag and the request are known valid, so a rejected submit leaves no files behind.
    """
    from perianctl.flyte.render import RenderContext, render_template

    prefix = storage.normalize_prefix(output_prefix)
    inputs_uri = storage.join(prefix, INPUTS_FILE)
    needs = reads_inputs_file(template) or len(inputs.literals) > 0
    wrote = False
    if write_inputs and needs:
        storage.write_bytes(inputs_uri, inputs.SerializeToString())
        wrote = True
    context = RenderContext.for_launch(
        prefix,
        inputs=inputs,
        per_retry_unique_key=run_id,
        task_template_path=storage.join(prefix, "task.pb"),
        namespace="perianctl",
    )
    return PreparedLaunch(
        template=render_template(template, context),
        inputs=inputs,
        output_prefix=prefix,
        inputs_uri=inputs_uri,
        wrote_inputs=wrote,
        needs_inputs_file=needs,
    )


def write_inputs_file(launch: PreparedLaunch) -> PreparedLaunch:
    """Write ``inputs.pb`` for a launch prepared with ``write_inputs=False`` (if the task needs it)."""
    import dataclasses

    if not launch.needs_inputs_file or launch.wrote_inputs:
        return launch
    storage.write_bytes(launch.inputs_uri, launch.inputs.SerializeToString())
    return dataclasses.replace(launch, wrote_inputs=True)


def discard_inputs_file(launch: PreparedLaunch, *, remove_dir: bool = False) -> None:
    """Remove the ``inputs.pb`` this launch wrote, for a job that certainly was not created.

    Never call it when a create may have reached the API: that job would read this file. Best
    effort: a file that cannot be removed is left, never an error on top of the real one.
    ``remove_dir`` also removes the prefix directory when it is local and now empty (a run
    directory perianctl made for this launch, never one the user named).
    """
    if launch.wrote_inputs:
        storage.remove(launch.inputs_uri, remove_dir=remove_dir)


def read_outputs(output_prefix: str) -> LiteralMap | None:
    """The task's ``outputs.pb`` under the prefix, or ``None`` if it wrote none (yet)."""
    from flyteidl.core.literals_pb2 import LiteralMap

    data = storage.read_bytes(storage.join(output_prefix, OUTPUTS_FILE))
    if data is None:
        return None
    literal_map = LiteralMap()
    literal_map.ParseFromString(data)
    return literal_map


def read_error_document(output_prefix: str) -> ContainerError | None:
    """The error flytekit's ``pyflyte-execute`` wrote to ``<prefix>/error.pb``; ``None`` when there
    is none or it cannot be parsed (a damaged error file must not hide the job's outcome)."""
    from flyteidl.core.errors_pb2 import ErrorDocument

    data = storage.read_bytes(storage.join(output_prefix.rstrip("/"), ERROR_FILE))
    if not data:
        return None
    document = ErrorDocument()
    try:
        document.ParseFromString(data)
    except Exception:
        return None
    return document.error


def read_error(output_prefix: str) -> str | None:
    """The user-facing message of ``error.pb``, if the task wrote one."""
    error = read_error_document(output_prefix)
    return (error.message or None) if error is not None else None


_NO_MODULE = re.compile(r"No module named '([A-Za-z_][\w.]*)'")


def task_module(template: TaskTemplate) -> str | None:
    """The module pyflyte-execute imports (``task-module examples.hello`` in the container args), if any."""
    args: list[str] = list(template.container.args) if template.HasField("container") else []
    for i, arg in enumerate(args[:-1]):
        if arg == "task-module":
            return args[i + 1]
    return None


def import_hint(template: TaskTemplate, failure: str | None, *, cwd: Path | None = None) -> str | None:
    """A hint for the commonest first failure of a ``file.py:task`` or flytekit template: the job
    cannot import the task's module (``ModuleNotFoundError``) because nothing put it on the job's
    ``PYTHONPATH``. perianctl does not set ``PYTHONPATH`` itself: on PERIAN the job runs in its image
    on another machine, where a path of this machine means nothing and would hide the image's own.
    The hint names the directory to pass when the module's package is found under ``cwd``.
    """
    module = task_module(template)
    match = _NO_MODULE.search(failure or "")
    if module is None or match is None:
        return None
    missing = match.group(1)
    if not (module == missing or module.startswith(missing + ".")):
        return None
    top = module.split(".")[0]
    base = (cwd or Path.cwd()).resolve()
    root = next((d for d in (base, *base.parents) if (d / top).is_dir() or (d / f"{top}.py").is_file()), None)
    where = f"--env PYTHONPATH={root}" if root is not None else "--env PYTHONPATH=DIR (the directory that contains it)"
    return (
        f"the job could not import '{module}': on a sandbox on this machine pass {where}; "
        "on PERIAN use an image that contains the module"
    )
