"""Run a local PERIAN-compatible API (jobs simulated, or really run as processes or containers)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from perianctl.commands.common import command_group, options, output_option
from perianctl.errors import ExitCode, PerianctlError, UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from perianctl.sandbox.config import SandboxConfig
    from perianctl.sandbox.impolite import ImpoliteRule

PROFILE_NAME = "sandbox"

sandbox_app = command_group("sandbox", __doc__)


class SandboxError(PerianctlError):
    """The sandbox could not start or be reached."""

    exit_code = ExitCode.UNAVAILABLE


# Option declarations shared by `start` and `run` (Typer needs them on each command).
StateDir = Annotated[
    Path | None,
    typer.Option(
        "--state-dir", help="Jobs database, credentials, pid and log [default: <perianctl state dir>/sandbox]."
    ),
]
Host = Annotated[str, typer.Option("--host", help="Address to listen on.")]
Port = Annotated[int, typer.Option("--port", help="Port to listen on (0 = pick a free port).")]
Runtime = Annotated[str, typer.Option("--runtime", help="How jobs run: simulate, process or docker.")]
Org = Annotated[str | None, typer.Option("--org", help="Organization to accept [default: stored, or 'sandbox'].")]
Token = Annotated[str | None, typer.Option("--token", help="Token to accept [default: stored, or generated].")]
Speed = Annotated[float, typer.Option("--speed", help="Simulation speed factor (10 = ten times faster).")]
Latency = Annotated[str | None, typer.Option("--latency", help="Added latency in seconds: 0.2 or a range 0.1-0.5.")]
LatencyEndpoints = Annotated[
    str | None,
    typer.Option(
        "--latency-endpoints",
        help="Where latency applies (comma list of create,get,list,cancel,instance-type,"
        "accelerator-type,billing) [default: all].",
    ),
]
FaultRate = Annotated[float, typer.Option("--fault-rate", help="Chance (0..1) that a request gets a fault.")]
FaultKinds = Annotated[str | None, typer.Option("--fault-kinds", help="Comma list of 500,503,reset [default: all].")]
FaultEndpoints = Annotated[
    str | None,
    typer.Option("--fault-endpoints", help="Where faults apply (same names as --latency-endpoints) [default: all]."),
]
FaultPhase = Annotated[
    str,
    typer.Option("--fault-phase", help="before: fail instead of handling; after: handle, then lose the reply; mixed."),
]
FaultSeed = Annotated[int | None, typer.Option("--fault-seed", help="Seed for reproducible faults and latency.")]
KillGrace = Annotated[float, typer.Option("--kill-grace", help="Seconds between SIGTERM and SIGKILL on cancel.")]
MaxParallel = Annotated[int, typer.Option("--max-parallel", help="Jobs run at once by the process/docker runtime.")]
LogCap = Annotated[int, typer.Option("--log-cap", help="Max characters of logs kept per job.")]
AccessLog = Annotated[bool, typer.Option("--access-log/--no-access-log", help="Log every request.")]
IMPOLITE_HELP = (
    "An impolite PERIAN rule, repeatable: ENDPOINT=MODE[:ITEM,...]. ENDPOINT: create, get, list, cancel, "
    "instance-type, accelerator-type, billing or * . MODE: slow (answer after the delay; the work is done even if the "
    "caller hung up), stall (never answer; close after the delay, work done then), refuse (connections "
    "refused for the window; endpoint *), 429 (Too Many Requests with Retry-After). ITEM: a duration (7s), "
    "count=N (first N requests only), retry-after=DURATION (429), commit=no (slow/stall: drop the work when "
    "the caller hung up). Examples: create=slow:7s  create=stall:15s,count=1  get=slow:7s  *=refuse:10s  "
    "*=429:count=20,retry-after=2"
)
Impolite = Annotated[list[str] | None, typer.Option("--impolite", metavar="RULE", help=IMPOLITE_HELP)]
Credits = Annotated[
    str | None,
    typer.Option(
        "--credits",
        help="Initial credits in EUR; jobs' costs run them down, and at zero running jobs are "
        "stopped and new ones refused [default: 10000].",
    ),
]


def _build_config(
    *,
    state_dir: Path | None,
    host: str,
    port: int,
    runtime: str,
    org: str | None,
    token: str | None,
    speed: float,
    latency: str | None,
    latency_endpoints: str | None,
    fault_rate: float,
    fault_kinds: str | None,
    fault_endpoints: str | None,
    fault_phase: str,
    fault_seed: int | None,
    kill_grace: float,
    max_parallel: int,
    log_cap: int,
    access_log: bool,
    impolite: list[str] | None = None,
    credits: str | None = None,
) -> SandboxConfig:
    from perianctl.sandbox.config import (
        ENDPOINTS,
        FAULT_KINDS,
        FaultConfig,
        SandboxConfig,
        SandboxConfigError,
        SimTimings,
        parse_credits,
        parse_csv,
        parse_latency,
    )

    if state_dir is None:
        from perianctl.config import state_dir as default_state_dir

        state_dir = default_state_dir() / "sandbox"
    try:
        faults = FaultConfig(
            latency=parse_latency(latency),
            latency_endpoints=frozenset(parse_csv(latency_endpoints, allowed=ENDPOINTS, what="endpoint")),
            rate=fault_rate,
            kinds=parse_csv(fault_kinds, allowed=FAULT_KINDS, what="fault kind"),
            endpoints=frozenset(parse_csv(fault_endpoints, allowed=ENDPOINTS, what="endpoint")),
            phase=fault_phase.strip().lower(),
            seed=fault_seed,
        )
        return SandboxConfig(
            state_dir=state_dir,
            host=host,
            port=port,
            runtime=runtime.strip().lower(),
            organization=org,
            token=token,
            timings=SimTimings(speed=speed),
            faults=faults,
            kill_grace=kill_grace,
            max_parallel=max_parallel,
            log_cap_bytes=log_cap,
            access_log=access_log,
            impolite=_parse_impolite(impolite or []),
            credits=parse_credits(credits),
        ).validate()
    except SandboxConfigError as exc:
        raise UsageError(str(exc)) from None


def _parse_impolite(specs: list[str]) -> tuple[ImpoliteRule, ...]:
    from perianctl.sandbox.impolite import ImpoliteRuleError, parse_rule, rules_from_json

    try:
        rules = tuple(parse_rule(spec) for spec in specs)
        rules_from_json([rule.to_json() for rule in rules])  # whole-set checks (one refuse window)
    except ImpoliteRuleError as exc:
        raise UsageError(str(exc)) from None
    return rules


def _start_error(exc: Exception) -> SandboxError:
    return SandboxError(str(exc))


@sandbox_app.command("run")
def run(
    ctx: typer.Context,
    state_dir: StateDir = None,
    host: Host = "127.0.0.1",
    port: Port = 8080,
    runtime: Runtime = "simulate",
    org: Org = None,
    token: Token = None,
    speed: Speed = 1.0,
    latency: Latency = None,
    latency_endpoints: LatencyEndpoints = None,
    fault_rate: FaultRate = 0.0,
    fault_kinds: FaultKinds = None,
    fault_endpoints: FaultEndpoints = None,
    fault_phase: FaultPhase = "before",
    fault_seed: FaultSeed = None,
    kill_grace: KillGrace = 5.0,
    max_parallel: MaxParallel = 4,
    log_cap: LogCap = 1_000_000,
    access_log: AccessLog = True,
    impolite: Impolite = None,
    credits: Credits = None,
    write_profile: Annotated[
        bool,
        typer.Option(
            "--write-profile/--no-write-profile",
            help=f"Save a '{PROFILE_NAME}' profile once serving ('{PROFILE_NAME}-PORT' while another "
            f"running sandbox owns '{PROFILE_NAME}').",
        ),
    ] = False,
) -> None:
    """Serve in the foreground until Ctrl-C / SIGTERM (logs on stderr)."""
    from perianctl.sandbox.runtimes.base import SandboxStartError
    from perianctl.sandbox.server import run as serve

    config = _build_config(
        state_dir=state_dir,
        host=host,
        port=port,
        runtime=runtime,
        org=org,
        token=token,
        speed=speed,
        latency=latency,
        latency_endpoints=latency_endpoints,
        fault_rate=fault_rate,
        fault_kinds=fault_kinds,
        fault_endpoints=fault_endpoints,
        fault_phase=fault_phase,
        fault_seed=fault_seed,
        kill_grace=kill_grace,
        max_parallel=max_parallel,
        log_cap=log_cap,
        access_log=access_log,
        impolite=impolite,
        credits=credits,
    )
    try:
        serve(config, on_ready=_profile_saver(ctx) if write_profile else None)
    except SandboxStartError as exc:
        raise _start_error(exc) from None


@sandbox_app.command("start")
def start(
    ctx: typer.Context,
    state_dir: StateDir = None,
    host: Host = "127.0.0.1",
    port: Port = 8080,
    runtime: Runtime = "simulate",
    org: Org = None,
    token: Token = None,
    speed: Speed = 1.0,
    latency: Latency = None,
    latency_endpoints: LatencyEndpoints = None,
    fault_rate: FaultRate = 0.0,
    fault_kinds: FaultKinds = None,
    fault_endpoints: FaultEndpoints = None,
    fault_phase: FaultPhase = "before",
    fault_seed: FaultSeed = None,
    kill_grace: KillGrace = 5.0,
    max_parallel: MaxParallel = 4,
    log_cap: LogCap = 1_000_000,
    access_log: AccessLog = True,
    impolite: Impolite = None,
    credits: Credits = None,
    write_profile: Annotated[
        bool,
        typer.Option(
            "--write-profile/--no-write-profile",
            help=f"Save a '{PROFILE_NAME}' profile for this sandbox ('{PROFILE_NAME}-PORT' while another "
            f"running sandbox owns '{PROFILE_NAME}').",
        ),
    ] = True,
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for the sandbox to be healthy.")] = 30.0,
) -> None:
    """Start a detached sandbox, wait until it is healthy, and save the 'sandbox' profile."""
    from perianctl.sandbox import daemon
    from perianctl.sandbox.credentials import load_credentials
    from perianctl.sandbox.runtimes.base import SandboxStartError

    config = _build_config(
        state_dir=state_dir,
        host=host,
        port=port,
        runtime=runtime,
        org=org,
        token=token,
        speed=speed,
        latency=latency,
        latency_endpoints=latency_endpoints,
        fault_rate=fault_rate,
        fault_kinds=fault_kinds,
        fault_endpoints=fault_endpoints,
        fault_phase=fault_phase,
        fault_seed=fault_seed,
        kill_grace=kill_grace,
        max_parallel=max_parallel,
        log_cap=log_cap,
        access_log=access_log,
        impolite=impolite,
        credits=credits,
    )
    try:
        result = daemon.start(config, command=[*STANDALONE, "run"], timeout=wait)
    except SandboxStartError as exc:
        raise _start_error(exc) from None
    credentials = load_credentials(result.state_dir)
    if write_profile and credentials and result.url:
        _save_profile(result.url, *credentials, config_file=options(ctx).config_file)
    _info(
        f"sandbox running: pid {result.pid}, runtime {result.runtime}, organization {result.organization}; "
        f"logs in {result.log_file}"
    )
    print(result.url)


@sandbox_app.command("stop")
def stop(
    state_dir: StateDir = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait after SIGTERM before SIGKILL.")] = 10.0,
) -> None:
    """Stop the detached sandbox of the state dir (only that process)."""
    from perianctl.sandbox import daemon

    _info(daemon.stop(_state_dir(state_dir), timeout=timeout))


@sandbox_app.command("status")
def status(
    state_dir: StateDir = None,
    output: Annotated[str, output_option("text", "json")] = "text",
) -> None:
    """Is a sandbox running for the state dir? Exit code 8 when it is not."""
    from perianctl.sandbox import daemon

    if output not in ("text", "json"):
        raise UsageError(f"unknown output format '{output}' (text or json)")
    result = daemon.status(_state_dir(state_dir))
    if output == "json":
        print(json.dumps(result.to_json(), indent=2))
    elif result.running:
        jobs = (result.stats or {}).get("jobs") or {}
        health = "healthy" if result.healthy else "NOT answering"
        print(
            f"running: pid {result.pid}, {result.url or '(no url yet)'} ({health}), runtime {result.runtime}, "
            f"organization {result.organization}, jobs {jobs.get('total', '?')} ({jobs.get('open', '?')} open)"
        )
    if not result.running:
        if output == "text":
            print(f"not running (state dir {result.state_dir})")
        raise typer.Exit(int(ExitCode.UNAVAILABLE))
    if not result.healthy:
        raise typer.Exit(int(ExitCode.UNAVAILABLE))


@sandbox_app.command("impolite")
def impolite_command(
    rules: Annotated[list[str] | None, typer.Argument(metavar="RULE", help=IMPOLITE_HELP, show_default=False)] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove every impolite rule.")] = False,
    show: Annotated[
        bool, typer.Option("--show", help="Print the rules and their hit counters (the default without RULEs).")
    ] = False,
    url: Annotated[str | None, typer.Option("--url", help="Sandbox URL [default: the sandbox of --state-dir].")] = None,
    state_dir: StateDir = None,
    output: Annotated[str, output_option("text", "json")] = "text",
) -> None:
    """Make a running sandbox impolite now: RULEs replace the whole rule set (see sandbox run --help)."""
    if output not in ("text", "json"):
        raise UsageError(f"unknown output format '{output}' (text or json)")
    if clear and rules:
        raise UsageError("give RULEs or --clear, not both")
    parsed = _parse_impolite(list(rules or []))
    base = url.rstrip("/") if url else _running_url(state_dir)
    if clear:
        result = _admin(base, "DELETE", "/_sandbox/impolite")
    elif parsed:
        result = _admin(base, "PUT", "/_sandbox/impolite", {"rules": [r.to_json() for r in parsed]})
    else:
        result = _admin(base, "GET", "/_sandbox/impolite")
    if output == "json":
        print(json.dumps(result, indent=2))
        return
    rows = result.get("rules") or []
    assert isinstance(rows, list)
    if not rows:
        print("polite: no impolite rules")
    for row in rows:
        state = "active" if row.get("active") else "spent"
        print(f"{row.get('spec')}  hits={row.get('hits')}  {state}")
    if result.get("refusing"):
        print(f"refusing connections for {result.get('refusing_for')} s more")


def _running_url(state_dir: Path | None) -> str:
    from perianctl.sandbox import daemon

    result = daemon.status(_state_dir(state_dir))
    if not result.running or not result.url:
        raise SandboxError(
            f"no sandbox is running for state dir {result.state_dir}",
            hint="start one with 'perianctl sandbox start', or pass --url",
        )
    return str(result.url).rstrip("/")


def _admin(base: str, method: str, path: str, body: object = None) -> dict[str, object]:
    """One admin request (stdlib only: no auth, loopback). 422 → usage error; unreachable → exit 8."""
    import urllib.error
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{base}{path}", data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read().decode() or "{}")
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read().decode()).get("detail")
        except ValueError:
            detail = None
        if exc.code == 422:
            raise UsageError(str(detail or "invalid impolite rules")) from None
        raise SandboxError(f"the sandbox at {base} answered HTTP {exc.code}: {detail or exc.reason}") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SandboxError(f"cannot reach the sandbox at {base}: {reason}") from None
    return answer if isinstance(answer, dict) else {}


def _save_profile(url: str, organization: str, token: str, *, config_file: str | None = None) -> None:
    from perianctl.config import save_profile

    name, owner = _profile_name_for(url, config_file=config_file)
    path = save_profile(
        name,
        {"api_url": url, "organization": organization, "token": token},
        config_path=Path(config_file) if config_file else None,
    )
    if owner:
        _info(f"profile '{PROFILE_NAME}' belongs to the sandbox still serving at {owner}; this one is profile '{name}'")
    _info(f"saved profile '{name}' in {path}: use 'perianctl --profile {name} ...'")


def _profile_name_for(url: str, *, config_file: str | None = None) -> tuple[str, str | None]:
    """``('sandbox', None)``, unless that profile points at *another* sandbox that still serves: then
    ``('sandbox-PORT', its URL)``. A second sandbox (another state dir) never takes over the first
    one's profile while the first runs; a restarted or stopped one's profile is simply updated."""
    from urllib.parse import urlsplit

    from perianctl.config import config_path, read_config_file

    try:
        profiles = read_config_file(config_path(config_file)).get("profiles", {})
    except PerianctlError:
        return PROFILE_NAME, None  # save_profile reports a broken config file
    old = str(profiles.get(PROFILE_NAME, {}).get("api_url") or "")
    if not old or old.rstrip("/") == url.rstrip("/") or not _serving(old):
        return PROFILE_NAME, None
    return f"{PROFILE_NAME}-{urlsplit(url).port or 'local'}", old


def _serving(url: str) -> bool:
    """Something accepts connections at ``url`` (a sandbox answering or not, the port is taken)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if not parts.hostname:
        return False
    try:
        with socket.create_connection((parts.hostname, parts.port or 80), timeout=0.5):
            return True
    except OSError:
        return False


