"""Where jobs are read, cancelled and followed: the PERIAN API or a Flyte connector, behind one interface.

Every job command (``get``, ``delete``, ``logs [--follow]``, ``watch``, ``wait``, ``submit
--wait/--watch``) talks to a :class:`JobBackend` chosen in one place, :func:`open_backend`:

* :class:`PerianBackend` wraps a :class:`~perianctl.perian.client.PerianClient` (the REST API).
* :class:`ConnectorBackend` wraps ONE :class:`~perianctl.connector.grpc_client.ConnectorClient`, so a
  command uses one gRPC channel however many calls it makes (a ``logs --follow`` used to open two
  per poll). The resource meta it sends is ``{"job_id": ...}`` (what both connectors return from
  CreateTask), so any PERIAN job id can be followed through a connector, not only the ones this
  machine submitted. Each GetTask answer becomes a ``JobView`` -- PERIAN's status when the connector
  reports it (``perianctl serve`` puts it in ``custom_info``), else one derived from the Flyte phase
  -- so one poller (:mod:`perianctl.jobs.follow`), one outage policy and the same views serve both.
  The GetTask answer itself travels with the view (:func:`connector_answer`) for ``get --connector``.

The connector protocol has no list call: ``list`` and ``watch --all`` are not possible through a
connector (a usage error), and the poller asks GetTask per job instead of sweeping list pages.
grpc and flyteidl are imported only inside :class:`ConnectorBackend`: ``get`` without a connector
never loads them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from perianctl.errors import NotFoundError, PerianctlError, UsageError

if TYPE_CHECKING:
    from perianctl.config import Settings
    from perianctl.connector.grpc_client import ConnectorClient, TaskStatus
    from perianctl.perian.client import PerianClient, RetryPolicy
    from perianctl.perian.models import GetJobsSuccess, JobView, Unreadable

NO_LIST = "the connector protocol has no list call"

CancelResultKind = Literal["cancelled", "already_done", "not_found", "delete_sent"]


@dataclass(frozen=True)
class Cancellation:
    """What a cancel did: ``cancelled`` / ``already_done`` / ``not_found`` (PERIAN), ``delete_sent``
    (a connector's DeleteTask, which does not say whether the job was still running)."""

    job_id: str
    result: CancelResultKind
    message: str


class JobBackend(Protocol):
    """What the job commands need; the poller's :class:`~perianctl.jobs.follow.JobSource` plus more."""

    kind: Literal["perian", "connector"]
    where: str
    """For messages: ``PERIAN API`` or ``connector HOST:PORT``."""
    api_url: str | None
    """The PERIAN API the jobs belong to (the journal's key); None when unknown (a connector)."""
    can_list: bool

    async def list_jobs(self, *, limit: int | None = None, page: int | None = None) -> GetJobsSuccess: ...

    async def get_job(self, job_id: str) -> JobView: ...

    async def cancel_job(self, job_id: str) -> Cancellation: ...

    async def job_logs(self, job_id: str, *, with_status: bool) -> tuple[JobView | None, str]:
        """The whole log text now, and (``with_status``) the job as seen *before* reading it, so
        logs read after a terminal status are complete."""
        ...


# ---------------------------------------------------------------------- PERIAN


def perian_client(
    settings: Settings, *, on_unreadable: Callable[[str, Unreadable], None] | None = None, **kwargs: Any
) -> PerianClient:
    """The PERIAN client for ``settings`` (credentials required).

    Every call is bounded by the ``api_timeout`` setting (``--api-timeout``), retries included; a
    ``retry`` policy with a shorter ``timeout`` (``watch`` polls) keeps its own.
    """
    from perianctl.perian.client import PerianClient

    organization, token = settings.require_credentials()
    budget = settings.api_timeout
    if kwargs.get("retry") is not None:
        budget = min(budget, kwargs["retry"].timeout)
    kwargs.setdefault("budget", budget)
    kwargs.setdefault("read_timeout", min(30.0, budget))
    if on_unreadable is not None:
        kwargs.setdefault("on_unreadable", on_unreadable)
    return PerianClient(settings.api_url, organization, token, **kwargs)


class PerianBackend:
    kind: Literal["perian", "connector"] = "perian"
    where = "PERIAN API"
    can_list = True

    def __init__(self, client: PerianClient) -> None:
        self.client = client
        self.api_url: str | None = client.api_url

    async def list_jobs(self, *, limit: int | None = None, page: int | None = None) -> GetJobsSuccess:
        return await self.client.list_jobs(limit=limit, page=page)

    async def get_job(self, job_id: str) -> JobView:
        return await self.client.get_job(job_id)

    async def cancel_job(self, job_id: str) -> Cancellation:
        try:
            result = await self.client.cancel_job(job_id)
        except NotFoundError:
            return Cancellation(job_id, "not_found", "no such job")
        if result.already_done:
            return Cancellation(job_id, "already_done", "already finished; nothing to cancel")
        return Cancellation(job_id, "cancelled", "cancel requested")

    async def job_logs(self, job_id: str, *, with_status: bool) -> tuple[JobView | None, str]:
        job = await self.client.get_job(job_id)  # PERIAN sends the whole log text with the job
        return (job if with_status else None), job.logs or ""


# ---------------------------------------------------------------------- connector

_STATUS_BY_PHASE = {
    "SUCCEEDED": "Done",
    "FAILED": "UserError",
    "RETRYABLE_FAILED": "ServerError",
    "ABORTED": "Cancelled",
    "RUNNING": "Running",
    "QUEUED": "Queued",
    "WAITING_FOR_RESOURCES": "Queued",
    "INITIALIZING": "Initializing",
}
"""A PERIAN status for a connector that does not report one (only the Flyte phase): the exit code
then follows the phase (SUCCEEDED 0, FAILED 3, ABORTED 4) as it did through a connector before."""


def connector_answer(job: JobView) -> dict[str, Any] | None:
    """The GetTask answer a connector view was made from (``phase``, ``message``, ``log_links``,
    ``custom_info``, ``derived``: True when its status comes from the phase); None for PERIAN's views."""
    extra = job.model_extra or {}
    answer = extra.get("connector")
    return answer if isinstance(answer, dict) else None


def view_from_task_status(job_id: str, status: TaskStatus) -> JobView:
    """A GetTask answer as the ``JobView`` the poller and the views read (see the module docstring)."""
    from perianctl.perian.models import JobView

    info = status.custom_info
    perian_status = status.perian_status
    derived = perian_status is None
    shown = perian_status or _STATUS_BY_PHASE.get(status.phase_name, "Undefined")
    detail = status.message
    if detail.startswith(f"{shown}: "):
        detail = detail[len(shown) + 2 :]
    body: dict[str, Any] = {
        "id": status.job_id or job_id,
        "status": shown,
        # The connector's message beyond the status (a failure's error, "PERIAN API unavailable since
        # ..." while the connector cannot reach PERIAN): where the views show a job's message.
        "errors": detail if detail and detail != shown else None,
        "connector": {
            "phase": status.phase_name,
            "message": status.message,
            "derived": derived,
            "log_links": [{"name": link.name, "uri": link.uri} for link in status.log_links],
            "custom_info": info,
        },
    }
    for key in ("started_at", "done_at"):
        if isinstance(info.get(key), str):
            body[key] = info[key]
    if isinstance(info.get("instance_type_id"), str):
        body["runtime_metadata"] = {"instance_type_id": info["instance_type_id"]}
    price = info.get("price")
    if isinstance(price, dict) and price.get("unit_price"):
        body["price"] = {k: price[k] for k in ("unit_price", "currency", "granularity") if k in price}
    try:
        return JobView.model_validate(body)
    except ValueError:  # an odd custom_info (a third-party connector): keep what is certain
        body.pop("price", None)
        body.pop("runtime_metadata", None)
        body.pop("started_at", None)
        body.pop("done_at", None)
        return JobView.model_validate(body)


class ConnectorBackend:
    """Jobs through a Flyte connector's GetTask/DeleteTask/GetTaskLogs, on one channel."""

    kind: Literal["perian", "connector"] = "connector"
    can_list = False
    api_url: str | None = None

    def __init__(self, client: ConnectorClient) -> None:
        self.client = client
        self.target = client.target
        self.where = f"connector {client.target}"
        self._prefixes: dict[str, str] = {}

    async def list_jobs(self, *, limit: int | None = None, page: int | None = None) -> GetJobsSuccess:
        raise no_list_error()

    def _meta(self, job_id: str) -> bytes:
        from perianctl.connector.grpc_client import resource_meta_for

        return resource_meta_for(job_id)

    def output_prefix(self, job_id: str) -> str:
        """The output prefix ``submit`` recorded (propeller sends it too): with it, ``perianctl serve``
        reports a failed task's real error from ``<prefix>/error.pb``. Read from the journal once."""
        if job_id not in self._prefixes:
            from perianctl.journal import open_journal

            prefix = ""
            try:
                with open_journal() as journal:
                    record = journal.get(job_id)
                    prefix = record.output_prefix if record is not None and record.output_prefix else ""
            except PerianctlError:
                pass
            self._prefixes[job_id] = prefix
        return self._prefixes[job_id]

    def remember_output_prefix(self, job_id: str, prefix: str) -> None:
        self._prefixes[job_id] = prefix

    async def get_task(self, job_id: str) -> TaskStatus:
        return await self.client.get_task(self._meta(job_id), output_prefix=self.output_prefix(job_id))

    async def get_job(self, job_id: str) -> JobView:
        return view_from_task_status(job_id, await self.get_task(job_id))

    async def cancel_job(self, job_id: str) -> Cancellation:
        await self.client.delete_task(self._meta(job_id))
        return Cancellation(job_id, "delete_sent", f"DeleteTask OK via connector {self.target}")

    async def job_logs(self, job_id: str, *, with_status: bool) -> tuple[JobView | None, str]:
        job = await self.get_job(job_id) if with_status else None
        lines = await self.client.all_log_lines(self._meta(job_id))
        return job, "".join(line + "\n" for line in lines)


def no_list_error(what: str = "list") -> UsageError:
    """``list`` (or ``watch --all``) through a connector: a usage error (exit 2), one line."""
    return UsageError(f"{what} is not possible through a connector: {NO_LIST}; use {what} without --connector")


# ---------------------------------------------------------------------- choosing


@contextlib.asynccontextmanager
async def open_backend(
    settings: Settings,
    *,
    connector: str | None,
    retry: RetryPolicy | None = None,
    on_unreadable: Callable[[str, Unreadable], None] | None = None,
) -> AsyncIterator[JobBackend]:
    """The one place a command's backend is chosen: a connector when ``connector`` (``HOST:PORT``,
    already resolved from ``--connector`` or the ``connector`` setting) is given, else the PERIAN API
    of ``settings``. Closed (its channel or HTTP pool) when the block ends."""
    if connector:
        from perianctl.connector.grpc_client import ConnectorClient

        async with ConnectorClient(connector) as channel:
            yield ConnectorBackend(channel)
        return
    kwargs: dict[str, Any] = {"retry": retry} if retry is not None else {}
    async with perian_client(settings, on_unreadable=on_unreadable, **kwargs) as client:
        yield PerianBackend(client)


async def gather_jobs(backend: JobBackend, ids: list[str]) -> tuple[list[JobView], list[PerianctlError]]:
    """Each job once, concurrently; failures are returned (in order), not raised."""
    results = await asyncio.gather(*(backend.get_job(job_id) for job_id in ids), return_exceptions=True)
    jobs: list[JobView] = []
    failures: list[PerianctlError] = []
    for result in results:
        if isinstance(result, PerianctlError):
            failures.append(result)
        elif isinstance(result, BaseException):
            raise result
        else:
            jobs.append(result)
    return jobs, failures
