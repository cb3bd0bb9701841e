"""The grpc.aio server behind ``perianctl serve``.

What it adds over ``pyflyte serve connector`` (flytekit's flytekit/clis/sdk_in_container/serve.py, 1.16.x):

* **Graceful shutdown.** SIGTERM/SIGINT → health NOT_SERVING (readiness fails, the k8s resolver
  drops the pod) → optional ``shutdown_delay`` while still serving → new calls are refused with
  UNAVAILABLE, in-flight ones finish (within ``grace``) → ``server.stop`` → HTTP pools closed →
  exit 0.
* **Health for every service**, SERVING only once the port is bound, NOT_SERVING on shutdown.
* **Message-size limits** (gRPC's default 4 MiB receive limit is small for big input maps).
* **An in-process sandbox** (``--sandbox``) for demos and tests without a PERIAN account.
* One event loop, no blocking calls on it: every handler is ``async`` and PERIAN calls go through
  one pooled ``httpx.AsyncClient``. The thread pool (``workers``) only runs synchronous code of
  third-party connectors. The start-up heap is frozen (``gc.freeze``), so full garbage
  collections stay short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from flyteidl.service import agent_pb2 as agent_service_pb2
from flyteidl.service.agent_pb2_grpc import (
    add_AgentMetadataServiceServicer_to_server,
    add_AsyncAgentServiceServicer_to_server,
    add_SyncAgentServiceServicer_to_server,
)
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from perianctl.connector.metrics import SERVING, DrainGate, MetricsInterceptor, start_metrics_server
from perianctl.connector.service import PerianConnector
from perianctl.connector.servicers import PerianAsyncService, PerianMetadataService, PerianSyncService
from perianctl.connector.settings import DEFAULT_LOG_LINK, ConnectorSettings, ServeOptions

log = logging.getLogger("perianctl.serve")

QUIET_BEFORE_STOP = 0.3

SERVICE_NAMES: tuple[str, ...] = tuple(s.full_name for s in agent_service_pb2.DESCRIPTOR.services_by_name.values())


def v2_service_names() -> tuple[str, ...]:
    """``flyteidl2.connector.AsyncConnectorService`` and ``ConnectorMetadataService``."""
    from flyteidl2.connector import service_pb2

    return tuple(s.full_name for s in service_pb2.DESCRIPTOR.services_by_name.values())


@dataclass
class RunningServer:
    """A started server; :meth:`shutdown` is the graceful path SIGTERM takes."""

    server: grpc.aio.Server
    port: int
    health: Any
    connector: PerianConnector
    options: ServeOptions
    stop_metrics: Callable[[], None] | None = None
    sandbox: Any = None
    gate: DrainGate | None = None
    _stopped: bool = False

    @property
    def address(self) -> str:
        host = self.options.host
        return f"{host}:{self.port}"

    async def shutdown(self, grace: float | None = None) -> None:
        if self._stopped:
            return
        self._stopped = True
        await self.health.enter_graceful_shutdown()
        SERVING.set(0)
        if self.options.shutdown_delay > 0:
            log.info("NOT_SERVING; still answering for %.1fs before draining", self.options.shutdown_delay)
            await asyncio.sleep(self.options.shutdown_delay)
        grace = self.options.grace if grace is None else grace
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if self.gate is not None:
            # Refuse new calls with UNAVAILABLE ourselves and let the ones being handled finish;
            # grpc's stop would answer calls still queued in the transport with CANCELLED.
            self.gate.refuse()
            handling = self.gate.in_flight
            if await self.gate.wait_idle(grace):
                log.info("drained %d in-flight calls in %.2fs", handling, grace - (deadline - loop.time()))
            else:
                log.warning(
                    "grace of %.1fs over with %d calls still running; cancelling them", grace, self.gate.in_flight
                )
            # Calls still queued in the transport get UNAVAILABLE from the gate once dispatched.
            # grpc's stop() answers every call it holds at that moment with CANCELLED (which retry
            # policies do not retry), so keep refusing until callers have gone elsewhere: no call
            # for QUIET_BEFORE_STOP seconds, for at most the rest of the grace period.
            if not await self.gate.wait_quiet(QUIET_BEFORE_STOP, max(0.0, deadline - loop.time())):
                log.warning(
                    "calls kept arriving for the whole grace period; stopping anyway (the "
                    "ones in transit get CANCELLED)"
                )
            log.info("refused %d calls that arrived while draining (UNAVAILABLE)", self.gate.refused)
        await self.server.stop(max(0.0, deadline - loop.time()))
        with contextlib.suppress(Exception):
            await self.connector.aclose()
        if self.stop_metrics is not None:
            self.stop_metrics()
        if self.sandbox is not None:
            with contextlib.suppress(Exception):
                self.sandbox.stop()


SANDBOX_LOG_LINK = "{api_url}/_sandbox/jobs/{job_id}/log"
"""Where the log link points in the sandbox: a page with the job's status and log (the API's job
record needs auth headers a browser does not send)."""


def _start_sandbox(settings: ConnectorSettings, options: ServeOptions) -> tuple[Any, ConnectorSettings]:
    """Start the in-process sandbox and point the connector at it."""
    from dataclasses import replace

    if options.sandbox_factory is None:
        raise ValueError("ServeOptions(sandbox=True) needs a sandbox_factory")
    sandbox = options.sandbox_factory(options.sandbox_runtime, options.sandbox_port)
    sandbox.start()
    log.info(
        "in-process PERIAN sandbox at %s (organization %s, runtime %s)",
        sandbox.url,
        sandbox.organization,
        options.sandbox_runtime,
    )
    link = SANDBOX_LOG_LINK if settings.log_link_template == DEFAULT_LOG_LINK else settings.log_link_template
    return sandbox, replace(
        settings, api_url=sandbox.url, organization=sandbox.organization, token=sandbox.token, log_link_template=link
    )


async def start(options: ServeOptions) -> RunningServer:
    """Register the connector, bind, start, mark SERVING. Raises on a port that cannot be bound."""
    from perianctl.connector.register import register

    sandbox = None
    settings = options.connector
    if options.sandbox:
        sandbox, settings = await asyncio.get_running_loop().run_in_executor(None, _start_sandbox, settings, options)
    connector = register(PerianConnector(settings))  # serving PERIAN is the point: no opt-out here

    limit = options.max_message_mb * 1024 * 1024
    gate = DrainGate()
    server = grpc.aio.server(
        futures.ThreadPoolExecutor(max_workers=options.workers),
        interceptors=[MetricsInterceptor(gate)],
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            ("grpc.so_reuseport", 0),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ],
        maximum_concurrent_rpcs=options.max_concurrent_rpcs,
    )
    served: list[str] = []
    if "v1" in options.protocols:
        add_AsyncAgentServiceServicer_to_server(PerianAsyncService(), server)
        add_SyncAgentServiceServicer_to_server(PerianSyncService(), server)
        add_AgentMetadataServiceServicer_to_server(
            PerianMetadataService(perian_only=not options.all_connectors), server
        )
        served.extend(SERVICE_NAMES)
    if "v2" in options.protocols:  # flyteidl2, dispatching to the same connector instance
        from flyteidl2.connector.service_pb2_grpc import (
            add_AsyncConnectorServiceServicer_to_server,
            add_ConnectorMetadataServiceServicer_to_server,
        )

        from perianctl.connector.servicers_v2 import PerianAsyncServiceV2, PerianMetadataServiceV2

        add_AsyncConnectorServiceServicer_to_server(PerianAsyncServiceV2(connector), server)
        add_ConnectorMetadataServiceServicer_to_server(PerianMetadataServiceV2(connector), server)
        served.extend(v2_service_names())
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)

    try:
        port = server.add_insecure_port(f"{options.host}:{options.port}")
    except RuntimeError as exc:
        raise OSError(f"cannot bind gRPC port {options.host}:{options.port} ({exc})") from None
    stop_metrics = start_metrics_server(options.metrics_port, options.metrics_host) if options.metrics_port else None
    await server.start()
    for name in (*served, health.SERVICE_NAME, ""):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    SERVING.set(1)
    return RunningServer(
        server=server,
        port=port,
        health=health_servicer,
        connector=connector,
        options=options,
        stop_metrics=stop_metrics,
        sandbox=sandbox,
        gate=gate,
    )


def startup_line(running: RunningServer) -> str:
    opts = running.options
    settings = running.connector.settings
    metrics = f"{opts.metrics_host}:{opts.metrics_port}/metrics" if opts.metrics_port else "off"
    link = settings.log_link_template if settings.log_link_template != DEFAULT_LOG_LINK else "default"
    return (
        f"perianctl serve: listening on {running.address} | protocols {','.join(opts.protocols)} | "
        f"task types: perian_task v0 | "
        f"PERIAN API {running.connector.api_url()} | metrics {metrics} | grace {opts.grace:g}s | log links {link}"
    )


def _freeze_startup_heap() -> None:
    """Move everything allocated so far (flytekit, grpc, pydantic: ~1M objects) out of the GC's reach.

    Those objects live as long as the process. Left in generation 2, every full collection walks
    them: measured 110-160 ms pauses, several a second under 64 GetTask streams, which showed up as
    p99 latency and cost ~20 % of GetTask throughput. Frozen, a full collection takes ~20 ms.
    """
    import gc

    gc.collect()
    gc.freeze()


async def serve_until_signalled(options: ServeOptions, *, ready: Callable[[RunningServer], None] | None = None) -> int:
    """Run until SIGTERM/SIGINT, then drain gracefully. Returns the exit code (0)."""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(futures.ThreadPoolExecutor(max_workers=options.workers))
    stop = asyncio.Event()
    received: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig.name)
        if not stop.is_set():
            stop.set()
        elif sig == signal.SIGINT:  # a second Ctrl-C: stop waiting for in-flight calls
            print("perianctl serve: second SIGINT; exiting without draining", file=sys.stderr, flush=True)
            os._exit(130)
        # a repeated SIGTERM changes nothing: the drain is already under way

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)  # before start: a SIGTERM during start-up counts
    try:
        running = await start(options)
        _freeze_startup_heap()
        secrets = running.connector.secrets()
        print(f"perianctl serve: secrets found: {secrets.describe()}", file=sys.stderr, flush=True)
        if secrets.missing_credentials():
            log.warning(
                "no PERIAN %s: calls will fail until the secret is mounted%s",
                " and ".join(secrets.missing_credentials()),
                " (Flyte 2 calls that bring them in their Connection work)" if "v2" in options.protocols else "",
            )
        print(startup_line(running), file=sys.stderr, flush=True)
        if ready is not None:
            ready(running)
        await stop.wait()
        print(
            f"perianctl serve: {received[0] if received else 'stop'} received; draining in-flight calls "
            f"(grace {options.grace:g}s)",
            file=sys.stderr,
            flush=True,
        )
        await running.shutdown()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        # A late duplicate SIGTERM must not turn a clean exit into "killed" while Python unwinds.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("perianctl serve: stopped", file=sys.stderr, flush=True)
    return 0
