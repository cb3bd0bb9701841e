"""Real Flyte artifacts for the ``perianctl.flyte`` tests, made by flytekit itself.

The official perian plugin cannot be imported (it breaks ``import flytekit``), so the task module
below defines look-alikes: a ``PythonFunctionTask`` subclass with ``task_type="perian_task"`` whose
``get_custom`` returns the official ``PerianConfig`` keys the way the plugin does (through a
``Struct``, so numbers become floats), and a container-less ``PythonTask`` like
``PerianContainerTask`` with ``image`` and ``command`` in custom. Templates are serialized in-process
with ``get_serializable`` and, for the archive/TaskSpec formats, by running the real
``pyflyte package`` in a subprocess.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import textwrap
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flyteidl.admin import task_pb2
from flyteidl.core import tasks_pb2

PACKAGE_IMAGE = "ghcr.io/acme/flyte:abc"

TASKS_SOURCE = '''
import datetime
import enum
import typing
from dataclasses import dataclass as _dc

from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct

from flytekit import PythonFunctionTask, task
from flytekit.core.base_task import PythonTask
from flytekit.core.interface import Interface
from flytekit.types.directory import FlyteDirectory
from flytekit.types.file import FlyteFile


@_dc
class PerianLikeConfig:
    cores: typing.Optional[int] = None
    memory: typing.Optional[int] = None
    accelerators: typing.Optional[int] = None
    accelerator_type: typing.Optional[str] = None
    os_storage_size: typing.Optional[int] = None
    country_code: typing.Optional[str] = None
    provider: typing.Optional[str] = None


def _custom(config, extra=None):
    data = {k: v for k, v in vars(config).items() if v is not None}
    if data.get("country_code"):
        data["country_code"] = data["country_code"].upper()
    data.update(extra or {})
    s = Struct()
    s.update(data)
    return json_format.MessageToDict(s)


class PerianLikeTask(PythonFunctionTask):
    """Same task type and custom keys as flytekitplugins.perian_job.PerianTask."""

    def __init__(self, task_config, task_function, **kwargs):
        super().__init__(task_config=task_config, task_function=task_function, task_type="perian_task", **kwargs)

    def get_custom(self, settings):
        extra = {"environment": self.environment} if self.environment else None
        return _custom(self.task_config, extra)


class PerianLikeContainerTask(PythonTask):
    """Same shape as flytekitplugins.perian_job.PerianContainerTask: no container, image+command in custom."""

    def __init__(self, name, task_config, image, command, inputs=None, **kwargs):
        super().__init__(name=name, task_type="perian_task", task_config=task_config,
                         interface=Interface(inputs=inputs or {}), **kwargs)
        self._image = image
        self._command = command

    def get_custom(self, settings):
        return _custom(self.task_config, {"image": self._image, "command": self._command})


def gpu_hello(name: str) -> str:
    return f"hello {name}"


gpu_hello = PerianLikeTask(
    PerianLikeConfig(cores=2, memory=8, accelerators=1, accelerator_type="A100", country_code="de"),
    gpu_hello,
    environment={"FOO": "bar"},
)


@task
def add(a: int, b: int = 3) -> int:
    return a + b


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@_dc
class Point:
    x: int
    y: float


@task
def everything(
    i: int, f: float, s: str, flag: bool, when: datetime.datetime, wait: datetime.timedelta, color: Color,
    xs: typing.List[int], m: typing.Dict[str, float], doc: FlyteFile, folder: FlyteDirectory,
    point: Point, blob: dict, nested: typing.List[typing.List[str]], maybe: typing.Optional[int] = None,
    either: typing.Union[int, str] = 0,
) -> str:
    return s


echo = PerianLikeContainerTask(
    name="echo",
    task_config=PerianLikeConfig(cores=1, memory=2),
    image="ubuntu:22.04",
    command=["echo", "hello", "{{.inputs.name}}", "{{ .Inputs.count }}"],
    inputs={"name": str, "count": int},
)
'''


@dataclass
class FlyteArtifacts:
    root: Path
    package: str
    source_file: Path
    module: Any
    templates: dict[str, tasks_pb2.TaskTemplate]
    tgz: Path
    taskspec_pb: dict[str, Path]


_CACHE: dict[str, FlyteArtifacts] = {}


def serialize(module: Any, name: str, image: str = PACKAGE_IMAGE) -> tasks_pb2.TaskTemplate:
    from flytekit.configuration import ImageConfig, SerializationSettings
    from flytekit.tools.translator import get_serializable

    settings = SerializationSettings(image_config=ImageConfig.auto(img_name=image))
    spec = get_serializable(OrderedDict(), settings, getattr(module, name))
    return spec.template.to_flyte_idl()


def import_tasks(root: Path, prefix: str = "pt") -> tuple[str, Any]:
    """Write ``TASKS_SOURCE`` as ``<root>/<fresh package>/tasks.py``, import it; (package, module)."""
    import importlib

    package = f"{prefix}_{uuid.uuid4().hex[:8]}"
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    (root / package / "tasks.py").write_text(textwrap.dedent(TASKS_SOURCE))
    sys.path.insert(0, str(root))
    return package, importlib.import_module(f"{package}.tasks")


def build_artifacts(base: Path) -> FlyteArtifacts:
    """Write the task package, serialize its tasks, run ``pyflyte package`` (cached per session)."""
    if "default" in _CACHE:
        return _CACHE["default"]
    root = base / "src"
    package, module = import_tasks(root)
    source_file = root / package / "tasks.py"
    templates = {name: serialize(module, name) for name in ("gpu_hello", "add", "everything", "echo")}

    tgz = base / "flyte-package.tgz"
    pyflyte = Path(sys.executable).parent / "pyflyte"
    subprocess.run(
        [str(pyflyte), "--pkgs", package, "package", "--image", PACKAGE_IMAGE, "-f", "-o", str(tgz)],
        cwd=root,
        check=True,
        capture_output=True,
        timeout=120,
    )
    out = base / "unpacked"
    out.mkdir()
    with tarfile.open(tgz) as tar:
        tar.extractall(out, filter="data")
    taskspec_pb = {}
    for path in out.glob("*_1.pb"):
        spec = task_pb2.TaskSpec()
        spec.ParseFromString(path.read_bytes())
        taskspec_pb[spec.template.id.name.rsplit(".", 1)[-1]] = path
    artifacts = FlyteArtifacts(root, package, source_file, module, templates, tgz, taskspec_pb)
    _CACHE["default"] = artifacts
    return artifacts
