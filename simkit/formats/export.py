"""Any simkit event file as a ROOT TTree (``uproot``) or a Parquet table (``pyarrow``).

One row (entry) per event, one branch (column) per quantity:

=========================  =======  =====================================================
branch                     type     what
=========================  =======  =====================================================
``mjj``, ``m_j1``, …       float32  the reco-level columns, by their own names
``passed``                 bool     the reco pass flag
``gen_mjj``, …             float32  generator-level columns, prefixed ``gen_``
``gen_passed``             bool     the generator-level pass flag
``weight``                 float64  event weights (when the file stores them)
``label``                  int8     truth labels (when the file has them)
``score_<name>``           float32  anomaly scores
``omnifold_<name>_<k>``    float64  OmniFold weights of iteration k (push of the last k:
                                    the unfolded weights)
=========================  =======  =====================================================

The hidden ``truth`` level of pseudo-data is not exported. What does not fit in the
branches — units, provenance, the file format — is JSON: a ``simkit_metadata`` string
(TObjString) in the ROOT file, the ``simkit`` key of the Parquet schema's metadata.
``simkit import root FILE.root --map simkit`` reads the tree back exactly.
The output is written under a temporary name and renamed into place when complete.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simkit.errors import SimkitError
from simkit.formats import require

FORMATS = ("root", "parquet")
TREE = "events"
WEIGHT = "weight"
LABEL = "label"
METADATA = "simkit_metadata"
SCORE_PREFIX = "score_"
OMNIFOLD_PREFIX = "omnifold_"


def level_branches(level: str, columns: Sequence[str]) -> dict:
    """Branch names of a level's columns and pass flag (reco unprefixed, others prefixed)."""
    prefix = "" if level == "reco" else f"{level}_"
    return {"columns": [prefix + c for c in columns], "passed": f"{prefix}passed"}


@dataclass(frozen=True)
class ExportConfig:
    """Settings of an export (each default declared once, here)."""

    #: "root" or "parquet"
    format: str = "root"
    #: name of the ROOT TTree
    tree: str = TREE
    #: events read and written at a time
    chunk_size: int = 100_000

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise SimkitError(f"unknown export format {self.format!r} (formats: root, parquet)")
        if self.chunk_size < 1:
            raise SimkitError(f"chunk size must be at least 1, got {self.chunk_size}")


@dataclass(frozen=True)
class ExportResult:
    output: Path
    format: str
    n_events: int
    branches: tuple[str, ...]
    seconds: float


def _layout(info) -> tuple[dict, dict[str, np.dtype]]:
    """The metadata document and the ordered branch → dtype of a file's export."""
    levels = {lv: meta for lv, meta in info.levels.items() if lv != "truth"}
    dtypes: dict[str, np.dtype] = {}
    meta_levels = {}
    for lv, meta in levels.items():
        names = level_branches(lv, meta.columns)
        for branch in names["columns"]:
            dtypes[branch] = np.dtype(np.float32)
        dtypes[names["passed"]] = np.dtype(bool)
        meta_levels[lv] = {"columns": list(meta.columns), "units": list(meta.units)}
    extra = {}
    if info.has_weights:
        extra[WEIGHT] = np.dtype(np.float64)
    if info.has_labels:
        extra[LABEL] = np.dtype(np.int8)
    scores = {s: SCORE_PREFIX + s for s in info.scores}
    extra.update({b: np.dtype(np.float32) for b in scores.values()})
    omnifold = {}
    for name, (iterations, _) in info.omnifold.items():
        omnifold[name] = [f"{OMNIFOLD_PREFIX}{name}_{k}" for k in range(iterations)]
        extra.update({b: np.dtype(np.float64) for b in omnifold[name]})
    clash = sorted(set(dtypes) & set(extra))
    if clash:
        raise SimkitError(
            f"{info.path}: column {', '.join(clash)} would clash with a branch of the export "
            "layout (weight, label, score_*, omnifold_*)"
        )
    dtypes.update(extra)
    metadata = {
        "format": "simkit-events",
        "format_version": 1,
        "source": str(info.path),
        "levels": meta_levels,
        "weights": info.has_weights,
        "labels": info.has_labels,
        "scores": scores,
        "omnifold": omnifold,
        "provenance": info.provenance,
    }
    return metadata, dtypes


