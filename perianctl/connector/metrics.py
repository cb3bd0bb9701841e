"""Prometheus metrics for ``perianctl serve``, recorded by one gRPC server interceptor.

flytekit's ``flyte_connector_*`` series (registered when its ``connector_service`` is imported) are
kept for dashboards built on the official image. They use a Summary, which cannot give a p99
across replicas, so every RPC -- health checks and streams included -- is also timed here in a
Histogram labelled by method and gRPC status code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import Counter, Gauge, Histogram

RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

RPC_DURATION = Histogram(
    "perianctl_connector_rpc_duration_seconds",
    "gRPC handling time by method and status code (GetTask is what propeller polls)",
    ["method", "code"],
    buckets=RPC_BUCKETS,
)
RPC_IN_FLIGHT = Gauge("perianctl_connector_rpc_in_flight", "gRPC calls being handled", ["method"])
RPC_TOTAL = Counter("perianctl_connector_rpcs_total", "gRPC calls handled", ["method", "code"])
SERVING = Gauge("perianctl_connector_serving", "1 while the health service reports SERVING")


def _method_name(full: str) -> str:
    """``/flyteidl.service.AsyncAgentService/GetTask`` → ``AsyncAgentService/GetTask``."""
    service, _, method = full.lstrip("/").rpartition("/")
    return f"{service.rsplit('.', 1)[-1]}/{method}" if service else method


def _code(context: grpc.aio.ServicerContext, failed: bool) -> str:
    code = context.code()
    if code is None or code == grpc.StatusCode.OK:
        code = grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK
    return code.name if isinstance(code, grpc.StatusCode) else str(code)


class DrainGate:
    """Lets ``perianctl serve`` drain by itself instead of leaving it all to ``server.stop(grace)``.

    grpc's ``stop`` fails every call the server has received but not yet handed to a handler with
    CANCELLED. Under load (the event loop busy, calls queued in the transport) that includes calls
    that arrived before SIGTERM, and CANCELLED is neither retried by gRPC clients nor by a
    ``retryPolicy``. So on shutdown the gate first *refuses*: every call that reaches a handler from
    then on is answered UNAVAILABLE at once (the code gRPC retry policies treat as "try another
    replica"); health checks still answer (NOT_SERVING). Calls already being handled finish, and
    :meth:`wait_idle` tells when they have, and :meth:`wait_quiet` lets calls still queued be
    refused too, so ``stop`` then has (almost) nothing left to cut off.
    """

    EXEMPT_PREFIX = "Health/"

    def __init__(self) -> None:
        self.refusing = False
        self.in_flight = 0
        self.refused = 0
        self.last_call = time.monotonic()
        self._idle: asyncio.Event | None = None

    def refuse(self) -> None:
        self.refusing = True

    def should_refuse(self, method: str) -> bool:
        self.last_call = time.monotonic()
        if self.refusing and not method.startswith(self.EXEMPT_PREFIX):
            self.refused += 1
            return True
        return False

    def enter(self) -> None:
        self.in_flight += 1
        if self._idle is not None:
            self._idle.clear()

    def exit(self) -> None:
        self.in_flight -= 1
        if self.in_flight <= 0 and self._idle is not None:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no call is being handled (True), or ``timeout`` seconds (False)."""
        if self.in_flight <= 0:
            return True
        self._idle = asyncio.Event()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return self.in_flight <= 0
        return True

    async def wait_quiet(self, quiet: float, timeout: float) -> bool:
        """Wait until no call has arrived for ``quiet`` seconds (True), or ``timeout`` (False).

        The lull is counted from now at the earliest: right after the drain, the clients whose calls
        just finished send their next ones, and those must meet the gate (UNAVAILABLE), not ``stop``
        (CANCELLED), however long ago the previous refused call was.
        """
        start = time.monotonic()
        end = start + timeout
        while True:
            now = time.monotonic()
            idle_for = now - max(self.last_call, start)
            if idle_for >= quiet:
                return True
            if now >= end:
                return False
            await asyncio.sleep(min(quiet - idle_for, end - now))


SHUTTING_DOWN = "perianctl serve is shutting down; retry the call (another replica will answer)"


class _Timer:
    def __init__(self, method: str) -> None:
        self.method = method
        self.start = time.perf_counter()
        RPC_IN_FLIGHT.labels(method).inc()

    def done(self, context: grpc.aio.ServicerContext, failed: bool) -> None:
        code = _code(context, failed)
        RPC_IN_FLIGHT.labels(self.method).dec()
        RPC_DURATION.labels(self.method, code).observe(time.perf_counter() - self.start)
        RPC_TOTAL.labels(self.method, code).inc()


def _wrap_unary(
    method: str, behavior: Callable[..., Awaitable[Any]], gate: DrainGate | None = None
) -> Callable[..., Awaitable[Any]]:
    async def handler(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        timer = _Timer(method)
        failed = True
        try:
            if gate is None:
                result = await behavior(request_or_iterator, context)
            else:
                if gate.should_refuse(method):
                    await context.abort(grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
                gate.enter()
                try:
                    result = await behavior(request_or_iterator, context)
                finally:
                    gate.exit()
            failed = False
            return result
        finally:
            timer.done(context, failed)

    return handler


def _wrap_stream(
    method: str, behavior: Callable[..., AsyncIterator[Any]], gate: DrainGate | None = None
) -> Callable[..., AsyncIterator[Any]]:
    async def handler(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        timer = _Timer(method)
        failed = True
        entered = False
        try:
            if gate is not None:
                if gate.should_refuse(method):
                    await context.abort(grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
                gate.enter()
                entered = True
            async for response in behavior(request_or_iterator, context):
                yield response
            failed = False
        finally:
            if entered and gate is not None:
                gate.exit()
            timer.done(context, failed)

    return handler


class MetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    """Times every RPC. Wraps async handlers only (all of ours are); sync ones pass through.

    With a :class:`DrainGate` it also counts the calls being handled and refuses new ones once the
    gate is closed.
    """

    def __init__(self, gate: DrainGate | None = None) -> None:
        self.gate = gate

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = _method_name(handler_call_details.method)
        kwargs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        for kind, factory in (
            ("unary_unary", grpc.unary_unary_rpc_method_handler),
            ("unary_stream", grpc.unary_stream_rpc_method_handler),
            ("stream_unary", grpc.stream_unary_rpc_method_handler),
            ("stream_stream", grpc.stream_stream_rpc_method_handler),
        ):
            behavior = getattr(handler, kind)
            if behavior is None:
                continue
            if _is_async_gen(behavior):  # streams written by yielding
                return factory(_wrap_stream(method, behavior, self.gate), **kwargs)
            if _is_async(behavior):  # unary, or streams written with context.write
                return factory(_wrap_unary(method, behavior, self.gate), **kwargs)
            break
        return handler


def _is_async(func: Any) -> bool:
    import inspect

    return inspect.iscoroutinefunction(func)


def _is_async_gen(func: Any) -> bool:
    import inspect

    return inspect.isasyncgenfunction(func)


def start_metrics_server(port: int, host: str = "0.0.0.0") -> Callable[[], None] | None:
    """Serve ``/metrics`` on ``host:port`` in a daemon thread; returns a stop function (None if port 0)."""
    if not port:
        return None
    from prometheus_client import start_http_server

    server, thread = start_http_server(port, addr=host)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
