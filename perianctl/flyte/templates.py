"""Load a Flyte ``TaskTemplate`` from whatever a user has at hand.

Accepted sources, detected by content first and extension second (users rename files):

* a ``TaskTemplate`` protobuf (``.pb``) or an admin ``TaskSpec`` protobuf, which is what
  ``pyflyte package``/``serialize`` actually write even though their help says "TaskTemplate"
  (flytekit's flytekit/tools/serialize_helpers.py writes ``TaskSpec``). The two are told apart by
  parsing both ways and keeping the parse
  that is clean (no unknown fields) and has a task type;
* a ``pyflyte package`` archive (``.tgz``/``.tar.gz``/``.tar``): its ``*_1.pb`` members are tasks;
  ``task`` picks one by full (``hello.gpu``) or short (``gpu``) name;
* protobuf JSON (camelCase or snake_case) or YAML of a ``TaskTemplate``, or of anything wrapping it
  as ``{"template": …}`` (a ``TaskSpec`` or a ``CreateTaskRequest``);
* ``path/file.py:task_name``: the module is imported and the task serialized with flytekit.
  This is the only path that imports flytekit (0.8 s), and only when it is used.

Every failure raises :class:`~perianctl.errors.TemplateError` with one line: a CLI prints it and
exits 2 instead of showing a traceback. Files are size-capped and read once, so a huge or
garbage file fails fast instead of hanging.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import importlib
import io
import json
import math
import os
import posixpath
import re
import stat
import sys
import tarfile
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml
from flyteidl.admin import task_pb2
from flyteidl.core import tasks_pb2
from google.protobuf import json_format, unknown_fields
from google.protobuf.message import DecodeError, Message

from perianctl.errors import PerianctlError, TemplateError
from perianctl.text import one_line, unreadable_number

PERIAN_TASK_TYPE = "perian_task"
"""The Flyte task type (and version) of PERIAN tasks: the official plugin's, its connector's and
perianctl's, so a deployment can switch connectors with tasks in flight. Defined here only."""
PERIAN_TASK_TYPE_VERSION = 0

#: Largest template/inputs file we read. Real templates are a few KiB; 64 MiB leaves room for
#: inlined data while keeping a mistaken ``perianctl submit bigfile.bin`` fast and bounded.
MAX_FILE_BYTES = 64 * 1024 * 1024
#: Decompressed bytes we are willing to stream out of a package (a gzip bomb stops here).
MAX_PACKAGE_BYTES = 512 * 1024 * 1024
#: Nodes we walk in a JSON/YAML document; YAML aliases can make a small file exponentially big.
MAX_DOCUMENT_NODES = 1_000_000
#: YAML parses at a few MB/s even with libyaml; bigger documents must be JSON or protobuf.
MAX_YAML_BYTES = 8 * 1024 * 1024

# libyaml's loader is ~10x faster than the pure-Python one and accepts the same safe subset.
_YamlLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_PY_SOURCE = re.compile(r"(?P<file>.+\.py)(?::(?P<task>[^:/\\]*))?")
_TASK_TYPE_RE = re.compile(r"[A-Za-z0-9_.\-]+")
_FAST_PLACEHOLDERS = re.compile(r"\{\{\s*\.(remote_package_path|dest_dir)\s*\}\}", re.IGNORECASE)


@dataclass
class LoadedTemplate:
    """A task template plus where it came from and what the user should be told about it.

    ``warnings`` are single lines for stderr (not errors: e.g. the task type is not
    ``perian_task``). ``optional_inputs`` names inputs known to have a Python default (only a
    ``file.py:task`` source knows them; templates do not record defaults).
    """

    template: tasks_pb2.TaskTemplate
    source: str
    kind: str
    warnings: list[str] = field(default_factory=list)
    optional_inputs: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        """The task's full name (``module.function``), or ``""`` for an anonymous template."""
        return str(self.template.id.name)

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]


# --------------------------------------------------------------------------- public entry point


