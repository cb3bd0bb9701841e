"""Help that reads like a tool: examples first, metavars in words, formats as choices, the root
help in workflow order with a "get started" and the exit codes, and `perianctl version`."""

from __future__ import annotations

import re
import sys
from importlib import metadata

import pytest

from perianctl._completion_spec import SPEC
from perianctl.errors import ExitCode
from tests.plugins.cli import CliRunner


def _paths(node: dict, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:  # type: ignore[type-arg]
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
    order = [line.split()[0] for line in commands.splitlines() if line.startswith("  ") and line.split()
             and not line.startswith("    ")]
    wanted = ["submit", "wait", "watch", "get", "list", "logs", "delete", "offers", "serve", "sandbox", "config"]
    positions = [order.index(name) for name in wanted]
    assert positions == sorted(positions), order
    assert "Get started" in text and "perianctl sandbox start" in text
    codes = text.split("Exit codes:", 1)[1].split("Options:", 1)[0]
    for code, word in (("0", "ok"), ("2", "bad input"), ("3", "job failed"), ("5", "timed out"), ("6", "auth"),
                       ("7", "not found"), ("8", "API/network unavailable"), ("10", "declined"),
                       ("130", "interrupted")):
        assert re.search(rf"\b{code} {word}", codes), codes
    for member in ExitCode:  # every documented code, a new one included
        assert re.search(rf"(^|\s){member.value} \w", codes), (member, codes)


def test_submit_help_says_what_submit_does_before_the_connector(run_cli: CliRunner) -> None:
    text = run_cli("submit", "--help").stdout
    body = text.split("\n\n", 1)[1]
    assert body.lstrip().startswith("Submit a Flyte task template")
    assert body.index("Examples:") < body.index("Loads the template") < body.index("With --connector")


@pytest.mark.parametrize("args", [("version",), ("-V",), ("--version",)])
def test_version_names_perianctl_flytekit_flyteidl_and_the_api_url(run_cli: CliRunner,
                                                                  args: tuple[str, ...]) -> None:
    r = run_cli(*args, env={"PERIAN_API_URL": "http://127.0.0.1:9"})
    assert r.returncode == 0, r
    from perianctl import __version__

    assert re.search(rf"^perianctl\s+{re.escape(__version__)}$", r.stdout, re.M), r
    assert re.search(rf"^flytekit\s+{re.escape(metadata.version('flytekit'))}$", r.stdout, re.M), r
    assert re.search(rf"^flyteidl\s+{re.escape(metadata.version('flyteidl'))}$", r.stdout, re.M), r
    assert re.search(r"^PERIAN API\s+http://127\.0\.0\.1:9$", r.stdout, re.M), r


def test_version_honours_the_profile_and_imports_no_flytekit(run_cli: CliRunner) -> None:
    for args in (("version", "--api-url", "http://127.0.0.1:7"), ("--api-url", "http://127.0.0.1:7", "-V"),
                 ("-V", "--api-url=http://127.0.0.1:7")):
        r = run_cli(*args)
        assert r.returncode == 0 and "http://127.0.0.1:7" in r.stdout, r
    r = run_cli("-V", "--profile", "nope")
    assert r.returncode == 0 and "unknown (profile 'nope' not found" in r.stdout, r
    r = run_cli("version", env={"PYTHONPROFILEIMPORTTIME": "1"})
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in r.stderr.splitlines() if "|" in line}
    assert "flytekit" not in imported and "grpc" not in imported, sorted(imported)
    assert sys.executable  # the CLI ran in this interpreter (run_cli)
