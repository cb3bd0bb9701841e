"""Money inside Flyte: what the connector reports about a PERIAN job's price and cost.

The figures come from :mod:`perianctl.perian.pricing` (one set of billing semantics for the CLI, the
connector and the sandbox's bill), so ``custom_info["cost"]`` of a GetTask answer is the very dict
``perianctl get -o json`` prints as ``cost`` for the same job.

The Prometheus counter ``perianctl_connector_spend_total`` adds each job's *final* cost once, when
the connector first sees the job finished. Counting final costs only keeps the sum right across
replicas: propeller polls a task until it is terminal and then stops, so exactly one GetTask (on
one replica) sees it finish, whereas costs to date seen by different replicas would add up twice.
A later GetTask of a finished job on another replica (a person running ``perianctl get
--connector``) can count it once more there; the per-replica memory of counted jobs is bounded.

:func:`with_budget` honours the template's ``max_price_per_hour``/``max_cost`` keys at CreateTask.
"""

from __future__ import annotations

import collections
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter

from perianctl.perian.offers import apply_plan, plan_budget
from perianctl.perian.pricing import job_cost, rate_of

if TYPE_CHECKING:
    from flyteidl.core.tasks_pb2 import TaskTemplate

    from perianctl.perian import models as m
    from perianctl.perian.client import PerianClient

log = logging.getLogger("perianctl.connector")

SPEND = Counter(
    "perianctl_connector_spend",
    "Final cost of PERIAN jobs seen finished by this connector, by task type, instance type and currency "
    "(unit price x billed units; the bill is authoritative)",
    ["task_type", "instance_type", "currency"],
)


async def with_budget(client: PerianClient, template: TaskTemplate, request: m.CreateJobRequest) -> m.CreateJobRequest:
    """Honour ``PerianConfig(max_price_per_hour=..., max_cost=...)``: pin the cheapest instance type within the
    cap, and turn the budget into ``timeout_seconds`` (:mod:`perianctl.perian.offers`). Without those custom
    keys the request is unchanged. No offer within the cap, or a budget below one billed unit, is an
    ``UsageError`` (CreateTask answers FAILED_PRECONDITION / INVALID_ARGUMENT) before any job exists.
    """
    from perianctl.flyte.translate import budget_of

    budget = budget_of(template)
    if not budget:
        return request
    plan = await plan_budget(client, request, budget)
    log.info("budget: %s", plan.describe())
    return apply_plan(request, plan)


def money_info(job: Any, now: datetime | None = None) -> dict[str, Any]:
    """``price`` (with ``per_hour``) and ``cost`` (cost to date or final) for ``custom_info``."""
    info: dict[str, Any] = {}
    price = getattr(job, "price", None)
    if price is not None and price.unit_price:
        info["price"] = {
            k: v
            for k, v in (
                ("unit_price", price.unit_price),
                ("currency", price.currency),
                ("granularity", price.granularity),
            )
            if v
        }
        rate = rate_of(price)
        if rate is not None:
            info["price"]["per_hour"] = str(rate.per_hour)
    cost = job_cost(job, now)
    if cost is not None:
        info["cost"] = cost.record()
    return info


def cost_amount(job: Any, now: datetime | None = None) -> float | None:
    """The cost (to date, or final) as a number for GetTaskMetrics; ``None`` without a price."""
    cost = job_cost(job, now)
    return float(cost.amount) if cost is not None else None


class SpendMeter:
    """Counts each finished job's cost into :data:`SPEND` once (bounded memory of counted jobs)."""

    def __init__(self, task_type: str, size: int = 50_000) -> None:
        self.task_type = task_type
        self._size = max(1, size)
        self._counted: collections.OrderedDict[str, None] = collections.OrderedDict()

    def observe(self, job_id: str, job: Any) -> None:
        if job_id in self._counted:
            return
        cost = job_cost(job)
        if cost is None or not cost.final:
            return
        self._counted[job_id] = None
        while len(self._counted) > self._size:
            self._counted.popitem(last=False)
        runtime = getattr(job, "runtime_metadata", None)
        instance = (runtime.instance_type_id if runtime is not None else None) or "unknown"
        SPEND.labels(self.task_type, instance, cost.rate.currency).inc(float(cost.amount))
