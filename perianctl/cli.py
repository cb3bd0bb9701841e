"""The ``perianctl`` root command: global options, sub-commands, and error → exit-code handling.

Start-up matters (CI calls perianctl in loops), so this module and the command modules import only
typer and the standard library at module level; each command imports what it needs when it runs.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Callable
from typing import Annotated

import typer

from perianctl.commands.common import GlobalOptions
from perianctl.errors import ExitCode, PerianctlError

_APP_SETTINGS: dict[str, object] = dict(
    name="perianctl",
    help=None,  # ROOT_HELP, set below
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,  # `perianctl completion SHELL`, answered by perianctl.completion
    context_settings={"help_option_names": ["-h", "--help"]},
)


ROOT_HELP = """Run Flyte tasks on the PERIAN GPU job platform: submit, follow, inspect; serve the Flyte
connector; try it all on a local sandbox.

\b
Get started (no account needed: a local PERIAN sandbox runs the jobs):
  perianctl sandbox start --runtime process     # saves the 'sandbox' profile
  perianctl --profile sandbox submit examples/templates/hello.pb -i name=Ada \\
      --env PYTHONPATH=$PWD --wait                # in a clone of perianctl
  perianctl --profile sandbox list
With PERIAN: perianctl config init --org ORG --token-file FILE, then the same commands.

\b
Exit codes:
  0 ok           3 job failed      6 auth failed                 10 declined
  1 bug          4 job cancelled   7 not found                  130 interrupted
  2 bad input    5 timed out       8 API/network unavailable
