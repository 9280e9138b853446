"""Benchmark: import throughput (events/s) of ``simkit import lhco`` (both layouts) and
``simkit import root`` (NanoAOD-shaped tree), and of ``simkit export``.

The inputs are toy files written here (``tests/lhco_toy.py``: two- and three-prong jets of
massless hadrons, ~60–250 hadrons per event; the real R&D events have up to 700, so the
raw path's rate there is lower, FastJet's cost growing with the hadrons). Run with one
torch/BLAS thread on an otherwise idle machine:

    python benchmarks/import_throughput.py              # a few tens of seconds
    python benchmarks/import_throughput.py --raw 5000 --features 200000
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from lhco_toy import feature_frame, hadron_events, raw_frame

from simkit.formats.export import ExportConfig, export
from simkit.formats.lhco import import_lhco
from simkit.formats.root import import_root


def timed(label: str, n: int, fn) -> float:
    t0 = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t0
    print(f"{label:<44} {n:>9,} events {seconds:8.2f} s {n / seconds:>12,.0f} events/s")
    return n / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=int, default=2000, help="events of the raw-hadron file")
    parser.add_argument("--features", type=int, default=100_000, help="events of the feature file")
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    print(f"python {platform.python_version()}, {platform.machine()}")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        events = hadron_events(args.raw, rng)
        print(f"raw toy events: {np.mean([len(e) for e in events]):.0f} hadrons on average")
        raw_frame(events, np.zeros(args.raw)).to_hdf(folder / "raw.h5", key="df")
        timed(
            "import lhco, raw hadrons (FastJet)",
            args.raw,
            lambda: import_lhco(folder / "raw.h5", folder / "a.h5"),
        )
        # the feature file: the toy jets repeated up to the asked size
        small = feature_frame(events[:1000], np.zeros(min(1000, args.raw)))
        reps = -(-args.features // len(small))
        import pandas as pd

        big = pd.concat([small] * reps, ignore_index=True).iloc[: args.features]
        big.to_hdf(folder / "features.h5", key="df")
        timed(
            "import lhco, features (vector)",
            len(big),
            lambda: import_lhco(folder / "features.h5", folder / "b.h5"),
        )
        timed(
            "export root (14 columns + label)",
            len(big),
            lambda: export(folder / "b.h5", folder / "b.root"),
        )
        timed(
            "export parquet",
            len(big),
            lambda: export(folder / "b.h5", folder / "b.parquet", ExportConfig(format="parquet")),
        )
        timed(
            "import root --map simkit (the export back)",
            len(big),
            lambda: import_root(folder / "b.root", folder / "c.h5", "simkit"),
        )
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "simkit"))
        from test_import_root import fat_jets, write_nanoaod

        jets = fat_jets(args.features, rng)
        write_nanoaod(folder / "nano.root", jets)
        timed(
            "import root --map nanoaod (entries read)",
            args.features,
            lambda: import_root(folder / "nano.root", folder / "d.h5", "nanoaod"),
        )


if __name__ == "__main__":
    main()
