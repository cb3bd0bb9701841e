"""Config precedence, 0600 atomic writes, redaction and one-line errors, through the real CLI."""

from __future__ import annotations

import json
import stat

from tests.plugins.cli import CliEnv, CliRunner, assert_one_line_error
from tests.support.config import TOKEN, write_config


def test_config_cli_round_trip_redacts_token(run_cli: CliRunner, cli_env: CliEnv) -> None:
    r = run_cli(
        "--org", "acme", "--api-url", "http://127.0.0.1:9999", "--token-file", "-", "config", "init", input=TOKEN + "\n"
    )
    assert r.returncode == 0, r
    assert stat.S_IMODE(cli_env.config_file.stat().st_mode) == 0o600
    assert TOKEN in cli_env.config_file.read_text()

    r = run_cli("config", "show", "-o", "json")
    assert r.returncode == 0, r
    shown = json.loads(r.stdout)
    assert shown["settings"]["token"]["value"] == "***"
    assert shown["settings"]["organization"] == {"value": "acme", "source": f"profile default ({cli_env.config_file})"}
    assert TOKEN not in r.output

    r = run_cli("config", "show")
    assert TOKEN not in r.output and "***" in r.stdout

    r = run_cli("config", "set", "token", input="second-token-value\n")
    assert r.returncode == 0 and "second-token-value" not in r.output
    r = run_cli("--profile", "default", "config", "set", "organization", "other")
    assert r.returncode == 0, r
    r = run_cli("config", "show", "-o", "json", env={"PERIAN_ORGANIZATION": "from-env"})
    expected = {"value": "from-env", "source": "env PERIAN_ORGANIZATION"}
    assert json.loads(r.stdout)["settings"]["organization"] == expected

    r = run_cli("config", "path")
    assert r.stdout.strip() == str(cli_env.config_file)

    assert_one_line_error(run_cli("config", "use", "ghost"), 2)
    assert_one_line_error(run_cli("config", "set", "colour", "blue"), 2)
    assert_one_line_error(run_cli("config", "set", "api_url", "not a url"), 2)
    assert_one_line_error(run_cli("config", "init"), 2)  # exists already, no --force
    r = run_cli("--org", "o2", "config", "init", "--name", "second")
    assert r.returncode == 0, r
    r = run_cli("config", "use", "default")
    assert r.returncode == 0, r


def test_missing_credentials_and_bad_config_via_cli(run_cli: CliRunner, cli_env: CliEnv) -> None:
    r = run_cli("get", "3f2c1a4e-0b1d-4c5e-9f00-1234567890ab")
    assert_one_line_error(r, 2)
    assert "no PERIAN organization or token" in r.stderr

    write_config(cli_env.config_file, "garbage [[[")
    r = run_cli("get", "3f2c1a4e-0b1d-4c5e-9f00-1234567890ab")
    assert_one_line_error(r, 2)
    assert "not valid TOML" in r.stderr

    r = run_cli("--token-file", str(cli_env.root / "missing"), "get", "--last")
    assert_one_line_error(r, 2)