def _chunks(path: Path, info, chunk_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Branch arrays of consecutive rows of an event file."""
    import h5py

    from simkit.io import iter_samples, read_array

    levels = [lv for lv in info.levels if lv != "truth"]
    omnifold = {name: read_array(path, f"omnifold/{name}") for name in info.omnifold}
    if levels:
        samples = iter_samples(path, chunk_size, levels=levels)
    else:  # a file of per-event arrays only (weights.h5 of the unfolding)
        samples = (None for _ in range(0, info.n_events, chunk_size))
    start = 0
    for sample in samples:
        n = len(sample) if sample is not None else min(chunk_size, info.n_events - start)
        out: dict[str, np.ndarray] = {}
        if sample is not None:
            for lv in levels:
                table = sample.level(lv)
                names = level_branches(lv, table.columns)
                for i, branch in enumerate(names["columns"]):
                    out[branch] = np.ascontiguousarray(table.features[:, i])
                out[names["passed"]] = table.passed
            if info.has_weights:
                out[WEIGHT] = sample.weights
            if info.has_labels:
                out[LABEL] = sample.labels
            for name, score in sample.scores.items():
                out[SCORE_PREFIX + name] = score
        else:
            with h5py.File(path, "r") as fh:
                if info.has_weights:
                    out[WEIGHT] = np.asarray(fh["weights"][start : start + n], np.float64)
                if info.has_labels:
                    out[LABEL] = np.asarray(fh["labels"][start : start + n], np.int8)
                for name in info.scores:
                    out[SCORE_PREFIX + name] = np.asarray(
                        fh["scores"][name][start : start + n], np.float32
                    )
        for name, values in omnifold.items():
            for k, row in enumerate(values):
                out[f"{OMNIFOLD_PREFIX}{name}_{k}"] = row[start : start + n]
        start += n
        yield out


def _write_root(tmp: Path, config: ExportConfig, dtypes, metadata, chunks) -> None:
    uproot = require("uproot", "exporting to ROOT", "root")
    with uproot.recreate(tmp) as handle:
        tree = handle.mktree(config.tree, dict(dtypes), title="simkit-events")
        for chunk in chunks:
            tree.extend({b: np.asarray(chunk[b], dtype=dtypes[b]) for b in dtypes})
        handle[METADATA] = json.dumps(metadata, sort_keys=True)


def _write_parquet(tmp: Path, dtypes, metadata, chunks) -> None:
    pa = require("pyarrow", "exporting to Parquet", "root")
    pq = require("pyarrow.parquet", "exporting to Parquet", "root")
    schema = pa.schema(
        [pa.field(b, pa.from_numpy_dtype(d)) for b, d in dtypes.items()],
        metadata={"simkit": json.dumps(metadata, sort_keys=True)},
    )
    with pq.ParquetWriter(tmp, schema) as writer:
        for chunk in chunks:
            columns = [pa.array(np.asarray(chunk[b], dtype=dtypes[b])) for b in dtypes]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))


def export(
    path: str | os.PathLike, output: str | os.PathLike, config: ExportConfig | None = None
) -> ExportResult:
    """Write the event file ``path`` as a ROOT TTree or a Parquet table at ``output``."""
    from simkit.io import atomic_path, inspect

    config = config or ExportConfig()
    if config.format == "root":
        require("uproot", "exporting to ROOT", "root")
    else:
        require("pyarrow", "exporting to Parquet", "root")
    t0 = time.perf_counter()
    path = Path(path)
    info = inspect(path)
    metadata, dtypes = _layout(info)
    if config.format == "root":
        metadata["tree"] = config.tree
    chunks = _chunks(path, info, config.chunk_size)
    with atomic_path(output) as tmp:
        if config.format == "root":
            _write_root(tmp, config, dtypes, metadata, chunks)
        else:
            _write_parquet(tmp, dtypes, metadata, chunks)
    return ExportResult(
        output=Path(output),
        format=config.format,
        n_events=info.n_events,
        branches=tuple(dtypes),
        seconds=time.perf_counter() - t0,
    )


def read_parquet_metadata(path: str | os.PathLike) -> Mapping:
    """The ``simkit`` metadata of an exported Parquet file."""
    pq = require("pyarrow.parquet", "reading Parquet", "root")
    schema = pq.read_schema(path)
    return json.loads((schema.metadata or {})[b"simkit"])
