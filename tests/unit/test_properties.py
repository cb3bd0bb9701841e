"""Issue 7, bad input: property-based tests over what perianctl reads from outside, through the library entry points.

The contract (docs/HACKING.md, "Rules"): bad input is a :class:`~perianctl.errors.PerianctlError` with a one-line
message, never a traceback. Hypothesis drives the library entry points (fast, many cases).

Parts: (a) template files, (b) ``--input`` values and inputs files, (c) config files, (d) API
responses (an in-process ``httpx.MockTransport`` -- the only way to make an API answer garbage on
demand -- feeding the real client and the real renderers). The CLI runs (e) and crash safety (f) are
in tests/integration/test_properties.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import json
import random
import tarfile
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from perianctl.errors import ConfigError, InputError, PerianctlError, TemplateError
from tests.support.properties import JOB_ID, TEMPLATES, _valid_job

FAST = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
LINE_BREAKS = "\n\r\x0b\x0c\x85\u2028\u2029"


def assert_one_line(exc: PerianctlError) -> None:
    message = exc.message
    assert message.strip(), f"empty message from {type(exc).__name__}"
    # Line breaks a terminal honours (str.splitlines() also splits on \x1c-\x1e, which terminals do not).
    assert not any(c in message for c in LINE_BREAKS), f"{type(exc).__name__} message is not one line: {message!r}"
    assert "Traceback" not in message


def expect_clean(call: Callable[[], Any], allowed: type[PerianctlError] | tuple[type[PerianctlError], ...]) -> Any:
    """Run ``call``; success or an ``allowed`` error with a one-line message. Anything else fails the test."""
    try:
        return call()
    except allowed as exc:
        assert_one_line(exc)
        return exc


# --------------------------------------------------------------------------- shared strategies

_text = st.text(st.characters(codec="utf-8"), max_size=40)
_nasty_text = st.one_of(
    _text,
    st.sampled_from(
        [
            "",
            " ",
            "\n",
            "\r\n",
            "\x00",
            "\u2028",
            "\x1b[31mred",
            "{{.input}}",
            "null",
            "NaN",
            "-0",
            "1e309",
            "9" * 30,
            "ä" * 10,
            "\ud7ff",
            "%s%n",
            "../../etc/passwd",
            "s3://",
            "0x1F",
        ]
    ),
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    _nasty_text,
)
json_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(_nasty_text, inner, max_size=5)),
    max_leaves=25,
)


def _mutate(value: Any, rnd: random.Random, replacement: Any) -> Any:
    """``value`` with one randomly chosen node replaced (or deleted) -- wrong types at a real place."""
    if isinstance(value, dict) and value and rnd.random() < 0.8:
        key = rnd.choice(sorted(value, key=str))
        copy = dict(value)
        if rnd.random() < 0.15:
            del copy[key]
        else:
            copy[key] = _mutate(value[key], rnd, replacement)
        return copy
    if isinstance(value, list) and value and rnd.random() < 0.8:
        index = rnd.randrange(len(value))
        items = list(value)
        items[index] = _mutate(value[index], rnd, replacement)
        return items
    return replacement


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("props")


def _write(scratch: Path, data: bytes, suffix: str) -> Path:
    path = scratch / f"case-{uuid.uuid4().hex[:12]}{suffix}"
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- (a) templates

_VALID_JSON = {p.name: json.loads(p.read_text()) for p in sorted(TEMPLATES.glob("*.json"))}
_VALID_PB = {p.name: p.read_bytes() for p in sorted(TEMPLATES.glob("*.pb"))}
_SUFFIXES = st.sampled_from(["", ".pb", ".json", ".yaml", ".yml", ".tgz", ".tar", ".txt"])


@st.composite
def template_bytes(draw: st.DrawFn) -> bytes:
    kind = draw(
        st.sampled_from(["bytes", "json", "yaml", "text", "truncated-pb", "flipped-pb", "mutated-json", "gzip", "tar"])
    )
    if kind == "bytes":
        return draw(st.binary(min_size=1, max_size=3000))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    if kind == "yaml":
        return yaml.safe_dump(draw(json_values), allow_unicode=True).encode()
    if kind == "text":
        return draw(st.text(min_size=1, max_size=500)).encode("utf-8", "surrogatepass")
    if kind in ("truncated-pb", "flipped-pb"):
        data = _VALID_PB[draw(st.sampled_from(sorted(_VALID_PB)))]
        if kind == "truncated-pb":
            return data[: draw(st.integers(1, len(data) - 1))]
        buf = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            buf[draw(st.integers(0, len(buf) - 1))] = draw(st.integers(0, 255))
        return bytes(buf)
    if kind == "mutated-json":
        doc = _VALID_JSON[draw(st.sampled_from(sorted(_VALID_JSON)))]
        rnd = random.Random(draw(st.integers(0, 2**32)))
        for _ in range(draw(st.integers(1, 3))):
            doc = _mutate(doc, rnd, draw(json_values))
        return json.dumps(doc).encode()
    if kind == "gzip":
        return gzip.compress(draw(st.binary(max_size=2000)))
    archive = io.BytesIO()  # a tar archive of random members, as a broken `pyflyte package` might be
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for i in range(draw(st.integers(0, 3))):
            payload = draw(st.one_of(st.binary(max_size=500), st.sampled_from(list(_VALID_PB.values()))))
            name = draw(st.sampled_from([f"{i}_t_1.pb", f"{i}.pb", f"dir/{i}_x_1.pb", f"../{i}_1.pb"]))
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return archive.getvalue()


@FAST
@given(data=template_bytes(), suffix=_SUFFIXES, task=st.one_of(st.none(), _nasty_text))
def test_a_any_template_file_loads_or_is_a_one_line_template_error(
    scratch: Path, data: bytes, suffix: str, task: str | None
) -> None:
    from perianctl.flyte.templates import load_template

    path = _write(scratch, data, suffix)
    try:
        expect_clean(lambda: load_template(str(path), task=task), TemplateError)
    finally:
        path.unlink()


def test_a_the_valid_templates_still_load() -> None:
    """The mutation seeds themselves are fine (so the property above is not vacuous)."""
    from perianctl.flyte.templates import load_template

    for name in [*_VALID_JSON, *_VALID_PB]:
        assert load_template(str(TEMPLATES / name)).template.type


# --------------------------------------------------------------------------- (b) inputs


@pytest.fixture(scope="module")
def interface(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The typed interface of a real flytekit task with every input type (serialized by flytekit)."""
    from tests.support.flyte import _CACHE, import_tasks, serialize

    if "default" in _CACHE:
        return _CACHE["default"].templates["everything"].interface
    _, module = import_tasks(tmp_path_factory.mktemp("tasks"), prefix="props")
    return serialize(module, "everything").interface


