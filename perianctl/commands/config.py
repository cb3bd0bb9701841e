"""Manage profiles: init, show (secrets redacted, with the source of every value), set, use, path."""

from __future__ import annotations

from typing import Annotated

import typer

from perianctl.commands.common import command_group, options, output_option

config_app = command_group()


@config_app.command("path")
def path_cmd(ctx: typer.Context) -> None:
    """Print the config file path."""
    from perianctl.config import config_path
    from perianctl.ui.console import write_out

    write_out(str(config_path(options(ctx).config_file)))


@config_app.command("init")
def init_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="Profile name.")] = "default",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing profile.")] = False,
) -> None:
    """Create a profile from --api-url/--org/--token/--token-file (or their env vars)."""
    import os

    from perianctl.config import config_path, read_config_file, read_token_file, save_profile, validate_api_url
    from perianctl.errors import UsageError
    from perianctl.ui.console import success

    opts = options(ctx)
    path = config_path(opts.config_file)
    if name in read_config_file(path).get("profiles", {}) and not force:
        raise UsageError(f"profile '{name}' already exists in {path}", hint="use --force, or 'config set'")
    token = read_token_file(opts.token_file) if opts.token_file else opts.token or os.environ.get("PERIAN_TOKEN")
    values = {
        "api_url": validate_api_url(opts.api_url or os.environ.get("PERIAN_API_URL") or "https://api.perian.cloud"),
        "organization": opts.organization or os.environ.get("PERIAN_ORGANIZATION") or "",
        "token": token or "",
    }
    values = {k: v for k, v in values.items() if v}
    save_profile(name, values, config_path=path, make_current=True)
    success(f"profile '{name}' written to {path} (mode 0600)")


@config_app.command("show")
def show_cmd(
    ctx: typer.Context,
    output: Annotated[str, output_option("table", "json", "yaml")] = "table",
) -> None:
    """Show the resolved settings and where each came from (the token is never shown)."""
    from perianctl.ui.output import OutputFormat, emit_data, emit_table, parse_format

    fmt = parse_format(output, allowed=[OutputFormat.table, OutputFormat.json, OutputFormat.yaml])
    settings = options(ctx).settings()
    data = {"profile": settings.profile, "config_file": str(settings.config_file), "settings": settings.redacted()}
    if fmt is OutputFormat.table:
        emit_table(
            ("KEY", "VALUE", "SOURCE"),
            [["profile", settings.profile, ""], ["config_file", str(settings.config_file), ""]]
            + [[k, v["value"], v["source"]] for k, v in settings.redacted().items()],
        )
    else:
        emit_data(data, fmt)


@config_app.command("set")
def set_cmd(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="api_url, organization, token, output_prefix, connector or api_timeout.")],
    value: Annotated[str | None, typer.Argument(help="The value ('-' or omitted for token: read stdin).")] = None,
) -> None:
    """Set one key in the current (or --profile) profile."""
    from perianctl.config import (
        PROFILE_KEYS,
        config_path,
        read_config_file,
        read_token_file,
        save_profile,
        validate_api_url,
    )
    from perianctl.errors import UsageError
    from perianctl.ui.console import success

    if key not in PROFILE_KEYS:
        raise UsageError(f"unknown config key '{key}' (known: {', '.join(PROFILE_KEYS)})")
    if value is None or value == "-":
        if key != "token" and value is None:
            raise UsageError(f"config set {key}: missing VALUE")
        value = read_token_file("-")
    if key == "api_url":
        value = validate_api_url(value)
    opts = options(ctx)
    path = config_path(opts.config_file)
    profile = opts.profile or read_config_file(path).get("current_profile") or "default"
    save_profile(profile, {key: value}, config_path=path)
    success(f"{key} set in profile '{profile}'")


@config_app.command("use")
def use_cmd(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Profile to make current.")]) -> None:
    """Make a profile the current one."""
    from typing import Any

    from perianctl.config import config_path, update_config_file
    from perianctl.errors import ConfigError
    from perianctl.ui.console import success

    path = config_path(options(ctx).config_file)

    def mutate(data: dict[str, Any]) -> None:
        if name not in data.get("profiles", {}):
            known = ", ".join(sorted(data.get("profiles", {}))) or "none"
            raise ConfigError(f"profile '{name}' not found in {path} (profiles: {known})")
        data["current_profile"] = name

    update_config_file(path, mutate)
    success(f"now using profile '{name}'")


@config_app.command("list")
def list_cmd(ctx: typer.Context) -> None:
    """List profiles (the current one is marked)."""
    from perianctl.config import config_path, read_config_file
    from perianctl.ui.output import emit_table

    data = read_config_file(config_path(options(ctx).config_file))
    current = data.get("current_profile")
    emit_table(
        ("CURRENT", "NAME", "API URL", "ORGANIZATION"),
        [
            ["*" if n == current else "", n, p.get("api_url", "-"), p.get("organization", "-")]
            for n, p in sorted(data.get("profiles", {}).items())
        ],
    )
