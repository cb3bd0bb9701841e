"""Start-up cost of the CLI against the floor and the official CLI, as ratios measured in one run.

    .venv/bin/python bench/bench_startup.py [--runs 10] [--official-cli PATH_TO_perian]

Measures whole-process wall time (spawn to exit), every case once per round, round after round
(so a noisy neighbour hits them alike), and reports medians of:

* ``python -c pass``                       -- the interpreter floor in the same venv
* a bare script: ``import httpx; httpx.get(URL)`` making the same GET as the command
  (``/job/{id}`` for ``get``, ``/job`` for ``list``)
* ``perianctl --help``, ``perianctl get ID -o json``, ``perianctl list -o json`` against an
  embedded sandbox on loopback, and TAB completion of a job id (``perianctl get <TAB>``)
* ``perianctl submit --help`` (a sub-command's help; no goal of its own, shown beside ``--help``)
* the chosen stack's floor: a script that only imports what every read command needs (typer,
  pydantic, httpx without its command-line tool, httpcore and anyio for the async transport,
  asyncio) and does nothing -- the least a ``get`` on this stack can cost, shown against the bare
  script to tell what is ours from what is the stack's
* ``perian --help``, ``perian job get ID``, ``perian job get --all`` -- the official PERIAN CLI
  (``--official-cli``, else ``$PERIAN_CLI``, else ``.venv-pcli/bin/perian`` as ``.ci/run`` installs
  it, else ``perian`` on PATH; ``--install-official`` builds a throw-away venv with perian-cli)

and the goals: ``--help`` <= 2.5x the floor and >= 10x faster than ``perian --help``; ``get``
and ``list`` <= 1.25x the bare script and >= 5x faster than the official CLI; completion
<= 0.15 s; ``--help`` imports none of flytekit, grpc, fastapi, uvicorn or httpx. Exits 1 when a
goal is missed.

perianctl's own modules are byte-compiled first (``compileall``, as ``pip install`` does): a
checkout run with ``PYTHONDONTWRITEBYTECODE`` set would otherwise compile them on every start,
while the baselines' packages in site-packages are compiled already.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _support import cores, goal

HEAVY = ("flytekit", "grpc", "fastapi", "uvicorn", "httpx")
ROOT = Path(__file__).resolve().parent.parent


def run_once(cmd: list[str], env: dict[str, str], cpu: list[float] | None = None) -> tuple[float, str]:
    """Wall seconds and stdout of one run; its CPU seconds (user + system) appended to ``cpu``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, timeout=120)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if cpu is not None:
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()[-400:]}")
    return seconds, proc.stdout.decode()


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
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "perian-cli==0.3.6"], check=True)
    return venv / "bin" / "perian"


def find_official() -> Path | None:
    venv_cli = str(ROOT / ".venv-pcli" / "bin" / "perian")
    for candidate in (os.environ.get("PERIAN_CLI"), venv_cli, shutil.which("perian")):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def bare(url: str, path: str) -> str:
    """The floor for a read command: import httpx, one authenticated GET, print the body."""
    return (
        f"import httpx, os; print(httpx.get({url + path!r}, headers={{'X-PERIAN-AUTH-ORG': "
        "os.environ['PERIAN_ORGANIZATION'], 'Authorization': 'Bearer ' + os.environ['PERIAN_TOKEN']}).text)"
    )


