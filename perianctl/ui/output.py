"""Output formats shared by every read command: table, wide, json, yaml, name.

Machine formats go straight to stdout with the standard library (no rich import); tables use rich.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from perianctl.ui.console import out_console, write_out

if TYPE_CHECKING:
    from perianctl.ui.tables import Fit


class OutputFormat(StrEnum):
    table = "table"
    wide = "wide"
    json = "json"
    yaml = "yaml"
    name = "name"


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False, default=str)


def dump_yaml(data: Any) -> str:
    import yaml

    # libyaml's emitter: same output as safe_dump, ~60x faster on a job with megabytes of logs.
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(data, Dumper=dumper, sort_keys=False, allow_unicode=True)


def emit_data(data: Any, fmt: OutputFormat) -> None:
    if fmt is OutputFormat.yaml:
        write_out(dump_yaml(data))
    else:
        write_out(dump_json(data))


def emit_table(
    columns: Sequence[str], rows: Sequence[Sequence[str]], *, title: str | None = None, fit: Fit | None = None
) -> None:
    """A table on stdout: fitted to a terminal (ids whole, other columns give way), whole and
    unpadded when piped (:mod:`perianctl.ui.tables`)."""
    from perianctl.ui.tables import DEFAULT_FIT, print_table

    print_table(out_console(), columns, rows, fit=fit or DEFAULT_FIT, title=title)


def parse_format(value: str, *, allowed: Sequence[OutputFormat] | None = None) -> OutputFormat:
    """``-o`` value → format, or a usage error naming the choices."""
    from perianctl.errors import UsageError

    choices = list(allowed or OutputFormat)
    try:
        fmt = OutputFormat(value.lower())
    except ValueError:
        fmt = None
    if fmt is None or fmt not in choices:
        raise UsageError(f"invalid output format '{value}' (choose: {', '.join(f.value for f in choices)})")
    return fmt
