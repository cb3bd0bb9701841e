"""``perianctl serve``: the PERIAN connector served over gRPC, ready for flytepropeller.

* :mod:`.servicers` -- flytekit's Async/Sync/Metadata servicers, subclassed where they fall short
  over real gRPC (streaming GetTaskLogs, GetTaskMetrics, short error messages, no tracebacks).
* :mod:`.metrics` -- Prometheus: flytekit's ``flyte_connector_*`` series plus RPC latency
  histograms, in-flight gauges and PERIAN API request counts, via a server interceptor.
* :mod:`.server` -- the grpc.aio server: health service, message-size limits, graceful SIGTERM
  drain, optional in-process sandbox.
"""
