"""Issue 7, secrets: distinctive secret values never show up where they should not.

One long scenario, all real subprocesses against real sandboxes: the PERIAN token (flag, env,
``--token-file``, stdin, config), AWS keys and a GCP service-account file (``--storage-credentials``),
a registry password and an API key (``--secret-env``), connector-style ``_FSEC_*`` variables, and a
wrong token. It runs every command that prints or stores anything -- ``config``, ``submit --dry-run``,
real submits, ``get``/``list``/``logs``/``watch``/``wait``/``delete``, ``-v``/``-vv`` HTTP logging,
tracebacks forced with ``-v``, ``sandbox start/status/stop`` -- and then greps every output stream and
every file (text or binary: the SQLite journal too) for every secret, raw and base64-encoded.

Where a secret *may* be stored, and nowhere else:

* ``config.toml`` (0600, dir 0700): PERIAN tokens, by design;
* a sandbox's ``credentials.json`` (0600): the token that sandbox accepts;
* a sandbox's ``sandbox.db``, while a job has not ended: its own secrets, which the runtime needs
  to start it. Like the real PERIAN, the sandbox drops them afterwards; the scenario ends with every
  job finished and both sandboxes stopped, so no file may hold them then.
"""

from __future__ import annotations

import base64
import json
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.plugins.cli import CliEnv, CliResult, run_perianctl
from tests.plugins.sandbox import SandboxHandle

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = str(REPO / "examples" / "templates" / "hello.json")

ORG = "secret-org"
TOKEN = "tok-SECRET-ZZ91-perian"
TOKEN2 = "tok2-SECRET-ZZ91-sandbox"
WRONG_TOKEN = "wrong-SECRET-ZZ91-token"
AWS_ID = "AKIASECRETZZ91ACCESS"
AWS_KEY = "aws-SECRET-ZZ91/k+ey=value"
REGISTRY_PW = "reg-SECRET-ZZ91-password"
API_KEY = "key-SECRET-ZZ91-api"
FSEC = "fsec-SECRET-ZZ91-connector"
GCP_MARKER = "gcp-SECRET-ZZ91-private"
GCP_JSON = json.dumps(
    {
        "type": "service_account",
        "project_id": "demo",
        "private_key_id": "0123",
        "private_key": f"-----BEGIN PRIVATE KEY-----\n{GCP_MARKER}\n-----END PRIVATE KEY-----\n",
        "client_email": "ci@demo.iam.gserviceaccount.com",
    },
    indent=2,
)
GCP_B64 = base64.b64encode(GCP_JSON.encode()).decode()

TOKENS = {"token": TOKEN, "token2": TOKEN2}
JOB_SECRETS = {
    "aws_id": AWS_ID,
    "aws_key": AWS_KEY,
    "registry": REGISTRY_PW,
    "api_key": API_KEY,
    "gcp": GCP_MARKER,
    "gcp_b64": GCP_B64,
}
OTHER = {"wrong": WRONG_TOKEN, "fsec": FSEC}
ALL = {**TOKENS, **JOB_SECRETS, **OTHER}


def _needles(value: str) -> list[bytes]:
    """The value as bytes, plus its base64 form (a secret sent as a container file is base64)."""
    raw = value.encode()
    return [raw] if len(raw) > 200 else [raw, base64.b64encode(raw)]


def hits(data: bytes) -> set[str]:
    return {name for name, value in ALL.items() if any(n in data for n in _needles(value))}


@dataclass
class Transcript:
    """Every CLI run of the scenario, so one assertion can grep them all."""

    runs: list[CliResult] = field(default_factory=list)

    def add(self, result: CliResult, *, expect: int | set[int] = 0) -> CliResult:
        codes = {expect} if isinstance(expect, int) else expect
        assert result.returncode in codes, result
        assert "Traceback" not in result.output or "-v" in result.args, result
        self.runs.append(result)
        return result


@dataclass
class Scenario:
    transcript: Transcript
    home: CliEnv
    sandbox: SandboxHandle
    sandbox2_dir: Path
    job_ids: list[str]
    inputs_dir: Path
    daemon_cmdline: bytes


def _env(home: CliEnv, inputs: Path, *, aws: bool = True, gcp: bool = False) -> dict[str, str]:
    env = home.env()
    env.update(
        PERIAN_ORGANIZATION=ORG,
        DOCKER_REGISTRY_PASSWORD=REGISTRY_PW,
        MY_API_KEY=API_KEY,
        _FSEC_PERIAN_TOKEN=FSEC,
        _FSEC_DOCKER_REGISTRY_PASSWORD=FSEC,
    )
    if aws:
        env.update(AWS_ACCESS_KEY_ID=AWS_ID, AWS_SECRET_ACCESS_KEY=AWS_KEY)
    if gcp:
        env.update(GOOGLE_APPLICATION_CREDENTIALS=str(inputs / "gcp.json"))
    return env


