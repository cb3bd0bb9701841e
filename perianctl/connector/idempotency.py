"""Idempotency keys and node tags for CreateTask, so a lost reply never orphans or duplicates a job.

The problem (docs/connector.md, "Convergence"): propeller calls CreateTask with a 10 s deadline. If the
connector creates the PERIAN job but the reply is lost (deadline, connection reset, connector or
propeller restart), propeller calls CreateTask *again*:

* for the **same attempt** after a propeller restart (it had not persisted the resource meta), or
* for the **next attempt** when the failed call consumed a retry (CreateTask error → retryable
  failure → ``retry_attempt + 1``).

Two values, both stamped into the PERIAN job's container environment, handle both cases:

``attempt key`` (``PERIANCTL_IDEMPOTENCY_KEY``)
    ``sha256(project, domain, execution name, node id, retry attempt, output_prefix)``, shortened.
    Same attempt → same key → :meth:`PerianClient.create_job` finds the existing job and returns
    its id instead of creating a second one (lookup before create, and again before every retry of
    an ambiguous create). ``output_prefix`` is included because array-node sub-tasks share the
    node id but not the output prefix.

``node tag`` (``PERIANCTL_FLYTE_NODE``) and attempt number (``PERIANCTL_FLYTE_ATTEMPT``)
    ``sha256(project, domain, execution name, node id, output_prefix without the attempt suffix)``.
    Every attempt of one node carries the same tag, so when attempt *N* is created the connector
    can find jobs of attempts *< N* that are still running -- the orphans of lost replies -- and
    cancel them ("reaping"). Only strictly lower attempts are touched, so a re-sent create for the
    current attempt is never cancelled, and sibling nodes never share a tag.

Without ``task_execution_metadata`` (``pyflyte run`` local execution, or an old client) the key is
derived from ``output_prefix`` alone, which flytekit makes unique per local run; there is no node
tag then and nothing is reaped.

Everything here is pure and cheap (hashlib only), so the CLI can compute the same keys.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from perianctl.perian import stamps

KEY_VERSION = "pk1"
NODE_TAG_ENV = stamps.NODE_TAG_ENV
ATTEMPT_ENV = stamps.ATTEMPT_ENV
EXECUTION_ENV = "PERIANCTL_FLYTE_EXECUTION"
_HASH_CHARS = 24  # 96 bits: collisions are not a practical concern at any job volume


@dataclass(frozen=True)
class ExecutionRef:
    """The parts of a ``TaskExecutionIdentifier`` that name one task attempt."""

    project: str
    domain: str
    name: str
    node_id: str
    retry_attempt: int
    task_project: str = ""
    task_domain: str = ""
    task_name: str = ""
    task_version: str = ""

    @property
    def display(self) -> str:
        """``project/domain/execution/node#attempt``: readable, not secret, shown in job env."""
        return f"{self.project}/{self.domain}/{self.name}/{self.node_id}#{self.retry_attempt}"


@dataclass(frozen=True)
class IdempotencyInfo:
    """What the connector stamps into a job for one CreateTask."""

    key: str
    node_tag: str | None
    attempt: int
    execution: ExecutionRef | None

    def env(self) -> dict[str, str]:
        """Env variables besides the key (which the client stamps itself)."""
        if self.node_tag is None or self.execution is None:
            return {}
        ref = self.execution
        env = {
            NODE_TAG_ENV: self.node_tag,
            ATTEMPT_ENV: str(self.attempt),
            EXECUTION_ENV: ref.display,
            # What propeller sets for a pod; flytekit's pyflyte-execute builds its execution
            # context (execution id, checkpoint names) from these inside the PERIAN container.
            "FLYTE_INTERNAL_EXECUTION_PROJECT": ref.project,
            "FLYTE_INTERNAL_EXECUTION_DOMAIN": ref.domain,
            "FLYTE_INTERNAL_EXECUTION_ID": ref.name,
            "FLYTE_ATTEMPT_NUMBER": str(ref.retry_attempt),
        }
        for var, value in (
            ("FLYTE_INTERNAL_TASK_PROJECT", ref.task_project),
            ("FLYTE_INTERNAL_TASK_DOMAIN", ref.task_domain),
            ("FLYTE_INTERNAL_TASK_NAME", ref.task_name),
            ("FLYTE_INTERNAL_TASK_VERSION", ref.task_version),
        ):
            if value:
                env[var] = value
        return env


def _digest(*parts: str) -> str:
    joined = "\x1f".join(parts)  # unit separator: no part can fake a boundary
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:_HASH_CHARS]


def execution_ref(metadata: Any) -> ExecutionRef | None:
    """Read a flytekit ``TaskExecutionMetadata`` model *or* the flyteidl proto (same attribute names).

    ``None`` when there is no usable identifier: flytekit's servicer converts an absent metadata
    message into one full of empty strings, so emptiness, not presence, is what counts.
    """
    if metadata is None:
        return None
    try:
        tid = metadata.task_execution_id
        node = tid.node_execution_id
        wf = node.execution_id
        ref = ExecutionRef(
            project=str(wf.project or ""),
            domain=str(wf.domain or ""),
            name=str(wf.name or ""),
            node_id=str(node.node_id or ""),
            retry_attempt=int(tid.retry_attempt or 0),
            task_project=str(getattr(tid.task_id, "project", "") or ""),
            task_domain=str(getattr(tid.task_id, "domain", "") or ""),
            task_name=str(getattr(tid.task_id, "name", "") or ""),
            task_version=str(getattr(tid.task_id, "version", "") or ""),
        )
    except AttributeError:
        return None
    if not ref.name or not ref.node_id:
        return None
    return ref


def strip_attempt(output_prefix: str, attempt: int) -> str:
    """``.../n0/data/2`` → ``.../n0/data`` when the last segment is the attempt number."""
    trimmed = output_prefix.rstrip("/")
    head, sep, last = trimmed.rpartition("/")
    return head if sep and last == str(attempt) else trimmed


def idempotency_for(metadata: Any, output_prefix: str) -> IdempotencyInfo:
    """The attempt key and node tag for one CreateTask (see the module docstring)."""
    ref = execution_ref(metadata)
    prefix = output_prefix or ""
    if ref is None:
        return IdempotencyInfo(
            key=f"{KEY_VERSION}-o-{_digest('output_prefix', prefix)}", node_tag=None, attempt=0, execution=None
        )
    ident = (ref.project, ref.domain, ref.name, ref.node_id)
    key = f"{KEY_VERSION}-a-{_digest(*ident, str(ref.retry_attempt), prefix)}"
    tag = f"{KEY_VERSION}-n-{_digest(*ident, strip_attempt(prefix, ref.retry_attempt))}"
    return IdempotencyInfo(key=key, node_tag=tag, attempt=ref.retry_attempt, execution=ref)