def load_template(source: str, *, task: str | None = None, image: str | None = None) -> LoadedTemplate:
    """Load the task template named by ``source`` (a path, or ``file.py:task``).

    ``task`` selects a task inside a package or Python file; for a single-template file it must
    match the template's name. ``image`` is the container image used when serializing a Python
    task (default: flytekit's default image). Raises ``TemplateError`` only.
    """
    try:
        loaded = _load(str(source), task=task, image=image)
    except PerianctlError as exc:
        if isinstance(exc, TemplateError):
            raise
        raise TemplateError(one_line(exc.message)) from None
    except RecursionError:
        raise TemplateError(f"{source}: the template is nested too deeply") from None
    except MemoryError:
        raise TemplateError(f"{source}: the template is too large to load") from None
    except Exception as exc:  # the contract is "TemplateError or nothing"
        raise TemplateError(one_line(f"cannot load template {source}: {type(exc).__name__}: {exc}")) from None
    if loaded.template.HasField("custom"):
        _check_finite(loaded.template.custom, "custom", source)
    loaded.warnings.extend(_warnings_for(loaded.template))
    return loaded


def _check_finite(value: Any, path: str, source: str, depth: int = 0) -> None:
    """Reject NaN and ±Infinity in ``custom``: JSON and YAML parsers accept them (``Infinity``,
    ``.inf``), protobuf stores them, but no resource can be infinite and they cannot be written back
    as JSON, so the request could not even be built."""
    import math

    from google.protobuf import struct_pb2

    if depth > 100:
        return  # parse_text_document already bounds the nesting
    if isinstance(value, struct_pb2.Struct):
        for key, item in value.fields.items():
            _check_finite(item, f"{path}.{key}", source, depth + 1)
    elif isinstance(value, struct_pb2.ListValue):
        for index, item in enumerate(value.values):
            _check_finite(item, f"{path}[{index}]", source, depth + 1)
    elif isinstance(value, struct_pb2.Value):
        kind = value.WhichOneof("kind")
        if kind == "number_value" and not math.isfinite(value.number_value):
            raise TemplateError(f"{source}: {path} is {value.number_value}, not a finite number")
        if kind == "struct_value":
            _check_finite(value.struct_value, path, source, depth + 1)
        elif kind == "list_value":
            _check_finite(value.list_value, path, source, depth + 1)


def _load(source: str, *, task: str | None, image: str | None) -> LoadedTemplate:
    if not source.strip():
        raise TemplateError("no template given")
    py = _PY_SOURCE.fullmatch(source)
    if py:
        named = py.group("task") or None
        if named and task and named != task:
            raise TemplateError(f"{source} names task {named!r} but --task says {task!r}")
        return _load_python(Path(py.group("file")).expanduser(), named or task, image, source)
    path = Path(source).expanduser()
    data = read_file_bytes(path, what="template file", error=TemplateError)
    if data[:2] == b"\x1f\x8b" or _is_plain_tar(data):
        return _load_package(data, source, task)
    template, kind, warnings = parse_template_bytes(data, source)
    if task and task not in (template.id.name, template.id.name.rsplit(".", 1)[-1]):
        shown = template.id.name or "an unnamed task"
        raise TemplateError(f"task {task!r} not found: {source} holds only {shown}")
    return LoadedTemplate(template=template, source=source, kind=kind, warnings=warnings)


def _warnings_for(template: tasks_pb2.TaskTemplate) -> list[str]:
    out = []
    if template.type != PERIAN_TASK_TYPE:
        shown = template.type or "(none)"
        out.append(
            f"task type is {shown!r}, not {PERIAN_TASK_TYPE!r}: perianctl runs it on PERIAN, but a Flyte "
            "cluster would not route it to the PERIAN connector"
        )
    if template.HasField("container") and any(_FAST_PLACEHOLDERS.search(a) for a in template.container.args):
        out.append(
            "the template was packaged with fast registration (--copy): its {{ .remote_package_path }} "
            "placeholder is only filled by `pyflyte register`, so the container will not find the code"
        )
    return out


# --------------------------------------------------------------------------- shared file helpers


def read_file_bytes(path: Path, *, what: str, error: type[PerianctlError], limit: int = MAX_FILE_BYTES) -> bytes:
    """Read a whole file, refusing directories, devices, empty and oversized files with ``error``.

    ``what`` names the file in messages ("template file"). FIFOs are allowed so
    ``--inputs-file <(…)`` works; reading stops at ``limit + 1`` bytes.
    """
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise error(f"{what} {path} is a directory, not a file")
        if not (stat.S_ISREG(info.st_mode) or stat.S_ISFIFO(info.st_mode)):
            raise error(f"{what} {path} is not a regular file")
        if stat.S_ISREG(info.st_mode) and info.st_size > limit:
            raise error(f"{what} {path} is too large ({info.st_size} bytes, limit {limit})")
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except PermissionError:
        raise error(f"cannot read {what} {path}: permission denied") from None
    except OSError as exc:
        raise error(one_line(f"cannot read {what} {path}: {exc.strerror or exc}")) from None
    if len(data) > limit:
        raise error(f"{what} {path} is too large (more than {limit} bytes)")
    if not data.strip():
        raise error(f"{what} {path} is empty")
    return data


