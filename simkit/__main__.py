"""``python -m simkit`` is the ``simkit`` command."""

import sys

from simkit.cli import main

sys.exit(main())
