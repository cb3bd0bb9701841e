"""Job runtimes: ``simulate`` (a scheduler, no processes), ``process`` (local subprocesses) and
``docker`` (``docker run``). See :mod:`perianctl.sandbox.runtimes.base` for the contract."""
