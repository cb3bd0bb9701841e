"""Print the versions of perianctl, flytekit and flyteidl, and the PERIAN API URL in use.

The versions come from the installed packages' metadata (nothing is imported), the URL from the
same settings every other command resolves (--api-url, --profile, PERIAN_API_URL, the config file).
"""

from __future__ import annotations

import typer

from perianctl.commands.common import options


def version(ctx: typer.Context) -> None:
    print_versions(ctx)


def print_versions(ctx: typer.Context | None, given: dict[str, str] | None = None) -> None:
    """The versions and the API URL: from ``ctx``'s settings, else from ``given`` options (``-V``)."""
    from importlib import metadata

    from perianctl import __version__
    from perianctl.errors import PerianctlError

    lines = [("perianctl", __version__)]
    for package in ("flytekit", "flyteidl", "flyte", "flyteidl2"):
        try:
            lines.append((package, metadata.version(package)))
        except metadata.PackageNotFoundError:
            if package in ("flytekit", "flyteidl"):
                lines.append((package, "not installed"))
    try:
        if ctx is not None:
            api_url = options(ctx).settings().api_url
        else:
            from perianctl.config import resolve

            given = given or {}
            api_url = resolve(
                flags={"api_url": given.get("--api-url")},
                profile=given.get("--profile"),
                config_file=given.get("--config"),
            ).api_url
    except PerianctlError as exc:
        api_url = f"unknown ({exc.message})"
    lines.append(("PERIAN API", api_url))
    width = max(len(name) for name, _ in lines)
    for name, value in lines:
        typer.echo(f"{name:<{width}}  {value}")
