"""Print the shell completion script for bash, zsh or fish.

Completes commands, options and their values: job ids (the newest from the journal, with their
status), output formats, statuses, runtimes, profiles and config keys.
"""

from __future__ import annotations

from typing import Annotated

import typer


def completion(
    shell: Annotated[str, typer.Argument(metavar="SHELL", help="bash, zsh or fish.",
                                         autocompletion=lambda: ["bash", "zsh", "fish"])],
) -> None:
    from perianctl.completion import SCRIPTS
    from perianctl.errors import UsageError

    if shell not in SCRIPTS:
        raise UsageError(f"unknown shell '{shell}'", hint="choose bash, zsh or fish")
    typer.echo(SCRIPTS[shell], nl=False)
