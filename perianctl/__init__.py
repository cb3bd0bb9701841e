"""perianctl: run Flyte tasks on the PERIAN GPU job platform from a terminal, CI or a connector."""

__version__ = "0.1.0"