def looks_binary(data: bytes) -> bool:
    """True for protobuf-like bytes: a NUL, invalid UTF-8 or control characters near the start."""
    head = data[:65536]
    if b"\x00" in head:
        return True
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=len(data) <= len(head))
    except UnicodeDecodeError:
        return True
    return any((ord(ch) < 32 and ch not in "\t\n\r\f") or ord(ch) == 0x7F for ch in text)


def parse_text_document(data: bytes, *, path: str, error: type[PerianctlError]) -> Any:
    """Parse JSON or YAML text; errors carry ``path:line:column`` and are one line.

    ``.yaml``/``.yml`` files are YAML; ``.json`` files and text starting with ``{``/``[`` are JSON
    (for better messages than YAML's); anything else is tried as YAML, a superset of JSON.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (bad byte at offset {exc.start})") from None
    suffix = Path(path).suffix.lower()
    use_json = suffix == ".json" or (suffix not in (".yaml", ".yml") and text.lstrip()[:1] in ("{", "["))
    try:
        if use_json:
            try:
                document = json.loads(text)
            except json.JSONDecodeError as exc:
                raise error(one_line(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}")) from None
        else:
            if len(data) > MAX_YAML_BYTES:
                raise error(
                    f"{path}: YAML documents are limited to {MAX_YAML_BYTES // (1024 * 1024)} MiB; "
                    "use JSON or protobuf for bigger files"
                )
            try:
                document = yaml.load(text, Loader=_YamlLoader)  # CSafeLoader or SafeLoader
            except yaml.MarkedYAMLError as exc:
                mark = exc.problem_mark or exc.context_mark
                where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
                reason = exc.problem or exc.context or "syntax error"
                if exc.problem and exc.context and exc.problem.startswith("but "):
                    reason = f"{exc.context} {exc.problem}"
                raise error(one_line(f"{where}: invalid YAML: {reason}")) from None
            except yaml.YAMLError as exc:
                raise error(one_line(f"{path}: invalid YAML: {exc}")) from None
        _check_size(document, path, error)
        if has_lone_surrogate(document):
            raise error(f"{path}: a string holds an unpaired surrogate escape (e.g. \\ud800), which is not text")
    except RecursionError:
        raise error(f"{path}: the document is nested too deeply") from None
    except ValueError as exc:  # JSON's and YAML's int(), past Python's digit limit
        raise error(f"{path}: {unreadable_number(exc)}") from None
    return document


def has_lone_surrogate(document: Any) -> bool:
    """Does a string (or key) in a parsed JSON/YAML document hold an unpaired surrogate? JSON allows
    ``"\\ud800"``; such a string cannot be encoded as UTF-8, so no request or file could carry it."""
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    except (TypeError, ValueError):  # not JSON-shaped (YAML dates, ...): check what can be checked
        return False
    return False


def _check_size(document: Any, path: str, error: type[PerianctlError]) -> None:
    """Walk the document without recursion; stop YAML alias bombs before anything else walks it."""
    stack = [document]
    seen = 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_DOCUMENT_NODES:
            raise error(f"{path}: the document is too large (more than {MAX_DOCUMENT_NODES} values)")
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)


def jsonable(value: Any, *, error: Callable[[str], Exception] = TemplateError, path: str = "") -> Any:
    """A parsed JSON/YAML document in the types protobuf's JSON parser takes; the one place that says so.

    YAML gives dates, bytes and non-string keys: dates become ISO text, bytes base64, keys text.
    NaN and infinity are refused (``error``, naming where: ``custom.cores is nan, not a finite
    number``; exit 2 for a template or an input): JSON has no spelling for them, a protobuf
    ``Struct`` holding one cannot be printed again, and no PERIAN or Flyte field means anything by
    them -- yet ``json.loads`` and YAML's ``.nan`` let them in.
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, error=error, path=f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v, error=error, path=f"{path}[{i}]") for i, v in enumerate(value)]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode()
    if isinstance(value, float) and not math.isfinite(value):
        raise error(f"{path or 'the value'} is {value}, not a finite number")
    return value


