"""A local, PERIAN-compatible Job API server that really runs jobs.

The sandbox speaks the PERIAN wire format (as the ``perian`` SDK 0.5.3 sends and parses it: its
perian/models/ and perian/api/job_api.py) closely enough
that the official ``perian`` SDK, perian-cli and perianctl work against it unchanged. It exists so
that every perianctl feature (and every test) can run end to end without a PERIAN account.

Modules:

* :mod:`~perianctl.sandbox.app` -- the FastAPI app: job, instance-type and accelerator-type routes,
  exact envelopes and ``detail`` strings, plus ``/healthz`` and ``/_sandbox/*`` admin routes.
* :mod:`~perianctl.sandbox.wire` -- lenient request models, strict response builders.
* :mod:`~perianctl.sandbox.catalogue` -- built-in instance/accelerator types and matching.
* :mod:`~perianctl.sandbox.store` -- durable SQLite (WAL) job store, restart-safe.
* :mod:`~perianctl.sandbox.runtimes` -- how jobs run: ``simulate``, ``process`` or ``docker``.
* :mod:`~perianctl.sandbox.faults` -- latency and fault injection (500/503/connection reset).
* :mod:`~perianctl.sandbox.server` -- uvicorn in the foreground, or ``EmbeddedSandbox`` in a thread.
* :mod:`~perianctl.sandbox.daemon` -- ``start``/``stop``/``status`` of a detached sandbox.
* :mod:`~tests.support.forkserver` -- pre-imported process that forks sandboxes fast (tests).

State dir layout (``--state-dir``, default ``<perianctl state dir>/sandbox``)::

    sandbox.db (+ -wal, -shm)   jobs and counters                        0600
    credentials.json            organization and token the API accepts   0600
    sandbox.lock                held (flock) by the running server
    sandbox.json                pid, url, runtime of the running server (no token)
    sandbox.pid, sandbox.log    written by ``sandbox start``
    jobs/<id>/work, jobs/<id>/root   process/docker runtimes: cwd and container files

Importing this package is cheap: nothing heavy (FastAPI, uvicorn) is imported until a server is
built.
"""
