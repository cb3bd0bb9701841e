"""Example ``perian_task`` tasks used by the demo, the docs and the tests.

This is a regular package (not a namespace one) on purpose: the templates name their tasks
``examples.<module>``, and with ``PYTHONPATH=<repo root>`` a regular package found there wins
over any stray top-level ``examples`` package some other distribution installed.
See ``examples/README.md`` for how to run them.
"""
