"""The connector package's boundaries, read from the source (every import, also inside functions).

* the connector never reads the CLI's configuration: ``perianctl serve`` passes its settings in
  (:mod:`perianctl.connector.settings`), the entry points build them from the environment;
* no import loop inside the package (``service`` ↔ ``register`` used to be one, resolved by
  statement order);
* the Flyte library (``perianctl.flyte``, task authoring included) imports nothing of the connector.
"""

from __future__ import annotations

import ast
from pathlib import Path

import perianctl

ROOT = Path(perianctl.__file__).parent


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (``from a import b`` counts ``a`` and ``a.b``)."""
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _package(name: str) -> dict[str, set[str]]:
    return {_module(p): _imports(p) for p in sorted((ROOT / name).glob("*.py"))}


def test_the_connector_never_imports_the_cli_config() -> None:
    offenders = {
        m
        for m, imports in _package("connector").items()
        if "perianctl.config" in imports or any(i.startswith("perianctl.commands") for i in imports)
    }
    assert offenders == set()


def test_no_import_loop_inside_the_connector_package() -> None:
    package = _package("connector")
    graph = {m: {i for i in imports if i in package} - {m} for m, imports in package.items()}
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        assert node not in path, f"import loop: {' -> '.join([*path[path.index(node) :], node])}"
        if node in done:
            return
        for nxt in sorted(graph[node]):
            visit(nxt, [*path, node])
        done.add(node)

    for start in sorted(graph):
        visit(start, [])
    assert "perianctl.connector.service" not in graph["perianctl.connector.register"]
    assert "perianctl.connector.register" not in graph["perianctl.connector.service"]


def test_the_flyte_library_imports_nothing_of_the_connector() -> None:
    offenders = {
        m: sorted(i for i in imports if i.startswith("perianctl.connector")) for m, imports in _package("flyte").items()
    }
    assert {m: i for m, i in offenders.items() if i} == {}


def test_the_package_docstring_names_every_module_once() -> None:
    import perianctl.connector as package

    doc = package.__doc__ or ""
    modules = sorted(p.stem for p in (ROOT / "connector").glob("*.py") if p.stem != "__init__")
    assert {m: doc.count(f":mod:`.{m}` --") for m in modules} == dict.fromkeys(modules, 1)
