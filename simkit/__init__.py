"""simkit: simulate Standard-Model background, validate it against data, find anomalies.

The three packages of the distribution:

- ``simkit`` — events, the HDF5 event-file format, generators, surrogates, the CLI;
- ``validation`` — OmniFold reweighting, two-sample metrics, plots;
- ``detectors`` — AE/VAE anomaly detectors, label strategies, evaluation.
"""

from __future__ import annotations

__version__ = "0.1.0"

from simkit.errors import SimkitError
from simkit.events import EventTable, Sample

__all__ = ["EventTable", "Sample", "SimkitError", "__version__"]
