"""The deployment files parse and say what the connector needs (replicas, probes, secrets, routing)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.support.deploy import K8S, _container, _dockerfile_cmd, _docs


@pytest.mark.parametrize("source", ["dockerfile", "deployment"])
def test_serve_arguments_are_accepted(source: str) -> None:
    """The CLI parses the exact arguments the image and the Deployment pass (``--help`` stops there)."""
    args = _dockerfile_cmd()[1] if source == "dockerfile" else [str(a) for a in _container()["args"]]
    proc = subprocess.run(
        [sys.executable, "-m", "perianctl", *args, "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, f"{shlex.join(args)}\n{proc.stderr}"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kustomize_builds() -> None:
    proc = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(proc.stdout) if d]
    assert sorted(kinds) == sorted(d["kind"] for d in _docs())
