"""Help that reads like a tool, not like Python: metavars in words.

Typer shows a parameter without a metavar by its Python type (``--cores <int range>``,
``job_ids... <list[str]>``, ``{template}``). :func:`humanize` gives every such parameter of a
click command tree a word instead (``--cores N``, ``ID...``, ``TEMPLATE``) -- derived from the
option's name and type, with the few names that deserve a better word listed here -- so a new
option reads right without anyone remembering to set a metavar. Explicit metavars are kept.
"""

from __future__ import annotations

import re
import types
from typing import Any, get_args, get_origin

#: option or argument name -> metavar, where the name alone is not the right word
WORDS: dict[str, str] = {
    "--env": "KEY=VALUE",
    "--input": "NAME=VALUE",
    "--secret-env": "NAME",
    "--status": "STATUS[,STATUS...]",
    "--memory": "GB",
    "--os-storage-size": "GB",
    "--max-message-mb": "MIB",
    "--log-cap": "CHARS",
    "--fault-seed": "SEED",
    "--fault-rate": "0..1",
    "--speed": "FACTOR",
    "--latency": "SECONDS[-SECONDS]",
    "--credits": "AMOUNT",
    "--timeout": "DURATION",
    "--wait-timeout": "DURATION",
    "--task-timeout": "DURATION",
    "--for": "terminal|succeeded",
    "--fault-kinds": "KIND[,KIND...]",
    "--fault-endpoints": "ENDPOINT[,ENDPOINT...]",
    "--latency-endpoints": "ENDPOINT[,ENDPOINT...]",
    "--fault-phase": "before|after",
    "--runtime": "simulate|process|docker",
    "--inputs-file": "FILE",
    "--template": "TEMPLATE",
    "--output-prefix": "DIR|URI",
    "--accelerator-type": "GPU",
    "--instance-type-id": "ID",
    "--country-code": "CODE",
    "--provider": "NAME",
    "--task": "NAME",
    "job_ids": "ID...",
    "job_id": "ID",
}
_SECONDS = re.compile(r"timeout|interval|window|budget|reserve|grace|seconds|delay|margin|skew|after|wait|settle")


def _annotation(param: Any) -> Any:
    descriptor = getattr(param, "type_descriptor", None)
    annotation = getattr(descriptor, "annotation", None)
    if get_origin(annotation) in (types.UnionType,) or str(get_origin(annotation)) == "typing.Union":
        annotation = next((a for a in get_args(annotation) if a is not type(None)), annotation)
    if get_origin(annotation) in (list, tuple):
        annotation = next(iter(get_args(annotation)), str)
    return annotation


def word_for(name: str, annotation: Any) -> str:
    """The metavar for an option/argument ``name`` of Python type ``annotation``."""
    if name in WORDS:
        return WORDS[name]
    bare = name.lstrip("-")
    from pathlib import Path

    if annotation is float:
        return "SECONDS" if _SECONDS.search(bare) else "NUMBER"
    if annotation is int:
        return "PORT" if "port" in bare else "N"
    if annotation is Path:
        return "DIR" if "dir" in bare else "PATH"
    if "timeout" in bare:
        return "DURATION"
    return bare.upper().replace("-", "_")


def humanize(command: Any) -> None:
    """Metavars in words for every parameter of ``command`` and its sub-commands, and examples
    under each summary (in place)."""
    _metavars(command)
    add_examples(command)


def _metavars(command: Any) -> None:
    for param in getattr(command, "params", []):
        kind = getattr(param, "param_type_name", "")
        if kind == "option" and param.metavar is None and not (param.is_flag or param.count):
            name = max(param.opts, key=len)
            param.metavar = word_for(name, _annotation(param))
        elif kind == "argument":
            if param.metavar is None:
                word = word_for(param.name or "", _annotation(param))
                if param.nargs != 1 and not word.endswith("..."):
                    word += "..."
                param.metavar = word
            _plain_argument(param)
    for sub in getattr(command, "commands", {}).values():
        _metavars(sub)


def _plain_argument(param: Any) -> None:
    """An argument shows its metavar only: no ``<list[str]>`` after it, no ``{…}`` in the usage."""
    metavar = param.metavar

    def usage_name() -> str:
        return metavar if param.required else f"[{metavar}]"

    param.display_type_rich = lambda ctx: None
    param._usage_display_name = usage_name


