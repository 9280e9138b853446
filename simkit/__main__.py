"""``python -m simkit`` is the ``simkit`` command."""

import sys

from simkit.cli import console

sys.exit(console())
