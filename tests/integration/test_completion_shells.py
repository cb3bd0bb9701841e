"""Completion in the real shells: bash, zsh and fish run interactively in a pty, with the committed
scripts from completions/ sourced, and a TAB pressed after a partial command line.

What is asserted is what the shell offers: job ids from the journal (newest first, with their
status as the description in zsh and fish), output formats, statuses, runtimes, profiles, config
keys, connector protocols -- and descriptions that keep their quotes in zsh.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.plugins.cli import CliEnv
from tests.plugins.sandbox import SandboxHandle

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPLETIONS = REPO_ROOT / "completions"
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][A-Za-z0-9]|\x1b[=>]|\x1b\][^\x07]*\x07|\r")

JOBS = {
    "4f0c2a1e-7b1d-4c55-9a51-0f6f2d0b9e11": ("Done", "train 'small' \"fast\""),
    "4f9d7e20-1111-4c55-9a51-0f6f2d0b9e12": ("Running", "eval"),
    "a1b2c3d4-2222-4c55-9a51-0f6f2d0b9e13": ("UserError", "broken"),
}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """An isolated HOME with a journal of three jobs, two profiles and a `perianctl` on PATH."""
    root = tmp_path_factory.mktemp("completion-home")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    launcher = bin_dir / "perianctl"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m perianctl "$@"\n')
    launcher.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERIAN", "_PERIANCTL", "_TYPER", "COMP_"))}
    env.update(
        HOME=str(root),
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p),
        PERIANCTL_CONFIG=str(root / "config.toml"),
        PERIANCTL_STATE_DIR=str(root / "state"),
        XDG_CONFIG_HOME=str(root / "xdg"),
        XDG_DATA_HOME=str(root / "xdg-data"),
        TERM="xterm",
        LANG="C.UTF-8",
    )
    # The journal and config are written through perianctl's own modules, as submit and config init do.
    saved = {k: os.environ.get(k) for k in ("PERIANCTL_STATE_DIR", "PERIANCTL_CONFIG")}
    os.environ.update(PERIANCTL_STATE_DIR=env["PERIANCTL_STATE_DIR"], PERIANCTL_CONFIG=env["PERIANCTL_CONFIG"])
    try:
        from perianctl.config import save_profile
        from perianctl.journal import open_journal

        with open_journal() as journal:
            for job_id, (status, name) in JOBS.items():
                journal.record_submission(job_id, name=name, image="ubuntu:22.04")
                journal.observe(job_id, status)
        save_profile("sandbox", {"api_url": "http://127.0.0.1:8080", "organization": "sandbox"})
        save_profile("prod", {"api_url": "https://api.perian.cloud", "organization": "acme"}, make_current=True)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    yield env


class Shell:
    """One interactive shell in a pty, with perianctl's completion loaded."""

    def __init__(self, name: str, env: dict[str, str]) -> None:
        if shutil.which(name) is None:
            pytest.fail(f"{name} is not installed (.ci/run installs bash, zsh and fish)")
        self.name = name
        self.cases = 0
        fish_setup = f"source {COMPLETIONS / 'perianctl.fish'}; function fish_prompt; echo -n 'READY> '; end"
        # fish gets its set-up as an init command: a line typed before fish has set up its terminal can be
        # lost with the shell (seen on a loaded box: EOF right after the echo), so nothing is typed early.
        argv = {
            "bash": ["--norc", "--noprofile", "-i"],
            "zsh": ["-f", "-i"],
            "fish": ["--no-config", "-i", "-C", fish_setup],
        }[name]
        setup = {
            "bash": f"source {COMPLETIONS / 'perianctl.bash'}; bind 'set show-all-if-ambiguous on'; "
            "bind 'set completion-query-items 0'; bind 'set page-completions off'; PS1='READY> '",
            "zsh": f"autoload -Uz compinit; compinit -u -D; source {COMPLETIONS / '_perianctl'}; "
            "unsetopt beep; PS1='READY> '",
            "fish": "true",
        }[name]
        # A shell that dies while it starts (EOF before it ran the set-up line: seen about once per
        # thousand starts on a loaded box, for zsh and fish alike) says nothing about completion: start
        # another, at most three times, and fail with what the shells showed if none comes up.
        died: list[str] = []
        for _ in range(3):
            self.child = pexpect.spawn(
                name,
                argv,
                env={**env, "PS1": "READY> "},
                dimensions=(50, 220),
                encoding="utf-8",
                codec_errors="replace",
                timeout=30,
                cwd=str(REPO_ROOT),
            )
            try:
                if name == "fish":
                    self.child.expect("READY> ")
                self.child.sendline(setup + "; echo SETUP''DONE")
                self.child.expect("SETUPDONE")
                self.child.expect("READY> ")
                return
            except pexpect.EOF:
                died.append(str(self.child.before))
                self.child.close(force=True)
        raise AssertionError(f"{name} died at start-up three times; it showed: {died}")

    def tab(self, line: str, settle: str) -> str:
        """Type ``line``, press TAB, wait until ``settle`` shows up, and return the screen text seen."""
        self.child.send(line)
        seen = ""
        # A shell first inserts a common prefix (zsh: `--protocol v`); a second TAB lists, as for a user.
        for attempt in range(3):
            self.child.send("\t")
            try:
                self.child.expect(settle, timeout=10 if attempt < 2 else 30)
                break
            except pexpect.TIMEOUT:
                seen += ANSI.sub("", self.child.before or "")
        else:
            raise AssertionError(f"{self.name}: {line!r}<TAB> never showed {settle!r}; saw:\n{seen}")
        seen += ANSI.sub("", (self.child.before or "") + (self.child.after or ""))
        # Abandon the line (Ctrl-C); everything the shell drew until the next prompt is part of the answer.
        # The shell redraws the prompt after a listing, so wait for a marker echoed after the Ctrl-C.
        self.child.send("\x03")
        self.cases += 1
        self.child.sendline(f"echo CASE''{self.cases}''DONE")
        self.child.expect(f"CASE{self.cases}DONE")
        seen += ANSI.sub("", self.child.before or "")
        self.child.expect("READY> ")
        return seen

    def close(self) -> None:
        self.child.sendline("exit")
        self.child.close(force=True)


