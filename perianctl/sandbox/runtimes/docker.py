"""The ``docker`` runtime: each job is a ``docker run`` of its image and command.

It reuses the process runtime's supervision (logs, timeout, cancel, outcome) and changes only how
the process is built and signalled:

* ``docker run --rm --name perian-sandbox-<job-id> <image> <shlex.split(command)>``;
* env variables and secrets are passed as ``-e NAME`` with the value in the docker client's
  environment, so secret values never appear in a process listing;
* container files are bind-mounted at their container paths (``:ro`` when ``read_only``);
* cancel and timeout use ``docker kill --signal SIGTERM`` and, after the grace period,
  ``docker kill``.

Private registries: the sandbox does not run ``docker login`` (that would change the user's
Docker config); log in beforehand. The start-up check runs ``docker info`` so a missing engine is
reported at ``sandbox start`` rather than as failed jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
from pathlib import Path

from perianctl.sandbox.config import SandboxConfig
from perianctl.sandbox.runtimes.base import JobSpec, SandboxStartError
from perianctl.sandbox.runtimes.process import JobSetupError, Prepared, ProcessRuntime
from perianctl.sandbox.store import JobRow

_CLIENT_ENV = (
    "PATH",
    "HOME",
    "DOCKER_HOST",
    "DOCKER_CONFIG",
    "DOCKER_CONTEXT",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
    "XDG_RUNTIME_DIR",
)


def container_name(job_id: str) -> str:
    return f"perian-sandbox-{job_id}"


class DockerRuntime(ProcessRuntime):
    name = "docker"

    @classmethod
    def preflight(cls, config: SandboxConfig) -> None:
        docker = shutil.which("docker")
        if docker is None:
            raise SandboxStartError(
                "docker runtime: the 'docker' command was not found on PATH; install Docker or use "
                "--runtime process or --runtime simulate"
            )
        try:
            probe = subprocess.run(
                [docker, "info", "--format", "{{.ServerVersion}}"],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SandboxStartError(
                "docker runtime: 'docker info' did not answer within 20 s; is the Docker engine healthy?"
            ) from None
        reason = (probe.stderr or probe.stdout).strip().splitlines()
        if probe.returncode != 0 or not probe.stdout.strip():
            first = reason[0] if reason else f"exit code {probe.returncode}"
            raise SandboxStartError(
                f"docker runtime: no Docker engine is reachable ({first}); start Docker or use "
                "--runtime process or --runtime simulate"
            )

    def recover(self, ended: list[JobRow]) -> None:
        docker = shutil.which("docker")
        for job in ended:
            if docker:
                with contextlib.suppress(OSError, subprocess.SubprocessError):
                    subprocess.run(
                        [docker, "rm", "-f", container_name(job.id)], capture_output=True, timeout=20, check=False
                    )
        super().recover(ended)

    def command(self, spec: JobSpec, prepared: Prepared) -> tuple[list[str], dict[str, str], Path]:
        if not spec.image:
            raise JobSetupError("the docker runtime needs an image, but this job has none")
        client_env = {key: os.environ[key] for key in _CLIENT_ENV if key in os.environ}
        argv = [
            "docker",
            "run",
            "--rm",
            "--name",
            container_name(spec.job_id),
            "--label",
            f"perianctl.sandbox.job={spec.job_id}",
            "--env",
            f"PERIAN_JOB_ID={spec.job_id}",
        ]
        for key, value in prepared.job_env.items():
            if key in client_env or key.startswith("DOCKER_"):
                argv += ["--env", f"{key}={value}"]  # cannot hide it in the client's environment
            else:
                argv += ["--env", key]
                client_env[key] = value
        for cpath, host, read_only in prepared.files:
            argv += ["--volume", f"{host}:{cpath}{':ro' if read_only else ''}"]
        argv.append(spec.image)
        if spec.command and spec.command.strip():
            try:
                argv += shlex.split(spec.command)
            except ValueError as exc:
                raise JobSetupError(f"cannot parse the command: {exc}") from None
        return argv, client_env, prepared.work

    async def send_signal(self, job_id: str, proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
        args = ["docker", "kill", "--signal", sig.name, container_name(job_id)]
        with contextlib.suppress(OSError):
            killer = await asyncio.create_subprocess_exec(
                *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
            )
            await killer.wait()
        if sig == signal.SIGKILL:  # the container is gone or going; make sure the client goes too
            await super().send_signal(job_id, proc, sig)