_FORCED_TRACEBACK = textwrap.dedent('''
    """Run the real CLI with one API call replaced by a bug: an exception whose message holds the
    request (secrets included), raised deep in the stack, so ``-v`` prints a real traceback."""
    import sys
    from perianctl.perian import client

    async def broken_create(self, request, *, idempotency_key=None):
        raise RuntimeError(f"bug while creating {request.model_dump()!r}")

    async def broken_get(self, job_id):
        settings = {"token": self._http.headers["authorization"]}
        raise KeyError(f"bug while reading {job_id} with {settings}")

    client.PerianClient.create_job = broken_create
    client.PerianClient.get_job = broken_get
    from perianctl.cli import main
    main(sys.argv[1:])
''')


def _forced(args: list[str], env: dict[str, str]) -> CliResult:
    proc = subprocess.run(
        [sys.executable, "-c", _FORCED_TRACEBACK, *args], env=env, capture_output=True, text=True, timeout=60
    )
    return CliResult(args, proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    from tests.plugins.sandbox import launch_sandbox

    root = tmp_path_factory.mktemp("secrets")
    home = CliEnv(root / "home")
    home.root.mkdir()
    inputs = root / "inputs"
    inputs.mkdir()
    (inputs / "token.txt").write_text(TOKEN + "\n")
    (inputs / "gcp.json").write_text(GCP_JSON)
    sb = launch_sandbox(root / "sandbox", token=TOKEN, org=ORG)
    t = Transcript()
    try:
        run = _runner(t)
        env = _env(home, inputs)
        env_gcp = _env(home, inputs, aws=False, gcp=True)

        # -- config: the token arrives by file, stdin and flag; every view of it is redacted
        run(["--api-url", sb.url, "--org", ORG, "--token-file", str(inputs / "token.txt"), "config", "init"], env)
        for args in (
            ["config", "show"],
            ["config", "show", "-o", "json"],
            ["config", "show", "-o", "yaml"],
            ["config", "list"],
            ["config", "path"],
            ["-v", "config", "show"],
        ):
            run(args, env)
        run(["config", "set", "token", "-"], env, input=TOKEN + "\n")
        run(["--token", TOKEN, "config", "show", "-o", "json"], env)
        env_tok = env | {"PERIAN_TOKEN": TOKEN}
        run(["config", "show"], env_tok)

        # -- dry runs: the request with every kind of secret, redacted
        secret_flags = [
            "--secret-env",
            "DOCKER_REGISTRY_PASSWORD",
            "--secret-env",
            "MY_API_KEY",
            "--storage-credentials",
        ]
        base = ["submit", TEMPLATE, "--input", "name=s", *secret_flags]
        for extra in (["--dry-run"], ["--dry-run", "-o", "yaml"], ["--dry-run", "-o", "json"]):
            run([*base, *extra], env)
            run([*base, *extra], env_gcp)
        run(["-vv", *base, "--dry-run"], env_gcp)

        # -- real submits (AWS, then GCP), with HTTP logging
        first = run(["-vv", *base, "--wait", "-o", "name"], env).stdout.strip()
        second = run(["-v", *base, "--env", "PERIAN_SANDBOX_DURATION=0.5", "-o", "name"], env_gcp).stdout.strip()
        ids = [first, second]

        # -- everything that shows a job
        for args in (
            ["get", first, "-o", "json"],
            ["get", first, "-o", "yaml"],
            ["get", *ids, "-o", "wide"],
            ["get", "--last", "--history", "-o", "json"],
            ["list"],
            ["list", "-o", "json"],
            ["list", "--local", "-o", "json"],
            ["logs", first],
            ["-vv", "get", second, "-o", "json"],
            ["watch", *ids, "-o", "json"],
            ["watch", *ids, "--no-live"],
            ["wait", *ids, "-o", "yaml"],
            ["-vv", "wait", *ids, "-o", "json"],
            ["delete", first, "--yes"],
            ["-v", "delete", second, "--yes"],
        ):
            run(args, env)

        # -- failures: wrong token (flag), missing secret-env, unreachable API -- with -v and -vv
        run(["--token", WRONG_TOKEN, "get", first], env, expect=6)
        run(["-vv", "--token", WRONG_TOKEN, "list"], env, expect=6)
        run(["-v", "--api-url", "http://127.0.0.1:9", "get", first], env_tok, expect=8)
        run(["-v", *base, "--secret-env", "NOT_SET_ANYWHERE", "--dry-run"], env, expect=2)

        # -- tracebacks forced with -v (an unexpected error whose message holds the request)
        t.add(_forced(["-v", *base], env_gcp), expect=1)
        t.add(_forced(["-v", *base], env), expect=1)
        t.add(_forced(["-v", "get", first], env), expect=1)
        t.add(_forced(["get", first], env), expect=1)

        # -- a detached sandbox started with a token on the command line
        sb2 = home.state_dir / "sandbox"
        try:
            run(["sandbox", "start", "--port", "0", "--org", "o2", "--token", TOKEN2, "--speed", "10"], env)
            status = json.loads(run(["sandbox", "status", "-o", "json"], env).stdout)
            cmdline = Path(f"/proc/{status['pid']}/cmdline").read_bytes()
            run(["sandbox", "status"], env)
            env_profile = {k: v for k, v in env.items() if k != "PERIAN_ORGANIZATION"}  # env would beat the profile
            run(["--profile", "sandbox", "config", "show", "-o", "json"], env_profile)
            run(["--profile", "sandbox", "submit", TEMPLATE, "--input", "name=z", *secret_flags, "--wait"], env_profile)
        finally:  # never leave a detached sandbox behind, even when a check above failed
            run(["sandbox", "stop"], env)
    finally:
        sb.stop()
    return Scenario(t, home, sb, sb2, ids, inputs, cmdline)


def _runner(t: Transcript) -> Callable[..., CliResult]:
    def run(args: list[str], env: dict[str, str], *, expect: int | set[int] = 0, input: str | None = None) -> CliResult:
        return t.add(run_perianctl(args, env=env, input=input, timeout=90), expect=expect)

    return run


# --------------------------------------------------------------------------- the checks


def test_no_secret_in_any_output_stream(scenario: Scenario) -> None:
    leaks = []
    for result in scenario.transcript.runs:
        for stream, text in (("stdout", result.stdout), ("stderr", result.stderr)):
            found = hits(text.encode())
            if found:
                leaks.append((result.args, stream, sorted(found)))
    assert not leaks, leaks
    assert len(scenario.transcript.runs) > 40


def test_redaction_is_visible_not_silent(scenario: Scenario) -> None:
    """The scenario really exercised what it claims: secrets were redacted, tracebacks printed."""
    out = "\n".join(r.output for r in scenario.transcript.runs)
    assert "***" in out  # config show, dry-run bodies
    dry = next(
        r for r in scenario.transcript.runs if "--dry-run" in r.args and "-o" not in r.args and r.returncode == 0
    )
    body = json.loads(dry.stdout)["body"]["docker_run_parameters"]
    assert set(body["secrets"]) >= {"DOCKER_REGISTRY_PASSWORD", "MY_API_KEY"}  # names shown, values masked
    assert set(body["secrets"].values()) == {"***"}
    forced = [r for r in scenario.transcript.runs if r.returncode == 1]
    assert forced and all("error: unexpected" in r.stderr for r in forced)
    assert sum("Traceback (most recent call last)" in r.stderr for r in forced) == 3  # the three with -v
    assert any(
        "HTTP Request" in r.stderr or "-> 200" in r.stderr for r in scenario.transcript.runs if "-vv" in r.args
    )  # -vv really logged HTTP


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _allowed(path: Path, home: CliEnv) -> set[str]:
    """What may be stored in ``path`` (see the module docstring)."""
    if path == home.config_file:
        return set(TOKENS)
    if path.name == "credentials.json":
        return set(TOKENS)
    return set()  # sandbox.db included: see test_sandbox_store_and_api_and_permissions


def test_no_secret_in_any_file_but_where_it_belongs(scenario: Scenario) -> None:
    roots = [scenario.home.root, scenario.sandbox.state_dir]
    checked, leaks = 0, []
    for root in roots:
        for path in _files(root):
            checked += 1
            found = hits(path.read_bytes()) - _allowed(path, scenario.home)
            if found:
                leaks.append((str(path), sorted(found)))
    assert not leaks, leaks
    names = {p.name for root in roots for p in _files(root)}
    assert {"config.toml", "journal.db", "sandbox.log", "sandbox.db"} <= names, names
    assert checked > 10


def test_the_sandbox_daemon_gets_no_token_on_its_command_line(scenario: Scenario) -> None:
    assert scenario.daemon_cmdline, "no daemon pid"
    assert not hits(scenario.daemon_cmdline), scenario.daemon_cmdline


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_sandbox_store_and_api_and_permissions(scenario: Scenario) -> None:
    """Private files are 0600 in 0700 dirs; the API never echoes a job's secrets (they are not in
    any ``get``/``list``/``watch`` output above); the sandbox store is the one place that holds them."""
    home = scenario.home
    private_files = [
        home.config_file,
        home.config_file.with_name("config.toml.lock"),
        home.state_dir / "journal.db",
        scenario.sandbox.state_dir / "credentials.json",
        scenario.sandbox.state_dir / "sandbox.db",
        scenario.sandbox2_dir / "credentials.json",
        scenario.sandbox2_dir / "sandbox.db",
    ]
    private_files += [p for p in home.state_dir.glob("journal.db-*")]
    private_dirs = [home.config_file.parent, home.state_dir, scenario.sandbox.state_dir, scenario.sandbox2_dir]
    wrong = {str(p): oct(_mode(p)) for p in private_files if p.exists() and _mode(p) != 0o600}
    wrong |= {str(d): oct(_mode(d)) for d in private_dirs if _mode(d) != 0o700}
    missing = [str(p) for p in private_files[:7] if not p.exists()]
    assert not missing, missing
    assert not wrong, wrong

    # The store: the job secrets are in sandbox.db while a job waits to use them; the store drops
    # them when the job ends, and once the sandbox stopped (WAL checkpointed) no copy is left.
    for state_dir in (scenario.sandbox.state_dir, scenario.sandbox2_dir):
        db = b"".join(p.read_bytes() for p in state_dir.glob("sandbox.db*"))
        assert not hits(db), (state_dir, sorted(hits(db)))
