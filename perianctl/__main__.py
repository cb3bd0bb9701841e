"""``python -m perianctl`` (and the ``perianctl`` console script): start-up that a Ctrl-C cannot turn
into a traceback.

Importing the CLI takes some tens of milliseconds; a SIGINT in that window would raise
KeyboardInterrupt inside an import, before :func:`perianctl.cli.main` could catch it. Until main
takes over, a SIGINT ends the process with "interrupted" and exit code 130 instead.
"""

import os
import signal


def _interrupted_during_start_up(signum: int, frame: object) -> None:
    os.write(2, b"interrupted\n")
    os._exit(130)


def main() -> None:
    signal.signal(signal.SIGINT, _interrupted_during_start_up)
    from perianctl.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
