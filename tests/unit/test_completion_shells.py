"""How completion candidates are computed from the spec, without a shell.

The real bash, zsh and fish in a pty: tests/integration/test_completion_shells.py.
"""

from __future__ import annotations

from perianctl.completion import candidates


def test_candidates_walk_options_with_values_and_double_dash() -> None:
    # The words after an option that takes a value are its value, not a command or argument.
    assert ("table", "") in [(v, "") for v, _ in candidates(["get", "-o"], "ta")]
    assert [v for v, _ in candidates(["--config", "x.toml", "list", "--status"], "Can")] == ["Cancelled"]
    assert candidates(["config", "path", "--"], "-") == []
    assert [v for v, _ in candidates([], "--out")] == []  # no root option starts like that
    assert {v for v, _ in candidates(["list"], "--output=j")} == {"--output=json"}
