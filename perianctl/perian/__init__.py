"""PERIAN Job API: wire models, status vocabulary and the async client."""

from __future__ import annotations

import sys
import types
from typing import Any


def _skip_httpx_cli() -> None:
    """Keep ``import httpx`` lean.

    httpx's package init also imports its command-line tool (``httpx._main``: click, rich,
    pygments -- ~80 modules, ~70 ms on every perianctl start). perianctl never runs that tool, so
    when httpx is not loaded yet a stand-in takes its place (this package is always imported before
    the client imports httpx); ``httpx.main`` then raises instead of running.
    """
    if "httpx" in sys.modules or "httpx._main" in sys.modules:
        return
    stub = types.ModuleType("httpx._main")

    def main(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("the httpx command-line tool is not available inside perianctl")

    stub.main = main  # type: ignore[attr-defined]
    sys.modules["httpx._main"] = stub


_skip_httpx_cli()
