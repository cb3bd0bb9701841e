"""Pure helpers of the job commands (the commands themselves, as subprocesses: tests/integration/test_commands.py)."""

from __future__ import annotations


def test_new_output_handles_rewritten_logs() -> None:
    from perianctl.jobs.logs import new_output

    assert new_output("a\n", "a\nb\n") == ("b\n", False)
    old = "".join(f"line {i}\n" for i in range(100))
    rotated = "".join(f"line {i}\n" for i in range(50, 120))
    chunk, rewritten = new_output(old, rotated)
    assert not rewritten and chunk == "".join(f"line {i}\n" for i in range(100, 120))
    assert new_output("completely different text here", "new") == ("new", True)
