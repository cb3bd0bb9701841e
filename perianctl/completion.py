"""Shell completion for bash, zsh and fish, answered without importing Typer.

A TAB runs ``perianctl`` with ``_PERIANCTL_COMPLETE=complete_<shell>``; ``perianctl.__main__``
hands that run to :func:`main` before anything else is imported, so a TAB costs the interpreter's
start-up plus a lookup in :mod:`perianctl._completion_spec` -- a static description of every
command, option and argument, generated from the Typer app by ``scripts/gen_completions.py`` (a
test fails when it is stale). Values that change at run time are read cheaply when asked for: job
ids from the journal (SQLite, read-only, newest first, status as the description) and profiles
from the config file.

The scripts (:data:`SCRIPTS`, printed by ``perianctl completion SHELL`` and committed in
``completions/``) pass the words typed so far in the environment and read back one candidate a
line, ``VALUE<TAB>DESCRIPTION``; nothing is ``eval``-ed, so descriptions keep their quotes. When
there is nothing to offer (a path, an image name) the shell falls back to file names.

Everything here is standard library only; keep it that way.
"""

from __future__ import annotations

import os
import shlex
import sys
from typing import Any

COMPLETE_VAR = "_PERIANCTL_COMPLETE"
MAX_JOBS = 30
"""Job ids offered for one TAB: the newest from the journal (a TAB is for recent work)."""

SCRIPTS: dict[str, str] = {
    "bash": """\
_perianctl_completion() {
    local IFS=$'\\n'
    COMPREPLY=( $(env COMP_WORDS="${COMP_WORDS[*]}" COMP_CWORD="$COMP_CWORD" \\
                  _PERIANCTL_COMPLETE=complete_bash "$1" 2>/dev/null) )
    return 0
}

complete -o default -F _perianctl_completion perianctl
""",
    "zsh": """\
#compdef perianctl

_perianctl() {
    local -a candidates
    candidates=("${(@f)$(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" \\
                         _PERIANCTL_COMPLETE=complete_zsh "${words[1]}" 2>/dev/null)}")
    candidates=(${candidates:#})
    if (( ${#candidates} )); then
        _describe -t values perianctl candidates
    else
        _files
    fi
}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    _perianctl "$@"
else
    compdef _perianctl perianctl
fi
""",
    "fish": """\
function __perianctl_complete
    set -l candidates (env _TYPER_COMPLETE_ARGS=(commandline -cp) _PERIANCTL_COMPLETE=complete_fish \\
        perianctl 2>/dev/null)
    if test (count $candidates) -gt 0
        printf '%s\\n' $candidates
    else
        __fish_complete_path (commandline -ct)
    end
end

complete --command perianctl --no-files --arguments '(__perianctl_complete)'
""",
}


def script(shell: str) -> str:
    return SCRIPTS[shell]


# ---------------------------------------------------------------------------------------- words


def _split(text: str) -> list[str]:
    """Words as the shell would split them; an unterminated quote (``--name "ab``) is closed."""
    for closing in ("", '"', "'"):
        try:
            return shlex.split(text + closing)
        except ValueError:
            continue
    return text.split()


def _words(shell: str) -> tuple[list[str], str]:
    """(words before the one being completed, without the program name; the incomplete word)."""
    if shell == "bash":
        words = _split(os.environ.get("COMP_WORDS", ""))
        try:
            cword = int(os.environ.get("COMP_CWORD", "0"))
        except ValueError:
            cword = len(words)
        return words[1:cword], words[cword] if cword < len(words) else ""
    line = os.environ.get("_TYPER_COMPLETE_ARGS", "")
    words = _split(line)[1:]
    if words and not line.endswith((" ", "\t")):
        return words[:-1], words[-1]
    return words, ""


# ---------------------------------------------------------------------------------------- lookup

Option = list[Any]  # [names, takes_value, values (kind name, [[value, help], ...] or None), help]
Candidates = list[tuple[str, str]]