def _profile_saver(ctx: typer.Context) -> Callable[[str, str, str], None]:
    """For ``run``: a broken config file must not stop a sandbox that is already serving."""
    config_file = options(ctx).config_file

    def save(url: str, organization: str, token: str) -> None:
        try:
            _save_profile(url, organization, token, config_file=config_file)
        except PerianctlError as exc:
            _info(f"warning: could not save the '{PROFILE_NAME}' profile: {exc.message}")

    return save


def _state_dir(state_dir: Path | None) -> Path:
    if state_dir is not None:
        return state_dir
    from perianctl.config import state_dir as default_state_dir

    return default_state_dir() / "sandbox"


def _info(message: str) -> None:
    from perianctl.ui.console import info

    info(message)


# ``python -m perianctl.commands.sandbox run|start|stop|status ...`` is this group without the root
# CLI: the detached server (``start``) and the test plugin start the sandbox this way, so they depend
# neither on the root command's global options nor on its start-up cost. (Not in the module
# docstring: that is the group's --help.)
STANDALONE = (sys.executable, "-m", "perianctl.commands.sandbox")


def main(argv: list[str] | None = None) -> None:
    """Entry point without the root CLI (``python -m perianctl.commands.sandbox``): same error contract."""
    try:
        sandbox_app(args=argv, prog_name="perianctl sandbox")
    except PerianctlError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        if exc.hint:
            sys.stderr.write(f"hint: {exc.hint}\n")
        sys.exit(int(exc.exit_code))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