# --------------------------------------------------------------------------- parsing


def parse_template_bytes(data: bytes, label: str) -> tuple[tasks_pb2.TaskTemplate, str, list[str]]:
    """Parse one file's bytes (binary or text) into a template; returns (template, kind, warnings)."""
    if looks_binary(data):
        template, kind = _parse_binary(data, label)
        return template, kind, []
    document = parse_text_document(data, path=label, error=TemplateError)
    kind = "json" if data.lstrip()[:1] in (b"{", b"[") or label.lower().endswith(".json") else "yaml"
    template, warnings = template_from_dict(document, label)
    return template, kind, warnings


def _parse_binary(data: bytes, label: str) -> tuple[tasks_pb2.TaskTemplate, str]:
    candidates: list[tuple[int, int, tasks_pb2.TaskTemplate, str]] = []
    reasons: list[str] = []
    spec = task_pb2.TaskSpec()
    try:
        spec.ParseFromString(data)
        if spec.HasField("template") and _plausible_binary(spec.template):
            candidates.append((_unknown_count(spec), 0, spec.template, "taskspec-pb"))
    except DecodeError as exc:
        reasons.append(str(exc))
    template = tasks_pb2.TaskTemplate()
    try:
        template.ParseFromString(data)
        if _plausible_binary(template):
            candidates.append((_unknown_count(template), 1, template, "template-pb"))
    except DecodeError as exc:
        reasons.append(str(exc))
    if not candidates:
        if len(reasons) == 2:
            raise TemplateError(
                f"{label}: not a Flyte task template: truncated or corrupt protobuf, and not JSON/YAML text"
            )
        raise TemplateError(
            f"{label}: a protobuf, but not a Flyte TaskTemplate or TaskSpec (no task type); "
            "is it a workflow, launch plan or literal map?"
        )
    # Fewer unknown fields wins; on a tie prefer TaskSpec, which is what pyflyte package writes.
    candidates.sort(key=lambda c: (c[0], c[1]))
    _, _, chosen, kind = candidates[0]
    result = tasks_pb2.TaskTemplate()
    result.CopyFrom(chosen)
    return result, kind


def _plausible_binary(template: tasks_pb2.TaskTemplate) -> bool:
    return bool(template.type) and _TASK_TYPE_RE.fullmatch(template.type) is not None


def _unknown_count(message: Message, depth: int = 0) -> int:
    """Unknown fields in ``message`` and everything below it (a wrong-type parse leaves many)."""
    if depth > 100:
        return 0
    count = len(unknown_fields.UnknownFieldSet(message))
    for fd, value in message.ListFields():
        if fd.message_type is None:
            continue
        if fd.message_type.GetOptions().map_entry:
            value_fd = fd.message_type.fields_by_name["value"]
            if value_fd.message_type is not None:
                count += sum(_unknown_count(v, depth + 1) for v in value.values())
        elif fd.is_repeated:
            count += sum(_unknown_count(v, depth + 1) for v in value)
        else:
            count += _unknown_count(value, depth + 1)
    return count


def template_from_dict(document: Any, label: str) -> tuple[tasks_pb2.TaskTemplate, list[str]]:
    """Build a template from parsed protobuf JSON/YAML; accepts ``{"template": …}`` wrappers."""
    if not isinstance(document, Mapping):
        shown = "nothing" if document is None else f"a {type(document).__name__}"
        raise TemplateError(f"{label}: expected a task template object, got {shown}")
    body: Any = document
    template_keys = {"type", "container", "custom", "id", "interface", "metadata", "k8sPod", "k8s_pod"}
    if isinstance(document.get("template"), Mapping) and not template_keys & set(document):
        body = document["template"]
    body = jsonable(body, error=lambda message: TemplateError(f"{label}: {message}"))
    unknown: list[str] = []
    _check_shape(body, tasks_pb2.TaskTemplate.DESCRIPTOR, "template", unknown, label)
    warnings: list[str] = []
    if unknown:
        # Newer flyteidl versions add fields; keep going without them rather than refuse the file.
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        warnings.append(f"{label}: ignored fields this flyteidl does not know: {shown}")
    template = tasks_pb2.TaskTemplate()
    try:
        json_format.ParseDict(body, template, ignore_unknown_fields=bool(unknown))
    except json_format.ParseError as exc:
        first = (str(exc).strip().splitlines() or ["invalid value"])[0].rstrip(".")
        raise TemplateError(one_line(f"{label}: not a valid task template: {first}")) from None
    except (TypeError, ValueError, AttributeError, ArithmeticError) as exc:
        raise TemplateError(one_line(f"{label}: not a valid task template: {type(exc).__name__}: {exc}")) from None
    if not (
        template.type or template.HasField("container") or template.HasField("custom") or template.HasField("k8s_pod")
    ):
        raise TemplateError(f"{label}: does not look like a Flyte task template (no type, container or custom)")
    return template, warnings


