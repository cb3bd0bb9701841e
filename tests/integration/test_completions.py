"""completions/ and perianctl/_completion_spec.py: committed files match what this checkout generates,
and they complete.

The scripts delegate to ``perianctl`` at completion time, which answers from the spec (the app's
commands, options and static values); a new command or option needs a regeneration. When the
first test fails, run ``.venv/bin/python scripts/gen_completions.py`` and commit the result.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.completions import BIN_DIR, COMPLETIONS, REPO_ROOT


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_completions", REPO_ROOT / "scripts" / "gen_completions.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("_PERIANCTL", "_TYPER", "COMP_", "PERIAN"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def _complete(**protocol: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "perianctl"],
        env=_env(**protocol),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_committed_completions_match_the_app(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    generator = _generator()
    assert generator.main(["--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert generator.SPEC_FILE.read_text(encoding="utf-8") == generator.render_spec(), (
        "perianctl/_completion_spec.py is stale: run `.venv/bin/python scripts/gen_completions.py` and commit it"
    )
    fresh = {p.name: p.read_text(encoding="utf-8") for p in tmp_path.iterdir()}
    assert set(fresh) == {"perianctl.bash", "_perianctl", "perianctl.fish"}
    committed = {p.name: p.read_text(encoding="utf-8") for p in COMPLETIONS.iterdir() if p.is_file()}
    stale = sorted(name for name in fresh.keys() | committed.keys() if fresh.get(name) != committed.get(name))
    assert not stale, (
        f"completions/ is stale ({', '.join(stale)}): run `.venv/bin/python scripts/gen_completions.py` "
        "and commit the result"
    )


def test_bash_protocol_offers_submit() -> None:
    assert "submit" in _complete(COMP_WORDS="perianctl su", COMP_CWORD="1", _PERIANCTL_COMPLETE="complete_bash")


def test_bash_protocol_completes_subcommands_and_options() -> None:
    top = _complete(COMP_WORDS="perianctl ", COMP_CWORD="1", _PERIANCTL_COMPLETE="complete_bash")
    assert {"get", "list", "delete", "logs", "config"} <= set(top)
    options = _complete(COMP_WORDS="perianctl submit --output", COMP_CWORD="2", _PERIANCTL_COMPLETE="complete_bash")
    assert {"--output", "--output-prefix"} <= set(options)


def test_zsh_and_fish_protocols_offer_submit() -> None:
    zsh = "\n".join(_complete(_TYPER_COMPLETE_ARGS="perianctl su", _PERIANCTL_COMPLETE="complete_zsh"))
    # One candidate a line, VALUE:DESCRIPTION (':' in a value escaped), read by `_describe`.
    assert any(line.startswith("submit:Submit ") for line in zsh.splitlines()), zsh
    fish = _complete(
        _TYPER_COMPLETE_ARGS="perianctl su", _TYPER_COMPLETE_FISH_ACTION="get-args", _PERIANCTL_COMPLETE="complete_fish"
    )
    assert any(line.split("\t")[0] == "submit" for line in fish)


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_committed_bash_script_completes_in_bash() -> None:
    """Source the committed file in a real bash and let its function ask the installed program."""
    if not (BIN_DIR / "perianctl").exists():
        pytest.skip(f"no perianctl console script next to {sys.executable} (pip install -e . first)")
    script = (
        f'source "{COMPLETIONS / "perianctl.bash"}"\n'
        "complete -p perianctl >/dev/null || exit 9\n"
        "COMP_WORDS=(perianctl su); COMP_CWORD=1; _perianctl_completion perianctl\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
        'COMP_WORDS=(perianctl config ""); COMP_CWORD=2; _perianctl_completion perianctl\n'
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = _env(PATH=f"{BIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    words = proc.stdout.split()
    assert "submit" in words
    assert {"init", "show", "set", "use"} <= set(words)
