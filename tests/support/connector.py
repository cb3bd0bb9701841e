"""Shared pieces of the connector/serve tests (imported by them; holds no tests itself).

* Real ``perian_task`` templates made by flytekit (a ``PythonFunctionTask`` subclass with the
  official plugin's task type and custom keys), rendered the way propeller renders them.
* An in-process ``perianctl serve`` (``grpc.aio`` on 127.0.0.1:0) with flyteidl stubs.
* ``perianctl serve`` as a subprocess (``ServeProcess``), for signals, replicas and the CLI path.
* A PERIAN sandbox: the shared test plugin's fixtures when present, else an in-process one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import pytest_asyncio
from flyteidl.admin import agent_pb2
from flyteidl.core import literals_pb2, tasks_pb2
from flyteidl.service import agent_pb2_grpc
from flytekit import PythonFunctionTask
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct
from grpc_health.v1 import health_pb2, health_pb2_grpc

IMAGE = "ghcr.io/acme/flyte:abc"
OFFICIAL_CUSTOM = {"cores": 2, "memory": 8, "accelerators": 1, "accelerator_type": "A100", "country_code": "DE"}


class PerianLikeTask(PythonFunctionTask):
    """Task type ``perian_task`` and the official ``PerianConfig`` custom keys (through a Struct)."""

    def __init__(self, task_config: dict[str, Any], task_function: Any, **kwargs: Any) -> None:
        super().__init__(task_config=task_config, task_function=task_function, task_type="perian_task", **kwargs)

    def get_custom(self, settings: Any) -> dict[str, Any]:
        struct = Struct()
        struct.update(self.task_config)
        return json_format.MessageToDict(struct)


def _gpu_hello(name: str) -> str:
    return f"hello {name}"


gpu_hello = PerianLikeTask(task_config=OFFICIAL_CUSTOM, task_function=_gpu_hello)


def raw_template() -> tasks_pb2.TaskTemplate:
    """The template ``pyflyte register`` would store (placeholders not rendered)."""
    from collections import OrderedDict

    from flytekit.configuration import ImageConfig, SerializationSettings
    from flytekit.tools.translator import get_serializable

    settings = SerializationSettings(
        image_config=ImageConfig.auto(img_name=IMAGE), project="flytesnacks", domain="development", version="v1"
    )
    return get_serializable(OrderedDict(), settings, gpu_hello).template.to_flyte_idl()


_RAW: list[tasks_pb2.TaskTemplate] = []


def output_prefix(execution: str, node: str = "n0", attempt: int = 0) -> str:
    return f"s3://flyte-bucket/metadata/propeller/flytesnacks-development-{execution}/{node}/data/{attempt}"


def perian_template(
    scenario: str = "success", *, duration: float | None = None, prefix: str = "s3://flyte-bucket/data/x"
) -> tasks_pb2.TaskTemplate:
    """A rendered template (as in CreateTask from propeller), with a sandbox scenario in its env."""
    from perianctl.flyte.render import RenderContext, render_template

    if not _RAW:
        _RAW.append(raw_template())
    ctx = RenderContext(
        input_path=f"{prefix}/inputs.pb",
        input_prefix=prefix,
        output_prefix=prefix,
        raw_output_prefix="s3://flyte-bucket/raw/ab/x",
        checkpoint_prefix="s3://flyte-bucket/raw/ab/x/_flytecheckpoints",
        prev_checkpoint_prefix="",
        per_retry_unique_key="x-n0-0",
        task_template_path=f"{prefix}/task.pb",
        namespace="flytesnacks-development",
        inputs=literals_pb2.LiteralMap(),
    )
    template = render_template(_RAW[0], ctx)
    template.container.env.add(key="PERIAN_SANDBOX_SCENARIO", value=scenario)
    if duration is not None:
        template.container.env.add(key="PERIAN_SANDBOX_DURATION", value=str(duration))
    return template


def inputs(name: str = "perian") -> literals_pb2.LiteralMap:
    lm = literals_pb2.LiteralMap()
    lm.literals["name"].scalar.primitive.string_value = name
    return lm


def execution_metadata(
    template: tasks_pb2.TaskTemplate, execution: str, *, node: str = "n0", attempt: int = 0
) -> agent_pb2.TaskExecutionMetadata:
    from perianctl.connector.grpc_client import synthetic_execution_metadata

    return synthetic_execution_metadata(template, execution_name=execution, node_id=node, retry_attempt=attempt)


def create_request(
    scenario: str = "success",
    *,
    execution: str | None = None,
    node: str = "n0",
    attempt: int = 0,
    duration: float | None = None,
    metadata: bool = True,
    prefix: str | None = None,
) -> agent_pb2.CreateTaskRequest:
    execution = execution or "a" + uuid.uuid4().hex[:19]
    prefix = prefix or output_prefix(execution, node, attempt)
    template = perian_template(scenario, duration=duration, prefix=prefix)
    meta = execution_metadata(template, execution, node=node, attempt=attempt) if metadata else None
    return agent_pb2.CreateTaskRequest(
        template=template, inputs=inputs(), output_prefix=prefix, task_execution_metadata=meta
    )


def category() -> agent_pb2.TaskCategory:
    return agent_pb2.TaskCategory(name="perian_task", version=0)


def get_request(meta: bytes, output_prefix: str = "") -> agent_pb2.GetTaskRequest:
    return agent_pb2.GetTaskRequest(
        task_type="perian_task", resource_meta=meta, task_category=category(), output_prefix=output_prefix
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------- sandbox


@dataclass
class Api:
    """Where a PERIAN (sandbox) API is, plus helpers to inspect it."""

    url: str
    organization: str
    token: str

    def headers(self) -> dict[str, str]:
        return {"X-PERIAN-AUTH-ORG": self.organization, "Authorization": f"Bearer {self.token}"}

    def stats(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/_sandbox/stats", timeout=10).json())

    def jobs(self) -> list[dict[str, Any]]:
        body = httpx.get(f"{self.url}/job", params={"limit": 1000}, headers=self.headers(), timeout=10).json()
        return list(body.get("jobs", []))

    def set_faults(self, **config: Any) -> None:
        response = httpx.put(f"{self.url}/_sandbox/faults", json=config, timeout=10)
        response.raise_for_status()

    async def wait_delaying(self, endpoint: str, at_least: int = 1, *, timeout: float = 60.0) -> int:
        """Wait until ``at_least`` requests to ``endpoint`` are held by injected latency right now.

        The event "the call is waiting on PERIAN", instead of a sleep; ``timeout`` detects a hang.
        """
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
            while True:
                count = int((await client.get("/_sandbox/stats")).json().get("delaying", {}).get(endpoint, 0))
                if count >= at_least:
                    return count
                if time.monotonic() > deadline:
                    raise AssertionError(f"{count} {endpoint} requests delayed, not {at_least}, after {timeout} s")
                await asyncio.sleep(0.02)

    def env(self) -> dict[str, str]:
        return {"PERIAN_API_URL": self.url, "PERIAN_ORGANIZATION": self.organization, "PERIAN_TOKEN": self.token}


@contextlib.contextmanager
def embedded_sandbox(**overrides: Any) -> Iterator[Api]:
    from perianctl.sandbox.config import SimTimings
    from perianctl.sandbox.server import EmbeddedSandbox

    overrides.setdefault("timings", SimTimings(speed=20.0))
    with EmbeddedSandbox(**overrides) as sb:
        yield Api(sb.url, sb.organization, sb.token)


@pytest.fixture
def api(request: pytest.FixtureRequest) -> Iterator[Api]:
    """A fast PERIAN sandbox: the shared plugin's subprocess fixture if installed, else in-process."""
    try:
        sb = request.getfixturevalue("sandbox")
    except pytest.FixtureLookupError:
        sb = None
    if sb is not None:
        yield Api(sb.url, sb.org, sb.token)
        return
    with embedded_sandbox() as api_:
        yield api_


