"""Messages on a piped stderr are written without rich exactly as rich would write them."""

from __future__ import annotations

import io
import sys

import pytest
from rich.console import Console

from perianctl.ui import console

AS_IS = [
    "page 1/1 · 1 job(s) in total",
    "warning: job 6f1c0d3e: could not read price (Input should be a valid string); showing the rest",
    "cancelled 3 job(s): a, b, c",
    "[bold]not markup[/bold] and [link=x]neither[/link]",
    "100% done — 速い — naïve café",
    "   leading and trailing spaces   ",
    "x" * 500,
    "",
]
THROUGH_RICH = [
    "an emoji code :warning: here",
    "time 12:30:45 (rich looks for an emoji code in :30:)",
    "tab\tseparated",
    "two\nlines",
    "bell \x07",
    "escape \x1b[31m",
]


def _rich(text: str, style: str | None) -> str:
    """What perianctl's stderr console (ui.console._make) prints for ``text`` on a pipe."""
    out = io.StringIO()
    Console(file=out, no_color=False, highlight=False, soft_wrap=True, width=100_000, color_system="auto").print(
        text, style=style, markup=False
    )
    return out.getvalue()


@pytest.fixture(autouse=True)
def no_forced_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("style", [None, "green", "yellow"])
@pytest.mark.parametrize("text", AS_IS)
def test_plain_messages_are_written_as_rich_writes_them(
    capsys: pytest.CaptureFixture[str], text: str, style: str | None
) -> None:
    assert console._as_is(sys.stderr, text)  # pytest's capture: not a terminal, like a pipe
    console._message(text, style=style)
    assert capsys.readouterr().err == _rich(text, style) == text + "\n"


@pytest.mark.parametrize("text", THROUGH_RICH)
def test_what_rich_would_change_goes_through_rich(text: str) -> None:
    assert not console._as_is(io.StringIO(), text)


def test_forced_colour_goes_through_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert not console._as_is(io.StringIO(), "plain")
    assert _rich("plain", "green") != "plain\n"  # rich does colour it then
