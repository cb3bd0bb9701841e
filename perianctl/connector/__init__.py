"""The PERIAN Flyte connector: everything that runs inside a connector process, and its gRPC client.

Settings come in explicitly (:mod:`.settings`); nothing here reads perianctl's CLI configuration.

* :mod:`.settings` -- ConnectorSettings and ServeOptions (``serve``'s flag defaults); ``from_env`` (``PERIAN_*`` only).
* :mod:`.service` -- PerianConnector: ``perian_task`` → PERIAN jobs, deadline-aware, convergent, idempotent.
* :mod:`.secrets` -- credentials and job secrets, looked up as a flytekit connector server does.
* :mod:`.idempotency` -- the attempt key and node tag of a CreateTask.
* :mod:`.convergence` -- at most one running job per attempt: adopt, claim and sweep rules from PERIAN data.
* :mod:`.spend` -- price and cost reported in Flyte (custom_info, metrics, budgets).
* :mod:`.v2` -- the Flyte 2 (flyteidl2) protocol over the same PerianConnector.
* :mod:`.servicers` -- flytekit's Async/Sync/Metadata servicers, fixed where they fall short over gRPC.
* :mod:`.servicers_v2` -- flyteidl2 AsyncConnectorService and ConnectorMetadataService.
* :mod:`.metrics` -- Prometheus series and the interceptor that records them.
* :mod:`.server` -- the grpc.aio server of ``perianctl serve``: health, limits, SIGTERM drain, ``--sandbox``.
* :mod:`.register` -- registration with flytekit's ConnectorRegistry (override, one advertiser).
* :mod:`.flyte2` -- the connector for the ``flyte`` SDK (Flyte 2 local runs, ``flyte serve connector``).
* :mod:`.grpc_client` -- talk to any connector exactly as flytepropeller does (``--connector``).
* :mod:`.check` -- the propeller-faithful harness: drive a connector, count jobs per attempt.
"""