#: command path -> its examples, shown right under the command's one-line summary in --help
EXAMPLES: dict[str, tuple[str, ...]] = {
    "submit": (
        "perianctl submit hello.pb -i name=Ada --wait",
        "perianctl submit train.py:train --cores 8 --accelerator-type A100 --timeout 2h --watch",
        "perianctl submit hello.pb --dry-run",
    ),
    "wait": ("perianctl wait --last", "perianctl wait ID1 ID2 --wait-timeout 30m --for succeeded -o json"),
    "watch": ("perianctl watch --last", "perianctl watch ID1 ID2", "perianctl watch --all -o json"),
    "get": ("perianctl get --last", "perianctl get ID -o json", "perianctl get ID --history"),
    "list": ("perianctl list", "perianctl list --status Running,Queued -n 50", "perianctl list --local"),
    "logs": ("perianctl logs --last --follow", "perianctl logs ID --tail 20"),
    "delete": ("perianctl delete ID --yes", "perianctl delete --last"),
    "cancel": ("perianctl cancel ID --yes",),
    "offers": (
        "perianctl offers --accelerator-type A100 --country-code DE",
        "perianctl offers --cores 8 --max-price-per-hour 1.5 -o json",
    ),
    "accelerators": ("perianctl accelerators", "perianctl accelerators -o json"),
    "billing": (
        "perianctl billing",
        "perianctl billing --since 2026-11-01 -o json",
        "perianctl billing --set-limit 500",
    ),
    "serve": (
        "perianctl serve --port 8000 --metrics-port 9090",
        "perianctl serve --sandbox --sandbox-runtime process --port 8000",
    ),
    "completion": (
        "source <(perianctl completion bash)",
        "perianctl completion fish > ~/.config/fish/completions/perianctl.fish",
    ),
    "connector": ("perianctl connector check localhost:8000",),
    "connector check": (
        "perianctl connector check localhost:8000",
        "perianctl connector check localhost:8000,localhost:8001 -s slow-create-9s --retries 2",
    ),
    "config": ("perianctl config init --org my-org --token-file ~/.perian-token", "perianctl config show"),
    "config path": ("perianctl config path",),
    "config init": (
        "perianctl config init --org my-org --token-file ~/.perian-token",
        "perianctl config init --name staging --api-url https://staging.example --org my-org --token-file -",
    ),
    "config show": ("perianctl config show", "perianctl --profile sandbox config show -o json"),
    "config set": ("perianctl config set output_prefix s3://bucket/runs", "perianctl config set token -  < token.txt"),
    "config use": ("perianctl config use sandbox",),
    "config list": ("perianctl config list",),
    "sandbox": ("perianctl sandbox start --runtime process", "perianctl sandbox status", "perianctl sandbox stop"),
    "sandbox run": ("perianctl sandbox run --runtime process --port 8080",),
    "sandbox start": (
        "perianctl sandbox start --runtime process",
        "perianctl sandbox start --state-dir /tmp/sb2 --port 8081 --no-write-profile",
    ),
    "sandbox stop": ("perianctl sandbox stop",),
    "sandbox status": ("perianctl sandbox status", "perianctl sandbox status -o json"),
    "sandbox impolite": ("perianctl sandbox impolite --show", "perianctl sandbox impolite create:503:2"),
    "version": ("perianctl version", "perianctl --profile sandbox version"),
}


def add_examples(command: Any, path: str = "") -> None:
    """Put each command's examples right under its one-line summary (in place)."""
    examples = EXAMPLES.get(path)
    if examples and getattr(command, "help", None) is not None and "Examples:" not in command.help:
        summary, _, rest = command.help.strip().partition("\n\n")
        block = "\b\nExamples:\n" + "\n".join(f"  {line}" for line in examples)
        command.help = f"{summary}\n\n{block}" + (f"\n\n{rest}" if rest else "")
        if getattr(command, "short_help", None) is None:
            command.short_help = summary.split("\n")[0]
    for name, sub in getattr(command, "commands", {}).items():
        add_examples(sub, f"{path} {name}".strip())
