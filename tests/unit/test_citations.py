"""Comments and docstrings cite only documents a reader of this repository can open.

A citation like ``flyte-connector.md §2.6`` of a document kept somewhere else leaves the next
person with a claim they cannot check. Every ``*.md`` named in the code, the tests, the benches or
the scripts must be a path, from the repository root, of a file in the repository (``README.md``,
``docs/connector.md``, ``docs/HACKING.md``); facts from elsewhere cite their upstream source file.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("perianctl", "bench", "tests", "scripts")
# A file name ending in .md, optionally with directories: "docs/connector.md", "README.md".
CITATION = re.compile(r"(?<![\w./-])([\w.-]+(?:/[\w.-]+)*\.md)\b")


def _citations() -> dict[str, list[str]]:
    """Cited ``*.md`` path -> where it is cited (``file:line``)."""
    found: dict[str, list[str]] = {}
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            if path == Path(__file__).resolve():
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                for match in CITATION.finditer(line):
                    found.setdefault(match.group(1), []).append(f"{path.relative_to(ROOT)}:{number}")
    return found


def test_the_scan_sees_the_documents_the_code_cites() -> None:
    cited = _citations()
    assert "docs/connector.md" in cited and "README.md" in cited  # the pattern matches real citations


def test_every_cited_markdown_file_exists_in_the_repository() -> None:
    missing = {name: where for name, where in _citations().items() if not (ROOT / name).is_file()}
    assert not missing, f"cited documents not in the repository (cite a repo path or the upstream source): {missing}"


def test_the_pattern_finds_a_citation_of_a_missing_document() -> None:
    line = "the deadline (flyte-connector.md §2.4) and docs/connector.md"
    assert [m.group(1) for m in CITATION.finditer(line)] == ["flyte-connector.md", "docs/connector.md"]
