"""The submit use case's plan step (perianctl.jobs.submit.plan): it decides everything, creates nothing.

No server here: the plans below need no offer look-up (no money flag, no --dry-run), except the one
that checks a failed look-up for --dry-run is only a warning -- without credentials the client
cannot even be made, exactly as in a CLI run with none configured.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from perianctl.config import Settings
from perianctl.errors import AuthError, ExitCode, UnavailableError, UsageError
from perianctl.jobs.submit import Invocation, Note, SubmitOptions, may_exist, plan
from perianctl.perian.client import PerianClient

T = TypeVar("T")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "templates"


def _run(coro: Coroutine[Any, Any, T], *, status: str | None = None) -> T:
    return asyncio.run(coro)


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The state directory (journal, run directories); it does not exist until something is written."""
    path = tmp_path / "state"
    monkeypatch.setenv("PERIANCTL_STATE_DIR", str(path))
    return path


def _invocation(
    tmp_path: Path, *, environ: dict[str, str] | None = None, notes: list[Note] | None = None, **values: str
) -> Invocation:
    settings = Settings(
        profile="default", config_file=tmp_path / "config.toml", values={"api_url": "http://127.0.0.1:9", **values}
    )

    def client(**kwargs: Any) -> PerianClient:  # what commands.common.make_client does
        organization, token = settings.require_credentials()
        return PerianClient(settings.api_url, organization, token, **kwargs)

    sink = notes if notes is not None else []
    return Invocation(settings=settings, client=client, run=_run, environ=environ or {}, note=sink.append)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*")) if root.exists() else []


def test_plan_decides_the_request_and_writes_nothing(tmp_path: Path, state: Path) -> None:
    planned = plan(
        SubmitOptions(
            template=str(EXAMPLES / "add.json"),
            inputs=("a=1", "b=2"),
            cores=4,
            env=("GREETING=hi",),
            timeout_seconds=600,
        ),
        _invocation(tmp_path),
    )
    assert not state.exists()  # no run directory, no inputs.pb, no journal
    assert planned.own_prefix and planned.launch.output_prefix == str(state / "runs" / planned.run_id)
    assert planned.launch.needs_inputs_file and not planned.launch.wrote_inputs
    assert planned.via == "api" and planned.idempotency_key == f"perianctl-{planned.run_id}"
    request = planned.request
    assert request is not None
    body = request.to_wire()
    assert body["requirements"]["cpu"]["cores"] == 4 and body["timeout_seconds"] == 600
    params = body["docker_run_parameters"]
    assert params["env_variables"]["GREETING"] == "hi"
    # The command is the rendered one: pyflyte-execute reads inputs.pb from the run directory.
    assert f"--inputs {planned.launch.output_prefix}/inputs.pb" in params["command"]
    assert "secrets" not in params  # nothing merged, nothing sent empty
    assert planned.offer is None


