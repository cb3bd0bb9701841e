"""Fill ``{{.input}}``-style placeholders in a task's command, the way flytepropeller does.

On a Flyte cluster propeller renders container args before it calls the connector
(``Create`` in flyteplugins go/tasks/plugins/webapi/connector/plugin.go, v1.16.x); ``perianctl submit``
talks to PERIAN directly, so it has to do the same
itself, and the connector has to do it for container-less (``PerianContainerTask``-style)
templates whose command lives in ``custom["command"]``, which propeller never touches.

The regexes and the replacement order mirror propeller's ``pluginmachinery/core/template.Render``:
case-insensitive, optional spaces, ``.`` or ``$`` before the name (``{{ .Input }}``,
``{{$outputPrefix}}``). Placeholders it does not know (``{{ .remote_package_path }}``) stay as they
are. Two deliberate differences: values are inserted literally (Go's ``ReplaceAllString`` would
expand ``$1`` inside a value), and a context field left ``None`` leaves its placeholder untouched
so a partial render (e.g. for ``--dry-run``) is possible.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from flyteidl.core import literals_pb2, tasks_pb2
from google.protobuf import struct_pb2

from perianctl.errors import InputError, TemplateError
from perianctl.flyte.inputs import go_float, literal_to_text


def _placeholder(name: str) -> re.Pattern[str]:
    return re.compile(r"\{\{\s*[.$]" + name + r"\s*\}\}", re.IGNORECASE)


_INPUT_FILE = _placeholder("Input")
_INPUT_PREFIX = _placeholder("InputPrefix")
_OUTPUT_PREFIX = _placeholder("OutputPrefix")
_INPUT_VAR = re.compile(r"\{\{\s*[.$]Inputs\.(?P<name>[^}\s]+)\s*\}\}", re.IGNORECASE)
_RAW_OUTPUT = _placeholder("RawOutputDataPrefix")
_PER_RETRY_KEY = _placeholder("PerRetryUniqueKey")
_TASK_TEMPLATE = _placeholder("TaskTemplatePath")
_PREV_CHECKPOINT = _placeholder("PrevCheckpointPrefix")
_CHECKPOINT = _placeholder("CheckpointOutputPrefix")
_NAMESPACE = _placeholder("Namespace")

_NOT_ALNUM = re.compile(r"[^a-zA-Z0-9_]+")
_LEADING_NON_ALPHA = re.compile(r"^[^a-zA-Z_]+")


@dataclass
class RenderContext:
    """Values for the placeholders. ``None`` leaves a placeholder as-is.

    ``prev_checkpoint_prefix`` defaults to ``""``, which renders as the two characters ``""``
    exactly like propeller on a first attempt (pyflyte-execute treats that as "no checkpoint").
    """

    input_path: str | None = None
    input_prefix: str | None = None
    output_prefix: str | None = None
    raw_output_prefix: str | None = None
    checkpoint_prefix: str | None = None
    prev_checkpoint_prefix: str | None = ""
    per_retry_unique_key: str | None = None
    task_template_path: str | None = None
    namespace: str | None = None
    inputs: literals_pb2.LiteralMap = field(default_factory=literals_pb2.LiteralMap)

    @classmethod
    def for_launch(
        cls,
        output_prefix: str,
        *,
        inputs: literals_pb2.LiteralMap | None = None,
        per_retry_unique_key: str = "",
        task_template_path: str = "",
        namespace: str = "",
    ) -> RenderContext:
        """The one layout perianctl renders a launch with, wherever it renders one itself.

        ``submit`` (:func:`perianctl.flyte.launch.prepare_launch`) and the connector (a
        ``custom["command"]`` propeller left unrendered) both use it, so a task finds its files in
        the same places whichever path started it: inputs at ``<prefix>/inputs.pb``, raw data under
        ``<prefix>/raw``, checkpoints under ``<prefix>/checkpoint``, no previous checkpoint (first
        attempt). What only the caller knows (retry key, template path, namespace) is passed in;
        the connector does not know them and renders them empty.
        """
        return cls._layout(
            output_prefix,
            raw="raw",
            checkpoint="checkpoint",
            inputs=inputs,
            per_retry_unique_key=per_retry_unique_key,
            task_template_path=task_template_path,
            namespace=namespace,
        )

    @classmethod
    def for_output_prefix(
        cls,
        output_prefix: str,
        *,
        inputs: literals_pb2.LiteralMap | None = None,
        raw_output_prefix: str | None = None,
        per_retry_unique_key: str | None = None,
        namespace: str | None = None,
    ) -> RenderContext:
        """The layout flytekit's local connector execution uses (``render_task_template``).

        Inputs go to ``<prefix>/inputs.pb``, raw data to ``<prefix>/raw_output`` and checkpoints to
        ``<prefix>/checkpoint_output``; there is no previous checkpoint (first attempt). Used to
        compare our rendering with flytekit's; perianctl's own launches use :meth:`for_launch`.
        """
        context = cls._layout(
            output_prefix,
            raw="raw_output",
            checkpoint="checkpoint_output",
            inputs=inputs,
            per_retry_unique_key=per_retry_unique_key,
            task_template_path=None,
            namespace=namespace,
        )
        if raw_output_prefix:
            context.raw_output_prefix = raw_output_prefix
        return context

    @classmethod
    def _layout(
        cls,
        output_prefix: str,
        *,
        raw: str,
        checkpoint: str,
        inputs: literals_pb2.LiteralMap | None,
        per_retry_unique_key: str | None,
        task_template_path: str | None,
        namespace: str | None,
    ) -> RenderContext:
        prefix = output_prefix.rstrip("/")
        return cls(
            input_path=f"{prefix}/inputs.pb",
            input_prefix=prefix,
            output_prefix=prefix,
            raw_output_prefix=f"{prefix}/{raw}",
            checkpoint_prefix=f"{prefix}/{checkpoint}",
            prev_checkpoint_prefix="",
            per_retry_unique_key=per_retry_unique_key,
            task_template_path=task_template_path,
            namespace=namespace,
            inputs=inputs if inputs is not None else literals_pb2.LiteralMap(),
        )


def sanitize_unique_key(key: str) -> str:
    """Propeller's clean-up of ``{{.perRetryUniqueKey}}``: start alpha, then ``[a-zA-Z0-9_]`` only."""
    return _NOT_ALNUM.sub("_", _LEADING_NON_ALPHA.sub("a", key))


