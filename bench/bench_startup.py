"""Start-up cost of the CLI, printed as medians and ratios measured in one run on this machine.

    .venv/bin/python bench/bench_startup.py [--runs 15] [--official-cli PATH_TO_perian]

Measures wall time (subprocess spawn to exit) of:

* ``python -c pass``                  -- the interpreter floor, for scale
* ``perianctl --help``                -- target <= 0.15 s median
* ``perianctl get ID -o json``        -- against an embedded sandbox on loopback; target <= 0.35 s
* ``pyflyte --help``                  -- flytekit's CLI, same venv (what a flytekit-based tool pays)
* ``perian --help`` / ``perian job get ID`` -- the official PERIAN CLI, when ``--official-cli``
  points at it (``--install-official`` builds a throw-away venv with perian-cli from PyPI)

and prints ratios (official / perianctl). It also checks that ``--help`` imports none of
flytekit, grpc, fastapi, uvicorn or httpx.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("flytekit", "grpc", "fastapi", "uvicorn", "httpx")


def timed(cmd: list[str], env: dict[str, str], runs: int) -> tuple[float, list[float]]:
    subprocess.run(cmd, env=env, capture_output=True, timeout=120)  # warm the page cache
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, timeout=120)
        samples.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()[-400:]}")
    return statistics.median(samples), samples


def heavy_imports(cmd: list[str], env: dict[str, str]) -> list[str]:
    proc = subprocess.run([sys.executable, "-X", "importtime", *cmd], env=env, capture_output=True, text=True)
    found = set()
    for line in proc.stderr.splitlines():
        name = line.rsplit("|", 1)[-1].strip()
        if name.split(".")[0] in HEAVY:
            found.add(name.split(".")[0])
    return sorted(found)


def install_official() -> Path:
    venv = Path(tempfile.mkdtemp(prefix="perian-cli-bench-"))
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "perian-cli"], check=True)
    return venv / "bin" / "perian"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--official-cli", type=Path, help="path to the official `perian` CLI executable")
    parser.add_argument("--install-official", action="store_true", help="pip-install perian-cli into a temp venv")
    args = parser.parse_args()

    from perianctl.perian.client import PerianClient
    from perianctl.perian.models import CreateJobRequest, DockerRunParameters, InstanceTypeQueryInput
    from perianctl.sandbox.server import EmbeddedSandbox

    bindir = Path(sys.executable).parent
    home = Path(tempfile.mkdtemp(prefix="perianctl-bench-"))
    official = install_official() if args.install_official else args.official_cli

    with EmbeddedSandbox(runtime="simulate") as sandbox:

        async def make_job() -> str:
            async with PerianClient(sandbox.url, sandbox.organization, sandbox.token) as client:
                request = CreateJobRequest(
                    requirements=InstanceTypeQueryInput.model_validate({"cpu": {"cores": 1}}),
                    docker_run_parameters=DockerRunParameters(image_name="ubuntu", image_tag="22.04", command="true"),
                )
                return await client.create_job(request)

        job_id = asyncio.run(make_job())
        env = {
            **os.environ,
            "PERIANCTL_CONFIG": str(home / "config.toml"),
            "PERIANCTL_STATE_DIR": str(home / "state"),
            "PERIAN_API_URL": sandbox.url,
            "PERIAN_ORGANIZATION": sandbox.organization,
            "PERIAN_TOKEN": sandbox.token,
            # the official CLI reads its endpoint from PERIAN_ENDPOINT and credentials from its db.json
            "PERIAN_ENDPOINT": sandbox.url,
            "HOME": str(home),
        }
        perianctl = [str(bindir / "perianctl")]
        cases: list[tuple[str, list[str]]] = [
            ("python -c pass", [sys.executable, "-c", "pass"]),
            ("perianctl --help", [*perianctl, "--help"]),
            ("perianctl get ID -o json", [*perianctl, "get", job_id, "-o", "json"]),
            ("pyflyte --help", [str(bindir / "pyflyte"), "--help"]),
        ]
        if official:
            cases.append(("perian --help", [str(official), "--help"]))
        results: dict[str, float] = {}
        python = sys.version.split()[0]
        print(f"start-up, median of {args.runs} runs (s); machine: {os.cpu_count()} cores, Python {python}")
        for name, cmd in cases:
            median, samples = timed(cmd, env, args.runs)
            results[name] = median
            print(f"  {name:<28} {median:7.3f}   (min {min(samples):.3f}, max {max(samples):.3f})")

    print("\nratios (higher = perianctl faster):")
    help_t, get_t = results["perianctl --help"], results["perianctl get ID -o json"]
    print(f"  pyflyte --help / perianctl --help        {results['pyflyte --help'] / help_t:6.1f}x")
    print(f"  pyflyte --help / perianctl get -o json   {results['pyflyte --help'] / get_t:6.1f}x")
    if "perian --help" in results:
        print(f"  perian --help  / perianctl --help        {results['perian --help'] / help_t:6.1f}x")
        print(f"  perian --help  / perianctl get -o json   {results['perian --help'] / get_t:6.1f}x")
    print("\ntargets:")
    print(f"  perianctl --help median <= 0.15 s       {'PASS' if help_t <= 0.15 else 'MISS'} ({help_t:.3f} s)")
    print(f"  perianctl get -o json median <= 0.35 s  {'PASS' if get_t <= 0.35 else 'MISS'} ({get_t:.3f} s)")
    heavy = heavy_imports(["-m", "perianctl", "--help"], env)
    print(f"  --help imports no heavy module          {'PASS' if not heavy else 'MISS ' + ', '.join(heavy)}")


if __name__ == "__main__":
    main()
