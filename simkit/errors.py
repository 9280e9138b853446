"""User-facing errors.

Anything that is the user's fault (a bad file, a bad flag, a bad config) raises
:class:`SimkitError` with one line that names what is wrong. The command line
prints that line and exits non-zero; ``--debug`` shows the traceback.

One error type per failure, each derived from the matching builtin as well, so that
``except ValueError`` (bad input), ``except RuntimeError`` (training could not go on)
or ``except AttributeError`` (used before fitting, as scikit-learn's
``NotFittedError``) work as Python users expect:

>>> issubclass(FileFormatError, ValueError), issubclass(TrainingError, RuntimeError)
(True, True)
"""

from __future__ import annotations


class SimkitError(ValueError):
    """An error caused by input: printed as one line, exit status 2."""

    exit_code = 2


class FileFormatError(SimkitError):
    """A file that is not a valid simkit file (or not the kind asked for)."""


class TrainingError(SimkitError, RuntimeError):
    """Training could not go on (e.g. too many non-finite losses)."""

    exit_code = 3


class NotFittedError(SimkitError, AttributeError):
    """An estimator used before ``fit`` (or ``load``)."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (200 characters at most), or its type:
    what a one-line error quotes of a library's exception."""
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
