"""``python -m perianctl`` (and the ``perianctl`` console script): start-up that a Ctrl-C cannot turn
into a traceback.

Importing the CLI takes some tens of milliseconds; a SIGINT in that window would raise
KeyboardInterrupt inside an import, before :func:`perianctl.cli.main` could catch it. Until main
takes over, a SIGINT ends the process with "interrupted" and exit code 130 instead; once main
has decided the exit code, a late SIGINT is ignored. The C-level ``_signal`` module is used (it is
loaded with the interpreter), because importing ``signal`` itself takes long enough to be hit.
"""

import _signal
import os
import sys


def _interrupted_during_start_up(signum: int, frame: object) -> None:
    os.write(2, b"interrupted\n")
    os._exit(130)


def main() -> None:
    _signal.signal(_signal.SIGINT, _interrupted_during_start_up)
    if os.environ.get("_PERIANCTL_COMPLETE"):
        # A TAB in the user's shell: answered from a static spec, without importing Typer.
        from perianctl.completion import main as complete

        complete()
    try:
        # `perianctl --help`, `perianctl get -h`, ...: the stored help screen, without importing Typer.
        from perianctl.fasthelp import serve

        serve(sys.argv[1:])
        from perianctl.cli import main as cli_main

        cli_main()
    finally:
        # The outcome is decided (cli_main always exits): a Ctrl-C during interpreter shutdown
        # must not print a traceback.
        _signal.signal(_signal.SIGINT, _signal.SIG_IGN)


if __name__ == "__main__":
    _signal.signal(_signal.SIGINT, _interrupted_during_start_up)
    main()
