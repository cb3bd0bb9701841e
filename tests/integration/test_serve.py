"""``perianctl serve`` as a real process: secrets, metrics, SIGTERM drain, the gRPC client, plugin entry."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import grpc
import httpx
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.service import agent_pb2_grpc

from perianctl.connector import grpc_client as gc
from perianctl.errors import NotFoundError, UnavailableError, UsageError, ValidationFailed
from tests.support import connector as support
from tests.support.connector import (
    Api,
    ServeProcess,
    create_request,
    free_port,
    get_request,
    inputs,
    output_prefix,
    perian_template,
)

api = support.api  # fixture

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def serve_proc(api: Api, tmp_path: Path):
    proc = ServeProcess(api, metrics_port=free_port(), tmp=tmp_path).wait_ready()
    yield proc
    proc.terminate()


def test_cli_client_round_trip_and_metrics(serve_proc: ServeProcess, api: Api) -> None:
    """submit/get/logs/delete --connector's functions against a real server process; then /metrics."""
    target = serve_proc.target
    template = perian_template("success", duration=30, prefix=output_prefix("abcdefghijklmnopqrst"))

    async def scenario() -> None:
        sub = await gc.submit_via_connector(
            target, template, inputs(), output_prefix("abcdefghijklmnopqrst"), execution_name="abcdefghijklmnopqrst"
        )
        again = await gc.submit_via_connector(
            target, template, inputs(), output_prefix("abcdefghijklmnopqrst"), execution_name="abcdefghijklmnopqrst"
        )
        assert sub.job_id and again.job_id == sub.job_id  # same execution → same job
        status = await gc.get_via_connector(target, sub.job_id)
        assert status.phase_name in ("QUEUED", "INITIALIZING", "RUNNING") and status.job_id == sub.job_id
        assert status.log_links and status.log_links[0].uri.endswith(sub.job_id)
        await gc.delete_via_connector(target, sub.job_id)
        await gc.delete_via_connector(target, sub.job_id)
        deadline = time.monotonic() + 60  # a hang detector, not a speed limit
        while time.monotonic() < deadline:
            status = await gc.get_via_connector(target, sub.job_id)
            if status.terminal:
                break
            await asyncio.sleep(0.05)
        assert status.phase_name == "ABORTED"
        lines = await gc.logs_via_connector(target, sub.job_id)
        assert isinstance(lines, list)
        async with gc.ConnectorClient(target) as client:
            assert await client.health() == "SERVING"
            assert await client.health("flyteidl.service.AsyncAgentService") == "SERVING"
            agents = await client.list_agents()
            assert [a.supported_task_types[0] for a in agents] == ["perian_task"]
            metrics = await client.get_task_metrics(gc.resource_meta_for(sub.job_id))
            assert "PERIAN_JOB_RUNTIME_SECONDS" in metrics
            with pytest.raises(NotFoundError):
                await client.get_agent("nope")
            with pytest.raises(ValidationFailed):
                await client.get_task(b"{}")

    asyncio.run(scenario())
    assert api.stats()["jobs_created"] == 1

    text = httpx.get(f"http://127.0.0.1:{serve_proc.metrics_port}/metrics", timeout=30).text
    assert 'flyte_connector_requests_success_total{operation="create",task_type="perian_task"} 2.0' in text
    histogram = "perianctl_connector_rpc_duration_seconds_count"
    assert f'{histogram}{{code="OK",method="AsyncAgentService/GetTask"}}' in text
    assert f'{histogram}{{code="INVALID_ARGUMENT",method="AsyncAgentService/GetTask"}}' in text
    assert 'perianctl_perian_api_requests_total{method="POST",route="/job",status="200"} 1.0' in text
    assert "perianctl_connector_serving 1.0" in text
    # requests per look-up: both creates looked for the attempt's job (one found it), each in one page
    assert 'perianctl_connector_lookup_requests_count{purpose="adopt"} 2.0' in text
    assert 'perianctl_connector_lookup_requests_bucket{le="1.0",purpose="adopt"} 2.0' in text


def test_client_errors_are_one_line() -> None:
    with pytest.raises(UsageError):
        gc.validate_target("no-port")

    async def down() -> None:
        async with gc.ConnectorClient(f"127.0.0.1:{free_port()}", timeout=2) as client:
            await client.get_task(gc.resource_meta_for("x"))

    with pytest.raises(UnavailableError) as excinfo:
        asyncio.run(down())
    assert "\n" not in excinfo.value.message


