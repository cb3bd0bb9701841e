"""PERIAN Job API: wire models, status vocabulary and the async client.

Importing this package changes nothing outside it: the connector's entry point imports it inside
users' flytekit processes. (Skipping httpx's command-line tool to keep ``perianctl get`` fast is
done by the CLI for its own process only: :func:`perianctl.cli._skip_httpx_cli`.)
"""
