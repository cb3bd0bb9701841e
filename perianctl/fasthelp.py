"""``--help`` answered without importing Typer: the help screens, rendered ahead of time.

Building the Typer app to print its help costs ~100 ms (typer, click, pydantic and every command
module), four times the interpreter's own start-up; ``perianctl --help`` and ``perianctl CMD -h``
are typed far more often than the app changes. So ``scripts/gen_completions.py`` runs the real CLI
(:func:`perianctl.cli.main`) for every command path with ``--help`` and ``-h`` (and a group with no
arguments, which prints its help too) and writes what it printed, with the exit code, into
:mod:`perianctl._help_text`. ``perianctl.__main__`` asks :func:`answer` first and prints the
stored text when the arguments are exactly one of those, byte for byte what Typer prints.

It falls back to Typer (same output, just slower) whenever the stored text could differ:

* the arguments are anything else (``get ID --help``, a global option in front, a typo);
* the terminal is narrower than 80 columns (click wraps help to ``min(columns, 80) - 2``; the
  texts are rendered at 80 or more, where the width is always 78);
* the sources the help comes from (``cli.py`` and ``commands/*.py``) are not the ones it was
  rendered from -- a fingerprint of their bytes is stored with the texts, so a command changed
  without regenerating never shows stale help (and ``tests/integration/test_help.py`` fails until
  ``scripts/gen_completions.py`` is run);
* stdout cannot take the text as it is (not UTF-8, and the text is not plain ASCII).

Standard library only, and only what the interpreter has loaded anyway (``os``, ``sys``) plus
``zlib``; keep it that way.
"""

from __future__ import annotations

import os
import sys

WIDTH_COLUMNS = 80
"""The texts hold for a terminal at least this wide (click caps help at 80 columns)."""


def source_files() -> list[str]:
    """The files the help screens are built from, in a stable order."""
    package = os.path.dirname(os.path.abspath(__file__))
    commands = os.path.join(package, "commands")
    names = sorted(name for name in os.listdir(commands) if name.endswith(".py"))
    return [os.path.join(package, "cli.py"), *(os.path.join(commands, name) for name in names)]


def fingerprint() -> str:
    """CRC-32 and total size of :func:`source_files`' bytes (line endings as stored): cheap, and enough
    to notice an edit -- this guards against a forgotten regeneration, not against an adversary."""
    import zlib

    crc, size = 0, 0
    for path in source_files():
        with open(path, "rb") as handle:
            data = handle.read()
        crc = zlib.crc32(os.path.basename(path).encode() + b"\0" + data, crc)
        size += len(data)
    return f"{crc:08x}-{size}"


def _columns() -> int:
    """The terminal width as :func:`shutil.get_terminal_size` (which click uses) reports it."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
        columns = columns or 80
    return columns


def answer(args: list[str]) -> tuple[str, str, int] | None:
    """(stdout, stderr, exit code) that the CLI gives for ``args``, if it is a stored help screen."""
    if len(args) > 4 or any(arg.startswith("-") for arg in args[:-1]):
        return None  # cheap refusal before the table is loaded: not a help request
    from perianctl import _help_text

    found = _help_text.ANSWERS.get(tuple(args))
    if found is None or _columns() < WIDTH_COLUMNS:
        return None
    try:
        if fingerprint() != _help_text.FINGERPRINT:
            return None
    except OSError:  # no sources to compare (a zip or byte-code-only install): Typer renders it
        return None
    out, err, code = _help_text.TEXTS[found[0]], _help_text.TEXTS[found[1]], found[2]
    for text, stream in ((out, sys.stdout), (err, sys.stderr)):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "").replace("_", "")
        if text and not text.isascii() and encoding != "utf8":
            return None
    return out, err, code


def serve(args: list[str]) -> None:
    """Print the stored help for ``args`` and exit, or return when there is none (see the module doc)."""
    found = answer(args)
    if found is None:
        return
    out, err, code = found
    try:
        if out:
            sys.stdout.write(out)
            sys.stdout.flush()
        if err:
            sys.stderr.write(err)
            sys.stderr.flush()
    except BrokenPipeError:
        # `perianctl --help | head -1`: the reader went away; not an error (as in perianctl.cli.main).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 0
    sys.exit(code)


# ------------------------------------------------------------------ generation (imports the CLI)


def _candidates() -> list[tuple[str, ...]]:
    """Every argument list that asks for help: each command path with ``--help`` and ``-h``, and
    each group (the root included) on its own."""
    import typer.main

    from perianctl.cli import build_app

    out: list[tuple[str, ...]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        out.extend([(*path, "--help"), (*path, "-h")])
        subs: dict[str, object] = getattr(command, "commands", {})
        if subs:
            out.append(path)
        for name in sorted(subs):
            walk(subs[name], (*path, name))

    walk(typer.main.get_command(build_app()), ())
    return out


def _run(args: tuple[str, ...]) -> tuple[str, str, int]:
    """What ``perianctl ARGS`` prints and returns, run in this process through the real entry point."""
    import contextlib
    import io

    from perianctl.cli import main

    out, err = io.StringIO(), io.StringIO()
    code: object = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code
    return out.getvalue(), err.getvalue(), code if isinstance(code, int) else 1


def render_module() -> str:
    """The text of :mod:`perianctl._help_text` for this checkout (run with ``COLUMNS`` >= 80)."""
    import pprint

    if _columns() < WIDTH_COLUMNS:
        raise RuntimeError(f"render the help at {WIDTH_COLUMNS} columns or more (COLUMNS={_columns()})")
    texts: list[str] = [""]
    answers: dict[tuple[str, ...], tuple[int, int, int]] = {}
    for args in _candidates():
        out, err, code = _run(args)
        if code != 0 or not (out or err):
            continue  # not a help screen (a group that wants a command, an option that is not -h)
        for text in (out, err):
            if text not in texts:
                texts.append(text)
        answers[args] = (texts.index(out), texts.index(err), code)
    return (
        '"""Help screens of perianctl, as the CLI prints them at 80 columns or more (see perianctl.fasthelp).\n\n'
        'Generated by scripts/gen_completions.py from the Typer app; do not edit.\n"""\n'
        "\n"
        f"FINGERPRINT = {fingerprint()!r}\n\n"
        f"TEXTS: tuple[str, ...] = {pprint.pformat(tuple(texts), width=120)}\n\n"
        f"ANSWERS: dict[tuple[str, ...], tuple[int, int, int]] = {pprint.pformat(answers, width=120)}\n"
    )