def _find_option(node: dict[str, Any], root: dict[str, Any], name: str) -> Option | None:
    option: Option
    for option in (*node["options"], *root["options"]):
        if name in option[0]:
            return option
    return None


def candidates(args: list[str], incomplete: str, spec: dict[str, Any] | None = None) -> Candidates:
    """What to offer for ``incomplete`` after ``args`` (the words typed before it)."""
    if spec is None:
        from perianctl._completion_spec import SPEC

        spec = SPEC
    root = node = spec
    expecting: Option | None = None
    positional = 0
    seen: dict[str, str] = {}
    after_dashes = False
    for arg in args:
        if expecting is not None:
            if arg == "=":
                continue
            seen[expecting[0][0]] = arg
            expecting = None
        elif arg == "--" and not after_dashes:
            after_dashes = True
        elif arg.startswith("-") and len(arg) > 1 and not after_dashes:
            name, has_value, value = arg.partition("=")
            option = _find_option(node, root, name)
            if option is not None and option[1]:
                if has_value:
                    seen[option[0][0]] = value
                else:
                    expecting = option
        elif arg in node.get("commands", {}) and positional == 0:
            node = node["commands"][arg]
        else:
            positional += 1
    if incomplete == "=" and expecting is not None:
        incomplete = ""
    if expecting is not None:
        return _values(expecting[2], incomplete, seen)
    if incomplete.startswith("-") and not after_dashes:
        name, has_value, value = incomplete.partition("=")
        if has_value:
            option = _find_option(node, root, name)
            if option is None or not option[1]:
                return []
            return [(f"{name}={v}", h) for v, h in _values(option[2], value, seen)]
        offered: Candidates = []
        for option in (*node["options"], *root["options"]):
            for option_name in option[0]:
                if option_name.startswith(incomplete) and (option_name.startswith("--") or incomplete):
                    offered.append((option_name, option[3]))
        return offered
    commands = node.get("commands", {})
    if commands and positional == 0:
        return [(name, sub.get("help", "")) for name, sub in commands.items() if name.startswith(incomplete)]
    arguments = node.get("args", [])
    if not arguments:
        return []
    index = min(positional, len(arguments) - 1)
    kind, many = arguments[index]
    if positional >= len(arguments) and not many:
        return []
    return _values(kind, incomplete, seen)


def _values(kind: Any, incomplete: str, seen: dict[str, str]) -> Candidates:
    if kind is None:
        return []
    if isinstance(kind, list):
        # A comma-separated list (--status done,running) completes its last item.
        head, comma, tail = incomplete.rpartition(",")
        prefix = head + comma
        return [
            (prefix + value, help_text)
            for value, help_text in kind
            if value.lower().startswith(tail.lower()) and value not in head.split(",")
        ]
    if kind == "job":
        offered = [(job_id, about) for job_id, about in recent_jobs() if job_id.startswith(incomplete)]
        if not offered and incomplete:
            # Not submitted from here (another machine, the web, a connector): ask the API.
            offered = [(job_id, about) for job_id, about in server_jobs(seen) if job_id.startswith(incomplete)]
        return offered
    if kind == "profile":
        return [(name, about) for name, about in profiles(seen.get("--config")) if name.startswith(incomplete)]
    return []


