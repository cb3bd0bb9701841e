"""Plumbing every command shares: global options, settings, the API client, job-id resolution."""

from __future__ import annotations

import re
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

_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


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
                flags={"api_url": self.api_url, "organization": self.organization, "token": token,
                       "api_timeout": self.api_timeout},
                profile=self.profile,
                config_file=self.config_file,
            )
        return self._settings


def options(ctx: typer.Context) -> GlobalOptions:
    root = ctx.find_root()
    if not isinstance(root.obj, GlobalOptions):
        root.obj = GlobalOptions()
    return root.obj


def make_client(ctx: typer.Context, **kwargs: Any) -> PerianClient:
    """The PERIAN client for this invocation's settings (credentials required).

    Every call is bounded by the ``api_timeout`` setting (``--api-timeout``), retries included; a
    ``retry`` policy with a shorter ``timeout`` (``watch`` polls) keeps its own.
    """
    from perianctl.perian.client import PerianClient

    settings = options(ctx).settings()
    organization, token = settings.require_credentials()
    budget = settings.api_timeout
    if kwargs.get("retry") is not None:
        budget = min(budget, kwargs["retry"].timeout)
    kwargs.setdefault("budget", budget)
    kwargs.setdefault("read_timeout", min(30.0, budget))
    kwargs.setdefault("on_unreadable", _warn_unreadable)
    return PerianClient(settings.api_url, organization, token, **kwargs)


def _warn_unreadable(what: str, problem: Any) -> None:
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
    from perianctl.flyte.grpc_client import set_default_protocol, validate_target

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
    job_id = job_id.strip()
    if not _UUID.match(job_id):
        raise UsageError(f"invalid job id '{job_id}': expected a UUID such as 3f2c1a4e-0b1d-4c5e-9f00-1234567890ab")
    return job_id.lower()


def resolve_job_ids(ctx: typer.Context, ids: list[str] | None, *, last: bool, required: bool = True) -> list[str]:
    """Explicit ids (``@last`` allowed), or ``--last``: the job this machine submitted most recently."""
    wanted = list(ids or [])
    if last or "@last" in wanted:
        from perianctl.journal import open_journal

        with open_journal() as journal:
            last_id = journal.last_job_id(profile=options(ctx).settings().profile) or journal.last_job_id()
        if last_id is None:
            raise UsageError("--last: no job submitted from this machine yet (see 'perianctl list')")
        wanted = [j for j in wanted if j != "@last"] + [last_id]
    if not wanted and required:
        raise UsageError("give one or more JOB_IDs, or --last")
    seen: dict[str, None] = {}
    for job_id in wanted:
        seen.setdefault(validate_job_id(job_id))
    return list(seen)


def stdin_is_tty() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def output_option(*formats: str, default: str | None = None, about: str = "") -> Any:
    """The ``-o/--output`` option: its formats shown as choices in the help and offered on TAB."""
    choices = list(formats)
    return typer.Option(
        *(() if default is None else (default,)), "--output", "-o", metavar=f"[{'|'.join(choices)}]",
        help=f"Output format{about}.", autocompletion=lambda: choices, show_default=True,
    )


OutputOption = output_option("table", "wide", "json", "yaml", "name", default="table")
ProtocolOption = typer.Option(
    None, "--protocol", metavar="v1|v2",
    help="Connector protocol for --connector: v1 (flyteidl, Flyte 1) or v2 (flyteidl2, Flyte 2). Default: what "
    "the server's health service says it serves (v1 when both).",
)
LastOption = typer.Option(False, "--last", help="Use the job most recently submitted from this machine.")
ConnectorOption = typer.Option(
    None, "--connector", metavar="HOST:PORT",
    help="Ask a Flyte connector over gRPC (GetTask/DeleteTask/GetTaskLogs, as flytepropeller does) instead of "
    "the PERIAN API; needs no PERIAN credentials. Default: the 'connector' setting; '' turns it off.",
)
