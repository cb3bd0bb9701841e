"""The Flyte 2 (``flyteidl2.connector``) protocol over the *one* PERIAN connector.

Flyte 2 defines its own connector contract (flyteidl2/connector/service.proto on flyteorg/flyte
``main``; the ``flyte.connectors`` module of the ``flyte`` SDK): package
``flyteidl2.connector``, inputs as ``task.Inputs``, a per-request ``core.Connection`` with secrets,
a paged, timestamped GetTaskLogs, ``RETRYABLE_FAILED`` as a terminal phase. Nothing here is a
second connector: every call is translated into the calls of :class:`~.connector.PerianConnector`
(the same client pool, idempotency keys, orphan handling, phase memory and spend meter as the
Flyte 1 protocol), and the answers are translated back.

Why a *wire* translation works: ``flyteidl2.core`` only *extends* ``flyteidl.core`` -- every field
the two ``TaskTemplate``, ``Literal``, ``TaskExecutionMetadata``, ``TaskLog`` and
``ExecutionMetricResult`` messages share has the same number and type (checked by
``tests/integration/test_serve_v2.py``), and ``task.Inputs.literals`` (repeated ``NamedLiteral{name=1,
value=2}``) is the wire form of ``LiteralMap.literals`` (a map is a repeated entry ``{key=1,
value=2}``). So ``v1.FromString(v2.SerializeToString())`` is exact; fields only Flyte 2 knows stay
as unknown fields and are ignored by the translation, as they would be by a Flyte 1 connector.

Imports ``flyteidl`` and ``flyteidl2`` only -- never the ``flyte`` SDK, whose ``flyte.connectors``
registers the same Prometheus metric names as flytekit's connector service and therefore cannot
share a process with ``perianctl serve`` (importing both raises ``Duplicated timeseries``).
"""

from __future__ import annotations

import datetime as dt
import re
import zlib
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from flyteidl.admin import agent_pb2 as v1_agent
from flyteidl.core import literals_pb2 as v1_literals
from flyteidl.core import tasks_pb2 as v1_tasks
from flyteidl2.connector import connector_pb2 as c2
from flyteidl2.core import execution_pb2 as e2
from flyteidl2.logs.dataplane import payload_pb2
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from perianctl.connector.secrets import request_secrets
from perianctl.flyte.phase import FlytePhase
from perianctl.perian.status import is_terminal

if TYPE_CHECKING:
    from flyteidl2.task import common_pb2

    from perianctl.connector.service import PerianConnector, PerianMetadata
    from perianctl.perian import models as m

#: Lines per GetTaskLogs page and per body message (a page is a header plus its bodies).
LOG_PAGE_LINES = 5000
LOG_CHUNK_LINES = 500

# An RFC 3339 stamp at the start of a line, as ``docker logs --timestamps`` and most loggers write it.
_LEADING_STAMP = re.compile(r"^\[?(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?)\]?\s")


# ---------------------------------------------------------------------- wire translations


def template_to_v1(template: Any) -> v1_tasks.TaskTemplate:
    """flyteidl2 ``TaskTemplate`` → flyteidl ``TaskTemplate`` (same wire form; see module docstring).

    The ``flyte`` SDK gives every task a ``container``; for a PERIAN container task it is empty (no
    image, command or args) and the real image and command are the ``custom`` keys, as in Flyte 1's
    container-less ``PerianContainerTask``. Such an empty container is dropped (its env moves under
    ``custom.environment``), so the command in ``custom`` is what runs.
    """
    v1 = v1_tasks.TaskTemplate.FromString(template.SerializeToString())
    container = v1.container if v1.HasField("container") else None
    if (
        container is not None
        and not container.image
        and not container.command
        and not container.args
        and v1.HasField("custom")
        and "command" in v1.custom.fields
    ):
        env = {kv.key: kv.value for kv in container.env}
        if env:
            custom_env = v1.custom.fields["environment"].struct_value if "environment" in v1.custom.fields else None
            merged = {**env, **(json_format.MessageToDict(custom_env) if custom_env is not None else {})}
            v1.custom.update({"environment": merged})
        v1.ClearField("container")
    return v1


def inputs_to_v1(inputs: common_pb2.Inputs | None) -> v1_literals.LiteralMap | None:
    """``task.Inputs`` → ``LiteralMap`` (``literals`` is the same field on the wire; ``context`` is dropped)."""
    if inputs is None:
        return None
    return v1_literals.LiteralMap.FromString(inputs.SerializeToString())


