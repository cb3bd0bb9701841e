"""The Flyte 2 task plugin and connector through the ``flyte`` SDK's own machinery.

Each test runs the SDK in a subprocess: ``flyte.connectors`` and flytekit's connector service
register the same Prometheus metric names, so they cannot share the pytest process (that is also
why ``perianctl serve`` never imports ``flyte``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]

# The task's command: what Flyte's runtime does for function tasks, by hand -- read an input
# (rendered into the command), write a flyteidl2 task.Outputs to <outputPrefix>/outputs.pb.
SCRIPT = (
    "import pathlib, sys; from flyteidl2.task import common_pb2; from flyteidl2.core import literals_pb2 as l; "
    "n = int(sys.argv[1]); p = pathlib.Path(sys.argv[2]); p.mkdir(parents=True, exist_ok=True); "
    "v = l.Literal(scalar=l.Scalar(primitive=l.Primitive(integer=2 * n))); "
    "o = common_pb2.Outputs(literals=[common_pb2.NamedLiteral(name='doubled', value=v)]); "
    "(p / 'outputs.pb').write_bytes(o.SerializeToString()); print('doubling', n)"
)

RUN_LOCAL = textwrap.dedent(f"""
    import sys

    import flyte

    from perianctl.flyte.flyte2 import PerianConfig, PerianContainerTask

    double = PerianContainerTask(
        name="double", image="python:3.11-slim",
        command=[sys.executable, "-c", {SCRIPT!r}, "{{{{.inputs.n}}}}", "{{{{.outputPrefix}}}}"],
        inputs={{"n": int}}, outputs={{"doubled": int}}, plugin_config=PerianConfig(cores=1, country_code="de"),
        connector_secrets={{"perian_organization": "MY_PERIAN_ORG", "perian_token": "MY_PERIAN_TOKEN"}},
    )
    flyte.TaskEnvironment.from_task("perian-double", double)

    flyte.init()
    run = flyte.run(double, n=int(sys.argv[1]))
    print("RESULT", run.outputs()[0])