STACK_FLOOR = (
    "import sys, types; sys.modules['httpx._main'] = types.ModuleType('httpx._main'); "
    "import asyncio, typer, typer.main, typer._adapters, pydantic.main, httpx, httpcore, anyio._backends._asyncio"
)
"""What a read command cannot do without on this stack (perianctl.perian skips httpx's CLI the same way)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--official-cli", type=Path, help="path to the official `perian` CLI executable")
    parser.add_argument("--install-official", action="store_true", help="pip-install perian-cli into a temp venv")
    args = parser.parse_args()

    from perianctl.perian.client import PerianClient
    from perianctl.perian.models import CreateJobRequest, DockerRunParameters, InstanceTypeQueryInput
    from perianctl.sandbox.server import EmbeddedSandbox

    bindir = Path(sys.executable).parent
    import compileall

    import perianctl as package

    compileall.compile_dir(str(Path(package.__file__).parent), quiet=1)
    home = Path(tempfile.mkdtemp(prefix="perianctl-bench-"))
    official = install_official() if args.install_official else (args.official_cli or find_official())

    with EmbeddedSandbox(runtime="simulate") as sandbox:

        async def make_jobs(n: int) -> list[str]:
            async with PerianClient(sandbox.url, sandbox.organization, sandbox.token) as client:
                request = CreateJobRequest(
                    requirements=InstanceTypeQueryInput.model_validate({"cpu": {"cores": 1}}),
                    docker_run_parameters=DockerRunParameters(image_name="ubuntu", image_tag="22.04", command="true"),
                )
                return [await client.create_job(request) for _ in range(n)]

        job_id = asyncio.run(make_jobs(20))[-1]
        (home / ".config" / "perian").mkdir(parents=True)
        (home / ".config" / "perian" / "db.json").write_text(
            json.dumps({"organization": {"name": sandbox.organization, "token": sandbox.token}, "base_currency": "EUR"})
        )
        env = {
            **os.environ,
            "PERIANCTL_CONFIG": str(home / "config.toml"),
            "PERIANCTL_STATE_DIR": str(home / "state"),
            "PERIAN_API_URL": sandbox.url,
            "PERIAN_ORGANIZATION": sandbox.organization,
            "PERIAN_TOKEN": sandbox.token,
            "PERIAN_ENDPOINT": sandbox.url,  # the official CLI's endpoint; its credentials are in db.json
            "HOME": str(home),
            "COLUMNS": "200",
        }
        complete_env = {
            **env,
            "_PERIANCTL_COMPLETE": "complete_bash",
            "COMP_WORDS": f"perianctl get {job_id[:4]}",
            "COMP_CWORD": "2",
        }
        perianctl = [str(bindir / "perianctl")]
        cases: dict[str, tuple[list[str], dict[str, str]]] = {
            "python -c pass": ([sys.executable, "-c", "pass"], env),
            "bare httpx GET /job/ID": ([sys.executable, "-c", bare(sandbox.url, f"/job/{job_id}")], env),
            "bare httpx GET /job": ([sys.executable, "-c", bare(sandbox.url, "/job")], env),
            "perianctl --help": ([*perianctl, "--help"], env),
            "perianctl submit --help": ([*perianctl, "submit", "--help"], env),
            "stack floor (imports only)": ([sys.executable, "-c", STACK_FLOOR], env),
            "perianctl get ID -o json": ([*perianctl, "get", job_id, "-o", "json"], env),
            "perianctl list -o json": ([*perianctl, "list", "-o", "json"], env),
            "perianctl get <TAB>": (perianctl, complete_env),
        }
        if official:
            cases["perian --help"] = ([str(official), "--help"], env)
            cases["perian job get ID"] = ([str(official), "job", "get", job_id], env)
            cases["perian job get --all"] = ([str(official), "job", "get", "--all"], env)
        samples: dict[str, list[float]] = {name: [] for name in cases}
        cpu: dict[str, list[float]] = {name: [] for name in cases}
        completion_out = ""
        for cmd, case_env in cases.values():
            run_once(cmd, case_env)  # warm the page cache
        for _ in range(args.runs):
            for name, (cmd, case_env) in cases.items():
                seconds, out = run_once(cmd, case_env, cpu[name])
                samples[name].append(seconds)
                if name == "perianctl get <TAB>":
                    completion_out = out
        med = {name: statistics.median(s) for name, s in samples.items()}
        print(
            f"start-up, median of {args.runs} interleaved runs (s); machine: {cores()}, "
            f"Python {sys.version.split()[0]}, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
        )
        print(f"  {'':<28} {'wall':>7}   {'':<24} {'CPU':>7}")
        for name, s in samples.items():
            print(
                f"  {name:<28} {med[name]:7.3f}   (min {min(s):.3f}, max {max(s):.3f})  "
                f"{statistics.median(cpu[name]):7.3f}"
            )
        heavy = heavy_imports(["-m", "perianctl", "--help"], env)

    floor = med["python -c pass"]
    cpu_med = {name: statistics.median(c) for name, c in cpu.items()}

    def ratio_text(ours: str, base: str, faster: bool = False) -> str:
        """The wall ratio, then the CPU one (steadier on a busy machine)."""
        wall = med[base] / med[ours] if faster else med[ours] / med[base]
        by_cpu = cpu_med[base] / cpu_med[ours] if faster else cpu_med[ours] / cpu_med[base]
        return f"{wall:.2f}x ({med[ours]:.3f} vs {med[base]:.3f} s; CPU {by_cpu:.2f}x)"

    print("\nbaselines and ratios (goals on wall time; the CPU ratio beside it is steadier on a busy machine):")
    ok = True
    ratio = med["perianctl --help"] / floor
    ok &= goal("--help <= 2.5x python -c pass", ratio <= 2.5, ratio_text("perianctl --help", "python -c pass"))
    for ours, theirs, limit in (
        ("perianctl --help", "perian --help", 10.0),
        ("perianctl get ID -o json", "perian job get ID", 5.0),
        ("perianctl list -o json", "perian job get --all", 5.0),
    ):
        if theirs in med:
            faster = med[theirs] / med[ours]
            ok &= goal(
                f"{ours} >= {limit:g}x faster than {theirs}", faster >= limit, ratio_text(ours, theirs, faster=True)
            )
        else:
            ok &= goal(f"{ours} >= {limit:g}x faster than {theirs}", False, "official CLI not found (--official-cli)")
    print(
        f"info       perianctl submit --help: {ratio_text('perianctl submit --help', 'python -c pass')} python -c pass"
    )
    print(
        f"info       the stack's imports alone (typer, pydantic, httpx, async httpcore, asyncio), before any work: "
        f"{ratio_text('stack floor (imports only)', 'bare httpx GET /job/ID')} the bare script"
    )
    for ours, base in (
        ("perianctl get ID -o json", "bare httpx GET /job/ID"),
        ("perianctl list -o json", "bare httpx GET /job"),
    ):
        ratio = med[ours] / med[base]
        ok &= goal(f"{ours} <= 1.25x {base}", ratio <= 1.25, ratio_text(ours, base))
    offered = job_id in completion_out
    ok &= goal(
        "TAB completion of a job id <= 0.15 s",
        offered and med["perianctl get <TAB>"] <= 0.15,
        f"{med['perianctl get <TAB>']:.3f} s, {'offers' if offered else 'does NOT offer'} the job id",
    )
    ok &= goal("--help imports no heavy module", not heavy, ", ".join(heavy) or "none")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
