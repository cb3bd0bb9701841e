"""Serialize the example tasks into ``examples/templates/<name>.pb`` and ``<name>.json``.

Run it after changing an example (``tests/integration/test_examples.py`` fails when the committed templates
are stale)::

    .venv/bin/python examples/serialize.py            # rewrite examples/templates/
    .venv/bin/python examples/serialize.py --check    # exit 1 if anything would change

The templates are made by flytekit itself (``get_serializable``, as ``pyflyte package`` does), so
their container args are flytekit's real ``pyflyte-execute ... -- task-module examples.hello
task-name hello``. Everything that could vary between machines or runs is pinned: project,
domain, version, image, no environment, deterministic protobuf encoding, sorted JSON keys.
``metadata.runtime.version`` is the flytekit version, so upgrading flytekit means re-running this.

``.pb`` is a binary ``flyteidl.core.TaskTemplate``; ``.json`` is the same message in protobuf JSON
(lowerCamelCase keys), for reading and for ``perianctl submit examples/templates/hello.json``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections import OrderedDict
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

PROJECT = "perianctl"
DOMAIN = "development"
VERSION = "examples-v1"

#: template file stem -> (module, task attribute)
EXAMPLES: dict[str, tuple[str, str]] = {
    "hello": ("examples.hello", "hello"),
    "add": ("examples.hello", "add"),
    "fail": ("examples.fail", "fail"),
    "long": ("examples.long", "long"),
}


def _ensure_importable() -> None:
    # `python examples/serialize.py` puts examples/ on sys.path, not the repo root; the tasks must
    # be imported as `examples.<module>` so that is the task-module the templates record.
    root = str(REPO_ROOT)
    if root not in sys.path:
        sys.path.insert(0, root)


def render_templates() -> dict[str, bytes]:
    """File name -> content for every example (``<name>.pb`` and ``<name>.json``)."""
    _ensure_importable()
    from flytekit.configuration import Image, ImageConfig, SerializationSettings
    from flytekit.tools.translator import get_serializable
    from google.protobuf import json_format

    from examples.hello import IMAGE

    name, _, tag = IMAGE.rpartition(":")
    image = Image(name="default", fqn=name, tag=tag)
    settings = SerializationSettings(
        project=PROJECT,
        domain=DOMAIN,
        version=VERSION,
        image_config=ImageConfig(default_image=image, images=[image]),
        env=None,
    )
    files: dict[str, bytes] = {}
    for stem, (module_name, attr) in EXAMPLES.items():
        entity = getattr(importlib.import_module(module_name), attr)
        template = get_serializable(OrderedDict(), settings, entity).template.to_flyte_idl()
        files[f"{stem}.pb"] = template.SerializeToString(deterministic=True)
        text = json_format.MessageToJson(template, indent=2, sort_keys=True)
        files[f"{stem}.json"] = (text + "\n").encode("utf-8")
    return files


def stale_files(directory: Path, files: dict[str, bytes]) -> list[str]:
    """Names whose committed content differs from ``files`` (missing counts as different)."""
    stale = []
    for file_name, content in sorted(files.items()):
        path = directory / file_name
        if not path.is_file() or path.read_bytes() != content:
            stale.append(file_name)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=TEMPLATES_DIR, help="output directory")
    parser.add_argument("--check", action="store_true", help="only report stale files; exit 1 if any")
    args = parser.parse_args(argv)
    files = render_templates()
    stale = stale_files(args.out, files)
    if args.check:
        for file_name in stale:
            print(f"stale: {args.out / file_name}", file=sys.stderr)
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for file_name in stale:
        (args.out / file_name).write_bytes(files[file_name])
        print(f"wrote {args.out / file_name}")
    if not stale:
        print(f"{args.out}: up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
