"""How a PERIAN job is shown: one record shape for every output format.

``job_record`` is the stable, machine-readable form (``-o json|yaml``): the job as the API sent it
(secrets redacted) plus ``flyte_phase`` and ``cost`` (:meth:`perianctl.perian.pricing.JobCost.record`:
cost to date while the job runs, ``final`` once it ended). ``job_row`` is the compact human form
used by tables; the price is shown per hour (``1.29 EUR/h``) whatever PERIAN's billing unit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from perianctl.flyte.phase import status_to_phase
from perianctl.perian.models import JobView
from perianctl.perian.pricing import job_cost, rate_of, rate_text, runtime_seconds
from perianctl.redact import redact
from perianctl.text import first_line, last_line
from perianctl.ui.tables import Fit

TABLE_COLUMNS = ("ID", "STATUS", "PHASE", "IMAGE", "AGE", "DURATION", "COST", "MESSAGE")
WIDE_COLUMNS = (
    "ID",
    "STATUS",
    "PHASE",
    "IMAGE",
    "INSTANCE TYPE",
    "CREATED",
    "STARTED",
    "DONE",
    "DURATION",
    "PRICE",
    "COST",
    "MESSAGE",
)


TABLE_FIT = Fit(
    give_way=("MESSAGE", "IMAGE", "AGE", "DURATION", "COST", "PHASE"),
    floors={"COST": None, "AGE": None, "DURATION": None, "PHASE": None},
    caps={"MESSAGE": 80, "IMAGE": 40},
)
WIDE_FIT = Fit(
    give_way=("MESSAGE", "CREATED", "IMAGE", "INSTANCE TYPE", "STARTED", "PRICE", "DONE", "DURATION", "COST", "PHASE"),
    floors={
        "CREATED": None,
        "STARTED": None,
        "DONE": None,
        "PRICE": None,
        "COST": None,
        "DURATION": None,
        "PHASE": None,
    },
    caps={"MESSAGE": 80, "IMAGE": 40},
)
"""How job tables give way on a narrow terminal: the id and status stay whole (:mod:`perianctl.ui.tables`)."""


def job_record(job: JobView, now: datetime | None = None) -> dict[str, Any]:
    data = job.model_dump(mode="json")
    data["flyte_phase"] = status_to_phase(job.status, errors=job.errors).phase.name
    cost = job_cost(job, now)
    data["cost"] = cost.record() if cost is not None else None
    redacted: dict[str, Any] = redact(data)
    return redacted


def human_duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d{hours % 24:02d}h"


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def elapsed(job: JobView, now: datetime | None = None) -> float | None:
    """Run time so far (or total), as billing counts it (:func:`perianctl.perian.pricing.runtime_seconds`)."""
    return runtime_seconds(job, now)


def iso(value: datetime | None) -> str:
    value = _aware(value)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else "-"


def price_text(job: JobView) -> str:
    """The job's rate per hour (``1.29 EUR/h``): what it costs while it runs, not what it has cost."""
    return rate_text(rate_of(job.price))


def cost_text(job: JobView, now: datetime | None = None) -> str:
    """``~0.12 EUR`` so far (estimate) while running, ``0.12 EUR`` once finished, ``-`` before it ran."""
    cost = job_cost(job, now)
    return cost_record_text(cost.record()) if cost is not None else "-"


def cost_record_text(record: Any) -> str:
    """A cost record (``custom_info["cost"]``) as a cell: ``~0.12 EUR`` so far, ``0.12 EUR`` final, ``-``."""
    from decimal import Decimal, InvalidOperation

    from perianctl.perian.pricing import money

    if not isinstance(record, dict) or not record.get("billed_units"):
        return "-"
    try:
        amount = money(Decimal(str(record["amount"])))
    except (KeyError, InvalidOperation):
        return "-"
    return f"{'' if record.get('final') else '~'}{amount} {record.get('currency') or ''}".rstrip()


