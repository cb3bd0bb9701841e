"""The ``perianctl`` root command: global options, sub-commands, and error → exit-code handling.

Start-up matters (CI calls perianctl in loops), so this module and the command modules import only
typer and the standard library at module level; each command imports what it needs when it runs.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from typing import Annotated

import typer

from perianctl import __version__
from perianctl.commands.common import GlobalOptions
from perianctl.errors import ExitCode, PerianctlError

_APP_SETTINGS: dict[str, object] = dict(
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


def root(
    ctx: typer.Context,
    profile: Annotated[str | None, typer.Option("--profile", "-p", metavar="NAME", help="Config profile to use [env: PERIANCTL_PROFILE].")] = None,
    api_url: Annotated[str | None, typer.Option("--api-url", metavar="URL", help="PERIAN API URL [env: PERIAN_API_URL; default https://api.perian.cloud].")] = None,
    org: Annotated[str | None, typer.Option("--org", metavar="ORG", help="PERIAN organization [env: PERIAN_ORGANIZATION].")] = None,
    token: Annotated[str | None, typer.Option("--token", metavar="TOKEN", help="PERIAN API token [env: PERIAN_TOKEN]. Prefer --token-file.")] = None,
    token_file: Annotated[str | None, typer.Option("--token-file", metavar="PATH", help="Read the token from a file ('-' for stdin).")] = None,
    api_timeout: Annotated[str | None, typer.Option("--api-timeout", metavar="DURATION", help="How long one PERIAN API operation may take, retries included, e.g. 30s, 2m [env: PERIANCTL_API_TIMEOUT; default 30s]. A refused connection fails at once.")] = None,
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
        config_file=config, verbose=verbose, quiet=quiet, api_timeout=api_timeout,
    )


# name -> (module, attribute, kind, help). Order is the order of `perianctl --help`.
COMMANDS: dict[str, tuple[str, str, str, str | None]] = {
    "get": ("perianctl.commands.get", "get", "command", None),
    "list": ("perianctl.commands.list", "list_jobs", "command", None),
    "delete": ("perianctl.commands.delete", "delete", "command", None),
    "cancel": ("perianctl.commands.delete", "delete", "command", "Alias of 'delete'."),
    "logs": ("perianctl.commands.logs", "logs", "command", None),
    "submit": ("perianctl.commands.submit", "submit", "command", None),
    "watch": ("perianctl.commands.watch", "watch", "command", None),
    "wait": ("perianctl.commands.wait", "wait", "command", None),
    "offers": ("perianctl.commands.offers", "offers", "command", None),
    "accelerators": ("perianctl.commands.accelerators", "accelerators", "command", None),
    "billing": ("perianctl.commands.billing", "billing", "command", None),
    "serve": ("perianctl.commands.serve", "serve", "command", None),
    "connector": ("perianctl.commands.connector", "connector_app", "group", None),
    "config": ("perianctl.commands.config", "config_app", "group", "Manage profiles and settings."),
    "sandbox": ("perianctl.commands.sandbox", "sandbox_app", "group", None),
}

# Global options that take a value (to find the sub-command in argv without parsing it).
_VALUE_OPTIONS = frozenset({"--profile", "-p", "--api-url", "--org", "--token", "--token-file", "--config",
                            "--api-timeout"})


def build_app(only: str | None = None) -> typer.Typer:
    """The root app with every command, or with just ``only`` (what ``main`` runs).

    Typer turns every registered command into a click command on each start, which costs ~5 ms a
    command; a run that names its sub-command needs only that one (help, completion and unknown
    commands get the full app).
    """
    import importlib

    app = typer.Typer(**_APP_SETTINGS)  # type: ignore[arg-type]
    app.callback()(root)
    for name, (module_name, attr, kind, help_text) in COMMANDS.items():
        if only is not None and name != only:
            continue
        module = importlib.import_module(module_name)
        target = getattr(module, attr)
        if kind == "group":
            app.add_typer(target, name=name, help=help_text or module.__doc__)
        else:
            app.command(name, help=help_text or module.__doc__)(target)
    return app


def _subcommand(argv: list[str]) -> str | None:
    """The sub-command named in ``argv`` (after the global options), if it is one we know."""
    if os.environ.get("_PERIANCTL_COMPLETE"):
        return None
    args = iter(argv)
    for arg in args:
        if arg == "--":
            return None
        if arg in _VALUE_OPTIONS:
            next(args, None)
        elif not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def __getattr__(name: str) -> typer.Typer:
    """``perianctl.cli.app``: the full app, built on first use (for tools and tests)."""
    if name == "app":
        return build_app()
    raise AttributeError(name)


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


def _check_text(args: list[str]) -> None:
    """Refuse arguments that are not valid UTF-8 (``--env A=$'\\xff'``): Python keeps such bytes as
    lone surrogates, which cannot be sent to an API, written to a file or printed."""
    for arg in args:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            shown = arg.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            from perianctl.errors import UsageError

            raise UsageError(f"argument '{shown}' is not valid UTF-8 text",
                             hint="perianctl accepts UTF-8 arguments only (file names included)") from None


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app and turn every failure into an exit code.

    Click's own usage errors are reported like ours -- one ``error:`` line plus a hint -- so a
    script sees the same shape whatever went wrong.
    """
    import signal

    from typer._click import exceptions as click_exc

    # ``python -m perianctl`` ends the process quietly on a Ctrl-C during start-up (see __main__);
    # from here on a Ctrl-C is a KeyboardInterrupt that the handler below reports as exit 130.
    with contextlib.suppress(ValueError):  # not the main thread (an embedding program)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        args = sys.argv[1:] if argv is None else argv
        _check_text(args)
        result = build_app(_subcommand(args))(args=args, prog_name="perianctl", standalone_mode=False)
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
