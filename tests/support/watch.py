"""Helpers shared by the watch/wait tests (no tests here): a tiny terminal emulator, job creation.

The emulator understands what rich's ``Live`` writes (CR/LF, cursor up/down, erase line, SGR,
cursor show/hide, alternate screen) and keeps every line that scrolled off the top, so a test can
check the *transcript* a user would see in their scrollback -- e.g. that the table is there once,
not once per refresh.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

_CSI = re.compile(r"\x1b\[([0-9;?]*)([ -/]*)([@-~])")
_OSC = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


class Screen:
    """A minimal VT100 screen: ``feed(text)``, then ``lines()`` / ``transcript()``."""

    def __init__(self, rows: int = 40, cols: int = 200) -> None:
        self.rows, self.cols = rows, cols
        self.grid: list[list[str]] = [[" "] * cols for _ in range(rows)]
        self.row = 0
        self.col = 0
        self.scrollback: list[str] = []

    def _line_feed(self) -> None:
        if self.row == self.rows - 1:
            self.scrollback.append("".join(self.grid.pop(0)).rstrip())
            self.grid.append([" "] * self.cols)
        else:
            self.row += 1

    def _put(self, ch: str) -> None:
        if self.col >= self.cols:
            self.col = 0
            self._line_feed()
        self.grid[self.row][self.col] = ch
        self.col += 1

    def _csi(self, params: str, final: str) -> None:
        private = params.startswith("?")
        nums = [int(p) if p.isdigit() else 0 for p in params.lstrip("?").split(";")] if params.lstrip("?") else []
        n = nums[0] if nums else 0
        if private:
            return  # cursor visibility, alternate screen: no effect on the text
        if final == "A":
            self.row = max(0, self.row - (n or 1))
        elif final == "B":
            self.row = min(self.rows - 1, self.row + (n or 1))
        elif final == "C":
            self.col = min(self.cols - 1, self.col + (n or 1))
        elif final == "D":
            self.col = max(0, self.col - (n or 1))
        elif final == "G":
            self.col = max(0, (n or 1) - 1)
        elif final in "Hf":
            self.row = max(0, min(self.rows - 1, (nums[0] if nums else 1) - 1))
            self.col = max(0, min(self.cols - 1, (nums[1] if len(nums) > 1 else 1) - 1))
        elif final == "K":
            line = self.grid[self.row]
            if n == 0:
                line[self.col :] = [" "] * (self.cols - self.col)
            elif n == 1:
                line[: self.col + 1] = [" "] * (self.col + 1)
            else:
                self.grid[self.row] = [" "] * self.cols
        elif final == "J":
            if n == 2:
                self.grid = [[" "] * self.cols for _ in range(self.rows)]
            elif n == 0:
                self.grid[self.row][self.col :] = [" "] * (self.cols - self.col)
                for r in range(self.row + 1, self.rows):
                    self.grid[r] = [" "] * self.cols
        # "m" (colours) and anything else: ignored

    def feed(self, text: str) -> None:
        text = _OSC.sub("", text)
        i = 0
        while i < len(text):
            ch = text[i]
            if ch == "\x1b":
                match = _CSI.match(text, i)
                if match:
                    self._csi(match.group(1), match.group(3))
                    i = match.end()
                    continue
                i += 2  # ESC + one char (ESC 7, ESC 8, ...): ignore
                continue
            if ch == "\r":
                self.col = 0
            elif ch == "\n":  # a tty translates LF to CR LF (onlcr); rich relies on that
                self.col = 0
                self._line_feed()
            elif ch == "\b":
                self.col = max(0, self.col - 1)
            elif ch in "\x07\x00":
                pass
            elif ch >= " ":
                self._put(ch)
            i += 1

    def lines(self) -> list[str]:
        return ["".join(row).rstrip() for row in self.grid]

    def transcript(self) -> list[str]:
        """Scrollback plus screen, trailing blank lines dropped: what the user can scroll through."""
        out = self.scrollback + self.lines()
        while out and not out[-1]:
            out.pop()
        return out


def cancel(sandbox: Any, job_id: str) -> None:
    """Cancel through the PERIAN API, as another user or a UI would."""
    with sandbox.http() as client:
        response = client.patch(f"/job/{job_id}/cancel")
    assert response.status_code == 200, response.text


def requests_by_endpoint(sandbox: Any) -> dict[str, int]:
    """The sandbox's own count of PERIAN requests per endpoint (list, get, create, ...)."""
    return {k: int(v) for k, v in sandbox.stats().get("requests", {}).items()}


def cli_env_for(cli_env: Any, sandbox: Any, **extra: str) -> dict[str, str]:
    """Environment for a perianctl subprocess: isolated home, pointed at ``sandbox``."""
    env = cli_env.env()
    env.update(sandbox.env())
    env.update(extra)
    return env


def create_many(sandbox: Any, count: int, scenario: str = "success", duration: float | None = None) -> list[str]:
    """``count`` jobs over one HTTP connection (``sandbox.create_job`` opens one per job)."""
    env = {"PERIAN_SANDBOX_SCENARIO": scenario}
    if duration is not None:
        env["PERIAN_SANDBOX_DURATION"] = str(duration)
    body = {
        "requirements": {"cpu": {"cores": 1}},
        "docker_run_parameters": {"image_name": "ubuntu", "image_tag": "22.04", "env_variables": env},
    }
    ids = []
    with sandbox.http() as client:
        for _ in range(count):
            response = client.post("/job", json=body)
            assert response.status_code == 200, response.text
            ids.append(response.json()["id"])
    return ids


def unknown_job_id() -> str:
    return str(uuid.uuid4())