def test_secrets_from_files_like_a_flytekit_connector(api: Api, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "perian_organization").write_text(api.organization + "\n")
    (secrets / "perian_token").write_text(api.token + "\n")
    proc = ServeProcess(api, use_fsec=False, tmp=tmp_path).wait_ready()
    try:
        assert any("perian_token (file " in line for line in proc.lines), proc.lines
        assert not any(api.token in line for line in proc.lines)  # never the value
        with grpc.insecure_channel(proc.target) as channel:
            stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)
            meta = stub.CreateTask(create_request("success"), timeout=10).resource_meta
            assert stub.GetTask(get_request(meta), timeout=10).resource.phase != 0
    finally:
        code, err = proc.terminate()
    assert code == 0, err
    assert api.token not in err


_ENV_AT_EXIT = textwrap.dedent("""
    import atexit, json, os

    def _dump(path=os.environ["ENV_AT_EXIT"]):
        with open(path, "w") as f:
            json.dump({k: v for k, v in os.environ.items() if k.startswith("PERIANCTL_")}, f)

    atexit.register(_dump)
""")


def test_profile_flags_reach_the_connector_without_touching_the_environment(api: Api, tmp_path: Path) -> None:
    """``--profile``/``--config`` are handed to the connector as settings: it authenticates with the
    profile's credentials, and the server's environment at exit has no PERIANCTL_* it did not start with
    (the environment is inherited by anything the process starts)."""
    config = tmp_path / "other.toml"
    config.write_text(f'[profiles.p]\norganization = "{api.organization}"\ntoken = "{api.token}"\n')
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_ENV_AT_EXIT)
    dump = tmp_path / "env-at-exit.json"
    env = {"ENV_AT_EXIT": str(dump), "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = ServeProcess(
        api, "--profile", "p", "--config", str(config), use_fsec=False, tmp=tmp_path, env=env
    ).wait_ready()
    try:
        assert any(f"perian_token (profile p ({config}))" in line for line in proc.lines), proc.lines
        with grpc.insecure_channel(proc.target) as channel:
            stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)
            meta = stub.CreateTask(create_request("success"), timeout=10).resource_meta
            assert stub.GetTask(get_request(meta), timeout=10).resource.phase != 0
    finally:
        code, err = proc.terminate()
    assert code == 0, err
    assert json.loads(dump.read_text()) == {"PERIANCTL_CONFIG": str(tmp_path / "config.toml")}  # as started
    assert api.stats()["jobs_created"] == 1


def test_sigterm_drains_in_flight_calls_and_exits_zero(api: Api, tmp_path: Path) -> None:
    proc = ServeProcess(api, "--grace", "10", tmp=tmp_path).wait_ready()
    api.set_faults(latency=[60.0, 60.0], latency_endpoints=["create"])  # PERIAN holds the creates
    try:
        with grpc.insecure_channel(proc.target) as channel:
            stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)
            futures = [stub.CreateTask.future(create_request("success"), timeout=60) for _ in range(3)]
            asyncio.run(api.wait_delaying("create", 3))  # the creates are waiting on PERIAN (an event)
            proc.signal_term()
            proc.wait_not_serving()  # draining now, with the creates still in flight
            api.set_faults(latency=[0.0, 0.0])  # PERIAN answers them
            metas = [f.result() for f in futures]  # every in-flight call completes
            assert all(m.resource_meta for m in metas)
            with pytest.raises(grpc.RpcError) as excinfo:  # new calls are refused while draining/after
                stub.GetTask(get_request(metas[0].resource_meta), timeout=3)
            assert excinfo.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        api.set_faults(latency=[0.0, 0.0])
        code, err = proc.terminate()
    assert code == 0, err
    assert "SIGTERM received; draining" in err and "stopped" in err
    assert "Traceback" not in err
    assert api.stats()["jobs_created"] == 3


