"""A Ctrl-C that Python swallows (raised in a weakref callback, ``__del__`` or the GC) is given back.

Python reports such a ``KeyboardInterrupt`` as "Exception ignored in ..." and carries on; a command
then ran on after the user pressed Ctrl-C (seen: ``wait`` kept polling after a SIGINT that landed in
the import system's module-lock callback during start-up). ``cli.main`` installs
:func:`perianctl.cli.reraise_swallowed_interrupts` so the interrupt is raised again where it can
propagate.
"""

from __future__ import annotations

import signal
import sys
import time
import weakref

import pytest

from perianctl.cli import reraise_swallowed_interrupts


class _Thing:
    pass


def _raise_in_callback() -> None:
    thing = _Thing()

    def callback(_: object) -> None:
        raise KeyboardInterrupt  # the moment a real SIGINT would have landed here

    ref = weakref.ref(thing, callback)
    del thing  # the callback runs now; its exception cannot propagate from there
    assert ref() is None


def test_a_swallowed_interrupt_is_raised_again_in_the_main_thread() -> None:
    previous = sys.unraisablehook
    sys.unraisablehook = reraise_swallowed_interrupts(previous)
    # What cli.main installs (flytekit, once imported by another test, installs a handler that exits).
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            _raise_in_callback()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # the interrupt lands at the next bytecode boundary
                time.sleep(0.01)
    finally:
        sys.unraisablehook = previous
        signal.signal(signal.SIGINT, handler)


def test_other_unraisable_exceptions_go_to_the_previous_hook() -> None:
    seen: list[type[BaseException]] = []
    previous = sys.unraisablehook
    sys.unraisablehook = reraise_swallowed_interrupts(lambda u: seen.append(u.exc_type))
    try:
        thing = _Thing()

        def callback(_: object) -> None:
            raise ValueError("not an interrupt")

        ref = weakref.ref(thing, callback)
        del thing
        assert ref() is None
    finally:
        sys.unraisablehook = previous
    assert seen == [ValueError]


def test_without_the_hook_python_swallows_it() -> None:
    """The premise: with Python's own hook, the interrupt is reported and lost."""
    seen: list[type[BaseException]] = []
    previous = sys.unraisablehook
    sys.unraisablehook = lambda u: seen.append(u.exc_type)
    try:
        _raise_in_callback()  # returns normally: nothing raised here
    finally:
        sys.unraisablehook = previous
    assert seen == [KeyboardInterrupt]
