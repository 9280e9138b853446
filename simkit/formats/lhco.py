"""The LHC Olympics 2020 files (R&D set and black boxes) as simkit event files.

Two layouts, both pandas HDF5 (``DataFrame.to_hdf``), told apart by their columns:

- **features** (``events_anomalydetection_v2.features.h5``): one row per event with
  ``pxj1 pyj1 pzj1 mj1 tau1j1 tau2j1 tau3j1``, the same for ``j2``, and ``label`` in the
  R&D set. The two jets (anti-kT, R = 1) become the reference columns of
  :mod:`simkit.formats.dijet` through ``vector``; the file has no constituent counts, so
  ``n_j1``/``n_j2`` are absent (a command that needs them says so).
- **raw** (``events_anomalydetection_v2.h5``, the black boxes): one row per event of 2100
  columns, up to 700 hadrons as (pT, η, φ), zero-padded, and a 2101st column, the label,
  in the R&D set. The hadrons (massless) are clustered with FastJet through
  :mod:`simkit.generators.jets` — anti-kT R = 1.0, N-subjettiness with WTA kT axes — into
  exactly the columns of the reference simulation, ``n_j1``/``n_j2`` included.

Both are read in chunks of rows (``HDFStore.select(start=, stop=)``), so that the 1.1 M
event raw file never has to fit in memory. The events pass as in the reference
simulation: two jets, the leading one above ``min_pt`` (1.2 TeV, the R&D trigger);
labels go to ``/labels``.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from simkit.errors import FileFormatError, SimkitError, first_line
from simkit.events import EventTable, Sample
from simkit.formats import ImportResult, require, source_record
from simkit.formats import dijet as D

#: Columns of the LHC Olympics high-level feature file (jets ordered by pT there).
FEATURE_COLUMNS = tuple(
    f"{quantity}j{jet}"
    for jet in (1, 2)
    for quantity in ("px", "py", "pz", "m", "tau1", "tau2", "tau3")
)
LABEL = "label"
#: Hadrons per event of the raw file, each (pT, η, φ).
N_HADRONS = 700
RAW_WIDTH = 3 * N_HADRONS

EXPECTED = (
    "a pandas HDF5 table with the feature columns "
    + " ".join(FEATURE_COLUMNS[:7])
    + " (the same for j2, and optionally label), or the raw layout of "
    f"{RAW_WIDTH} columns ({N_HADRONS} hadrons × pT, η, φ; a {RAW_WIDTH + 1}st column "
    "is the label)"
)


@dataclass(frozen=True)
class LHCOConfig:
    """Settings of an LHC Olympics import (each default declared once, here)."""

    #: leading-jet pT threshold of the pass flag (GeV); None: the reference simulation's,
    #: which is the R&D trigger's 1.2 TeV
    min_pt: float | None = None
    #: rows read, clustered and written at a time (a raw row is 2101 float64: 17 kB)
    chunk_size: int = 10_000
    #: import only the first this many events (None: all)
    max_events: int | None = None
    #: show a progress bar
    progress: bool = False

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise SimkitError(f"chunk size must be at least 1, got {self.chunk_size}")
        if self.max_events is not None and self.max_events < 1:
            raise SimkitError(f"max_events must be at least 1, got {self.max_events}")
        if self.min_pt is not None and not (0 <= self.min_pt < np.inf):
            raise SimkitError(f"min_pt must be a finite number ≥ 0, got {self.min_pt}")


@dataclass(frozen=True)
class Layout:
    """What an LHC Olympics file holds: its layout, pandas key, rows and label."""

    kind: str  # "features" or "raw"
    key: str
    n_events: int
    has_labels: bool

    @property
    def columns(self) -> tuple[str, ...]:
        """The simkit columns an import of this layout writes."""
        return D.columns(with_constituents=self.kind == "raw")


# --------------------------------------------------------------------------- opening


def _check_hdf5(path: Path) -> None:
    """One clear line for a file that is missing, truncated or not HDF5 at all."""
    import h5py

    if not path.exists():
        raise FileFormatError(f"{path}: no such file")
    if path.is_dir():
        raise FileFormatError(f"{path}: is a folder, not an LHC Olympics file")
    try:
        with h5py.File(path, "r"):
            pass
    except OSError as exc:
        if "truncated" in str(exc):
            raise FileFormatError(
                f"{path}: truncated HDF5 file (an interrupted download?)"
            ) from None
        raise FileFormatError(f"{path}: not an HDF5 file, so not an LHC Olympics file") from None


@contextlib.contextmanager
def _store(path: Path):
    pd = require("pandas", "reading LHC Olympics files", "lhco")
    require("tables", "reading LHC Olympics files", "lhco")
    _check_hdf5(path)
    try:
        store = pd.HDFStore(path, mode="r")
    except Exception as exc:  # tables raises its own HDF5 errors
        raise FileFormatError(f"{path}: unreadable by pandas ({first_line(exc)})") from None
    try:
        yield store
    finally:
        store.close()


def _describe(store, key: str) -> tuple[tuple[str, ...], int, bool] | None:
    """(column names, rows, all numeric) of a stored DataFrame, or None for other objects."""
    storer = store.get_storer(key)
    try:
        head = store.select(key, start=0, stop=0)
    except Exception:
        return None
    if not hasattr(head, "columns"):
        return None
    rows = storer.nrows if storer.is_table else int(storer.shape[0])
    numeric = all(dtype.kind in "fiub" for dtype in head.dtypes)
    return tuple(str(c) for c in head.columns), int(rows), numeric


def detect_layout(path: str | os.PathLike) -> Layout:
    """Which LHC Olympics layout ``path`` has; anything else is refused in one line."""
    path = Path(path)
    with _store(path) as store:
        return _detect(store, path)


def _detect(store, path: Path) -> Layout:
    found = []
    for key in store.keys():
        described = _describe(store, key)
        if described is None:
            found.append(f"{key} (not a DataFrame)")
            continue
        names, rows, numeric = described
        if set(FEATURE_COLUMNS) <= set(names):
            return Layout("features", key, rows, LABEL in names)
        if numeric and len(names) in (RAW_WIDTH, RAW_WIDTH + 1):
            return Layout("raw", key, rows, len(names) == RAW_WIDTH + 1)
        shown = ", ".join(names[:6]) + (", …" if len(names) > 6 else "")
        found.append(f"{key} with {len(names)} columns ({shown})")
    have = "; ".join(found) if found else "no pandas table"
    raise FileFormatError(
        f"{path}: not an LHC Olympics 2020 file: expected {EXPECTED}; found {have}"
    )


# --------------------------------------------------------------------------- conversion


def _labels(values: np.ndarray, path: Path, start: int) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    bad = ~np.isin(values, (0.0, 1.0))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise FileFormatError(
            f"{path}: label of row {start + row} is {values[row]!r}, expected 0 or 1"
        )
    return values.astype(np.int8)


def _check_finite(values: np.ndarray, names, path: Path, start: int) -> None:
    finite = np.isfinite(values)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise FileFormatError(
            f"{path}: column {names[col]} is {values[row, col]} at row {start + int(row)}"
        )


def features_table(frame, *, min_pt: float | None = None) -> EventTable:
    """The reference columns (without ``n_j``) from a feature-file DataFrame chunk."""
    jets = {
        q: frame[[f"{q}j1", f"{q}j2"]].to_numpy(np.float64)
        for q in ("px", "py", "pz", "m", "tau1", "tau2", "tau3")
    }
    taus = np.stack([jets["tau1"], jets["tau2"], jets["tau3"]], axis=-1)
    # an event with one jet has zeros for the other (no momentum, no mass)
    present = np.all(
        (jets["px"] != 0) | (jets["py"] != 0) | (jets["pz"] != 0) | (jets["m"] != 0), axis=1
    )
    two = D.TwoJets.from_cartesian(
        jets["px"], jets["py"], jets["pz"], jets["m"], taus, present=present
    )
    features, passed = D.dijet_columns(two, min_pt=min_pt)
    return EventTable(
        features=features,
        columns=D.columns(False),
        weights=np.ones(len(frame)),
        passed=passed,
        units=D.units(False),
    )


def hadrons(values: np.ndarray):
    """Raw-layout rows (N, ≥ 2100) as massless :class:`~simkit.generators.detector.Particles`
    (padding, pT = 0, dropped)."""
    import vector

    from simkit.generators.detector import Particles

    block = np.asarray(values[:, :RAW_WIDTH], dtype=np.float64)
    pt, eta, phi = block[:, 0::3], block[:, 1::3], block[:, 2::3]
    real = pt > 0
    p4 = vector.array(
        {"pt": pt[real], "eta": eta[real], "phi": phi[real], "mass": np.zeros(real.sum())}
    )
    return Particles.from_arrays(
        px=p4.px,
        py=p4.py,
        pz=p4.pz,
        e=p4.E,
        pid=np.zeros(real.sum(), np.int64),
        charge=np.zeros(real.sum()),
        counts=real.sum(axis=1),
    )


def raw_table(values: np.ndarray, *, min_pt: float | None = None) -> EventTable:
    """The reference columns (with ``n_j``) of raw-layout rows, clustered with FastJet
    (anti-kT, R = 1.0)."""
    jets = D.reference()
    require("fastjet", "clustering the raw LHC Olympics hadrons", "lhco")
    clustered = jets.cluster(hadrons(values), radius=jets.JET_RADIUS)
    min_pt = jets.MIN_LEADING_PT if min_pt is None else min_pt
    features, passed = jets.dijet_features(clustered, min_pt=min_pt)
    return EventTable(
        features=features,
        columns=jets.COLUMNS,
        weights=np.ones(len(values)),
        passed=passed,
        units=jets.UNITS,
    )


def _read_rows(
    store, layout: Layout, path: Path, config: LHCOConfig, start: int, stop: int
) -> Sample:
    """Rows ``start`` to ``stop`` of the file as a sample (features or clustered jets)."""
    try:
        frame = store.select(layout.key, start=start, stop=stop)
    except Exception as exc:
        raise FileFormatError(
            f"{path}: rows {start}–{stop} are unreadable (a truncated file?): {first_line(exc)}"
        ) from None
    if len(frame) != stop - start:
        raise FileFormatError(
            f"{path}: rows {start}–{stop} gave {len(frame)} rows (a truncated file?)"
        )
    if layout.kind == "features":
        values = frame[list(FEATURE_COLUMNS)].to_numpy(np.float64)
        _check_finite(values, FEATURE_COLUMNS, path, start)
        table = features_table(frame, min_pt=config.min_pt)
        labels = frame[LABEL].to_numpy() if layout.has_labels else None
    else:
        values = frame.to_numpy(np.float64)
        names = [f"{c} (hadron {i // 3})" for i, c in enumerate(frame.columns[:RAW_WIDTH])]
        _check_finite(values, [*names, LABEL], path, start)
        table = raw_table(values, min_pt=config.min_pt)
        labels = values[:, RAW_WIDTH] if layout.has_labels else None
    if labels is not None:
        table = replace(table, labels=_labels(labels, path, start))
    return Sample(reco=table)


@dataclass(frozen=True)
class LHCOShard:
    """Import rows ``ranges[i]`` of an LHC Olympics file into shard ``i``'s event file
    (picklable: sent to worker processes; see :mod:`simkit.shards`)."""

    path: str
    layout: Layout
    config: LHCOConfig
    ranges: tuple[tuple[int, int], ...]

    def __call__(self, index: int, output: Path) -> None:
        from simkit.io import SampleWriter

        start, stop = self.ranges[index]
        with _store(Path(self.path)) as store:
            sample = _read_rows(store, self.layout, Path(self.path), self.config, start, stop)
        with SampleWriter(
            output,
            levels={"reco": self.layout.columns},
            units={"reco": D.units(self.layout.kind == "raw")},
            labels=self.layout.has_labels,
            provenance={"shard": index, "rows": [start, stop]},
        ) as out:
            out.append(sample)


# --------------------------------------------------------------------------- import


def import_lhco(
    path: str | os.PathLike,
    output: str | os.PathLike,
    config: LHCOConfig | None = None,
    *,
    jobs: int = 1,
    scheduler=None,
    resume: bool = False,
    keep_shards: bool = False,
) -> ImportResult:
    """Convert an LHC Olympics 2020 file (either layout) into a simkit event file.

    The file is read in shards of ``config.chunk_size`` rows, each written as an event
    file into ``OUTPUT.shards/`` and merged in order (:mod:`simkit.shards`): by this
    process, ``jobs`` worker processes or a Dask ``scheduler``, with the same bytes out,
    and ``resume=True`` continues an interrupted import. Bad input leaves no output file.
    """
    from simkit.io import make_provenance, read_array
    from simkit.shards import ShardPlan, events_name, run_shards, shard_ranges

    config = config or LHCOConfig()
    path = Path(path)
    t0 = time.perf_counter()
    with _store(path) as store:
        layout = _detect(store, path)
    n = layout.n_events if config.max_events is None else min(layout.n_events, config.max_events)
    settings = {
        "layout": layout.kind,
        "key": layout.key,
        **asdict(config),
    }
    settings["min_pt"] = D.reference().MIN_LEADING_PT if config.min_pt is None else config.min_pt
    if layout.kind == "raw":
        settings["clustering"] = (
            f"anti-kT R={D.reference().JET_RADIUS} (FastJet), massless hadrons; "
            "N-subjettiness beta=1, WTA kT axes (simkit.generators.jets)"
        )
    del settings["progress"]
    ranges = tuple(shard_ranges(n, config.chunk_size))
    stat = path.stat()
    plan = ShardPlan(
        Path(output),
        fingerprint={
            "source": {"path": str(path), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns},
            **settings,
        },
        sizes=tuple(b - a for a, b in ranges),
        names=tuple(events_name(a, b) for a, b in ranges),
    )
    run_shards(
        plan,
        LHCOShard(str(path), layout, config, ranges),
        provenance=make_provenance("simkit.formats.lhco", source=source_record(path), **settings),
        jobs=jobs,
        scheduler=scheduler,
        resume=resume,
        keep=keep_shards,
        progress=config.progress,
        desc=f"lhco {layout.kind}",
        preload=("pandas", "tables", "simkit.formats.lhco"),
    )
    n_passed = int(np.count_nonzero(read_array(output, "reco/pass")))
    return ImportResult(
        output=Path(output),
        n_events=n,
        n_passed=n_passed,
        columns=layout.columns,
        layout=f"lhco-{layout.kind}",
        seconds=time.perf_counter() - t0,
    )