def metadata_to_v1(metadata: c2.TaskExecutionMetadata | None) -> v1_agent.TaskExecutionMetadata | None:
    """Flyte 2 ``TaskExecutionMetadata`` → Flyte 1's: the idempotency key reads the same ids."""
    if metadata is None:
        return None
    return v1_agent.TaskExecutionMetadata.FromString(metadata.SerializeToString())


def task_log_to_v2(link: Any) -> e2.TaskLog:
    return e2.TaskLog.FromString(link.SerializeToString())


def metrics_to_v2(response: v1_agent.GetTaskMetricsResponse) -> c2.GetTaskMetricsResponse:
    return c2.GetTaskMetricsResponse.FromString(response.SerializeToString())


def resource_to_v2(resource: Any) -> c2.Resource:
    """The core's ``Resource`` (phase, message, log links, custom_info) as a flyteidl2 ``Resource``.

    No outputs: the task's container writes ``<output_prefix>/outputs.pb`` and Flyte reads it there.
    """
    custom = getattr(resource, "custom_info", None)
    custom_info = None
    if custom:
        custom_info = Struct()
        custom_info.update(custom)  # what json_format.ParseDict builds, without walking it in Python
    return c2.Resource(
        phase=int(resource.phase),
        message=resource.message or "",
        log_links=[task_log_to_v2(link) for link in (resource.log_links or [])],
        custom_info=custom_info,
    )


def connection_secrets(connection: Any) -> dict[str, str]:
    """The secrets a request's ``core.Connection`` carries (empty when it has none)."""
    if connection is None:
        return {}
    return {str(k): str(v) for k, v in connection.secrets.items()}


# ---------------------------------------------------------------------- log pages


def _line_hash(line: str) -> str:
    return f"{zlib.crc32(line.encode('utf-8', 'surrogatepass')):08x}"


def log_token(lines: list[str], end: int) -> str:
    """The token of the position after ``lines[:end]``: the offset plus a hash of the line before it.

    The hash lets a later call find its place again when the start of the log was dropped
    (PERIAN keeps a capped buffer: the offset alone would then skip new lines).
    """
    return f"{end}:{_line_hash(lines[end - 1])}" if end > 0 else "0"


def resume_at(lines: list[str], token: str) -> int:
    """Where a page for ``token`` starts in ``lines``. Raises ValueError for a malformed token.

    * ``""`` or ``"0"``: the beginning;
    * ``"N"`` (what Flyte 1's ``perianctl serve`` hands out): line N, clamped to the end;
    * ``"N:hash"``: after the line with that hash -- at N if it is still there, else at its
      latest earlier occurrence (the log's head was dropped), else from the start of what is left.
    """
    token = token.strip()
    if not token:
        return 0
    offset_text, _, wanted = token.partition(":")
    try:
        offset = int(offset_text)
    except ValueError:
        raise ValueError(f"invalid log page token {token!r}") from None
    if offset < 0 or (wanted and not re.fullmatch(r"[0-9a-f]{8}", wanted)):
        raise ValueError(f"invalid log page token {token!r}")
    if not wanted:
        return min(offset, len(lines))
    if 0 < offset <= len(lines) and _line_hash(lines[offset - 1]) == wanted:
        return offset
    for index in range(min(offset, len(lines)) - 1, -1, -1):
        if _line_hash(lines[index]) == wanted:
            return index + 1
    return 0


def _stamp(line: str, fallback: dt.datetime) -> tuple[Timestamp, str]:
    """The line's own leading RFC 3339 stamp when it has one, else ``fallback``."""
    when = fallback
    match = _LEADING_STAMP.match(line)
    if match:
        text = match.group(1).replace(",", ".").replace(" ", "T", 1)
        text = re.sub(r"(\.\d{6})\d+", r"\1", text)  # fromisoformat takes microseconds at most
        try:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            when = parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
        except ValueError:
            pass
    stamp = Timestamp()
    stamp.FromDatetime(when.astimezone(dt.UTC))
    return stamp, line


