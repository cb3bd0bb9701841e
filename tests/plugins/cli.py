"""Run the real ``perianctl`` entry point in a subprocess with an isolated config and state dir."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

CliRunner = Callable[..., "CliResult"]


@dataclass
class CliResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __repr__(self) -> str:  # shown by pytest on assertion failures
        return (
            f"CliResult(args={self.args!r}, rc={self.returncode},\n--- stdout ---\n{self.stdout}"
            f"\n--- stderr ---\n{self.stderr})"
        )


@dataclass
class CliEnv:
    """An isolated home for perianctl: its own config file and state dir."""

    root: Path

    @property
    def config_file(self) -> Path:
        return self.root / "config" / "config.toml"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("PERIAN", "_FSEC_"))}
        base.update(
            PERIANCTL_CONFIG=str(self.config_file),
            PERIANCTL_STATE_DIR=str(self.state_dir),
            NO_COLOR="1",
            COLUMNS="200",
            PYTHONUNBUFFERED="1",
        )
        return base


@pytest.fixture
def cli_env(tmp_path: Path) -> CliEnv:
    home = CliEnv(tmp_path / "perianctl-home")
    home.root.mkdir()
    return home


def run_perianctl(
    args: list[str],
    *,
    env: Mapping[str, str],
    input: str | None = None,
    timeout: float = 60,
    cwd: Path | None = None,
) -> CliResult:
    proc = subprocess.run(
        [sys.executable, "-m", "perianctl", *args],
        env=dict(env),
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )
    return CliResult(list(args), proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def run_cli(cli_env: CliEnv) -> CliRunner:
    """``run_cli("get", id, env={...extra}, input=..., timeout=...)`` → CliResult."""

    def runner(
        *args: str,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        timeout: float = 60,
        cwd: Path | None = None,
    ) -> CliResult:
        full = cli_env.env()
        full.update(env or {})
        return run_perianctl(list(args), env=full, input=input, timeout=timeout, cwd=cwd)

    return runner


def assert_one_line_error(result: CliResult, code: int) -> None:
    """The error contract: the documented exit code, an ``error:`` line, and no traceback."""
    assert result.returncode == code, result
    assert "Traceback" not in result.output, result
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) >= 1, result
