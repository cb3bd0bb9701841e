"""When the pre-rendered help may answer (perianctl.fasthelp.answer) and when Typer must."""

from __future__ import annotations

from pathlib import Path

import pytest

from perianctl import _help_text, fasthelp


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


def test_root_and_command_help_are_answered() -> None:
    out, err, code = fasthelp.answer(["--help"]) or ("", "", -1)
    assert out.startswith("Usage: perianctl [OPTIONS] COMMAND [ARGS]...") and err == "" and code == 0
    assert fasthelp.answer(["-h"]) == fasthelp.answer(["--help"])
    out, _, _ = fasthelp.answer(["sandbox", "start", "-h"]) or ("", "", -1)
    assert out.startswith("Usage: perianctl sandbox start [OPTIONS]")


def test_no_arguments_prints_the_root_help_on_stderr() -> None:
    out, err, code = fasthelp.answer([]) or ("-", "", -1)
    assert out == "" and err.startswith("Usage: perianctl [OPTIONS]") and code == 0


@pytest.mark.parametrize(
    "args",
    [
        ["get", "SOME-ID", "--help"],
        ["-q", "--help"],
        ["--help", "-q"],
        ["nope", "--help"],
        ["get"],
        ["--version"],
        ["get --help"],
    ],
)
def test_anything_else_is_left_to_typer(args: list[str]) -> None:
    assert fasthelp.answer(args) is None


@pytest.mark.parametrize("columns", ["79", "40"])
def test_a_narrower_terminal_is_left_to_typer(monkeypatch: pytest.MonkeyPatch, columns: str) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    assert fasthelp.answer(["--help"]) is None


def test_sources_changed_since_rendering_are_left_to_typer(monkeypatch: pytest.MonkeyPatch) -> None:
    assert fasthelp.answer(["--help"]) is not None
    monkeypatch.setattr(_help_text, "FINGERPRINT", "00000000-0")
    assert fasthelp.answer(["--help"]) is None


def test_the_fingerprint_covers_the_cli_and_every_command_module() -> None:
    names = [path.rsplit("/", 1)[-1] for path in fasthelp.source_files()]
    assert names[0] == "cli.py" and {"get.py", "submit.py", "helpfmt.py", "common.py"} <= set(names)


def test_without_the_sources_to_compare_typer_renders_the_help(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A zip or byte-code-only install has no command sources to fingerprint: no stored screens then."""
    monkeypatch.setattr(fasthelp, "source_files", lambda: [str(tmp_path / "cli.py")])
    assert fasthelp.answer(["--help"]) is None