"""
_APP_SETTINGS["help"] = ROOT_HELP


_ARGS: list[str] = []
"""This run's arguments: ``--version`` is eager (parsed before the other options), so it reads the
settings options it honours (--api-url, --profile, --config) from here."""


def _version(value: bool) -> None:
    if value:
        from perianctl.commands.version import print_versions

        given: dict[str, str] = {}
        for index, arg in enumerate(_ARGS):
            name, has_value, inline = arg.partition("=")
            if name in ("--api-url", "--profile", "-p", "--config"):
                value_text = inline if has_value else (_ARGS[index + 1] if index + 1 < len(_ARGS) else "")
                given["--profile" if name == "-p" else name] = value_text
        print_versions(None, given)
        raise typer.Exit()


def root(
    ctx: typer.Context,
    profile: Annotated[
        str | None,
        typer.Option("--profile", "-p", metavar="NAME", help="Config profile to use [env: PERIANCTL_PROFILE]."),
    ] = None,
    api_url: Annotated[
        str | None,
        typer.Option(
            "--api-url", metavar="URL", help="PERIAN API URL [env: PERIAN_API_URL; default https://api.perian.cloud]."
        ),
    ] = None,
    org: Annotated[
        str | None, typer.Option("--org", metavar="ORG", help="PERIAN organization [env: PERIAN_ORGANIZATION].")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", metavar="TOKEN", help="PERIAN API token [env: PERIAN_TOKEN]. Prefer --token-file."),
    ] = None,
    token_file: Annotated[
        str | None, typer.Option("--token-file", metavar="PATH", help="Read the token from a file ('-' for stdin).")
    ] = None,
    api_timeout: Annotated[
        str | None,
        typer.Option(
            "--api-timeout",
            metavar="DURATION",
            help="How long one PERIAN API operation may take, retries included, e.g. 30s, 2m [env: PERIANCTL_API_TIMEOUT; default 30s]. A refused connection fails at once.",
        ),
    ] = None,
    config: Annotated[
        str | None, typer.Option("--config", metavar="PATH", help="Config file [env: PERIANCTL_CONFIG].")
    ] = None,
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose",
            "-v",
            count=True,
            help="-v: one line per HTTP request on stderr; -vv: plus headers and bodies (secrets masked) and tracebacks.",
            show_default=False,
        ),
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only data and errors.")] = False,
    no_color: Annotated[bool, typer.Option("--no-color", help="Disable colour [env: NO_COLOR].")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            callback=_version,
            is_eager=True,
            help="Show the versions (perianctl, flytekit, flyteidl) and the PERIAN API URL, and exit.",
        ),
    ] = False,
) -> None:
    """Run Flyte tasks on the PERIAN GPU job platform (root options; see ROOT_HELP)."""
    from perianctl.ui.console import configure

    configure(no_color=no_color, quiet=quiet, verbose=verbose)
    if verbose:
        import logging

        logging.basicConfig(
            level=logging.DEBUG if verbose > 1 else logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr
        )
        for noisy in ("httpx", "httpcore", "asyncio", "hpack", "grpc"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    ctx.obj = GlobalOptions(
        profile=profile,
        api_url=api_url,
        organization=org,
        token=token,
        token_file=token_file,
        config_file=config,
        verbose=verbose,
        quiet=quiet,
        api_timeout=api_timeout,
    )


# name -> (module, attribute, kind, help). Order is the order of `perianctl --help`: the workflow
# (submit, follow, inspect, clean up), then choosing hardware and money, then the connector, the
# sandbox and set-up.
COMMANDS: dict[str, tuple[str, str, str, str | None]] = {
    "submit": ("perianctl.commands.submit", "submit", "command", None),
    "wait": ("perianctl.commands.wait", "wait", "command", None),
    "watch": ("perianctl.commands.watch", "watch", "command", None),
    "get": ("perianctl.commands.get", "get", "command", None),
    "list": ("perianctl.commands.list", "list_jobs", "command", None),
    "logs": ("perianctl.commands.logs", "logs", "command", None),
    "delete": ("perianctl.commands.delete", "delete", "command", None),
    "cancel": ("perianctl.commands.delete", "delete", "command", "Alias of 'delete'."),
    "offers": ("perianctl.commands.offers", "offers", "command", None),
    "accelerators": ("perianctl.commands.accelerators", "accelerators", "command", None),
    "billing": ("perianctl.commands.billing", "billing", "command", None),
    "serve": ("perianctl.commands.serve", "serve", "command", None),
    "connector": ("perianctl.commands.connector", "connector_app", "group", None),
    "sandbox": ("perianctl.commands.sandbox", "sandbox_app", "group", None),
    "config": ("perianctl.commands.config", "config_app", "group", "Manage profiles and settings."),
    "completion": ("perianctl.commands.completion", "completion", "command", None),
    "version": ("perianctl.commands.version", "version", "command", None),
}

# Global options that take a value (to find the sub-command in argv without parsing it).
_VALUE_OPTIONS = frozenset(
    {"--profile", "-p", "--api-url", "--org", "--token", "--token-file", "--config", "--api-timeout"}
)


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


def _option_names(command: object) -> dict[str, bool]:
    """Option name -> whether it takes a value, for one click command."""
    names: dict[str, bool] = {}
    for param in getattr(command, "params", []):
        if getattr(param, "param_type_name", "") == "option":
            for name in (*param.opts, *param.secondary_opts):
                names[name] = not (param.is_flag or param.count)
    return names


def hoist_global_options(command: object, args: list[str]) -> list[str]:
    """Move global options written after the sub-command (``list --profile sandbox``, ``submit … -q``)
    in front of it, where the root command parses them.

    An option the sub-command declares itself (``sandbox start --org``) stays where it is and keeps
    its meaning there; so does everything after ``--``. Values are taken along (``--org X`` and
    ``--org=X``); ``-vv`` counts as two ``-v``.
    """
    from typer._click import core
    from typer.core import TyperGroup

    assert isinstance(command, TyperGroup)
    root_ctx = core.Context(command, info_name="perianctl", resilient_parsing=True)
    globals_ = _option_names(command)
    # Skip the global options already in front, then walk down the sub-command path.
    index = 0
    while index < len(args) and args[index].startswith("-") and args[index] != "--":
        name = args[index].split("=", 1)[0]
        index += 2 if globals_.get(name) and "=" not in args[index] else 1
    path_start = index
    current: core.Command = command
    ctx = root_ctx
    while index < len(args) and isinstance(current, TyperGroup):
        sub = current.get_command(ctx, args[index])
        if sub is None:
            return args
        current = sub
        ctx = core.Context(sub, parent=ctx, info_name=args[index], resilient_parsing=True)
        index += 1
        while isinstance(current, TyperGroup) and index < len(args) and args[index].startswith("-"):
            index += 1  # a group's own option (none take values today)
    if index >= len(args) or current is command:
        return args
    own = _option_names(current)
    head = args[:index]
    tail: list[str] = []
    hoisted: list[str] = []
    rest = iter(enumerate(args[index:], start=index))
    for _, arg in rest:
        if arg == "--":
            tail.append(arg)
            tail.extend(a for _, a in rest)
            break
        name = arg.split("=", 1)[0]
        table, dest = (own, tail) if name in own else (globals_, hoisted)
        if name in table:  # the option, and its value when it takes one and was not given as --opt=value
            dest.append(arg)
            value = next(rest, None) if table[name] and "=" not in arg else None
            if value is not None:
                dest.append(value[1])
        elif len(arg) > 2 and arg[0] == "-" and arg[1] != "-" and set(arg[1:]) == {"v"} and "-v" not in own:
            hoisted.extend("-v" for _ in arg[1:])
        else:
            tail.append(arg)
    if not hoisted:
        return args
    return head[:path_start] + hoisted + head[path_start:] + tail


def _where_option_belongs(option: str, path: str) -> str | None:
    """A hint naming the commands that do take ``option`` (it is not one of ``path``'s)."""
    import typer.main
    from typer._click import core
    from typer.core import TyperGroup

    root = typer.main.get_command(build_app())
    owners: list[str] = []

    def walk(cmd: core.Command, prefix: str) -> None:
        if isinstance(cmd, TyperGroup):
            ctx = core.Context(cmd, info_name=prefix)
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    walk(sub, f"{prefix} {name}")
            return
        if option in _option_names(cmd):
            owners.append(prefix)

    walk(root, "perianctl")
    owners = [o for o in owners if o != path]
    if not owners:
        return None
    shown = ", ".join(f"'{o}'" for o in owners[:4]) + (", …" if len(owners) > 4 else "")
    return f"{option} is an option of {shown}; see '{path} --help'"


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

            raise UsageError(
                f"argument '{shown}' is not valid UTF-8 text",
                hint="perianctl accepts UTF-8 arguments only (file names included)",
            ) from None


def _skip_pydantic_plugin_scan() -> None:
    """No pydantic plugin discovery in the CLI: pydantic looks for plugins when it builds its first
    validator, importing ``importlib.metadata`` (zipfile, email, csv) and scanning every installed
    distribution's entry points, ~20-30 ms of a ``get`` that needs ~100 ms in all. perianctl's
    models need no plugin. ``PYDANTIC_DISABLE_PLUGINS`` set to anything leaves pydantic alone."""
    if "PYDANTIC_DISABLE_PLUGINS" in os.environ or "pydantic.plugin._loader" in sys.modules:
        return
    import types

    loader = types.ModuleType("pydantic.plugin._loader")
    loader.get_plugins = tuple  # type: ignore[attr-defined]  # () : no plugins
    sys.modules["pydantic.plugin._loader"] = loader


def _skip_httpx_cli() -> None:
    """No httpx command-line tool in the CLI process: ``import httpx`` also imports ``httpx._main``
    (its own CLI: rich.progress, rich.syntax, pygments), ~40 ms of a piped ``get`` that otherwise
    never loads rich. httpx treats an absent ``_main`` as its supported "installed without the
    ``cli`` extra" case (``httpx.main`` then says so); a ``None`` entry is how Python marks a module
    absent. Done here, in perianctl's own process only: importing :mod:`perianctl.perian` (as the
    connector's entry point does inside users' flytekit processes) leaves other libraries alone."""
    if "httpx" in sys.modules or "httpx._main" in sys.modules:
        return
    sys.modules["httpx._main"] = None  # type: ignore[assignment]


def reraise_swallowed_interrupts(
    previous: Callable[[sys.UnraisableHookArgs], object],
) -> Callable[[sys.UnraisableHookArgs], object]:
    """An ``unraisablehook`` that gives a swallowed Ctrl-C back to the main thread.

    A ``KeyboardInterrupt`` raised while Python runs a weakref callback, a ``__del__`` or the GC
    (e.g. the import system's module-lock callbacks, hit often during start-up) cannot propagate:
    Python reports it as "Exception ignored in ..." and carries on, so the command kept running
    (seen: ``wait`` polling on after a Ctrl-C). This hook re-delivers it with
    ``_thread.interrupt_main()`` from a short-lived thread, so the main thread raises it again at its
    next point where it can propagate (inside ``asyncio.run``: cancels the main task, as a Ctrl-C there
    does), and prints nothing.
    Every other unraisable exception goes to ``previous``.
    """
    import _thread

    def hook(unraisable: sys.UnraisableHookArgs) -> object:
        if issubclass(unraisable.exc_type, KeyboardInterrupt):
            # From another thread: the main thread takes it at its next chance, after this hook and
            # the callback returned (called here, it would be raised inside the hook and lost again).
            _thread.start_new_thread(_thread.interrupt_main, ())
            return None
        return previous(unraisable)

    return hook


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app and turn every failure into an exit code.

    Click's own usage errors are reported like ours -- one ``error:`` line plus a hint -- so a
    script sees the same shape whatever went wrong.
    """
    if os.environ.get("_PERIANCTL_COMPLETE"):
        from perianctl.completion import main as complete

        complete()
    import signal

    from typer._click import exceptions as click_exc

    # ``python -m perianctl`` ends the process quietly on a Ctrl-C during start-up (see __main__);
    # from here on a Ctrl-C is a KeyboardInterrupt that the handler below reports as exit 130.
    with contextlib.suppress(ValueError):  # not the main thread (an embedding program)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.unraisablehook = reraise_swallowed_interrupts(sys.unraisablehook)
    _skip_pydantic_plugin_scan()
    _skip_httpx_cli()
    try:
        args = sys.argv[1:] if argv is None else argv
        _check_text(args)
        import typer.main

        from perianctl.commands.helpfmt import humanize

        command = typer.main.get_command(build_app(_subcommand(args)))
        humanize(command)
        args = hoist_global_options(command, args)
        _ARGS[:] = args
        result = command.main(args=args, prog_name="perianctl", standalone_mode=False)
    except PerianctlError as exc:
        from perianctl.ui.console import error

        error(exc.message, exc.hint)
        sys.exit(int(exc.exit_code))
    except click_exc.NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(0)
    except click_exc.UsageError as exc:
        from perianctl.ui.console import error

        path = exc.ctx.command_path if exc.ctx is not None else "perianctl"
        hint = None
        if isinstance(exc, click_exc.NoSuchOption):
            hint = _where_option_belongs(exc.option_name, path)
        error(exc.format_message(), hint=hint or f"see '{path} --help'")
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
