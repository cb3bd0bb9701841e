"""Config precedence, 0600 atomic writes, redaction and one-line errors, through the library.

Through the real CLI: tests/integration/test_config.py.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from perianctl.config import resolve, save_profile
from perianctl.errors import ConfigError
from tests.support.config import TOKEN, write_config


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
    threads = [
        threading.Thread(target=save_profile, args=(k, {"organization": k}), kwargs={"config_path": cfg}) for k in keys
    ]
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


def test_token_file_permissions_not_loosened(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    save_profile("a", {"token": TOKEN}, config_path=cfg)
    os.chmod(cfg, 0o644)  # a user loosened it; the next write must tighten it again
    save_profile("a", {"organization": "o"}, config_path=cfg)
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600


def test_an_integer_past_pythons_digit_limit_is_a_config_error(tmp_path: Path) -> None:
    """TOML's int() refuses more than 4,300 digits with a bare ValueError: a one-line ConfigError instead."""
    path = tmp_path / "config.toml"
    path.write_text('current_profile = "p"\n[profiles.p]\napi_url = "http://x"\nextra = ' + "9" * 5000 + "\n")
    with pytest.raises(ConfigError) as info:
        resolve(config_file=path, environ={})
    assert str(info.value) == f"config file {path}: a number has 5000 digits; at most 4300 can be read"