# Well-known types have their own JSON spelling (strings, lists, anything); ParseDict checks them.
_WELL_KNOWN = frozenset(
    {
        "google.protobuf.Struct",
        "google.protobuf.Value",
        "google.protobuf.ListValue",
        "google.protobuf.Duration",
        "google.protobuf.Timestamp",
        "google.protobuf.Any",
        "google.protobuf.FieldMask",
        "google.protobuf.BoolValue",
        "google.protobuf.BytesValue",
        "google.protobuf.DoubleValue",
        "google.protobuf.FloatValue",
        "google.protobuf.Int32Value",
        "google.protobuf.Int64Value",
        "google.protobuf.StringValue",
        "google.protobuf.UInt32Value",
        "google.protobuf.UInt64Value",
    }
)


def _check_shape(value: Any, descriptor: Any, path: str, unknown: list[str], label: str, depth: int = 0) -> None:
    """Check objects are objects and lists are lists before protobuf's JSON parser sees them.

    ``json_format`` iterates a string given for a message field character by character and then
    complains about a field named ``"u"``; this names the real problem. Unknown keys are collected
    (dotted paths) instead of failing, so a template from a newer flyteidl still loads.
    """
    if depth > 100:
        raise TemplateError(f"{label}: the template is nested too deeply")
    if not isinstance(value, Mapping):
        raise TemplateError(f"{label}: {path} must be an object, got {_kind(value)}")
    by_name = {f.name: f for f in descriptor.fields}
    by_name.update({f.json_name: f for f in descriptor.fields})
    for key, item in value.items():
        fd = by_name.get(key)
        if fd is None:
            unknown.append(f"{path}.{key}")
            continue
        if fd.message_type is None or item is None:
            continue
        where = f"{path}.{key}"
        if fd.message_type.GetOptions().map_entry:
            if not isinstance(item, Mapping):
                raise TemplateError(f"{label}: {where} must be an object, got {_kind(item)}")
            value_fd = fd.message_type.fields_by_name["value"]
            if value_fd.message_type is not None and value_fd.message_type.full_name not in _WELL_KNOWN:
                for k, v in item.items():
                    _check_shape(v, value_fd.message_type, f"{where}.{k}", unknown, label, depth + 1)
            continue
        if fd.message_type.full_name in _WELL_KNOWN:
            continue
        if fd.is_repeated:
            if not isinstance(item, list):
                raise TemplateError(f"{label}: {where} must be a list, got {_kind(item)}")
            for index, element in enumerate(item):
                _check_shape(element, fd.message_type, f"{where}[{index}]", unknown, label, depth + 1)
        else:
            _check_shape(item, fd.message_type, where, unknown, label, depth + 1)


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null" if value is None else type(value).__name__


# --------------------------------------------------------------------------- packages


def _is_plain_tar(data: bytes) -> bool:
    return len(data) > 262 and data[257:262] == b"ustar"


class _Limited(io.RawIOBase):
    """Read-through wrapper that fails once more than ``limit`` bytes came out (gzip bombs)."""

    def __init__(self, inner: IO[bytes], limit: int) -> None:
        self._inner = inner
        self._left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._inner.read(len(buffer))
        self._left -= len(chunk)
        if self._left < 0:
            raise TemplateError(f"the package expands to more than {MAX_PACKAGE_BYTES} bytes")
        buffer[: len(chunk)] = chunk
        return len(chunk)