@pytest.fixture(params=["bash", "zsh", "fish"])
def shell(request: pytest.FixtureRequest, home: dict[str, str]) -> Iterator[Shell]:
    sh = Shell(request.param, home)
    yield sh
    sh.close()


def test_job_ids_from_the_journal(shell: Shell) -> None:
    seen = shell.tab("perianctl get ", "a1b2c3d4")
    for job_id in JOBS:
        assert job_id in seen, seen
    if shell.name != "bash":  # bash shows no descriptions
        assert "UserError" in seen and "Running" in seen, seen


def test_a_unique_id_prefix_completes_in_place(shell: Shell) -> None:
    seen = shell.tab("perianctl logs a1", "0f6f2d0b9e13")
    assert "a1b2c3d4-2222-4c55-9a51-0f6f2d0b9e13" in seen


def test_output_formats(shell: Shell) -> None:
    seen = shell.tab("perianctl list -o ", "yaml")
    for fmt in ("table", "wide", "json", "yaml", "name"):
        assert fmt in seen, seen


def test_statuses_after_a_comma(shell: Shell) -> None:
    seen = shell.tab("perianctl list --status done,User", "UserError")
    assert "done,UserError" in seen, seen


def test_runtimes_profiles_config_keys_protocols(shell: Shell) -> None:
    seen = shell.tab("perianctl sandbox start --runtime ", "docker")
    assert "simulate" in seen and "process" in seen, seen
    seen = shell.tab("perianctl --profile ", "sandbox")
    assert "prod" in seen, seen
    seen = shell.tab("perianctl config set ", "api_timeout")
    assert "organization" in seen and "output_prefix" in seen, seen
    seen = shell.tab("perianctl serve --protocol ", "v2")
    assert "v1" in seen, seen


def test_zsh_descriptions_keep_their_quotes(home: dict[str, str]) -> None:
    sh = Shell("zsh", home)
    try:
        seen = sh.tab("perianctl get 4f0", "fast")
    finally:
        sh.close()
    assert "train 'small' \"fast\"" in seen, seen


def test_a_tab_answers_without_importing_typer(home: dict[str, str]) -> None:
    import subprocess

    env = {**home, "_PERIANCTL_COMPLETE": "complete_fish", "_TYPER_COMPLETE_ARGS": "perianctl get "}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "perianctl"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert all(job_id in proc.stdout for job_id in JOBS)
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in proc.stderr.splitlines()}
    assert not imported & {"typer", "click", "httpx", "flytekit", "grpc", "rich"}, sorted(imported)


def test_a_job_not_in_the_journal_is_completed_from_the_api(sandbox: SandboxHandle, cli_env: CliEnv) -> None:
    import subprocess

    job_id = sandbox.create_job("echo hi")  # created through the API, never journaled here
    env = {
        **cli_env.env(),
        **sandbox.env(),
        "_PERIANCTL_COMPLETE": "complete_fish",
        "_TYPER_COMPLETE_ARGS": f"perianctl get {job_id[:6]}",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "perianctl"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\t")[0] == job_id, proc.stdout
    assert sandbox.token not in proc.stdout + proc.stderr