def _literal(value: str) -> Callable[[re.Match[str]], str]:
    return lambda _match: value


def render_arg(arg: str, ctx: RenderContext) -> str:
    """Render one argument; raises ``InputError`` for ``{{.inputs.x}}`` naming a missing input."""
    val = arg
    if ctx.input_path is not None:
        val = _INPUT_FILE.sub(_literal(ctx.input_path), val)
    if ctx.output_prefix is not None:
        val = _OUTPUT_PREFIX.sub(_literal(ctx.output_prefix), val)
    if ctx.input_prefix is not None:
        val = _INPUT_PREFIX.sub(_literal(ctx.input_prefix), val)
    if ctx.raw_output_prefix is not None:
        val = _RAW_OUTPUT.sub(_literal(ctx.raw_output_prefix), val)
    if ctx.prev_checkpoint_prefix is not None:
        val = _PREV_CHECKPOINT.sub(_literal(ctx.prev_checkpoint_prefix or '""'), val)
    if ctx.checkpoint_prefix is not None:
        val = _CHECKPOINT.sub(_literal(ctx.checkpoint_prefix), val)
    if ctx.per_retry_unique_key is not None:
        val = _PER_RETRY_KEY.sub(_literal(sanitize_unique_key(ctx.per_retry_unique_key)), val)
    if ctx.task_template_path is not None:
        val = _TASK_TEMPLATE.sub(_literal(ctx.task_template_path), val)
    # Namespace last, as propeller does, in case a value above embedded it.
    if ctx.namespace is not None:
        val = _NAMESPACE.sub(_literal(ctx.namespace), val)
    # Propeller skips input variables entirely when there are no inputs.
    if not ctx.inputs.literals:
        return val

    def _input(match: re.Match[str]) -> str:
        name = match.group("name")
        literal = ctx.inputs.literals.get(name)
        if literal is None:
            known = ", ".join(sorted(ctx.inputs.literals)) or "(none)"
            raise InputError(f"{match.group(0)} refers to input {name!r}, which was not given; inputs: {known}")
        try:
            return literal_to_text(literal)
        except InputError as exc:
            raise InputError(f"{match.group(0)}: {exc.message}") from None

    return _INPUT_VAR.sub(_input, val)


def render_args(args: Sequence[str], ctx: RenderContext) -> list[str]:
    """Render every argument (see :func:`render_arg`); returns a new list."""
    return [render_arg(str(a), ctx) for a in args]


def custom_command(template: tasks_pb2.TaskTemplate) -> list[str] | None:
    """``custom["command"]`` as a list of strings, or ``None`` when absent.

    The official ``PerianContainerTask`` stores a list; a single string is accepted as one
    argument list of one shell string. Numbers are spelled as Go would (``5`` not ``5.0``).
    """
    if not template.HasField("custom") or "command" not in template.custom.fields:
        return None
    value = template.custom.fields["command"]
    kind = value.WhichOneof("kind")
    if kind == "null_value":
        return None
    if kind == "string_value":
        return [value.string_value]
    if kind != "list_value":
        raise TemplateError("custom 'command' must be a list of strings")
    out: list[str] = []
    for item in value.list_value.values:
        item_kind = item.WhichOneof("kind")
        if item_kind == "string_value":
            out.append(item.string_value)
        elif item_kind == "number_value":
            out.append(go_float(item.number_value))
        elif item_kind == "bool_value":
            out.append("true" if item.bool_value else "false")
        else:
            raise TemplateError("custom 'command' must be a list of strings")
    return out


def render_template(template: tasks_pb2.TaskTemplate, ctx: RenderContext) -> tasks_pb2.TaskTemplate:
    """A copy of ``template`` with container args and ``custom["command"]`` rendered.

    The input template is not modified (propeller keeps the stored template pristine too, so a
    retry can render it again with new paths).
    """
    rendered = tasks_pb2.TaskTemplate()
    rendered.CopyFrom(template)
    if rendered.HasField("container"):
        args = render_args(list(rendered.container.args), ctx)
        del rendered.container.args[:]
        rendered.container.args.extend(args)
    command = custom_command(rendered)
    if command is not None:
        listed = struct_pb2.ListValue()
        listed.extend(render_args(command, ctx))
        rendered.custom.fields["command"].list_value.CopyFrom(listed)
    return rendered
