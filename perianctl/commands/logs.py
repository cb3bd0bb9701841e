"""Print a job's logs; --follow polls and prints only what is new, then exits with the job's outcome.

With --connector HOST:PORT (or the 'connector' setting) the lines come from a Flyte connector's
GetTaskLogs stream (every page), and --follow polls GetTaskLogs and GetTask until the task ends.
"""

from __future__ import annotations

from typing import Annotated

import typer

from perianctl.commands.common import (
    ConnectorOption,
    IntervalOption,
    LastOption,
    ProtocolOption,
    connector_target,
    options,
    output_option,
    resolve_job_ids,
    run,
    warn_unreadable,
)


def logs(
    ctx: typer.Context,
    job_id: Annotated[
        str | None, typer.Argument(help="Job id, a unique prefix of one, or @last.", show_default=False)
    ] = None,
    last: bool = LastOption,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new output until the job ends.")
    ] = False,
    tail: Annotated[int | None, typer.Option("--tail", min=0, help="Only the last N lines to start with.")] = None,
    interval: float = IntervalOption,
    output: Annotated[str, output_option("text", "json", about=" (json: NDJSON lines)")] = "text",
    connector: str | None = ConnectorOption,
    protocol: str | None = ProtocolOption,
) -> None:
    from perianctl.errors import UsageError

    if output not in ("text", "json"):
        raise UsageError(f"invalid output format '{output}' (choose: text, json)")
    target = connector_target(ctx, connector, protocol)
    ids = resolve_job_ids(ctx, [job_id] if job_id else None, last=last, api=not target)
    if len(ids) != 1:
        raise UsageError("logs takes exactly one job")
    from perianctl.jobs.logs import read_logs

    sink = _Printer(ids[0], as_json=output == "json")
    waiting = f"waiting for connector {target}" if target else "waiting for PERIAN"
    code = run(
        read_logs(
            options(ctx).settings(),
            ids[0],
            connector=target,
            follow=follow,
            tail=tail,
            interval=interval,
            sink=sink,
            on_unreadable=warn_unreadable,
        ),
        status=None if follow else waiting,
    )
    sink.close()
    if code:
        raise typer.Exit(code)


class _Printer:
    """Log text on stdout (secrets scrubbed; NDJSON lines with -o json), notes on stderr."""

    def __init__(self, job_id: str, *, as_json: bool) -> None:
        self.job_id = job_id
        self.as_json = as_json
        self.last = "\n"

    def text(self, chunk: str) -> None:
        import json
        import sys

        from perianctl.redact import scrub

        if self.as_json:
            for line in chunk.splitlines():
                sys.stdout.write(json.dumps({"job_id": self.job_id, "line": scrub(line)}) + "\n")
        else:
            sys.stdout.write(scrub(chunk))
            self.last = chunk[-1]
        sys.stdout.flush()

    def note(self, message: str) -> None:
        from perianctl.ui.console import info

        info(message)

    def retrying(self, message: str) -> None:
        from perianctl.ui.console import warn

        warn(message)

    def close(self) -> None:
        """Text that did not end with a line end gets one, so the shell prompt starts on its own line."""
        import sys

        if self.last != "\n":
            sys.stdout.write("\n")
            sys.stdout.flush()
