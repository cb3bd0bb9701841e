"""The ``perianctl`` root command: global options, sub-commands, and error → exit-code handling.

Start-up matters (CI calls perianctl in loops), so this module and the command modules import only
typer and the standard library at module level; each command imports what it needs when it runs.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated

import typer

from perianctl import __version__
from perianctl.commands import config as config_cmd
from perianctl.commands import delete as delete_cmd
from perianctl.commands import get as get_cmd
from perianctl.commands import list as list_cmd
from perianctl.commands import logs as logs_cmd
from perianctl.commands.common import GlobalOptions
from perianctl.errors import ExitCode, PerianctlError

app = typer.Typer(
    name="perianctl",
    help="Run Flyte tasks on the PERIAN GPU job platform: submit, watch, debug the connector, "
    "or try it all on a local sandbox.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"perianctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    profile: Annotated[str | None, typer.Option("--profile", "-p", metavar="NAME", help="Config profile to use [env: PERIANCTL_PROFILE].")] = None,
    api_url: Annotated[str | None, typer.Option("--api-url", metavar="URL", help="PERIAN API URL [env: PERIAN_API_URL; default https://api.perian.cloud].")] = None,
    org: Annotated[str | None, typer.Option("--org", metavar="ORG", help="PERIAN organization [env: PERIAN_ORGANIZATION].")] = None,
    token: Annotated[str | None, typer.Option("--token", metavar="TOKEN", help="PERIAN API token [env: PERIAN_TOKEN]. Prefer --token-file.")] = None,
    token_file: Annotated[str | None, typer.Option("--token-file", metavar="PATH", help="Read the token from a file ('-' for stdin).")] = None,
    config: Annotated[str | None, typer.Option("--config", metavar="PATH", help="Config file [env: PERIANCTL_CONFIG].")] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More detail on stderr (-vv: HTTP requests).", show_default=False)] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only data and errors.")] = False,
    no_color: Annotated[bool, typer.Option("--no-color", help="Disable colour [env: NO_COLOR].")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
) -> None:
    """Run Flyte tasks on the PERIAN GPU job platform."""
    from perianctl.ui.console import configure

    configure(no_color=no_color, quiet=quiet, verbose=verbose)
    if verbose:
        import logging

        logging.basicConfig(
            level=logging.DEBUG if verbose > 1 else logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr
        )
        for noisy in ("httpcore", "asyncio", "hpack", "grpc"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    ctx.obj = GlobalOptions(
        profile=profile, api_url=api_url, organization=org, token=token, token_file=token_file,
        config_file=config, verbose=verbose, quiet=quiet,
    )


app.command("get", help=get_cmd.__doc__)(get_cmd.get)
app.command("list", help=list_cmd.__doc__)(list_cmd.list_jobs)
app.command("delete", help=delete_cmd.__doc__)(delete_cmd.delete)
app.command("cancel", help="Alias of 'delete'.")(delete_cmd.delete)
app.command("logs", help=logs_cmd.__doc__)(logs_cmd.logs)
app.add_typer(config_cmd.config_app, name="config", help="Manage profiles and settings.")


def _register_optional() -> None:
    """Commands whose modules land in separate changes; each is a light module too."""
    import importlib

    for module_name, attr, name, kind in (
        ("perianctl.commands.submit", "submit", "submit", "command"),
        ("perianctl.commands.watch", "watch", "watch", "command"),
        ("perianctl.commands.wait", "wait", "wait", "command"),
        ("perianctl.commands.serve", "serve", "serve", "command"),
        ("perianctl.commands.sandbox", "sandbox_app", "sandbox", "group"),
    ):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        target = getattr(module, attr)
        if kind == "group":
            app.add_typer(target, name=name, help=module.__doc__)
        else:
            app.command(name, help=module.__doc__)(target)


_register_optional()


def _unexpected(exc: BaseException) -> int:
    from perianctl.redact import scrub
    from perianctl.ui.console import error, state

    if state.verbose:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        sys.stderr.write(scrub(text))
    error(
        f"unexpected {type(exc).__name__}: {exc}",
        hint=None if state.verbose else "run with -v for details; please report this as a bug",
    )
    return int(ExitCode.ERROR)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app and turn every failure into an exit code.

    Click's own usage errors are reported like ours -- one ``error:`` line plus a hint -- so a
    script sees the same shape whatever went wrong.
    """
    from typer._click import exceptions as click_exc

    try:
        result = app(args=argv, prog_name="perianctl", standalone_mode=False)
    except PerianctlError as exc:
        from perianctl.ui.console import error

        error(exc.message, exc.hint)
        sys.exit(int(exc.exit_code))
    except click_exc.NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(0)
    except click_exc.UsageError as exc:
        from perianctl.ui.console import error

        command = exc.ctx.command_path if exc.ctx is not None else "perianctl"
        error(exc.format_message(), hint=f"see '{command} --help'")
        sys.exit(int(ExitCode.USAGE))
    except click_exc.ClickException as exc:
        from perianctl.ui.console import error

        error(exc.format_message())
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except SystemExit:
        raise
    except BrokenPipeError:
        # `perianctl list | head`: the reader went away; that is not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
    except Exception as exc:
        sys.exit(_unexpected(exc))
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