def test_secret_env_is_merged_into_the_request_and_redacted_in_the_dry_run_view(tmp_path: Path, state: Path) -> None:
    environ = {"HF_TOKEN": "hf-unit-test-value-91be"}
    planned = plan(
        SubmitOptions(
            template=str(EXAMPLES / "hello.json"),
            inputs=("name=x",),
            secret_env=("HF_TOKEN",),
            output_prefix=str(tmp_path / "out"),
        ),
        _invocation(tmp_path, environ=environ),
    )
    assert planned.request is not None
    assert planned.request.docker_run_parameters.secrets == {"HF_TOKEN": "hf-unit-test-value-91be"}
    record = planned.dry_run_record()
    assert record["method"] == "POST" and record["url"] == "http://127.0.0.1:9/job"
    assert "hf-unit-test-value-91be" not in json.dumps(record)
    assert not planned.own_prefix and _files(tmp_path / "out") == [] and not state.exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"env": ("NOEQUALS",)}, "--env expects KEY=VALUE"),
        ({"secret_env": ("NOT_SET_HERE",)}, "--secret-env NOT_SET_HERE: not set"),
        ({"storage_credentials": True}, "neither AWS_ACCESS_KEY_ID nor GOOGLE_APPLICATION_CREDENTIALS"),
        ({"connector": "127.0.0.1:9", "instance_type_id": "it-1"}, "cannot be sent through a connector"),
        ({"connector": "127.0.0.1:9", "secret_env": ("X",)}, "cannot be sent through a connector"),
        ({"inputs": ("a=notanumber", "b=1")}, "a"),
        ({"inputs": ("a=1",)}, "b"),
        ({"country_code": "Germany"}, "country code"),
    ],
)
def test_bad_input_is_refused_before_anything_exists(
    tmp_path: Path, state: Path, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(UsageError) as caught:
        plan(
            SubmitOptions(template=str(EXAMPLES / "add.json"), **{"inputs": ("a=1", "b=2"), **options}),
            _invocation(tmp_path),
        )
    assert message in caught.value.message
    assert caught.value.exit_code == ExitCode.USAGE
    assert not state.exists()


def test_connector_plan_carries_the_flags_in_the_template(tmp_path: Path, state: Path) -> None:
    planned = plan(
        SubmitOptions(
            template=str(EXAMPLES / "add.json"), inputs=("a=1", "b=2"), cores=8, env=("K=v",), connector="127.0.0.1:9"
        ),
        _invocation(tmp_path),
    )
    assert planned.via == "connector" and planned.request is None and planned.offer is None
    template = planned.launch.template
    assert template.custom["cores"] == 8 and template.custom["environment"]["K"] == "v"
    request = planned.create_task_request()
    assert request.output_prefix == planned.launch.output_prefix
    assert request.inputs.literals["a"].scalar.primitive.integer == 1
    assert not state.exists()


def test_dry_run_preview_without_credentials_is_a_warning(tmp_path: Path, state: Path) -> None:
    notes: list[Note] = []
    planned = plan(
        SubmitOptions(template=str(EXAMPLES / "add.json"), inputs=("a=1", "b=2"), dry_run=True),
        _invocation(tmp_path, notes=notes),
    )
    assert planned.offer is None and planned.dry_run_note() is None
    assert [n.level for n in notes] == ["warn"]
    assert notes[0].text.startswith("cannot tell which instance type PERIAN would choose: no PERIAN")
    assert not state.exists()


def test_a_budget_without_credentials_refuses(tmp_path: Path, state: Path) -> None:
    with pytest.raises(UsageError, match="no PERIAN"):
        plan(
            SubmitOptions(template=str(EXAMPLES / "add.json"), inputs=("a=1", "b=2"), max_cost="5"),
            _invocation(tmp_path),
        )
    assert not state.exists()


def test_a_template_that_is_not_a_perian_task_is_a_warning_not_an_error(tmp_path: Path, state: Path) -> None:
    document = json.loads((EXAMPLES / "hello.json").read_text())
    document["type"] = "python-task"
    source = tmp_path / "python_task.json"
    source.write_text(json.dumps(document))
    notes: list[Note] = []
    plan(SubmitOptions(template=str(source), inputs=("name=x",)), _invocation(tmp_path, notes=notes))
    assert notes == [Note("warn", "template type is 'python-task', not 'perian_task'; submitting it to PERIAN anyway")]


def test_may_exist_only_a_definite_refusal_says_no_job() -> None:
    """Decides whether a failed create's inputs.pb is removed: kept unless no job can exist."""
    assert not may_exist(UsageError("bad"))
    assert not may_exist(AuthError("401", status=401))
    assert not may_exist(UnavailableError("connect refused", never_sent=True))
    assert may_exist(UnavailableError("read timeout after sending"))
    assert may_exist(KeyboardInterrupt())
    assert may_exist(RuntimeError("unexpected"))
