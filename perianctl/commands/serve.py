"""Serve the PERIAN Flyte connector over gRPC (what flytepropeller's connector-service talks to).

Serves the Flyte 1 connector services (flyteidl AsyncAgentService, SyncAgentService,
AgentMetadataService) and the Flyte 2 ones (flyteidl2 AsyncConnectorService,
ConnectorMetadataService) side by side -- --protocol v1 or v2 serves only one -- and grpc.health.v1 on --port,
Prometheus metrics on --metrics-port (0 disables), and drains in-flight calls on SIGTERM before
exiting 0. Credentials are read like a flytekit connector server reads them (_FSEC_PERIAN_TOKEN
or /etc/secrets/perian_token, ...), then from --org/--token, PERIAN_* variables or the profile.
--sandbox runs an in-process PERIAN sandbox and points the connector at it.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from perianctl.commands.common import options
from perianctl.connector.settings import ConnectorSettings, ServeOptions

# The flags' defaults are the settings' defaults (one source). This module imports only the light
# settings module at start-up: grpc and flytekit are imported inside the command.
_C = ConnectorSettings()
_S = ServeOptions()


def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            help="Address to bind the gRPC and metrics servers to "
            "[default: [::], all interfaces; 127.0.0.1 with --sandbox].",
            show_default=False,
        ),
    ] = None,
    port: Annotated[int, typer.Option("--port", help="gRPC port (0 picks a free one).", min=0, max=65535)] = _S.port,
    metrics_port: Annotated[
        int, typer.Option("--metrics-port", help="Prometheus /metrics port (0 disables).", min=0, max=65535)
    ] = _S.metrics_port,
    workers: Annotated[
        int, typer.Option("--workers", help="Threads for synchronous connector code.", min=1)
    ] = _S.workers,
    sandbox: Annotated[
        bool,
        typer.Option(
            "--sandbox",
            help="Start an in-process PERIAN sandbox (on 127.0.0.1) and use it; "
            "the gRPC server then listens on 127.0.0.1 too unless --host says otherwise.",
        ),
    ] = _S.sandbox,
    sandbox_runtime: Annotated[
        str,
        typer.Option(
            "--sandbox-runtime",
            metavar="process|simulate|docker",
            help="How the --sandbox runs jobs: process (really, as local processes: tasks "
            "write outputs), simulate (scripted statuses, nothing runs) or docker.",
        ),
    ] = _S.sandbox_runtime,
    sandbox_port: Annotated[
        int,
        typer.Option(
            "--sandbox-port",
            help="Port of the --sandbox's PERIAN API on 127.0.0.1 (0 picks a free one).",
            min=0,
            max=65535,
        ),
    ] = _S.sandbox_port,
    grace: Annotated[
        float, typer.Option("--grace", help="Seconds in-flight calls get to finish on SIGTERM.", min=0)
    ] = _S.grace,
    shutdown_delay: Annotated[
        float,
        typer.Option(
            "--shutdown-delay",
            help="Seconds to keep serving after turning NOT_SERVING on SIGTERM "
            "(lets Kubernetes drop the endpoint first).",
            min=0,
        ),
    ] = _S.shutdown_delay,
    max_message_mb: Annotated[
        int, typer.Option("--max-message-mb", help="Largest gRPC message accepted or sent, MiB.", min=1)
    ] = _S.max_message_mb,
    max_concurrent_rpcs: Annotated[
        int | None, typer.Option("--max-concurrent-rpcs", help="Refuse calls beyond this many (default: no limit).")
    ] = _S.max_concurrent_rpcs,
    log_link_template: Annotated[
        str | None,
        typer.Option(
            "--log-link-template",
            help="URI of the log link shown in Flyte; {api_url}, {job_id} and "
            "{organization} are filled in. '' disables. Default: {api_url}/job/{job_id}.",
        ),
    ] = None,
    reap_orphans: Annotated[
        bool,
        typer.Option(
            "--reap-orphans/--no-reap-orphans",
            help="Run the sweeper that cancels jobs no task attempt owns (orphans of lost "
            "replies and of creates that outlived their call, duplicates).",
        ),
    ] = _C.reap_orphans,
    deadline_margin: Annotated[
        float,
        typer.Option(
            "--deadline-margin",
            help="Seconds before a call's gRPC deadline by which its PERIAN "
            "work must be done (the answer still has to travel back).",
            min=0.1,
        ),
    ] = _C.deadline_margin,
    create_budget: Annotated[
        float,
        typer.Option(
            "--create-budget",
            help="Seconds of PERIAN work for a CreateTask without a gRPC "
            "deadline (propeller: timeouts.CreateTask or defaultTimeout).",
            min=1,
        ),
    ] = _C.create_budget,
    get_budget: Annotated[
        float, typer.Option("--get-budget", help="The same for GetTask (propeller: timeouts.GetTask).", min=0.5)
    ] = _C.get_budget,
    delete_budget: Annotated[
        float,
        typer.Option("--delete-budget", help="The same for DeleteTask (propeller: timeouts.DeleteTask).", min=0.5),
    ] = _C.delete_budget,
    create_reserve: Annotated[
        float,
        typer.Option(
            "--create-reserve",
            help="Seconds a CreateTask keeps after hanging up on a slow "
            "POST /job, to look the job up when the reply was lost.",
            min=0.1,
        ),
    ] = _C.create_reserve,
    sweep_interval: Annotated[
        float,
        typer.Option(
            "--sweep-interval",
            help="Seconds between sweeps that cancel jobs no task attempt owns (bounds how long an orphan runs).",
            min=0.1,
        ),
    ] = _C.sweep_interval,
    sweep_window: Annotated[
        float, typer.Option("--sweep-window", help="Sweeps look at jobs created in the last this many seconds.", min=10)
    ] = _C.sweep_window,
    adopt_window: Annotated[
        float,
        typer.Option(
            "--adopt-window",
            help="A re-sent CreateTask finds its attempt's job among the jobs created in the last this many seconds.",
            min=10,
        ),
    ] = _C.adopt_window,
    clock_skew: Annotated[
        float,
        typer.Option(
            "--clock-skew", help="Tolerated difference between PERIAN's clock and this host's, seconds.", min=0
        ),
    ] = _C.clock_skew,
    http_client: Annotated[
        str,
        typer.Option(
            "--http-client",
            help="HTTP client transport for PERIAN calls: aiohttp (fast) or httpx.",
            case_sensitive=False,
        ),
    ] = _C.http_backend,
    all_connectors: Annotated[
        bool,
        typer.Option(
            "--all-connectors", help="Advertise every registered flytekit connector in ListAgents, not only PERIAN."
        ),
    ] = _S.all_connectors,
    protocol: Annotated[
        str,
        typer.Option(
            "--protocol",
            metavar="v1,v2",
            help="Connector protocols to serve on the port: v1 "
            "(flyteidl, Flyte 1 propeller), v2 (flyteidl2, Flyte 2) or both.",
        ),
    ] = ",".join(_S.protocols),
) -> None:
    import asyncio
    import logging
    import sys

    from perianctl.errors import UsageError

    protocols = tuple(dict.fromkeys(p.strip().lower() for p in protocol.split(",") if p.strip()))
    if not protocols or any(p not in ("v1", "v2") for p in protocols):  # before the heavy imports below
        raise UsageError(f"invalid --protocol '{protocol}': expected v1, v2 or v1,v2")

    sandbox_runtime = sandbox_runtime.strip().lower()
    from perianctl.sandbox.config import RUNTIMES

    if sandbox_runtime not in RUNTIMES:
        raise UsageError(f"invalid --sandbox-runtime '{sandbox_runtime}': expected {', '.join(RUNTIMES)}")
    if (sandbox_port or sandbox_runtime != "process") and not sandbox:
        raise UsageError("--sandbox-runtime and --sandbox-port need --sandbox")
    if host is None:
        host = "127.0.0.1" if sandbox else "[::]"
    # /metrics listens where gRPC does ("[::]" keeps its historical all-interfaces IPv4 bind).
    metrics_host = "0.0.0.0" if host == "[::]" else host.strip("[]")

    from perianctl.connector.server import serve_until_signalled
    from perianctl.connector.settings import DEFAULT_LOG_LINK
    from perianctl.plugins import profile_credentials

    gopts = options(ctx)
    http_client = http_client.lower()
    if http_client not in ("aiohttp", "httpx"):
        raise UsageError(f"invalid --http-client '{http_client}': expected aiohttp or httpx")
    if not logging.getLogger().handlers:
        level = logging.DEBUG if gopts.verbose > 1 else logging.INFO
        logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        for noisy in ("httpx", "httpcore", "asyncio", "grpc", "hpack", "flytekit"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        # One line per PERIAN request is for debugging (-v); by default a busy connector would write
        # hundreds a second (and a reader that falls behind would stall the server on its stderr).
        logging.getLogger("perianctl.http").setLevel(
            logging.DEBUG if gopts.verbose > 1 else logging.INFO if gopts.verbose else logging.WARNING
        )

    explicit_token = gopts.token
    if gopts.token_file:
        from perianctl.config import read_token_file

        explicit_token = read_token_file(gopts.token_file)
    api_url = gopts.api_url
    if not api_url and not sandbox:
        api_url = gopts.settings().api_url  # env PERIAN_API_URL or profile, validated
    elif api_url:
        from perianctl.config import validate_api_url

        api_url = validate_api_url(api_url)
    settings = ConnectorSettings(
        api_url=api_url,
        organization=gopts.organization,
        token=explicit_token,
        credentials=profile_credentials(gopts.profile, gopts.config_file),
        log_link_template=DEFAULT_LOG_LINK if log_link_template is None else log_link_template,
        reap_orphans=reap_orphans,
        http_backend=http_client,
        deadline_margin=deadline_margin,
        create_budget=create_budget,
        get_budget=get_budget,
        delete_budget=delete_budget,
        create_reserve=create_reserve,
        sweep_interval=sweep_interval,
        sweep_window=sweep_window,
        adopt_window=adopt_window,
        clock_skew=clock_skew,
    )
    if settings.log_link_template:
        try:
            settings.log_link_template.format(api_url="", job_id="", organization="")
        except (KeyError, IndexError, ValueError) as exc:
            raise UsageError(f"invalid --log-link-template: {exc}") from None
    serve_options = ServeOptions(
        host=host,
        port=port,
        metrics_port=metrics_port,
        workers=workers,
        grace=grace,
        shutdown_delay=shutdown_delay,
        max_message_mb=max_message_mb,
        max_concurrent_rpcs=max_concurrent_rpcs,
        metrics_host=metrics_host,
        sandbox=sandbox,
        sandbox_runtime=sandbox_runtime,
        sandbox_port=sandbox_port,
        sandbox_factory=_embedded_sandbox if sandbox else None,
        all_connectors=all_connectors,
        connector=settings,
        protocols=protocols,
    )
    try:
        code = asyncio.run(serve_until_signalled(serve_options))
    except OSError as exc:
        raise UsageError(str(exc)) from None
    raise typer.Exit(code)


def _embedded_sandbox(runtime: str, port: int) -> Any:
    """``--sandbox``: a sandbox server in a thread of this process (started by the connector server)."""
    from perianctl.sandbox.server import EmbeddedSandbox

    return EmbeddedSandbox(runtime=runtime, port=port)