def recent_jobs(limit: int = MAX_JOBS) -> Candidates:
    """The newest jobs in the journal: (id, "status · name · age"); nothing when there is no journal."""
    import sqlite3
    import time
    import urllib.parse

    from perianctl.paths import state_dir

    path = os.path.join(os.path.abspath(state_dir()), "journal.db")
    if not os.path.isfile(path):
        return []
    try:
        conn = sqlite3.connect(f"file:{urllib.parse.quote(path)}?mode=ro", uri=True, timeout=0.05)
        try:
            rows = conn.execute(
                "SELECT job_id, last_status, name, submitted_at FROM jobs ORDER BY submitted_at DESC LIMIT ?", (limit,)
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return []
    now = time.time()
    out: Candidates = []
    for job_id, status, name, submitted_at in rows:
        parts = [status or "submitted"]
        if name:
            parts.append(str(name))
        if submitted_at:
            parts.append(_age(now - float(submitted_at)) + " ago")
        out.append((str(job_id), " · ".join(parts)))
    return out


SERVER_TIMEOUT = 0.5
"""Seconds a TAB waits for the PERIAN API (only asked when the journal has no match)."""


def server_jobs(seen: dict[str, str]) -> Candidates:
    """The newest jobs the PERIAN API lists (first page), with their status; nothing on any error.

    Settings resolve as for every command (--api-url/--org/--token/--profile/--config typed on the
    line, then env, then the profile); one GET, bounded by :data:`SERVER_TIMEOUT`, standard library
    only.
    """
    import json
    import urllib.request

    try:
        from perianctl.config import read_token_file, resolve

        token = seen.get("--token")
        if seen.get("--token-file") and seen["--token-file"] != "-":
            token = read_token_file(seen["--token-file"])
        settings = resolve(
            flags={"api_url": seen.get("--api-url"), "organization": seen.get("--org"), "token": token},
            profile=seen.get("--profile"),
            config_file=seen.get("--config"),
        )
        if not settings.organization or not settings.token:
            return []
        request = urllib.request.Request(
            settings.api_url.rstrip("/") + "/job?limit=50",
            headers={
                "X-PERIAN-AUTH-ORG": settings.organization,
                "Authorization": f"Bearer {settings.token}",
                "Accept": "application/json",
                "User-Agent": "perianctl-completion",
            },
        )
        with urllib.request.urlopen(request, timeout=SERVER_TIMEOUT) as response:
            data = json.load(response)
    except Exception:  # a TAB shows nothing rather than an error
        return []
    jobs = data.get("jobs") if isinstance(data, dict) else None
    return [
        (str(job["id"]), str(job.get("status") or "")) for job in jobs or [] if isinstance(job, dict) and job.get("id")
    ]


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def profiles(config_file: str | None = None) -> Candidates:
    """Profiles in the config file, the current one marked; nothing when it cannot be read."""
    from perianctl.paths import config_file as config_path

    try:
        import tomli

        with open(config_path(config_file), "rb") as handle:
            data = tomli.load(handle)
    except (OSError, ValueError):
        return []
    current = data.get("current_profile")
    found = data.get("profiles")
    if not isinstance(found, dict):
        return []
    out: Candidates = []
    for name, values in found.items():
        url = values.get("api_url", "") if isinstance(values, dict) else ""
        out.append((str(name), ("current · " if name == current else "") + str(url)))
    return out


# ---------------------------------------------------------------------------------------- output


def _format(shell: str, offered: Candidates) -> str:
    lines = []
    for value, help_text in offered:
        help_text = " ".join(help_text.split())
        if shell == "bash":
            lines.append(value)
        elif shell == "zsh":
            escaped = value.replace("\\", "\\\\").replace(":", "\\:")
            lines.append(f"{escaped}:{help_text}" if help_text else escaped)
        else:
            lines.append(f"{value}\t{help_text}" if help_text else value)
    return "\n".join(lines)


def main() -> None:
    """Answer one completion request (``_PERIANCTL_COMPLETE=complete_<shell>``) or print a script
    (``source_<shell>``), then exit."""
    action, _, shell = os.environ.get(COMPLETE_VAR, "").partition("_")
    if shell not in SCRIPTS or action not in ("complete", "source"):
        sys.stderr.write(f"error: {COMPLETE_VAR} must be complete_SHELL or source_SHELL (bash, zsh, fish)\n")
        raise SystemExit(2)
    if action == "source":
        sys.stdout.write(script(shell))
        raise SystemExit(0)
    args, incomplete = _words(shell)
    try:
        offered = candidates(args, incomplete)
    except Exception:  # a TAB must never print a traceback into the command line
        offered = []
    text = _format(shell, offered)
    if text:
        sys.stdout.write(text + "\n")
    raise SystemExit(0)
