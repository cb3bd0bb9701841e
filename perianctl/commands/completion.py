"""Print the shell completion script for bash, zsh or fish.

Completes commands, options and their values: job ids (the newest from the journal, with their
status), output formats, statuses, runtimes, profiles and config keys.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer


def completion(
    shell: Annotated[
        str, typer.Argument(metavar="SHELL", help="bash, zsh or fish.", autocompletion=lambda: ["bash", "zsh", "fish"])
    ],
) -> None:
    from perianctl.completion import SCRIPTS
    from perianctl.errors import UsageError

    if shell not in SCRIPTS:
        raise UsageError(f"unknown shell '{shell}'", hint="choose bash, zsh or fish")
    typer.echo(SCRIPTS[shell], nl=False)


# ---------------------------------------------------------------------------------------- spec
# The static spec :mod:`perianctl.completion` answers a TAB from; built from the Typer app (so it
# lives here, with Typer, not in the standard-library-only completion module).

#: option name -> values resolved when the user presses TAB
DYNAMIC_OPTIONS = {"--profile": "profile"}
#: argument parameter name -> dynamic kind (job ids wherever a command takes them)
DYNAMIC_ARGUMENTS = {"job_id": "job", "job_ids": "job"}


def build_spec(app: Any) -> dict[str, Any]:
    """The static description of ``app`` (a Typer app) that :func:`candidates` walks.

    Used by ``scripts/gen_completions.py``; imports Typer, so never at TAB time. Static values come
    from the domain modules (statuses, runtimes, config keys) and from the options' own
    ``autocompletion`` (output formats).
    """
    import typer.main
    from typer._click import core
    from typer.core import TyperGroup

    from perianctl.config import PROFILE_KEYS
    from perianctl.perian.status import WorkloadStatus
    from perianctl.sandbox.config import RUNTIMES

    static: dict[str, list[list[str]]] = {
        "--status": [[s.value, "PERIAN status"] for s in WorkloadStatus if s.value != "Undefined"],
        "--runtime": [[r, RUNTIME_HELP.get(r, "")] for r in RUNTIMES],
        "--protocol": [
            ["v1", "flyteidl (Flyte 1) connector protocol"],
            ["v2", "flyteidl2 (Flyte 2) connector protocol"],
        ],
    }
    config_keys = [[key, _first_sentence(str(about))] for key, about in PROFILE_KEYS.items()]

    def first_line(text: str | None) -> str:
        return _first_sentence((text or "").strip().split("\n\n")[0])

    def describe(cmd: Any, ctx: Any, path: str) -> dict[str, Any]:
        node: dict[str, Any] = {"help": first_line(getattr(cmd, "short_help", None) or cmd.help), "options": []}
        args: list[list[Any]] = []
        for param in cmd.params:
            if getattr(param, "param_type_name", "") == "option":
                if param.hidden:
                    continue
                takes_value = not (param.is_flag or param.count)
                values: Any = None
                if takes_value:
                    name = param.opts[0]
                    if name in DYNAMIC_OPTIONS:
                        values = DYNAMIC_OPTIONS[name]
                    elif name in static:
                        values = static[name]
                    else:
                        items = param.shell_complete(ctx, "")
                        if items:
                            values = [[str(i.value), str(i.help or "")] for i in items]
                node["options"].append(
                    [[*param.opts, *param.secondary_opts], takes_value, values, first_line(param.help)]
                )
            elif getattr(param, "param_type_name", "") == "argument":
                kind: Any = DYNAMIC_ARGUMENTS.get(param.name or "")
                if path == "config set" and param.name == "key":
                    kind = config_keys
                elif path == "config use" and param.name == "name":
                    kind = "profile"
                args.append([kind, param.nargs == -1])
        if args:
            node["args"] = args
        if isinstance(cmd, TyperGroup):
            node["commands"] = {}
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                if sub is None or sub.hidden:
                    continue
                sub_ctx = core.Context(sub, parent=ctx, info_name=name)
                node["commands"][name] = describe(sub, sub_ctx, f"{path} {name}".strip())
        return node

    command = typer.main.get_command(app)
    return describe(command, core.Context(command, info_name="perianctl"), "")


RUNTIME_HELP = {
    "simulate": "jobs follow scripted status sequences; nothing runs",
    "process": "jobs run as local processes",
    "docker": "jobs run as Docker containers",
}


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    end = text.find(". ")
    return text[: end + 1] if 0 <= end < 100 else (text if len(text) <= 100 else text[:99] + "…")


def render_spec(spec: dict[str, Any]) -> str:
    """The source of ``perianctl/_completion_spec.py`` for ``spec`` (stable, diff-friendly)."""
    import pprint

    body = pprint.pformat(spec, width=110, sort_dicts=False, compact=True)
    return (
        '"""Commands, options and arguments of perianctl for shell completion (see perianctl.completion).\n\n'
        "Generated by scripts/gen_completions.py from the Typer app; do not edit.\n"
        '"""\n'
        "# ruff: noqa: E501\n\n"
        "from typing import Any\n\n"
        f"SPEC: dict[str, Any] = {body}\n"
    )