def test_calls_during_a_sigterm_drain_are_unavailable_never_cancelled(api: Api, tmp_path: Path) -> None:
    """100 callers keep calling GetTask across SIGTERM (none of them gives up on the first refusal):
    every call is OK or UNAVAILABLE -- the code retry policies treat as "try another replica" --
    and none is CANCELLED by grpc's stop while still in transit."""
    proc = ServeProcess(api, "--grace", "8", tmp=tmp_path).wait_ready()
    codes: dict[str, int] = {}

    async def flood() -> None:
        async with grpc.aio.insecure_channel(proc.target) as channel:
            stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)
            metas = [
                bytes((await stub.CreateTask(create_request("success", duration=600), timeout=10)).resource_meta)
                for _ in range(5)
            ]
            until = time.monotonic() + 4.5

            async def worker(n: int) -> None:
                while time.monotonic() < until:
                    try:
                        await stub.GetTask(get_request(metas[n % len(metas)]), timeout=10)
                        code = "OK"
                    except grpc.aio.AioRpcError as exc:
                        code = exc.code().name
                    codes[code] = codes.get(code, 0) + 1

            async def term() -> None:
                await asyncio.sleep(1.5)
                proc.signal_term()

            await asyncio.gather(term(), *(worker(n) for n in range(100)))

    try:
        asyncio.run(flood())
    finally:
        code, err = proc.terminate()
    assert codes.get("OK") and codes.get("UNAVAILABLE"), codes
    assert set(codes) == {"OK", "UNAVAILABLE"}, codes
    assert code == 0, err