def log_page(
    job: m.JobView, *, lines: int = 0, token: str = "", now: dt.datetime | None = None
) -> tuple[str, list[payload_pb2.LogLine]]:
    """``(next token, lines of this page)`` of a job's log.

    ``lines`` > 0 without a token starts that many lines before the end (a tail). A running
    job's last line is only delivered once it is complete (ends with a newline), so a resumed read
    never splits a line. The token is always set: passing it again later returns only what was
    written since (an empty page when nothing was). Each line's timestamp is its own leading
    RFC 3339 stamp when it has one; otherwise the job's ``done_at`` for a finished job, else the
    time of this read (PERIAN's log is plain text without per-line times).
    """
    text = job.logs or ""
    all_lines = text.splitlines()
    if all_lines and not is_terminal(job.status) and not text.endswith(("\n", "\r")):
        all_lines = all_lines[:-1]  # still being written
    tail = max(0, len(all_lines) - int(lines)) if lines and lines > 0 else 0
    start = resume_at(all_lines, token) if token else tail
    end = min(len(all_lines), start + LOG_PAGE_LINES)
    fallback = job.done_at or now or dt.datetime.now(dt.UTC)
    page = []
    for line in all_lines[start:end]:
        stamp, message = _stamp(line, fallback)
        page.append(
            payload_pb2.LogLine(timestamp=stamp, message=message, originator=payload_pb2.LogLineOriginator.USER)
        )
    return log_token(all_lines, end) if end else (token.strip() or "0"), page


# ---------------------------------------------------------------------- the adapter


class PerianV2:
    """The Flyte 2 face of one :class:`PerianConnector`: flyteidl2 messages in, flyteidl2 out.

    Used by ``perianctl serve``'s flyteidl2 servicers and by the ``flyte`` SDK plugin
    (:mod:`perianctl.flyte.flyte2`), so both speak exactly the same semantics.
    """

    def __init__(self, connector: PerianConnector) -> None:
        self.connector = connector

    async def create(
        self,
        template: Any,
        output_prefix: str,
        *,
        inputs: Any = None,
        metadata: Any = None,
        secrets: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> PerianMetadata:
        """CreateTask: ``template`` (flyteidl2 or flyteidl), ``inputs`` a ``task.Inputs`` or a ``LiteralMap``."""
        v1_template = template if isinstance(template, v1_tasks.TaskTemplate) else template_to_v1(template)
        v1_inputs = inputs if inputs is None or isinstance(inputs, v1_literals.LiteralMap) else inputs_to_v1(inputs)
        with request_secrets(secrets):
            return await self.connector.create(
                task_template=v1_template,
                output_prefix=output_prefix,
                inputs=v1_inputs,
                task_execution_metadata=metadata_to_v1(metadata),
                deadline=deadline,
            )

    async def get(
        self,
        meta: PerianMetadata,
        *,
        output_prefix: str = "",
        secrets: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> c2.Resource:
        with request_secrets(secrets):
            resource = await self.connector.get(meta, output_prefix=output_prefix, deadline=deadline)
        return resource_to_v2(resource)

    async def delete(
        self, meta: PerianMetadata, *, secrets: Mapping[str, str] | None = None, deadline: float | None = None
    ) -> None:
        with request_secrets(secrets):
            await self.connector.delete(meta, deadline=deadline)

    async def get_metrics(self, meta: PerianMetadata, queries: list[str] | None = None) -> c2.GetTaskMetricsResponse:
        return metrics_to_v2(await self.connector.get_metrics(meta, queries=queries))

    async def get_logs(
        self, meta: PerianMetadata, *, lines: int = 0, token: str = ""
    ) -> AsyncIterator[c2.GetTaskLogsResponse]:
        """One page: a header with the next token, then the page's lines in bodies of
        :data:`LOG_CHUNK_LINES` (timestamped ``LogLine`` entries; the deprecated ``results`` strings
        are not filled)."""
        job = await self.connector.client().get_job(meta.job_id)
        next_token, page = log_page(job, lines=lines, token=token)
        yield c2.GetTaskLogsResponse(header=c2.GetTaskLogsResponseHeader(token=next_token))
        for start in range(0, len(page), LOG_CHUNK_LINES):
            yield c2.GetTaskLogsResponse(body=c2.GetTaskLogsResponseBody(lines=page[start : start + LOG_CHUNK_LINES]))


def is_terminal_v2(phase: int) -> bool:
    """Terminal in Flyte 2 (RETRYABLE_FAILED included: the attempt is over)."""
    return phase in (FlytePhase.SUCCEEDED, FlytePhase.FAILED, FlytePhase.ABORTED, FlytePhase.RETRYABLE_FAILED)