""")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERIAN", "_FSEC_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        PERIANCTL_CONFIG="/nonexistent/config.toml",
        FLYTE_SECRETS_DEFAULT_DIR="/nonexistent",
        NO_COLOR="1",
        **extra,
    )
    return env


def test_flyte2_task_runs_through_the_sdk_connector_machinery_against_the_sandbox(tmp_path: Path) -> None:
    """``flyte.run`` → ``AsyncConnectorExecutorMixin`` → flyte's ConnectorRegistry → our connector →
    a real PERIAN job in the sandbox's process runtime → outputs.pb read back as the task's output.
    Credentials only travel as the SDK's connection secrets (the server-side lookup finds none)."""
    from perianctl.sandbox.server import EmbeddedSandbox

    script = tmp_path / "run_local.py"
    script.write_text(RUN_LOCAL)
    with EmbeddedSandbox(runtime="process", state_dir=tmp_path / "sandbox") as sb:
        env = _env(PERIAN_API_URL=sb.url, MY_PERIAN_ORG=sb.organization, MY_PERIAN_TOKEN=sb.token)
        proc = subprocess.run(
            [sys.executable, str(script), "21"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=100
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "RESULT 42" in proc.stdout
        assert sb.token not in proc.stdout + proc.stderr
        headers = {"X-PERIAN-AUTH-ORG": sb.organization, "Authorization": f"Bearer {sb.token}"}
        jobs = httpx.get(f"{sb.url}/job", headers=headers, timeout=10).json()["jobs"]
    assert len(jobs) == 1
    job = jobs[0]
    assert job["status"] == "Done" and "doubling 21" in job["logs"]
    command = job["docker_metadata"]["docker_run_parameters"]["command"]
    assert " 21 " in command and "{{" not in command  # rendered by the connector
    assert job["requirement_metadata"]["requirements"]["region"]["location"] == "DE"


def _dist_info(tmp_path: Path) -> Path:
    """A throw-away installed distribution declaring perianctl's two entry points (as pyproject does),
    so entry-point discovery is tested without reinstalling anything."""
    site = tmp_path / "site"
    info = site / "perianctl_entry_check-0.0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: perianctl-entry-check\nVersion: 0.0.0\n")
    (info / "entry_points.txt").write_text("[flyte.connectors]\nperianctl = perianctl.plugins.flyte_entry\n")
    return site


def test_pyproject_declares_the_entry_points() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["flyte.connectors"] == {"perianctl": "perianctl.plugins.flyte_entry"}
    assert project["entry-points"]["flytekit.plugins"] == {"perianctl": "perianctl.plugins.flytekit_entry"}


@pytest.mark.parametrize("first", ["flyte", "flytekit"])
def test_the_sdk_discovers_the_connector_through_its_entry_point(tmp_path: Path, first: str) -> None:
    code = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(_dist_info(tmp_path))!r})
        import {first}
        from flyte.connectors import ConnectorRegistry
        from flyte.connectors.utils import _load_connectors
        _load_connectors(None)                      # what `flyte serve connector` does
        import flytekit, flyte                      # both SDKs still import
        from flytekit.extend.backend.base_connector import ConnectorRegistry as V1
        v2 = ConnectorRegistry.get_connector("perian_task", 0)
        v1 = V1.get_connector("perian_task", 0)
        print(json.dumps({{"v2": type(v2).__name__, "v1": type(v1).__name__,
                          "listed": [c.name for c in ConnectorRegistry._list_connectors()],
                          "same_core": type(v2.v2.connector).__name__}}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found == {
        "v2": "PerianFlyte2Connector",
        "v1": "PerianConnector",
        "listed": ["PERIAN Connector (perianctl)"],
        "same_core": "PerianConnector",
    }
    assert "not registered" not in proc.stderr


def test_plugin_config_makes_a_perian_task_with_the_flyte1_custom_keys() -> None:
    code = textwrap.dedent("""
        import json
        import flyte
        from perianctl.flyte.flyte2 import PerianConfig, PerianTask
        from perianctl.flyte.task import _custom

        config = PerianConfig(cores=2, memory=8, accelerators=1, accelerator_type="A100", country_code="de",
                              max_cost="3.50")
        env = flyte.TaskEnvironment("train", plugin_config=config)

        @env.task
        async def train(epochs: int) -> float:
            return 0.5 * epochs

        assert isinstance(train, PerianTask), type(train)
        print(json.dumps({"type": train.task_type, "custom": train.custom_config(None),
                          "flyte1": _custom(config, None)}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["type"] == "perian_task"
    assert (
        found["custom"]
        == found["flyte1"]
        == {
            "cores": 2.0,
            "memory": 8.0,
            "accelerators": 1.0,
            "accelerator_type": "A100",
            "country_code": "DE",
            "max_cost": "3.50",
        }
    )


def test_opt_out_and_a_broken_plugin_never_break_the_sdk(tmp_path: Path) -> None:
    site = _dist_info(tmp_path)
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(site)!r})
        from flyte.connectors import ConnectorRegistry
        from flyte.connectors.utils import _load_connectors
        _load_connectors(None)
        import flyte, flytekit
        print("registered" if ConnectorRegistry._list_connectors() else "none")
    """)
    off = subprocess.run(
        [sys.executable, "-c", code], env=_env(PERIANCTL_FLYTE_PLUGIN="off"), capture_output=True, text=True, timeout=90
    )
    assert off.returncode == 0 and off.stdout.strip().endswith("none"), off.stderr[-2000:]
    # A perianctl whose Flyte 2 plugin cannot be imported: logged, and both SDKs carry on.
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(ROOT / "perianctl", broken / "perianctl", ignore=shutil.ignore_patterns("__pycache__"))
    (broken / "perianctl" / "connector" / "flyte2.py").write_text("raise ImportError('simulated breakage')\n")
    env = _env()
    env["PYTHONPATH"] = str(broken)
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=90, cwd=tmp_path
    )
    assert proc.returncode == 0 and proc.stdout.strip().endswith("none"), proc.stderr[-2000:]
    assert "perianctl: PERIAN connector not registered with flyte (ImportError: simulated breakage)" in proc.stderr


def test_help_imports_neither_flyte_nor_flyteidl2() -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "perianctl", "--help"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    modules = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert modules, "importtime printed nothing"
    heavy = sorted(m for m in modules if m.split(".")[0] in ("flyte", "flyteidl2", "flytekit", "grpc"))
    assert heavy == []


async def test_the_sdks_own_connector_server_serves_perian_task(tmp_path: Path) -> None:
    """``flyte``'s ConnectorService (what ``flyte serve connector`` runs) loads perianctl through the
    entry point and drives a PERIAN job over flyteidl2: native inputs from its servicer, credentials
    from the request's Connection (the server process has none of its own)."""
    import asyncio

    import grpc
    from flyteidl2.connector import connector_pb2 as c2
    from flyteidl2.connector import service_pb2_grpc as s2

    from tests.integration.test_serve_v2 import CATEGORY, create_v2, get_v2, wait_v2
    from tests.support.connector import embedded_sandbox, free_port

    port = free_port()
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(_dist_info(tmp_path))!r})
        from flyte.connectors import ConnectorService
        ConnectorService.run(port={port}, prometheus_port={free_port()}, worker=2, timeout=60, modules=None)
    """)
    with embedded_sandbox() as api:
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            env=_env(PERIAN_API_URL=api.url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                meta_stub = s2.ConnectorMetadataServiceStub(channel)
                listed = await meta_stub.ListConnectors(c2.ListConnectorsRequest(), timeout=60, wait_for_ready=True)
                assert [(c.name, c.version) for x in listed.connectors for c in x.supported_task_categories] == [
                    ("perian_task", 0)
                ]
                tasks = s2.AsyncConnectorServiceStub(channel)
                secrets = {"perian_organization": api.organization, "perian_token": api.token}
                request = create_v2("success", secrets=secrets)
                meta = (await tasks.CreateTask(request, timeout=20)).resource_meta
                again = (await tasks.CreateTask(request, timeout=20)).resource_meta
                assert meta == again and len(api.jobs()) == 1  # the same attempt: the same job
                done = await wait_v2(tasks, meta, {"SUCCEEDED"}, secrets=secrets)
                assert dict(done.custom_info)["status"] == "Done"
                job = api.jobs()[0]
                assert job["docker_metadata"]["docker_run_parameters"]["env_variables"][
                    "PERIANCTL_IDEMPOTENCY_KEY"
                ].startswith("pk1-")
                await tasks.DeleteTask(
                    c2.DeleteTaskRequest(
                        resource_meta=meta, task_category=CATEGORY, connection=get_v2(meta, secrets).connection
                    ),
                    timeout=20,
                )
        finally:
            proc.terminate()
            _, err = await asyncio.to_thread(proc.communicate, timeout=30)
    assert "Failed to load connector" not in err, err[-2000:]