def _load_package(data: bytes, label: str, task: str | None) -> LoadedTemplate:
    found: list[tuple[str, tasks_pb2.TaskTemplate]] = []
    members = 0
    raw: IO[bytes] = io.BytesIO(data)
    if data[:2] == b"\x1f\x8b":
        raw = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
    stream = io.BufferedReader(_Limited(raw, MAX_PACKAGE_BYTES))
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                members += 1
                if members > 100_000:
                    raise TemplateError(f"{label}: too many files for a pyflyte package")
                if not member.isfile() or not posixpath.basename(member.name).endswith("_1.pb"):
                    continue
                if member.size > MAX_FILE_BYTES:
                    raise TemplateError(f"{label}: {member.name} is too large for a task")
                handle = tar.extractfile(member)
                content = handle.read() if handle is not None else b""
                template, _ = _parse_binary(content, f"{label}:{member.name}")
                found.append((member.name, template))
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
        reason = one_line(f"{type(exc).__name__}: {exc}")
        raise TemplateError(f"{label}: not a valid pyflyte package archive ({reason})") from None
    if not found:
        raise TemplateError(
            f"{label}: the archive holds no task files (*_1.pb) among its {members} file(s); "
            "is it a `pyflyte package` output?"
        )
    chosen, warnings = _pick_task(found, label, task)
    return LoadedTemplate(template=chosen, source=label, kind="package", warnings=warnings)


def _pick_task(
    found: list[tuple[str, tasks_pb2.TaskTemplate]], label: str, task: str | None
) -> tuple[tasks_pb2.TaskTemplate, list[str]]:
    names = [t.id.name or member for member, t in found]
    listing = ", ".join(sorted(names))
    if task:
        full = [
            t for (member, t), n in zip(found, names, strict=True) if task in (n, member, posixpath.basename(member))
        ]
        if len(full) == 1:
            return full[0], []
        short = [t for (_, t), n in zip(found, names, strict=True) if n.rsplit(".", 1)[-1] == task]
        if len(short) == 1:
            return short[0], []
        if len(short) > 1 or len(full) > 1:
            many = ", ".join(sorted(t.id.name for t in (short or full)))
            raise TemplateError(f"task name {task!r} is ambiguous in {label}; use the full name: {many}")
        raise TemplateError(f"task {task!r} not found in {label}; tasks: {listing}")
    if len(found) == 1:
        return found[0][1], []
    perian = [t for _, t in found if t.type == PERIAN_TASK_TYPE]
    if len(perian) == 1:
        note = f"{label} holds {len(found)} tasks; using the only {PERIAN_TASK_TYPE} {perian[0].id.name!r}"
        return perian[0], [note]
    raise TemplateError(f"{label} holds {len(found)} tasks; choose one with --task: {listing}")


# --------------------------------------------------------------------------- python sources


def _module_name_for(path: Path) -> tuple[str, Path]:
    """Dotted module name and import root: walk up while directories are packages (like pyflyte).

    The name matters: the serialized args say ``task-module <name>``, and the container imports
    exactly that module, so it must be the package path, not a made-up name.
    """
    parts = [path.stem]
    root = path.parent
    while (root / "__init__.py").is_file() and root.parent != root:
        parts.insert(0, root.name)
        root = root.parent
    for part in parts:
        if not part.isidentifier():
            raise TemplateError(f"{path} cannot be imported: {part!r} is not a valid Python module name")
    return ".".join(parts), root


def _check_not_shadowing(module_name: str, path: Path, root: Path) -> None:
    """Refuse a task module whose top-level name is taken by the standard library or by a module
    this process already uses (``json.py``, ``yaml.py``): importing it would replace that module
    here, and in the container ``pyflyte-execute`` would import the other module, not the task."""
    top = module_name.split(".", 1)[0]
    loaded = sys.modules.get(top)
    where = getattr(loaded, "__file__", None) if loaded is not None else None
    ours = where is not None and (
        Path(where).resolve() == path or Path(where).resolve().is_relative_to(root.resolve() / top)
    )
    if top in sys.stdlib_module_names or (loaded is not None and not ours):
        what = "the standard-library module" if top in sys.stdlib_module_names else "the installed module"
        raise TemplateError(
            f"{path}: its module name {top!r} is {what} {top!r}, which Python (and pyflyte-execute in the "
            "container) would import instead",
            hint=f"rename {path.name if module_name == top else top + '/'} to a name of its own",
        )


@contextlib.contextmanager
def _interrupts_tracked() -> Any:
    """Yield a list that gets an entry when a real SIGINT arrives (main thread only)."""
    import signal
    import threading

    seen: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum: int, frame: Any) -> None:
        if previous == signal.SIG_IGN:
            return
        seen.append(signum)
        if callable(previous):
            previous(signum, frame)  # default_int_handler raises KeyboardInterrupt
            return
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)


