"""Plumbing every command shares: global options, settings, the API client, job-id resolution."""

from __future__ import annotations

import sys
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from perianctl.errors import UsageError

if TYPE_CHECKING:
    from perianctl.config import Settings
    from perianctl.perian.client import PerianClient

T = TypeVar("T")


@dataclass
class GlobalOptions:
    """What the root callback parsed; settings are resolved lazily (``config`` needs no token)."""

    profile: str | None = None
    api_url: str | None = None
    organization: str | None = None
    token: str | None = None
    token_file: str | None = None
    config_file: str | None = None
    verbose: int = 0
    quiet: bool = False
    api_timeout: str | None = None
    _settings: Settings | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        if self._settings is None:
            from perianctl.config import read_token_file, resolve

            token = self.token
            if self.token_file:
                token = read_token_file(self.token_file)
            self._settings = resolve(
                flags={
                    "api_url": self.api_url,
                    "organization": self.organization,
                    "token": token,
                    "api_timeout": self.api_timeout,
                },
                profile=self.profile,
                config_file=self.config_file,
            )
        return self._settings


def command_group(name: str | None = None, help: str | None = None) -> typer.Typer:
    """A command group (``perianctl connector``, ``sandbox``, ``config``) with the settings every group
    shares: help when called bare and on ``-h``, plain help text, no pretty tracebacks (errors reach
    the one handler in :mod:`perianctl.cli`)."""
    return typer.Typer(
        name=name,
        help=help,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


def options(ctx: typer.Context) -> GlobalOptions:
    root = ctx.find_root()
    if not isinstance(root.obj, GlobalOptions):
        root.obj = GlobalOptions()
    return root.obj


def make_client(ctx: typer.Context, **kwargs: Any) -> PerianClient:
    """The PERIAN client for this invocation's settings (credentials required); see
    :func:`perianctl.jobs.backend.perian_client`."""
    from perianctl.jobs.backend import perian_client

    return perian_client(options(ctx).settings(), on_unreadable=warn_unreadable, **kwargs)


def warn_unreadable(what: str, problem: Any) -> None:
    """One ``warning:`` line on stderr per odd item: the job, the fields, never their values."""
    from perianctl.ui.console import warn

    warn(f"{what}: {problem.describe()}")


def connector_target(ctx: typer.Context, flag: str | None, protocol: str | None = None) -> str | None:
    """Where ``--connector`` points: the flag, else the ``connector`` setting (env
    ``PERIANCTL_CONNECTOR`` or the profile); ``--connector ''`` means "talk to PERIAN directly".
    ``protocol`` (``--protocol``: v1, v2 or auto) is checked here and used by every connector call."""
    value = flag.strip() if flag is not None else options(ctx).settings().get("connector")
    if protocol is not None and protocol.strip().lower() not in ("auto", "v1", "v2"):
        raise UsageError(f"invalid --protocol '{protocol}': expected v1, v2 or auto")
    if not value:
        return None
    from perianctl.connector.grpc_client import set_default_protocol, validate_target

    target = validate_target(value)
    set_default_protocol(protocol)
    return target


def run(coro: Coroutine[Any, Any, T], *, status: str | None = None) -> T:
    """Run ``coro``; with ``status``, a wait of more than a second shows that text, the elapsed time
    and the retry reason on a terminal (:mod:`perianctl.ui.status`). Commands that draw their own
    progress (watch, wait, logs --follow) pass no status."""
    import asyncio

    if status is None:
        return asyncio.run(coro)
    from perianctl.ui.status import with_status

    return asyncio.run(with_status(coro, status))


def validate_job_id(job_id: str) -> str:
    """A full job id (any case, dashes optional) in PERIAN's form; prefixes go through :func:`resolve_job_ids`."""
    from perianctl.jobs.ids import canonical, parse

    digits, full = parse(job_id)
    if not full:
        raise UsageError(
            f"invalid job id '{job_id.strip()}': expected a full UUID such as 3f2c1a4e-0b1d-4c5e-9f00-1234567890ab"
        )
    return canonical(digits)


def resolve_job_ids(
    ctx: typer.Context, ids: list[str] | None, *, last: bool, required: bool = True, api: bool = True
) -> list[str]:
    """Explicit ids -- full, or any unique prefix (:mod:`perianctl.jobs.ids`) -- and ``@last``, or ``--last``:
    the job this machine submitted most recently.

    ``api=False`` (``--connector``): prefixes are looked up in the journal, and in the PERIAN API
    only when credentials for it are configured.
    """
    wanted = list(ids or [])
    if last or "@last" in wanted:
        wanted = [j for j in wanted if j != "@last"] + [last_job_id(ctx)]
    if not wanted and required:
        raise UsageError("give one or more JOB_IDs (a unique prefix is enough), or --last")
    if not wanted:
        return []
    from perianctl.jobs.ids import canonical, parse
    from perianctl.jobs.ids import resolve as resolve_ids

    parsed = [parse(job_id) for job_id in wanted]  # a malformed id fails before any settings are read
    if all(full for _, full in parsed):
        return list(dict.fromkeys(canonical(digits) for digits, _ in parsed))
    settings = options(ctx).settings()
    use_api = api or all(settings.values.get(k) for k in ("organization", "token"))
    return resolve_ids(
        wanted,
        api_url=settings.api_url,
        client=(lambda: make_client(ctx)) if use_api else None,
        run=lambda coro: run(coro, status="looking up the job id"),
    )


def last_job_id(ctx: typer.Context) -> str:
    """``--last``/``@last``: the job this machine submitted most recently (this profile's, else any)."""
    from perianctl.journal import open_journal

    with open_journal() as journal:
        last_id = journal.last_job_id(profile=options(ctx).settings().profile) or journal.last_job_id()
    if last_id is None:
        raise UsageError("--last: no job submitted from this machine yet (see 'perianctl list')")
    return last_id


def stdin_is_tty() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def output_option(*formats: str, default: str | None = None, about: str = "") -> Any:
    """The ``-o/--output`` option: its formats shown as choices in the help and offered on TAB."""
    choices = list(formats)
    return typer.Option(
        *(() if default is None else (default,)),
        "--output",
        "-o",
        metavar=f"[{'|'.join(choices)}]",
        help=f"Output format{about}.",
        autocompletion=lambda: choices,
        show_default=True,
    )


OutputOption = output_option("table", "wide", "json", "yaml", "name", default="table")
ProtocolOption = typer.Option(
    None,
    "--protocol",
    metavar="v1|v2",
    help="Connector protocol for --connector: v1 (flyteidl, Flyte 1) or v2 (flyteidl2, Flyte 2). Default: what "
    "the server's health service says it serves (v1 when both).",
)
LastOption = typer.Option(False, "--last", help="Use the job most recently submitted from this machine.")
ConnectorOption = typer.Option(
    None,
    "--connector",
    metavar="HOST:PORT",
    help="Ask a Flyte connector over gRPC (GetTask/DeleteTask/GetTaskLogs, as flytepropeller does) instead of "
    "the PERIAN API; needs no PERIAN credentials. Default: the 'connector' setting; '' turns it off.",
)
MIN_INTERVAL = 0.1
"""The shortest poll interval any command accepts (watch, wait, logs --follow, submit --wait)."""
IntervalOption = typer.Option(
    2.0,
    "--interval",
    min=MIN_INTERVAL,
    metavar="SECONDS",
    help=f"Seconds between polls (at least {MIN_INTERVAL:g}).",
)
WaitTimeoutOption = typer.Option(
    None,
    "--wait-timeout",
    metavar="DURATION",
    help="Stop waiting after this long, e.g. 90, 30m, 1h30m (exit 5); the jobs keep running.",
)
TimeoutAlias = typer.Option(None, "--timeout", hidden=True, metavar="DURATION", help="Alias of --wait-timeout.")


def wait_timeout(value: str | None, alias: str | None) -> float | None:
    """``--wait-timeout`` (or its old name ``--timeout`` on wait/watch) in seconds; None: no bound."""
    from perianctl.timeparse import parse_duration

    if value is not None and alias is not None and value != alias:
        raise UsageError("--timeout is an alias of --wait-timeout: give one of them")
    chosen, name = (value, "--wait-timeout") if value is not None else (alias, "--timeout")
    return parse_duration(chosen, what=name) if chosen else None