# ---------------------------------------------------------------------- in-process server


def wait_not_serving(target: str, timeout: float = 60.0) -> None:
    """Wait until ``target``'s health reports NOT_SERVING (SIGTERM was handled) or the server is gone."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout).status
            except grpc.RpcError:
                return
            if status != health_pb2.HealthCheckResponse.SERVING:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"serve still SERVING {timeout} s after SIGTERM")
            time.sleep(0.02)


@dataclass
class Stubs:
    running: Any
    channel: grpc.aio.Channel
    tasks: agent_pb2_grpc.AsyncAgentServiceStub
    sync: agent_pb2_grpc.SyncAgentServiceStub
    meta: agent_pb2_grpc.AgentMetadataServiceStub
    health: health_pb2_grpc.HealthStub

    def wait_not_serving(self, timeout: float = 60.0) -> None:
        """Wait until health reports NOT_SERVING (SIGTERM was handled) or the server is gone."""
        wait_not_serving(self.target, timeout)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.running.port}"


@contextlib.asynccontextmanager
async def inprocess_server(api: Api, **settings: Any) -> AsyncIterator[Stubs]:
    from perianctl.connector.server import start
    from perianctl.connector.settings import ConnectorSettings, ServeOptions

    connector = ConnectorSettings(api_url=api.url, organization=api.organization, token=api.token, **settings)
    running = await start(ServeOptions(host="127.0.0.1", port=0, metrics_port=0, grace=5, connector=connector))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield Stubs(
            running,
            channel,
            agent_pb2_grpc.AsyncAgentServiceStub(channel),
            agent_pb2_grpc.SyncAgentServiceStub(channel),
            agent_pb2_grpc.AgentMetadataServiceStub(channel),
            health_pb2_grpc.HealthStub(channel),
        )
    finally:
        await channel.close()
        await running.shutdown(grace=1)


@pytest_asyncio.fixture
async def server(api: Api) -> AsyncIterator[Stubs]:
    async with inprocess_server(api) as stubs:
        yield stubs


async def wait_phase(
    stub: agent_pb2_grpc.AsyncAgentServiceStub, meta: bytes, phases: set[str], timeout: float = 60.0
) -> agent_pb2.Resource:
    from flyteidl.core.execution_pb2 import TaskExecution

    deadline = time.monotonic() + timeout
    while True:
        resource = (await stub.GetTask(get_request(meta), timeout=10)).resource
        if TaskExecution.Phase.Name(resource.phase) in phases:
            return resource
        if time.monotonic() > deadline:
            raise AssertionError(f"phase {TaskExecution.Phase.Name(resource.phase)} never became {phases}")
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------------- subprocess server

_LISTEN = re.compile(r"listening on \S*:(\d+)")


class ServeProcess:
    """``python -m perianctl serve`` in a subprocess; the port is read from its start-up line."""

    def __init__(
        self,
        api: Api,
        *args: str,
        env: dict[str, str] | None = None,
        use_fsec: bool = True,
        metrics_port: int = 0,
        tmp: Path | None = None,
    ) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("PERIAN", "_FSEC_"))}
        base.update(
            PYTHONUNBUFFERED="1",
            NO_COLOR="1",
            PERIANCTL_CONFIG=str((tmp or Path("/nonexistent")) / "config.toml"),
            FLYTE_SECRETS_DEFAULT_DIR=str((tmp or Path("/nonexistent")) / "secrets"),
        )
        if use_fsec:
            base.update(_FSEC_PERIAN_ORGANIZATION=api.organization, _FSEC_PERIAN_TOKEN=api.token)
        base.update(env or {})
        self.metrics_port = metrics_port
        cmd = [
            sys.executable,
            "-m",
            "perianctl",
            "--api-url",
            api.url,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--metrics-port",
            str(metrics_port),
            *args,
        ]
        self.proc = subprocess.Popen(cmd, env=base, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.port = 0
        self.lines: list[str] = []
        self._signalled = False

    def wait_ready(self, timeout: float = 60.0) -> ServeProcess:
        deadline = time.monotonic() + timeout
        assert self.proc.stderr is not None
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            match = _LISTEN.search(line)
            if match:
                self.port = int(match.group(1))
                self._wait_serving(deadline)
                return self
        self.proc.kill()
        raise AssertionError("perianctl serve did not start:\n" + "".join(self.lines) + self.proc.stderr.read())

    def _wait_serving(self, deadline: float) -> None:
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                try:
                    status = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError("serve never became SERVING")
                time.sleep(0.05)

    def wait_not_serving(self, timeout: float = 60.0) -> None:
        """Wait until health reports NOT_SERVING (SIGTERM was handled) or the server is gone."""
        wait_not_serving(self.target, timeout)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def signal_term(self) -> None:
        """One SIGTERM, as Kubernetes sends it (a second one is never sent by us)."""
        if not self._signalled and self.proc.poll() is None:
            self._signalled = True
            self.proc.terminate()

    def terminate(self, timeout: float = 30.0) -> tuple[int, str]:
        """SIGTERM (once), wait, return (exit code, all stderr)."""
        self.signal_term()
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, "".join(self.lines) + (err or "")