def _load_python(path: Path, task: str | None, image: str | None, label: str) -> LoadedTemplate:
    if not path.is_file():
        raise TemplateError(f"Python file not found: {path}")
    path = path.resolve()
    try:
        from flytekit.configuration import ImageConfig, SerializationSettings
        from flytekit.core.base_task import PythonTask
        from flytekit.core.workflow import WorkflowBase
        from flytekit.tools.translator import get_serializable
    except Exception as exc:  # a broken flytekit install must still be one line
        reason = f"{type(exc).__name__}: {exc}"
        raise TemplateError(one_line(f"cannot serialize {label}: flytekit failed to import: {reason}")) from None

    module_name, root = _module_name_for(path)
    _check_not_shadowing(module_name, path, root)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    cached = sys.modules.get(module_name)
    if cached is not None and Path(getattr(cached, "__file__", "") or "").resolve() != path:
        del sys.modules[module_name]
    importlib.invalidate_caches()
    interrupted: list[int] = []
    try:
        # User code may print; keep stdout for data (docs/HACKING.md, "Rules").
        with contextlib.redirect_stdout(sys.stderr), _interrupts_tracked() as interrupted:
            module = importlib.import_module(module_name)
    except BaseException as exc:
        # Whatever the module raises at import (SystemExit, a custom BaseException, even a
        # KeyboardInterrupt it raises itself) is an error in the task file; only a real Ctrl-C
        # interrupts perianctl.
        if isinstance(exc, KeyboardInterrupt) and interrupted:
            raise
        raise TemplateError(one_line(f"cannot import {path}: {type(exc).__name__}: {exc}")) from None

    tasks = {n: v for n, v in vars(module).items() if isinstance(v, PythonTask)}
    if task:
        entity = getattr(module, task, None)
        if entity is None:
            known = ", ".join(sorted(tasks)) or "(none)"
            raise TemplateError(f"{path} has no task {task!r}; tasks defined there: {known}")
        if isinstance(entity, WorkflowBase):
            raise TemplateError(f"{path}:{task} is a workflow; perianctl runs single tasks")
        if not isinstance(entity, PythonTask):
            raise TemplateError(f"{path}:{task} is not a flytekit task (is it decorated with @task?)")
    else:
        if len(tasks) == 1:
            entity = next(iter(tasks.values()))
        else:
            perian = [t for t in tasks.values() if getattr(t, "task_type", None) == PERIAN_TASK_TYPE]
            if len(perian) != 1:
                known = ", ".join(sorted(tasks)) or "(none)"
                raise TemplateError(f"{path}: name the task as {path.name}:TASK; tasks defined there: {known}")
            entity = perian[0]

    interrupted = []
    try:
        images = ImageConfig.auto(img_name=image) if image else ImageConfig.auto_default_image()
        settings = SerializationSettings(image_config=images)
        with contextlib.redirect_stdout(sys.stderr), _interrupts_tracked() as interrupted:
            spec = get_serializable(OrderedDict(), settings, entity)
        template = spec.template.to_flyte_idl()
    except BaseException as exc:  # user code runs here too (type transformers, defaults)
        if isinstance(exc, KeyboardInterrupt) and interrupted:
            raise
        reason = f"{type(exc).__name__}: {exc}"
        raise TemplateError(one_line(f"cannot serialize {path}:{task or entity.name}: {reason}")) from None
    warnings = []
    used = template.container.image
    if not image and used.startswith("cr.flyte.org/flyteorg/flytekit:"):
        # flytekit's stock image has no user code: the job would die on "No module named …".
        warnings.append(
            f"no image given: using flytekit's default {used}, which does not contain module "
            f"{module_name!r}; pass --image with an image that does"
        )
    return LoadedTemplate(
        template=template, source=label, kind="python", warnings=warnings, optional_inputs=_defaults_of(entity)
    )


def _defaults_of(entity: Any) -> frozenset[str]:
    """Inputs with a Python default. flytekit's interface reports a ``None`` default as "no
    default", so read the function signature when there is one."""
    try:
        function = getattr(entity, "task_function", None)
        if function is not None:
            import inspect

            params = inspect.signature(function).parameters.values()
            return frozenset(p.name for p in params if p.default is not inspect.Parameter.empty)
        return frozenset(entity.python_interface.default_inputs_as_kwargs)
    except Exception:  # defaults are a convenience, never a reason to fail
        return frozenset()
