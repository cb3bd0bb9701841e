"""Config precedence, 0600 atomic writes, redaction and one-line errors, through the real CLI."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from perianctl.config import resolve, save_profile
from perianctl.errors import ConfigError
from tests.plugins.cli import CliEnv, CliRunner, assert_one_line_error

TOKEN = "tok-Zq81-very-secret-value"


def write_config(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_precedence_flag_over_env_over_profile_over_default(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    write_config(
        cfg,
        'current_profile = "a"\n[profiles.a]\napi_url = "http://profile.example:1"\norganization = "p-org"\n'
        'token = "p-tok"\n[profiles.b]\norganization = "b-org"\n',
    )
    env = {"PERIANCTL_CONFIG": str(cfg)}
    s = resolve(environ=env)
    assert (s.profile, s.api_url, s.organization, s.token) == ("a", "http://profile.example:1", "p-org", "p-tok")
    assert s.sources["organization"].startswith("profile a")

    s = resolve(environ={**env, "PERIAN_ORGANIZATION": "env-org", "PERIAN_API_URL": "http://env.example:2"})
    assert (s.organization, s.api_url) == ("env-org", "http://env.example:2")
    assert s.sources["organization"] == "env PERIAN_ORGANIZATION"

    s = resolve(environ={**env, "PERIAN_ORGANIZATION": "env-org"}, flags={"organization": "flag-org"})
    assert s.organization == "flag-org" and s.sources["organization"] == "flag"

    s = resolve(environ={**env, "PERIANCTL_PROFILE": "b"})
    assert (s.profile, s.organization, s.api_url) == ("b", "b-org", "https://api.perian.cloud")
    assert s.sources.get("api_url") is None

    s = resolve(environ=env, profile="b")
    assert s.organization == "b-org"


def test_unknown_profile_and_bad_files_are_one_line_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    write_config(cfg, "[profiles.a]\norganization='x'\n")
    with pytest.raises(ConfigError, match="profile 'nope' not found"):
        resolve(environ={"PERIANCTL_CONFIG": str(cfg)}, profile="nope")
    for text, pattern in [
        ("this is = = not toml", "not valid TOML"),
        ("[profiles.a]\nbogus = 'x'\n", "unknown key 'bogus'"),
        ("[profiles.a]\ntoken = 5\n", "must be a string"),
        ("profiles = 3\n", "must be tables"),
        ("current_profile = 3\n", "current_profile must be a string"),
        ("[profiles.a]\napi_url = 'ftp://x'\n", "invalid API URL"),
    ]:
        write_config(cfg, text)
        with pytest.raises(ConfigError, match=pattern):
            resolve(environ={"PERIANCTL_CONFIG": str(cfg)}, profile="a" if "profiles.a" in text else None)


def test_save_profile_is_0600_atomic_and_serialised(tmp_path: Path) -> None:
    cfg = tmp_path / "dir" / "config.toml"
    save_profile("p", {"organization": "o", "token": TOKEN}, config_path=cfg)
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
    # Concurrent writers of different keys never lose an update.
    keys = [f"prof{i}" for i in range(16)]
    threads = [threading.Thread(target=save_profile, args=(k, {"organization": k}), kwargs={"config_path": cfg})
               for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = resolve(environ={"PERIANCTL_CONFIG": str(cfg)}, profile="prof7")
    assert s.organization == "prof7"
    from perianctl.config import read_config_file

    data = read_config_file(cfg)
    assert set(keys) | {"p"} == set(data["profiles"])
    assert not [p for p in cfg.parent.iterdir() if p.name.startswith(".config.toml.")], "temp files left behind"


def test_config_cli_round_trip_redacts_token(run_cli: CliRunner, cli_env: CliEnv) -> None:
    r = run_cli("--org", "acme", "--api-url", "http://127.0.0.1:9999", "--token-file", "-", "config", "init",
                input=TOKEN + "\n")
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


def test_token_file_permissions_not_loosened(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    save_profile("a", {"token": TOKEN}, config_path=cfg)
    os.chmod(cfg, 0o644)  # a user loosened it; the next write must tighten it again
    save_profile("a", {"organization": "o"}, config_path=cfg)
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
