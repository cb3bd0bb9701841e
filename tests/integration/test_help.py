"""Help that reads like a tool: examples first, metavars in words, formats as choices, the root
help in workflow order with a "get started" and the exit codes, and `perianctl version`; and help
served from the pre-rendered screens (perianctl.fasthelp) exactly as Typer prints it."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from perianctl import _help_text, fasthelp
from perianctl._completion_spec import SPEC
from perianctl.errors import ExitCode
from tests.plugins.cli import CliEnv, CliRunner, run_perianctl

REPO_ROOT = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_completions", REPO_ROOT / "scripts" / "gen_completions.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _paths(node: dict[str, Any], path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [path]
    for name, sub in node.get("commands", {}).items():
        out.extend(_paths(sub, (*path, name)))
    return out


COMMAND_PATHS = [p for p in _paths(SPEC) if p]


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=lambda p: " ".join(p))
def test_every_command_help_opens_with_examples_and_words(run_cli: CliRunner, path: tuple[str, ...]) -> None:
    r = run_cli(*path, "--help")
    assert r.returncode == 0, r
    text = r.stdout
    usage, _, body = text.partition("\n\n")
    assert "{" not in usage and "<" not in usage, usage
    paragraphs = [p for p in body.split("\n\n") if p.strip()]
    # The one-line summary, then the examples (1-3 of them, each a perianctl command line).
    assert paragraphs[1].strip().startswith("Examples:"), text
    examples = [line.strip() for line in paragraphs[1].splitlines()[1:]]
    assert 1 <= len(examples) <= 3, examples
    assert all("perianctl" in line for line in examples), examples
    # Metavars are words, never Python types.
    assert not re.search(r"<(int|float|str|path|bool|list\[[a-z]+\])( range)?>", text), text


def test_output_formats_are_shown_as_choices(run_cli: CliRunner) -> None:
    assert "-o, --output [table|wide|json|yaml|name]" in run_cli("get", "--help").stdout
    assert "-o, --output [table|json|yaml]" in run_cli("config", "show", "--help").stdout
    submit = run_cli("submit", "--help").stdout
    for words in ("-i, --input NAME=VALUE", "-e, --env KEY=VALUE", "--timeout DURATION", "--cores N"):
        assert words in submit, submit


def test_root_help_in_workflow_order_with_get_started_and_exit_codes(run_cli: CliRunner) -> None:
    text = run_cli("--help").stdout
    commands = text.split("Commands:", 1)[1]
    order = [
        line.split()[0]
        for line in commands.splitlines()
        if line.startswith("  ") and line.split() and not line.startswith("    ")
    ]
    wanted = ["submit", "wait", "watch", "get", "list", "logs", "delete", "offers", "serve", "sandbox", "config"]
    positions = [order.index(name) for name in wanted]
    assert positions == sorted(positions), order
    assert "Get started" in text and "perianctl sandbox start" in text
    codes = text.split("Exit codes:", 1)[1].split("Options:", 1)[0]
    for code, word in (
        ("0", "ok"),
        ("2", "bad input"),
        ("3", "job failed"),
        ("5", "timed out"),
        ("6", "auth"),
        ("7", "not found"),
        ("8", "API/network unavailable"),
        ("10", "declined"),
        ("130", "interrupted"),
    ):
        assert re.search(rf"\b{code} {word}", codes), codes
    for member in ExitCode:  # every documented code, a new one included
        assert re.search(rf"(^|\s){member.value} \w", codes), (member, codes)


def test_submit_help_says_what_submit_does_before_the_connector(run_cli: CliRunner) -> None:
    text = run_cli("submit", "--help").stdout
    body = text.split("\n\n", 1)[1]
    assert body.lstrip().startswith("Submit a Flyte task template")
    assert body.index("Examples:") < body.index("Loads the template") < body.index("With --connector")


@pytest.mark.parametrize("args", [("version",), ("-V",), ("--version",)])
def test_version_names_perianctl_flytekit_flyteidl_and_the_api_url(run_cli: CliRunner, args: tuple[str, ...]) -> None:
    r = run_cli(*args, env={"PERIAN_API_URL": "http://127.0.0.1:9"})
    assert r.returncode == 0, r
    from perianctl import __version__

    assert re.search(rf"^perianctl\s+{re.escape(__version__)}$", r.stdout, re.M), r
    assert re.search(rf"^flytekit\s+{re.escape(metadata.version('flytekit'))}$", r.stdout, re.M), r
    assert re.search(rf"^flyteidl\s+{re.escape(metadata.version('flyteidl'))}$", r.stdout, re.M), r
    assert re.search(r"^PERIAN API\s+http://127\.0\.0\.1:9$", r.stdout, re.M), r


def test_version_honours_the_profile_and_imports_no_flytekit(run_cli: CliRunner) -> None:
    for args in (
        ("version", "--api-url", "http://127.0.0.1:7"),
        ("--api-url", "http://127.0.0.1:7", "-V"),
        ("-V", "--api-url=http://127.0.0.1:7"),
    ):
        r = run_cli(*args)
        assert r.returncode == 0 and "http://127.0.0.1:7" in r.stdout, r
    r = run_cli("-V", "--profile", "nope")
    assert r.returncode == 0 and "unknown (profile 'nope' not found" in r.stdout, r
    r = run_cli("version", env={"PYTHONPROFILEIMPORTTIME": "1"})
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in r.stderr.splitlines() if "|" in line}
    assert "flytekit" not in imported and "grpc" not in imported, sorted(imported)
    assert sys.executable  # the CLI ran in this interpreter (run_cli)


# --------------------------------------------------------------------------- pre-rendered help


def _typer_renders(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """What the Typer app itself prints for ``perianctl ARGS`` (``perianctl.cli.main``, past the
    pre-rendered screens that ``python -m perianctl`` answers from)."""
    code = "import sys; from perianctl.cli import main; main(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=60)


def test_prerendered_help_is_what_typer_renders_for_this_checkout() -> None:
    """perianctl/_help_text.py is regenerated from the Typer app: a changed help text, option or
    command shows here (the CLI itself falls back to Typer meanwhile, see perianctl.fasthelp)."""
    generator = _generator()
    assert generator.HELP_FILE.read_text(encoding="utf-8") == generator.render_help(), (
        "perianctl/_help_text.py is stale: run `.venv/bin/python scripts/gen_completions.py` and commit it"
    )
    assert fasthelp.fingerprint() == _help_text.FINGERPRINT


@pytest.mark.parametrize(
    "args",
    [("--help",), ("-h",), ("get", "--help"), ("connector", "check", "-h"), ()],
    ids=lambda a: " ".join(a) or "no arguments",
)
def test_help_is_served_without_importing_typer_and_reads_as_typer_prints_it(
    cli_env: CliEnv, args: tuple[str, ...]
) -> None:
    env = cli_env.env()
    fast = run_perianctl(list(args), env={**env, "PYTHONPROFILEIMPORTTIME": "1"})
    imported = {line.rsplit("|", 1)[-1].strip() for line in fast.stderr.splitlines() if line.startswith("import time:")}
    assert "perianctl.fasthelp" in imported, "importtime printed nothing useful"
    assert not {name for name in imported if name.split(".")[0] in ("typer", "click", "pydantic", "rich")}, imported
    fast = run_perianctl(list(args), env=env)
    typer = _typer_renders(*args, env=env)
    assert (fast.stdout, fast.stderr, fast.returncode) == (typer.stdout, typer.stderr, typer.returncode)
    assert "Usage: perianctl" in fast.output and fast.returncode == 0


@pytest.mark.parametrize("args", [("get", "SOME-ID", "--help"), ("-q", "--help")])
def test_other_help_requests_are_rendered_by_typer(cli_env: CliEnv, args: tuple[str, ...]) -> None:
    env = {**cli_env.env(), "PYTHONPROFILEIMPORTTIME": "1"}
    r = run_perianctl(list(args), env=env)
    assert r.returncode == 0 and r.stdout.startswith("Usage: perianctl"), r
    assert "typer" in {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines()}, r.stderr[-500:]


def test_help_in_a_narrow_terminal_is_wrapped_to_it(cli_env: CliEnv) -> None:
    """Stored screens are 80 columns wide; a narrower terminal gets Typer's own wrapping."""
    env = {**cli_env.env(), "COLUMNS": "60"}
    fast = run_perianctl(["submit", "--help"], env=env)
    assert fast.returncode == 0, fast
    stored = _help_text.TEXTS[_help_text.ANSWERS[("submit", "--help")][0]]
    assert fast.stdout != stored and "Show this message and\n" in fast.stdout, fast.stdout
    assert fast.stdout == _typer_renders("submit", "--help", env=env).stdout