_NAMES = [
    "i",
    "f",
    "s",
    "flag",
    "when",
    "wait",
    "color",
    "xs",
    "m",
    "doc",
    "folder",
    "point",
    "blob",
    "nested",
    "maybe",
    "either",
]
_input_values = st.one_of(
    _nasty_text,
    json_values.map(json.dumps),
    st.sampled_from(
        [
            "1",
            "-7",
            "1_000",
            "1.5",
            "1e-3",
            "inf",
            "nan",
            "true",
            "no",
            "2024-05-01T12:00:00Z",
            "2024-13-45",
            "1h30m",
            "PT1H",
            "P1DT2H",
            "99:99:99",
            "500ms",
            "red",
            "RED",
            "[1, 2]",
            '[["a"], []]',
            '{"a": 1.5}',
            '{"x": 1, "y": 2.5}',
            "none",
            "null",
            "s3://bucket/key",
            "/nonexistent/file",
            ".",
            "9" * 400,
            "1" * 5000,
            "[" * 5000,
            '{"a":' * 3000,
        ]
    ),
)
_pairs = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(_NAMES), _input_values).map(lambda t: f"{t[0]}={t[1]}"),
        _nasty_text,  # no '=' at all, or an unknown name
    ),
    max_size=6,
)


@FAST
@given(pairs=_pairs)
def test_b_any_input_flags_build_or_are_a_one_line_input_error(interface: Any, pairs: list[str]) -> None:
    from perianctl.flyte.inputs import build_inputs

    expect_clean(lambda: build_inputs(interface, pairs, None), InputError)


@FAST
@given(
    data=st.one_of(
        st.binary(min_size=1, max_size=2000),
        st.dictionaries(st.sampled_from(_NAMES), json_values, max_size=8).map(lambda d: json.dumps(d).encode()),
        st.dictionaries(st.sampled_from(_NAMES), json_values, max_size=8).map(
            lambda d: yaml.safe_dump(d, allow_unicode=True).encode()
        ),
        json_values.map(lambda v: json.dumps({"literals": v}).encode()),
    ),
    suffix=st.sampled_from(["", ".json", ".yaml", ".pb"]),
    pairs=_pairs,
)
def test_b_any_inputs_file_builds_or_is_a_one_line_input_error(
    interface: Any, scratch: Path, data: bytes, suffix: str, pairs: list[str]
) -> None:
    from perianctl.flyte.inputs import build_inputs

    path = _write(scratch, data, suffix)
    try:
        expect_clean(lambda: build_inputs(interface, pairs, path), InputError)
    finally:
        path.unlink()


# --------------------------------------------------------------------------- (c) config files

