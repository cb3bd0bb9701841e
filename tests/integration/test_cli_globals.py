"""Global options (--profile, --api-url, --org, --token, --token-file, --config, -v/-vv, -q, --no-color,
--api-timeout) work before or after the sub-command, as kubectl's and gh's do; an option that is
really unknown gets a hint naming the command it belongs to.
"""

from __future__ import annotations

import stat
from pathlib import Path

from tests.plugins.cli import CliEnv, CliRunner, assert_one_line_error
from tests.plugins.sandbox import SandboxHandle


def test_config_init_takes_org_and_token_file_after_the_command(
    run_cli: CliRunner, cli_env: CliEnv, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    r = run_cli(
        "config",
        "init",
        "--org",
        "my-org",
        "--token-file",
        str(token_file),
        "--api-url=http://127.0.0.1:9",
        "--name",
        "work",
    )
    assert r.returncode == 0, r
    text = cli_env.config_file.read_text()
    assert "my-org" in text and "s3cret-token" in text and "http://127.0.0.1:9" in text
    assert stat.S_IMODE(cli_env.config_file.stat().st_mode) == 0o600
    assert "s3cret-token" not in r.output

    shown = run_cli("config", "show", "-o", "json", "--profile", "work")
    assert shown.returncode == 0, shown
    assert '"my-org"' in shown.stdout and "s3cret-token" not in shown.stdout


def test_list_and_get_take_profile_and_quiet_after_the_command(
    sandbox: SandboxHandle, run_cli: CliRunner, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(sandbox.token)
    r = run_cli(
        "config",
        "init",
        "--name",
        "sb",
        "--api-url",
        sandbox.url,
        "--org",
        sandbox.org,
        "--token-file",
        str(token_file),
    )
    assert r.returncode == 0, r
    job = sandbox.create_job("echo hi")

    r = run_cli("list", "--profile", "sb", "-o", "name")
    assert r.returncode == 0, r
    assert job in r.stdout.split()
    r = run_cli("get", job, "-o", "name", "-p", "sb", "-q")
    assert r.returncode == 0, r
    assert r.stdout.strip() == job
    # A global option after the sub-command wins over nothing, and is parsed like in front.
    r = run_cli("get", job, "-o", "name", "--profile=nope")
    assert_one_line_error(r, 2)
    assert "nope" in r.stderr


def test_verbose_logs_each_request_once_and_vv_adds_masked_headers_and_bodies(
    sandbox: SandboxHandle, run_cli: CliRunner
) -> None:
    job = sandbox.create_job("echo hi")
    quiet = run_cli("get", job, "-o", "name", env=sandbox.env())
    one = run_cli("get", job, "-o", "name", "-v", env=sandbox.env())
    two = run_cli("get", job, "-o", "name", "-vv", env=sandbox.env())
    assert quiet.returncode == one.returncode == two.returncode == 0, (quiet, one, two)
    assert "GET" not in quiet.stderr
    request_lines = [line for line in one.stderr.splitlines() if f"GET /job/{job}" in line]
    assert len(request_lines) == 1, one
    assert "-> 200" in request_lines[0]
    assert "headers" not in one.stderr
    assert len([line for line in two.stderr.splitlines() if f"GET /job/{job} ->" in line]) == 1, two
    assert "request headers:" in two.stderr and "authorization: ***" in two.stderr.lower()
    assert "response body:" in two.stderr and job in two.stderr
    assert sandbox.token not in one.stderr + two.stderr


def test_subcommand_options_with_global_names_keep_their_meaning(run_cli: CliRunner) -> None:
    # `sandbox start` has its own --org/--token: they are not hoisted to the root.
    r = run_cli("sandbox", "start", "--org", "x", "--token", "y", "--help")
    assert r.returncode == 0, r
    assert "Organization to accept" in r.stdout


def test_values_after_double_dash_are_not_options(run_cli: CliRunner, tmp_path: Path) -> None:
    # Everything after `--` is data, even when it looks like a global option.
    r = run_cli("config", "path", "--", "--profile", "x")
    assert r.returncode == 2, r
    assert "Traceback" not in r.output


def test_unknown_option_hint_names_the_command_it_belongs_to(run_cli: CliRunner) -> None:
    r = run_cli("list", "--wait")
    assert_one_line_error(r, 2)
    assert "hint: --wait is an option of 'perianctl submit'" in r.stderr
    r = run_cli("list", "--no-such-flag")
    assert_one_line_error(r, 2)
    assert "see 'perianctl list --help'" in r.stderr
