"""Use cases without Typer: submit (plan, create, journal), follow jobs and logs, read outcomes.

Commands call one function here and render what it returns; nothing here prints or parses flags.
"""