_PROFILE_KEYS = ["api_url", "organization", "token", "output_prefix", "connector"]
_toml_scalars = st.one_of(
    _nasty_text.filter(lambda s: "\x00" not in s),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.booleans(),
    st.datetimes(),
    st.sampled_from(["http://127.0.0.1:8080", "https://api.perian.cloud/", "ftp://x", "http://a b", "http://"]),
)
_toml_values = st.recursive(
    _toml_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_nasty_text, inner, max_size=3)),
    max_leaves=8,
)
_profile = st.dictionaries(st.one_of(st.sampled_from(_PROFILE_KEYS), _nasty_text), _toml_values, max_size=5)
_config_doc = st.fixed_dictionaries(
    {},
    optional={
        "current_profile": st.one_of(st.sampled_from(["default", "sandbox", "x"]), _toml_values),
        "profiles": st.one_of(
            st.dictionaries(
                st.one_of(st.sampled_from(["default", "sandbox"]), _nasty_text),
                st.one_of(_profile, _toml_values),
                max_size=3,
            ),
            _toml_values,
        ),
        "extra": _toml_values,
    },
)
_VALID_CONFIG = textwrap.dedent("""\
    current_profile = "default"

    [profiles.default]
    api_url = "http://127.0.0.1:8080"
    organization = "org"
    token = "tok-123456"
""")


@st.composite
def config_bytes(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["doc", "doc", "mutated", "bytes", "text"]))
    if kind == "doc":
        try:
            return tomli_w.dumps(draw(_config_doc)).encode()
        except (TypeError, ValueError):
            assume(False)
    if kind == "mutated":
        text = _VALID_CONFIG
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(text)))
            cut = draw(st.integers(0, 5))
            text = text[:at] + draw(st.text(max_size=6)) + text[at + cut :]
        return text.encode("utf-8", "surrogatepass")
    if kind == "bytes":
        return draw(st.binary(max_size=500))
    return draw(st.text(max_size=300)).encode("utf-8", "surrogatepass")


@FAST
@given(
    data=config_bytes(),
    profile=st.one_of(st.none(), st.sampled_from(["default", "sandbox"]), _nasty_text),
    env_url=st.one_of(st.none(), _toml_scalars.map(str)),
    flag_url=st.one_of(st.none(), st.sampled_from(["http://127.0.0.1:1", "nope", " http://x.example "])),
)
def test_c_any_config_file_resolves_or_is_a_one_line_config_error(
    scratch: Path, data: bytes, profile: str | None, env_url: str | None, flag_url: str | None
) -> None:
    from perianctl.config import resolve

    path = _write(scratch, data, ".toml")
    environ = {} if env_url is None else {"PERIAN_API_URL": env_url}
    try:
        result = expect_clean(
            lambda: resolve(flags={"api_url": flag_url}, profile=profile, config_file=path, environ=environ),
            ConfigError,
        )
        if not isinstance(result, PerianctlError):
            assert result.api_url.startswith(("http://", "https://"))
            assert all(isinstance(v, str) for v in result.values.values())
    finally:
        path.unlink()


# --------------------------------------------------------------------------- (d) API responses

_STATUSES = [200, 200, 200, 201, 204, 301, 400, 401, 403, 404, 409, 422, 429, 500, 502, 503, 504, 599]


_odd_values = st.one_of(
    json_values,
    st.sampled_from(
        [
            "NaN",
            "Infinity",
            "-Infinity",
            "1e999999",
            "-1",
            "0001-01-01T00:00:00+23:59",
            "9999-12-31T23:59:59-23:59",
            "2026-02-30T00:00:00Z",
            "not a date",
            "Undefined",
            "PER_SECOND",
            "\x1b]0;pwned\x07",
            "a\rb",
            "x" * 10_000,
            10**30,
            -(10**30),
            1e308,
            True,
            [],
            {},
        ]
    ),
)


@st.composite
def api_body(draw: st.DrawFn) -> Any:
    """A response body: garbage, a right-looking envelope with wrong types, or an error envelope."""
    kind = draw(st.sampled_from(["jobs", "jobs", "jobs", "created", "error", "validation", "json", "bytes"]))
    rnd = random.Random(draw(st.integers(0, 2**32)))
    if kind == "jobs":
        jobs = [_valid_job() for _ in range(draw(st.integers(0, 3)))]
        doc: Any = {
            "status_code": 200,
            "jobs": jobs,
            "pagination": {"total_items": len(jobs), "current_page": 1, "total_pages": 1, "next_page": None},
        }
        for _ in range(draw(st.integers(0, 4))):
            doc = _mutate(doc, rnd, draw(_odd_values))
        return doc
    if kind == "created":
        return _mutate(
            {"status_code": 200, "id": JOB_ID, "message": "Job created successfully"}, rnd, draw(_odd_values)
        )
    if kind == "error":
        return {
            "status": "Error",
            "message": draw(_odd_values),
            "detail": draw(_odd_values),
            "status_code": draw(st.one_of(st.sampled_from(_STATUSES), _odd_values)),
        }
    if kind == "validation":
        return {
            "detail": draw(
                st.one_of(
                    st.lists(
                        st.fixed_dictionaries(
                            {}, optional={"loc": _odd_values, "msg": _odd_values, "type": _odd_values}
                        ),
                        max_size=4,
                    ),
                    _odd_values,
                )
            )
        }
    if kind == "json":
        return draw(json_values)
    return draw(st.binary(max_size=300))