def cost_summary(job_id: str, record: dict[str, Any] | None) -> str | None:
    """``job X: final cost 0.06 EUR (1 × PER_HOUR at 0.06 EUR/h)``, from a cost record (see
    :meth:`perianctl.perian.pricing.JobCost.record`, also ``custom_info["cost"]`` of the connector);
    ``None`` without one. ``wait`` and ``submit --wait`` print it when the job ends.
    """
    if not record:
        return None
    from decimal import Decimal, InvalidOperation

    from perianctl.perian.pricing import money

    try:
        amount, per_hour = Decimal(str(record["amount"])), Decimal(str(record["per_hour"]))
        currency, units, granularity = record["currency"], int(record["billed_units"]), record["granularity"]
    except (KeyError, TypeError, ValueError, InvalidOperation):
        return None
    label = "final cost" if record.get("final") else "cost so far (estimate)"
    basis = f"{units} × {granularity} at {money(per_hour)} {currency}/h" if units else "it never ran"
    return f"job {job_id}: {label} {money(amount)} {currency} ({basis})"


def message_for(job: JobView) -> str:
    """The first line of the error, else the last log line; whole (a terminal table cuts it to fit)."""
    return first_line(job.errors) or last_line(job.logs)


def job_row(job: JobView, *, wide: bool = False, now: datetime | None = None) -> list[str]:
    now = now or datetime.now(UTC)
    phase = status_to_phase(job.status, errors=job.errors).phase.name
    created = _aware(job.created_at)
    age = human_duration((now - created).total_seconds()) if created else "-"
    if not wide:
        return [
            job.id or "-",
            job.status,
            phase,
            job.image or "-",
            age,
            human_duration(elapsed(job, now)),
            cost_text(job, now),
            message_for(job),
        ]
    instance = job.runtime_metadata.instance_type_id if job.runtime_metadata else None
    return [
        job.id or "-",
        job.status,
        phase,
        job.image or "-",
        instance or "-",
        iso(job.created_at),
        iso(job.started_at),
        iso(job.done_at),
        human_duration(elapsed(job, now)),
        price_text(job),
        cost_text(job, now),
        message_for(job),
    ]


# ---------------------------------------------------------------------- job lists (get, list, wait -o)


def task_status_record(job: JobView) -> dict[str, Any]:
    """What ``get --connector -o json`` prints for one GetTask answer (see
    :func:`perianctl.jobs.backend.connector_answer`); PERIAN's status, or None when the connector
    did not report one."""
    from perianctl.jobs.backend import connector_answer

    answer = connector_answer(job) or {}
    return {
        "id": job.id,
        "phase": answer.get("phase"),
        "status": None if answer.get("derived") else job.status,
        "message": answer.get("message", ""),
        "log_links": answer.get("log_links", []),
        "custom_info": answer.get("custom_info", {}),
    }


def show_jobs(jobs: list[JobView], fmt: Any, *, single: bool) -> None:
    """Jobs in an ``-o`` format (``get``, ``list``, ``wait -o``): the API's record and columns, or a
    connector's GetTask answer (phase, message, log links, custom_info) for jobs read through one."""
    from perianctl.jobs.backend import connector_answer
    from perianctl.ui.console import write_out
    from perianctl.ui.output import OutputFormat, emit_data, emit_table

    via_connector = bool(jobs) and all(connector_answer(job) is not None for job in jobs)
    if fmt in (OutputFormat.json, OutputFormat.yaml):
        records = [task_status_record(job) if via_connector else job_record(job) for job in jobs]
        emit_data(records[0] if single and records else records, fmt)
    elif fmt is OutputFormat.name:
        for job in jobs:
            write_out(job.id or "")
    elif jobs and via_connector:
        _show_task_table(jobs, wide=fmt is OutputFormat.wide)
    elif jobs:
        wide = fmt is OutputFormat.wide
        emit_table(
            WIDE_COLUMNS if wide else TABLE_COLUMNS,
            [job_row(job, wide=wide) for job in jobs],
            fit=WIDE_FIT if wide else TABLE_FIT,
        )


def _show_task_table(jobs: list[JobView], *, wide: bool) -> None:
    from perianctl.ui.output import emit_table

    columns = ["ID", "PHASE", "STATUS", "MESSAGE"]
    if wide:
        columns += ["INSTANCE", "STARTED", "DONE", "COST", "LOG"]
    rows = []
    for job in jobs:
        record = task_status_record(job)
        row = [record["id"] or "-", record["phase"] or "-", record["status"] or "-", record["message"] or ""]
        if wide:
            info = record["custom_info"]
            links = record["log_links"]
            row += [
                str(info.get("instance_type_id") or "-"),
                str(info.get("started_at") or "-"),
                str(info.get("done_at") or "-"),
                cost_record_text(info.get("cost")),
                links[0]["uri"] if links else "-",
            ]
        rows.append(row)
    emit_table(columns, rows)
