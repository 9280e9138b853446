"""SIGTERM unwinds like Ctrl-C.

A batch system stops a job on time-out or pre-emption with SIGTERM (Slurm, HTCondor,
Kubernetes; SIGKILL follows a grace period later). Python's default for SIGTERM is to
die on the spot: no ``finally`` runs, so a half-written event file stays behind under
its hidden temporary name and the user reads nothing. Ctrl-C (SIGINT) instead raises
:class:`KeyboardInterrupt`, which every writer already cleans up after.

:func:`sigterm_raises` makes SIGTERM raise :class:`Terminated`, a subclass of
:class:`KeyboardInterrupt`, so the same clean-up runs; the command line then prints one
line and exits with 143 (128 + 15, what a shell reports for a process SIGTERM ended).

>>> import os, signal
>>> with sigterm_raises():
...     try:
...         os.kill(os.getpid(), signal.SIGTERM)
...     except Terminated as exc:
...         print("caught", exc.exit_code)
caught 143
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

__all__ = ["Terminated", "check", "sigterm_raises"]


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM: unwinds like Ctrl-C, exit status 143."""

    exit_code = 128 + signal.SIGTERM


#: Set by a SIGTERM until the block that asked for it ends. A signal's exception can be
#: lost: raised while Python runs a finalizer or a weakref callback, it is printed as
#: "Exception ignored" and the program goes on. Long loops call :func:`check` between
#: steps, so a lost SIGTERM still stops them at the next step.
_requested = threading.Event()


def _raise_terminated(signum: int, frame) -> None:
    _requested.set()
    raise Terminated()


def check() -> None:
    """Raise :class:`Terminated` if a SIGTERM arrived inside :func:`sigterm_raises` (its
    exception may have been swallowed where it landed); otherwise do nothing.

    >>> check()  # no SIGTERM: nothing happens
    """
    if _requested.is_set():
        raise Terminated()


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread.

    The previous handler comes back on exit. Outside the main thread (where Python
    cannot install handlers) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    previous_hook = sys.unraisablehook

    def quiet_when_terminated(unraisable) -> None:
        # a Terminated lost in a callback: check() raises it again at the next step,
        # so Python's "Exception ignored ..." traceback would only add noise
        if not isinstance(unraisable.exc_value, Terminated):
            previous_hook(unraisable)

    _requested.clear()
    sys.unraisablehook = quiet_when_terminated
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        _requested.clear()
        # None: the previous handler was not set from Python (restore the default)
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
