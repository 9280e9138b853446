"""User-facing errors.

Anything that is the user's fault (a bad file, a bad flag, a bad config) raises
:class:`SimkitError` with one line that names what is wrong. The command line
prints that line and exits non-zero; ``--debug`` shows the traceback.
"""

from __future__ import annotations


class SimkitError(Exception):
    """An error caused by input: printed as one line, exit status 2."""

    exit_code = 2


class FileFormatError(SimkitError):
    """A file that is not a valid simkit file (or not the kind asked for)."""


class TrainingError(SimkitError):
    """Training could not go on (e.g. too many non-finite losses)."""

    exit_code = 3