def _response(status: int, body: Any, headers: dict[str, str]) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body, allow_nan=True).encode()
    return httpx.Response(status, content=content, headers={"content-type": "application/json", **headers})


def _render_everything(job: Any) -> None:
    """What get/list/watch/wait do with a job: every renderer must cope with whatever the API sent."""
    from rich.console import Console

    from perianctl.flyte.phase import status_to_phase
    from perianctl.jobs.follow import WatchedJob
    from perianctl.ui.jobs import job_record, job_row
    from perianctl.ui.live import NdjsonView, render_text
    from perianctl.ui.output import OutputFormat, emit_data

    status_to_phase(job.status, errors=job.errors)
    record = job_record(job)
    job_row(job)
    job_row(job, wide=True)
    watched = WatchedJob(job.id or JOB_ID, job=job)
    NdjsonView(lambda _id: None, stream=io.StringIO()).record(watched)
    render_text([watched], lambda _id: None, width=200)
    with contextlib.redirect_stdout(io.StringIO()):
        emit_data(record, OutputFormat.json)
        emit_data(record, OutputFormat.yaml)
    Console(file=io.StringIO(), width=200)


async def _call_api(operation: str, status: int, body: Any, headers: dict[str, str]) -> None:
    from perianctl.perian import models as m
    from perianctl.perian.client import PerianClient, RetryPolicy

    policy = RetryPolicy(
        attempts=2, timeout=0.05, wait_initial=0.001, wait_max=0.001, wait_jitter=0.0, max_retry_after=0.0
    )
    transport = httpx.MockTransport(lambda request: _response(status, body, headers))
    async with PerianClient("http://perian.test", "org", "tok", retry=policy, transport=transport) as client:
        if operation == "get":
            _render_everything(await client.get_job(JOB_ID))
        elif operation == "list":
            for job in (await client.list_jobs(limit=5)).jobs:
                _render_everything(job)
        elif operation == "iter":
            _ = [job async for job in client.iter_jobs(page_size=5, max_pages=3)]
        elif operation == "cancel":
            await client.cancel_job(JOB_ID)
        else:
            request = m.CreateJobRequest(
                requirements=m.InstanceTypeQueryInput(cpu=m.CpuQueryInput(cores=1)),
                docker_run_parameters=m.DockerRunParameters(image_name="ubuntu"),
            )
            await client.create_job(request, idempotency_key="k-1" if operation == "create-keyed" else None)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    operation=st.sampled_from(["get", "list", "iter", "cancel", "create", "create-keyed"]),
    status=st.sampled_from(_STATUSES),
    body=api_body(),
    headers=st.dictionaries(
        st.sampled_from(["retry-after", "content-type", "content-encoding"]),
        st.sampled_from(["0", "-5", "abc", "Wed, 21 Oct 2015 07:28:00 GMT", "text/html", "gzip", "1e9"]),
        max_size=2,
    ),
)
def test_d_any_api_response_is_data_or_a_perianctl_error(
    operation: str, status: int, body: Any, headers: dict[str, str]
) -> None:
    expect_clean(lambda: asyncio.run(_call_api(operation, status, body, headers)), PerianctlError)


def test_d_huge_fields_are_handled() -> None:
    """5 MB of logs, a 1 MB error, 2,000 env variables: parsed and rendered, one-line messages."""
    job = _valid_job() | {
        "logs": "x" * 5_000_000 + "\nlast line",
        "errors": "E" * 1_000_000,
        "status": "UserError",
        "done_at": "2026-01-01T01:00:00Z",
    }
    job["docker_metadata"]["docker_run_parameters"]["env_variables"] = {f"K{i}": "v" * 100 for i in range(2000)}
    body = {"status_code": 200, "jobs": [job] * 3, "pagination": {"total_items": 3}}
    started = time.monotonic()
    for operation in ("get", "list"):
        expect_clean(lambda op=operation: asyncio.run(_call_api(op, 200, body, {})), PerianctlError)  # type: ignore[misc]
    assert time.monotonic() - started < 60  # a hang detector, not a speed limit

    from perianctl.flyte.phase import status_to_phase
    from perianctl.perian.models import JobView

    info = status_to_phase("UserError", errors="E" * 1_000_000)
    assert len(info.message) < 1000 and len(info.message.splitlines()) == 1
    assert JobView.model_validate(job).logs is not None