def test_serve_sandbox_flag_needs_no_credentials(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERIAN", "_FSEC_"))}
    env.update(PERIANCTL_CONFIG=str(tmp_path / "none.toml"), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "perianctl",
            "serve",
            "--sandbox",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--metrics-port",
            "0",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        port = 0
        for _ in range(50):
            line = proc.stderr.readline()
            if "listening on" in line:
                port = int(line.split("listening on ")[1].split(" ")[0].rsplit(":", 1)[1])
                assert "PERIAN API http://127.0.0.1:" in line
                break
        assert port
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)
            meta = stub.CreateTask(create_request("success"), timeout=10).resource_meta
            assert stub.GetTask(get_request(meta), timeout=10).resource.phase in (1, 2, 6)
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0


def test_port_in_use_is_a_usage_error(api: Api, tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PERIAN", "_FSEC_"))}
        env.update(api.env(), PERIANCTL_CONFIG=str(tmp_path / "none.toml"))
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "perianctl",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--metrics-port",
                "0",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "cannot bind" in proc.stderr


# ---------------------------------------------------------------------- flytekit plugin entry point

_PROBE = textwrap.dedent("""
    import flytekit
    from flytekit.extend.backend.base_connector import ConnectorRegistry
    try:
        c = ConnectorRegistry.get_connector("perian_task")
        print("CONNECTOR", type(c).__module__, type(c).__name__)
    except Exception as exc:
        print("NONE", type(exc).__name__)
    print("AGENTS", sorted(a.name for a in ConnectorRegistry.list_connectors()))
""")


def _probe(env_extra: dict[str, str] | None = None, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERIAN", "_FSEC_"))}
    env.update(env_extra or {})
    if pythonpath is not None:
        env["PYTHONPATH"] = f"{pythonpath}{os.pathsep}{env.get('PYTHONPATH', '')}"
    return subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=60)


def test_entry_point_registers_perian_connector() -> None:
    proc = _probe()
    assert proc.returncode == 0, proc.stderr
    assert "CONNECTOR perianctl.connector.service PerianConnector" in proc.stdout
    assert "'PERIAN Connector (perianctl)'" in proc.stdout


def test_importing_the_connector_first_registers_nothing_and_warns_nothing() -> None:
    """connector/service.py imports flytekit, whose entry point would import service.py half-done:
    the entry point leaves registration to such a process (no import loop, no warning)."""
    code = (
        "import perianctl.connector.service as c\n"
        "from flytekit.extend.backend.base_connector import ConnectorRegistry\n"
        "from perianctl.connector.register import register\n"
        "assert 'perian_task' not in str(ConnectorRegistry._REGISTRY)\n"
        "connector = register(c.PerianConnector())\n"
        "assert ConnectorRegistry.get_connector('perian_task') is connector\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "not registered" not in proc.stderr


def test_the_entry_point_connector_reads_perian_env_then_the_named_profile(tmp_path: Path) -> None:
    """The flytekit entry point (``import flytekit``, as ``pyflyte run`` does) builds its connector's
    credential fallback like the CLI: ``PERIAN_*`` first, then the profile ``PERIANCTL_PROFILE`` names
    in ``PERIANCTL_CONFIG`` -- never another profile, and the connector package itself reads no config."""
    config = tmp_path / "config.toml"
    config.write_text(
        'current_profile = "other"\n'
        '[profiles.other]\napi_url = "http://127.0.0.1:5"\norganization = "wrong"\ntoken = "wrong"\n'
        '[profiles.p]\napi_url = "http://127.0.0.1:9"\n'
        'organization = "from-profile"\ntoken = "profile-token"\n'
    )
    code = textwrap.dedent("""
        import flytekit
        from flytekit.extend.backend.base_connector import ConnectorRegistry
        c = ConnectorRegistry.get_connector("perian_task")
        secrets = c.secrets()
        print("URL", c.api_url(), "ORG", secrets.organization, secrets.sources.get("perian_organization"))
        print("TOKEN", secrets.token == "profile-token", secrets.sources.get("perian_token"))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERIAN", "_FSEC_"))}
    env.update(
        PERIANCTL_CONFIG=str(config),
        PERIANCTL_PROFILE="p",
        PERIAN_API_URL="http://127.0.0.1:7/",
        PERIAN_ORG="env-org",
        FLYTE_SECRETS_DEFAULT_DIR=str(tmp_path),
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "URL http://127.0.0.1:7 ORG env-org env PERIAN_ORG" in proc.stdout
    assert "TOKEN True profile p (" in proc.stdout
    assert "profile-token" not in proc.stdout + proc.stderr


def test_broken_registration_does_not_break_import_flytekit(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(
        textwrap.dedent("""
        import sys
        class _Break:
            def find_spec(self, name, path=None, target=None):
                if name == "perianctl.connector.service":
                    raise ImportError("simulated broken dependency")
                return None
        sys.meta_path.insert(0, _Break())
    """)
    )
    proc = _probe(pythonpath=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "NONE FlyteConnectorNotFound" in proc.stdout
    assert "PERIAN connector not registered (ImportError: simulated broken dependency)" in proc.stderr


def test_plugin_opt_out() -> None:
    proc = _probe({"PERIANCTL_FLYTE_PLUGIN": "off"})
    assert proc.returncode == 0, proc.stderr
    assert "NONE FlyteConnectorNotFound" in proc.stdout


def test_pyflyte_serve_connector_discovers_it(api: Api, tmp_path: Path) -> None:
    """flytekit's own server loads the connector through the entry point and serves perian_task."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERIAN", "_FSEC_"))}
    env.update(
        _FSEC_PERIAN_ORGANIZATION=api.organization,
        _FSEC_PERIAN_TOKEN=api.token,
        PERIAN_API_URL=api.url,
        PERIANCTL_CONFIG=str(tmp_path / "none.toml"),
        FLYTE_SECRETS_DEFAULT_DIR=str(tmp_path),
    )
    pyflyte = Path(sys.executable).with_name("pyflyte")
    proc = subprocess.Popen(
        [
            str(pyflyte),
            "serve",
            "connector",
            "--port",
            str(port),
            "--prometheus_port",
            str(free_port()),
            "--timeout",
            "40",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)  # flytekit starts slowly on a busy box
            meta_stub = agent_pb2_grpc.AgentMetadataServiceStub(channel)
            agents = meta_stub.ListAgents(agent_pb2.ListAgentsRequest(), timeout=30).agents
            perian = [a for a in agents if "perian_task" in a.supported_task_types]
            assert [a.name for a in perian] == ["PERIAN Connector (perianctl)"]
            stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)
            meta = stub.CreateTask(create_request("success"), timeout=10).resource_meta
            assert meta.startswith(b'{"job_id": "')
            resource = stub.GetTask(get_request(meta), timeout=10).resource
            assert resource.phase in (1, 2, 3, 6)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_serve_command_module_is_light() -> None:
    """``perianctl --help`` stays fast: the serve command imports grpc/flytekit only when it runs."""
    code = (
        "import sys, perianctl.cli; heavy = [m for m in ('grpc', 'flytekit', 'httpx', 'aiohttp', "
        "'prometheus_client') if m in sys.modules]; print(heavy)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
