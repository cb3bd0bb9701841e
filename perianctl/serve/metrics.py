"""Prometheus metrics for ``perianctl serve``, recorded by one gRPC server interceptor.

flytekit's ``flyte_connector_*`` series (registered when its ``connector_service`` is imported) are
kept for dashboards built on the official image. They use a Summary, which cannot give a p99
across replicas, so every RPC -- health checks and streams included -- is also timed here in a
Histogram labelled by method and gRPC status code.
"""

from __future__ import annotations

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


def _wrap_unary(method: str, behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def handler(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        timer = _Timer(method)
        failed = True
        try:
            result = await behavior(request_or_iterator, context)
            failed = False
            return result
        finally:
            timer.done(context, failed)

    return handler


def _wrap_stream(method: str, behavior: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    async def handler(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        timer = _Timer(method)
        failed = True
        try:
            async for response in behavior(request_or_iterator, context):
                yield response
            failed = False
        finally:
            timer.done(context, failed)

    return handler


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Times every RPC. Wraps async handlers only (all of ours are); sync ones pass through."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = _method_name(handler_call_details.method)
        kwargs = {"request_deserializer": handler.request_deserializer,
                  "response_serializer": handler.response_serializer}
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
                return factory(_wrap_stream(method, behavior), **kwargs)
            if _is_async(behavior):  # unary, or streams written with context.write
                return factory(_wrap_unary(method, behavior), **kwargs)
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
