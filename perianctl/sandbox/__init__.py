"""A local, PERIAN-compatible Job API server that really runs jobs.

The sandbox speaks the PERIAN wire format (``docs: shared/reference/perian-api.md``) closely enough
that the official ``perian`` SDK, perian-cli and perianctl work against it unchanged. It exists so
that every perianctl feature (and every test) can run end to end without a PERIAN account:

* :mod:`~perianctl.sandbox.app` -- the FastAPI app: job, instance-type and accelerator-type routes,
  exact envelopes and ``detail`` strings, plus ``/healthz`` and ``/_sandbox/*`` admin routes.
* :mod:`~perianctl.sandbox.store` -- durable SQLite (WAL) job store, restart-safe.
* :mod:`~perianctl.sandbox.runtimes` -- how jobs run: ``simulate``, ``process`` or ``docker``.
* :mod:`~perianctl.sandbox.faults` -- latency and fault injection (500/503/connection reset).
* :mod:`~perianctl.sandbox.server` -- uvicorn in the foreground or in a background thread.
* :mod:`~perianctl.sandbox.daemon` -- ``start``/``stop``/``status`` of a detached sandbox.

Importing this package is cheap: nothing heavy (FastAPI, uvicorn) is imported until a server is
built.
"""
