"""The HDF5 event-file format, version 1: read, validate, write atomically, stream.

Layout (one file = one sample; rows are events, levels row-aligned)::

    /                 attrs format="simkit-events", format_version=1, n_events
    /provenance       JSON string: generator, settings, seed, versions, time
    /reco/features    float32 (N, F), attrs columns, units      (detector level)
    /reco/pass        bool (N,)                                  (absent = all pass)
    /gen/features     float32 (N, F), /gen/pass                  (generator level)
    /truth/...        hidden truth of pseudo-data (never read by the unfolding)
    /weights          float64 (N,)                               (absent = 1)
    /labels           int8 (N,)                                  (0 = SM, 1 = signal)
    /scores/<name>    float32 (N,)                               (anomaly scores)
    /omnifold/pull    float64 (K, N), /omnifold/push             (unfolding weights)

Every reader validates the structure and refuses NaN/inf features with a
message naming the file, dataset, column and first bad row. Writers write to a
temporary file beside the target and rename it into place, so a crash never
leaves a half file that looks whole.

>>> import tempfile, pathlib, numpy as np
>>> from simkit.events import EventTable, Sample
>>> folder = tempfile.TemporaryDirectory()
>>> path = pathlib.Path(folder.name) / "toy.h5"
>>> reco = EventTable.from_columns({"x": np.arange(3.0)})
>>> _ = write_sample(path, Sample(reco=reco), provenance={"generator": "doc"})
>>> read_sample(path).reco.column("x")
array([0., 1., 2.], dtype=float32)
>>> folder.cleanup()
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import h5py
import numpy as np

from simkit.errors import FileFormatError, SimkitError
from simkit.events import LEVELS, EventTable, Sample, first_nonfinite

FORMAT = "simkit-events"
FORMAT_VERSION = 1
#: Rows per HDF5 chunk (and the default streaming chunk): ~1 MB for 16 float32 columns.
CHUNK_ROWS = 16384
#: gzip level 1 with the shuffle filter: readable by any HDF5 tool, and cheap enough that
#: writing does not limit the surrogates' sampling rate (level 4 halves the write rate for
#: 3 % smaller files on jet features).
COMPRESSION = {"compression": "gzip", "compression_opts": 1, "shuffle": True}

try:  # ISA-L's deflate: the same zlib streams as HDF5's gzip filter, ~10x faster (below)
    from isal import isal_zlib as _deflate
except ImportError:  # pragma: no cover - isal is a dependency; a build without it still works
    _deflate = None

_VERSIONED_PACKAGES = (
    "simkit",
    "numpy",
    "h5py",
    "scipy",
    "torch",
    "normflows",
    "pythia8mc",
    "fastjet",
    "awkward",
    "vector",
)


# --------------------------------------------------------------------------- provenance


def package_versions() -> dict[str, str]:
    """Versions of Python and of the installed packages that shape the numbers."""
    versions = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def creation_time() -> str:
    """UTC time as ISO 8601; ``SOURCE_DATE_EPOCH`` fixes it (reproducible-builds convention),
    so that the same seed gives a byte-identical file."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is not None:
        try:
            moment = _dt.datetime.fromtimestamp(int(epoch), tz=_dt.timezone.utc)
        except ValueError:
            raise SimkitError(f"SOURCE_DATE_EPOCH={epoch!r} is not an integer") from None
    else:
        moment = _dt.datetime.now(tz=_dt.timezone.utc).replace(microsecond=0)
    return moment.isoformat()


def make_provenance(generator: str, *, seed: int | None = None, **settings) -> dict:
    """A provenance record: who made the sample, with what settings and seed, when, with what."""
    return {
        "generator": generator,
        "seed": seed,
        "settings": settings,
        "versions": package_versions(),
        "created": creation_time(),
    }


def json_default(value):
    """``json.dumps(..., default=json_default)``: numpy values and paths as plain JSON."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serializable: {type(value).__name__}")


def write_json(path: str | os.PathLike, document: Mapping) -> Path:
    """Write ``metrics.json``-style files atomically; numpy values become plain JSON.

    Non-finite floats are refused (JSON has no NaN): a metric that could not be
    computed should be ``None`` with a reason beside it.
    """
    text = json.dumps(document, indent=2, sort_keys=False, default=json_default, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")
    return Path(path)


# --------------------------------------------------------------------------- opening


@contextlib.contextmanager
def _open(path: str | os.PathLike) -> Iterator[h5py.File]:
    """Open an HDF5 file for reading; turn every low-level failure into one clear line."""
    path = Path(path)
    if not path.exists():
        raise FileFormatError(f"{path}: no such file")
    if path.is_dir():
        raise FileFormatError(f"{path}: is a folder, not an event file")
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        reason = str(exc)
        if "truncated" in reason:
            raise FileFormatError(f"{path}: truncated HDF5 file (an interrupted copy?)") from None
        raise FileFormatError(f"{path}: not an HDF5 file ({_short(reason)})") from None
    try:
        yield fh
    except (OSError, KeyError, ValueError, TypeError) as exc:
        if isinstance(exc, SimkitError):
            raise
        raise FileFormatError(f"{path}: unreadable ({_short(str(exc))})") from None
    finally:
        with contextlib.suppress(Exception):
            fh.close()


def _short(message: str) -> str:
    return message.splitlines()[0][:200] if message else "unknown error"


def _strings(values) -> tuple[str, ...]:
    if isinstance(values, (str, bytes)):
        values = [values]
    return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(values).ravel())


# --------------------------------------------------------------------------- header


@dataclass(frozen=True)
class LevelInfo:
    columns: tuple[str, ...]
    units: tuple[str, ...]
    has_pass: bool


@dataclass(frozen=True)
class FileInfo:
    """What an event file holds, validated, without reading the events."""

    path: Path
    n_events: int
    levels: dict[str, LevelInfo]
    has_weights: bool
    has_labels: bool
    scores: tuple[str, ...]
    omnifold: dict[str, tuple[int, int]] = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)


def _check_rows(path: Path, name: str, ds: h5py.Dataset, n: int | None, kinds: str, ndim: int = 1):
    if ds.dtype.kind not in kinds:
        raise FileFormatError(f"{path}: /{name} has dtype {ds.dtype}, expected kind {kinds!r}")
    if ds.ndim != ndim:
        raise FileFormatError(f"{path}: /{name} has shape {ds.shape}, expected {ndim}-D")
    rows = ds.shape[-1] if ndim == 2 and name.startswith("omnifold") else ds.shape[0]
    if n is not None and rows != n:
        raise FileFormatError(f"{path}: /{name} has {rows} rows but the file holds {n} events")
    return rows


def _inspect_open(path: Path, fh: h5py.File) -> FileInfo:
    fmt = fh.attrs.get("format")
    if fmt is None:
        raise FileFormatError(f"{path}: no 'format' attribute: not a simkit event file")
    fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
    if fmt != FORMAT:
        raise FileFormatError(f"{path}: format is {fmt!r}, expected {FORMAT!r}")
    version = fh.attrs.get("format_version")
    if version is None:
        raise FileFormatError(f"{path}: no 'format_version' attribute")
    if int(version) != FORMAT_VERSION:
        raise FileFormatError(
            f"{path}: format_version {int(version)} is not supported "
            f"(this simkit reads version {FORMAT_VERSION})"
        )

    n: int | None = None
    first_level = None
    levels: dict[str, LevelInfo] = {}
    for level in LEVELS:
        if level not in fh:
            continue
        group = fh[level]
        if "features" not in group:
            raise FileFormatError(f"{path}: /{level} has no 'features' dataset")
        ds = group["features"]
        if ds.dtype.kind != "f" or ds.ndim != 2:
            raise FileFormatError(
                f"{path}: /{level}/features must be a 2-D float array, got {ds.dtype} {ds.shape}"
            )
        if "columns" not in ds.attrs:
            raise FileFormatError(f"{path}: /{level}/features has no 'columns' attribute")
        columns = _strings(ds.attrs["columns"])
        if len(columns) != ds.shape[1]:
            raise FileFormatError(
                f"{path}: /{level}/features has {ds.shape[1]} columns but its 'columns' "
                f"attribute names {len(columns)}"
            )
        if len(set(columns)) != len(columns):
            raise FileFormatError(f"{path}: /{level}/features has duplicate column names")
        units = _strings(ds.attrs["units"]) if "units" in ds.attrs else ("",) * len(columns)
        if len(units) != len(columns):
            raise FileFormatError(
                f"{path}: /{level}/features has {len(columns)} columns but {len(units)} units"
            )
        rows = ds.shape[0]
        has_pass = "pass" in group
        if has_pass:
            _check_rows(path, f"{level}/pass", group["pass"], rows, "b")
        if n is None:
            n, first_level = rows, level
        elif rows != n:
            raise FileFormatError(
                f"{path}: /{first_level} has {n} rows but /{level} has {rows}: "
                "levels must be row-aligned"
            )
        levels[level] = LevelInfo(columns=columns, units=units, has_pass=has_pass)

    if "weights" in fh:
        n = _check_rows(path, "weights", fh["weights"], n, "f")
    if "labels" in fh:
        n = _check_rows(path, "labels", fh["labels"], n, "iub")
    scores: list[str] = []
    if "scores" in fh:
        for name, ds in fh["scores"].items():
            n = _check_rows(path, f"scores/{name}", ds, n, "f")
            scores.append(name)
    omnifold: dict[str, tuple[int, int]] = {}
    if "omnifold" in fh:
        for name, ds in fh["omnifold"].items():
            n = _check_rows(path, f"omnifold/{name}", ds, n, "f", ndim=2)
            omnifold[name] = tuple(ds.shape)
    if n is None:
        raise FileFormatError(f"{path}: holds no events (no gen, reco, weights or scores)")

    provenance: dict = {}
    if "provenance" in fh:
        raw = fh["provenance"][()]
        raw = raw.decode() if isinstance(raw, bytes) else str(raw)
        try:
            provenance = json.loads(raw)
        except json.JSONDecodeError:
            raise FileFormatError(f"{path}: /provenance is not valid JSON") from None
    return FileInfo(
        path=path,
        n_events=int(n),
        levels=levels,
        has_weights="weights" in fh,
        has_labels="labels" in fh,
        scores=tuple(scores),
        omnifold=omnifold,
        provenance=provenance,
    )


def inspect(path: str | os.PathLike) -> FileInfo:
    """Validate an event file's structure and return what it holds (no events are read)."""
    with _open(path) as fh:
        return _inspect_open(Path(path), fh)


# --------------------------------------------------------------------------- reading


def _resolve_levels(info: FileInfo, levels: Sequence[str] | None) -> tuple[str, ...]:
    if levels is None:
        # the hidden truth of pseudo-data is only read when asked for by name
        chosen = tuple(lv for lv in info.levels if lv != "truth")
        if not chosen:
            raise FileFormatError(f"{info.path}: holds no gen or reco level")
        return chosen
    for lv in levels:
        if lv not in LEVELS:
            raise SimkitError(f"unknown level {lv!r}; levels are {', '.join(LEVELS)}")
        if lv not in info.levels:
            have = ", ".join(info.levels) or "none"
            raise FileFormatError(f"{info.path}: has no {lv} level (levels: {have})")
    return tuple(levels)


def _column_index(info: FileInfo, level: str, columns: Sequence[str] | None) -> list[int]:
    have = info.levels[level].columns
    if columns is None:
        return list(range(len(have)))
    missing = [c for c in columns if c not in have]
    if missing:
        raise FileFormatError(
            f"{info.path}: /{level} has no column {', '.join(map(repr, missing))} "
            f"(columns: {', '.join(have)})"
        )
    return [have.index(c) for c in columns]


def _read_block(
    fh: h5py.File,
    info: FileInfo,
    levels: Sequence[str],
    columns: Sequence[str] | None,
    rows: slice,
    check_finite: bool,
) -> Sample:
    n = len(range(*rows.indices(info.n_events)))
    weights = fh["weights"][rows] if info.has_weights else np.ones(n)
    weights = np.asarray(weights, dtype=np.float64)
    if check_finite and not np.isfinite(weights).all():
        bad = int(np.flatnonzero(~np.isfinite(weights))[0]) + (rows.start or 0)
        raise FileFormatError(f"{info.path}: /weights is not finite at row {bad}")
    labels = np.asarray(fh["labels"][rows], dtype=np.int8) if info.has_labels else None
    tables = {}
    for level in levels:
        idx = _column_index(info, level, columns)
        ds = fh[level]["features"]
        order = np.argsort(idx)
        # h5py wants increasing column indices; read sorted, then restore the asked order
        sorted_idx = [idx[i] for i in order]
        block = ds[rows, sorted_idx] if len(idx) < ds.shape[1] else ds[rows]
        if len(idx) < ds.shape[1]:
            block = block[:, np.argsort(order)]
        elif idx != list(range(ds.shape[1])):
            block = block[:, idx]
        names = tuple(info.levels[level].columns[i] for i in idx)
        if check_finite:
            bad = first_nonfinite(block, names)
            if bad is not None:
                column, row = bad
                value = block[row, names.index(column)]
                raise FileFormatError(
                    f"{info.path}: /{level}/features column {column!r} is {value} "
                    f"at row {row + (rows.start or 0)}"
                )
        passed = (
            np.asarray(fh[level]["pass"][rows], dtype=bool)
            if info.levels[level].has_pass
            else np.ones(n, bool)
        )
        tables[level] = EventTable(
            features=block,
            columns=names,
            weights=weights,
            passed=passed,
            labels=labels,
            units=tuple(info.levels[level].units[i] for i in idx),
        )
    scores = {name: np.asarray(fh["scores"][name][rows]) for name in info.scores}
    if check_finite:
        for name, score in scores.items():
            if not np.isfinite(score).all():
                bad = int(np.flatnonzero(~np.isfinite(score))[0]) + (rows.start or 0)
                raise FileFormatError(f"{info.path}: /scores/{name} is not finite at row {bad}")
    return Sample(**tables, provenance=info.provenance, scores=scores)


def read_sample(
    path: str | os.PathLike,
    *,
    levels: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    rows: slice | None = None,
    check_finite: bool = True,
) -> Sample:
    """Read an event file (all of it, chosen levels/columns, or a slice of rows).

    ``levels`` defaults to the gen and reco levels present (the hidden ``truth`` level
    of pseudo-data is read only when named). ``columns`` applies to every level read.
    """
    with _open(path) as fh:
        info = _inspect_open(Path(path), fh)
        chosen = _resolve_levels(info, levels)
        return _read_block(fh, info, chosen, columns, rows or slice(None), check_finite)


def iter_samples(
    path: str | os.PathLike,
    chunk_size: int = CHUNK_ROWS * 8,
    *,
    levels: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    check_finite: bool = True,
) -> Iterator[Sample]:
    """Read an event file in consecutive chunks of at most ``chunk_size`` rows."""
    if chunk_size < 1:
        raise SimkitError(f"chunk size must be positive, got {chunk_size}")
    with _open(path) as fh:
        info = _inspect_open(Path(path), fh)
        chosen = _resolve_levels(info, levels)
        for start in range(0, info.n_events, chunk_size):
            rows = slice(start, min(start + chunk_size, info.n_events))
            yield _read_block(fh, info, chosen, columns, rows, check_finite)


def read_array(path: str | os.PathLike, dataset: str) -> np.ndarray:
    """Read one per-event dataset (e.g. ``weights``, ``scores/vae``, ``omnifold/push``)."""
    with _open(path) as fh:
        _inspect_open(Path(path), fh)
        name = dataset.strip("/")
        if name not in fh or not isinstance(fh[name], h5py.Dataset):
            raise FileFormatError(f"{path}: has no dataset /{name}")
        values = np.asarray(fh[name][()])
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            bad = np.argwhere(~np.isfinite(values))[0]
            raise FileFormatError(f"{path}: /{name} is not finite at index {tuple(bad)}")
        return values


def read_weights(spec: str, n_events: int | None = None) -> np.ndarray:
    """Per-event weights from ``FILE.h5:DATASET`` (``DATASET`` defaults to ``weights``).

    A 2-D dataset of per-iteration weights, such as ``omnifold/push``, gives its last
    row: the final iteration's answer.
    """
    path, _, dataset = spec.partition(":")
    values = read_array(path, dataset or "weights")
    if values.ndim == 2:
        values = values[-1]
    if values.ndim != 1:
        raise FileFormatError(f"{path}: /{dataset} is not a per-event weight array")
    if n_events is not None and values.shape[0] != n_events:
        raise SimkitError(
            f"{spec}: {values.shape[0]} weights for a sample of {n_events} events "
            "(rows must be aligned with the sample)"
        )
    if (values < 0).any():
        raise SimkitError(f"{spec}: negative weights are not supported")
    return values.astype(np.float64)


# --------------------------------------------------------------------------- writing


def _temporary_path(path: Path) -> Path:
    """A new, empty hidden file beside ``path``, created with mode 0666 less the process's
    umask, as ``open`` would create the file itself (``tempfile.mkstemp`` makes it 0600,
    and the rename kept that: outputs were unreadable to the user's group)."""
    for _ in range(100):
        name = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return name
    raise SimkitError(f"{path.parent}: cannot create a temporary file beside {path.name}")


def _prepare_target(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_dir():
        raise SimkitError(f"{path}: is a folder; give a file name for the output")
    if not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only on success."""
    path = _prepare_target(path)
    tmp = _temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _init_file(fh: h5py.File, provenance: Mapping | None) -> None:
    fh.attrs["format"] = FORMAT
    fh.attrs["format_version"] = np.int64(FORMAT_VERSION)
    fh.create_dataset(
        "provenance",
        data=json.dumps(provenance or {}, sort_keys=True),
        dtype=h5py.string_dtype(),
        track_times=False,
    )


class _DirectChunks:
    """The rows of one resizable dataset of :data:`COMPRESSION` (gzip level 1, shuffle),
    compressed here and stored a whole chunk at a time with HDF5's direct chunk write.

    The stored chunks are exactly what HDF5's own filters would store: the shuffle
    filter's byte planes, then a zlib stream (RFC 1950), read back by any HDF5 tool
    through the same filter pipeline. The deflate is ISA-L's (python-isal, level 1):
    ~10x the speed of zlib's level 1 on shuffled jet features, with slightly smaller
    output (BENCHMARKS.md, "`simkit surrogate sample` without torch, and a faster
    write"). Rows short of a chunk wait for the next :meth:`add`; :meth:`flush` stores
    the last, partial chunk zero-padded, as HDF5 stores an edge chunk whole.
    """

    def __init__(self, ds: h5py.Dataset) -> None:
        self.ds = ds
        self.rows = ds.chunks[0]
        self.pending: list[np.ndarray] = []
        self.count = 0  # rows pending
        self.stored = 0  # rows stored, a multiple of self.rows until flush

    @staticmethod
    def takes(ds: h5py.Dataset) -> bool:
        """Whether ``ds`` (created with :data:`COMPRESSION` and nothing else) can be
        written this way: chunks of whole rows of a plain numeric type."""
        return (
            _deflate is not None
            and ds.chunks[1:] == ds.shape[1:]
            and all(ds.shape[1:])
            and ds.dtype.kind in "fiub"
        )

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=self.ds.dtype)
        if self.count:  # complete the pending chunk first
            need = self.rows - self.count
            self.pending.append(values[:need].copy())
            self.count += min(need, len(values))
            values = values[need:]
            if self.count < self.rows:
                return
            self._store(np.concatenate(self.pending))
            self.pending, self.count = [], 0
        whole = len(values) - len(values) % self.rows
        for start in range(0, whole, self.rows):
            self._store(values[start : start + self.rows])
        if whole < len(values):
            self.pending, self.count = [values[whole:].copy()], len(values) - whole

    def flush(self) -> None:
        """Store the rows still pending (the dataset's last chunk)."""
        if self.count:
            block = np.zeros((self.rows, *self.ds.shape[1:]), dtype=self.ds.dtype)
            block[: self.count] = np.concatenate(self.pending)
            self._store(block)
            self.pending, self.count = [], 0

    def _store(self, block: np.ndarray) -> None:
        raw = np.ascontiguousarray(block).view(np.uint8)
        if block.dtype.itemsize > 1:  # the shuffle filter: byte k of every value together
            raw = np.ascontiguousarray(raw.reshape(-1, block.dtype.itemsize).T)
        offset = (self.stored,) + (0,) * (block.ndim - 1)
        self.ds.id.write_direct_chunk(offset, _deflate.compress(raw, 1))
        self.stored += self.rows


class SampleWriter:
    """Stream events into a new event file with resizable datasets.

    The file is written under a temporary name and renamed into place by
    :meth:`close`; an exception inside the ``with`` block removes it instead.

    >>> import tempfile, pathlib, numpy as np
    >>> from simkit.events import EventTable, Sample
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(folder.name) / "stream.h5"
    >>> chunk = Sample(reco=EventTable.from_columns({"x": np.zeros(5)}))
    >>> with SampleWriter(path, levels={"reco": ("x",)}) as out:
    ...     out.append(chunk); out.append(chunk)
    >>> inspect(path).n_events
    10
    >>> folder.cleanup()
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        levels: Mapping[str, Sequence[str]],
        units: Mapping[str, Sequence[str]] | None = None,
        weights: bool = False,
        labels: bool = False,
        scores: Sequence[str] = (),
        provenance: Mapping | None = None,
        chunk_rows: int = CHUNK_ROWS,
        compression: Mapping | None = None,
    ) -> None:
        if not levels and not scores:
            raise SimkitError("a writer needs at least one level or score")
        for lv in levels:
            if lv not in LEVELS:
                raise SimkitError(f"unknown level {lv!r}; levels are {', '.join(LEVELS)}")
        self.path = _prepare_target(path)
        self.levels = {lv: tuple(levels[lv]) for lv in LEVELS if lv in levels}
        self.has_weights = weights
        self.has_labels = labels
        self.score_names = tuple(scores)
        self.provenance = dict(provenance or {})
        self.n_events = 0
        self._tmp = _temporary_path(self.path)
        self._fh: h5py.File | None = h5py.File(self._tmp, "w", libver="v110")
        opts = dict(COMPRESSION if compression is None else compression)
        self._direct: dict[str, _DirectChunks] = {}  # datasets compressed here (below)
        fh = self._fh
        _init_file(fh, self.provenance)

        def resizable(name, width=None, dtype="f4"):
            shape = (0,) if width is None else (0, width)
            maxshape = (None,) if width is None else (None, width)
            chunks = (chunk_rows,) if width is None else (chunk_rows, max(width, 1))
            ds = fh.create_dataset(
                name,
                shape=shape,
                maxshape=maxshape,
                chunks=chunks,
                dtype=dtype,
                track_times=False,
                **opts,
            )
            if opts == COMPRESSION and _DirectChunks.takes(ds):
                self._direct[name] = _DirectChunks(ds)
            return ds

        for lv, cols in self.levels.items():
            ds = resizable(f"{lv}/features", len(cols))
            ds.attrs["columns"] = np.array(cols, dtype=h5py.string_dtype())
            lv_units = (units or {}).get(lv) or ("",) * len(cols)
            ds.attrs["units"] = np.array(tuple(lv_units), dtype=h5py.string_dtype())
            resizable(f"{lv}/pass", dtype="bool")
        if weights:
            resizable("weights", dtype="f8")
        if labels:
            resizable("labels", dtype="i1")
        for name in self.score_names:
            resizable(f"scores/{name}")

    @classmethod
    def like(cls, path: str | os.PathLike, sample: Sample, **kwargs) -> SampleWriter:
        """A writer for samples shaped like ``sample`` (same levels, columns, scores)."""
        kwargs.setdefault("provenance", sample.provenance)
        return cls(
            path,
            levels={lv: sample.level(lv).columns for lv in sample.levels},
            units={lv: sample.level(lv).units for lv in sample.levels},
            weights=kwargs.pop("weights", True),
            labels=kwargs.pop("labels", sample.labels is not None),
            scores=kwargs.pop("scores", tuple(sample.scores)),
            **kwargs,
        )

    def _grow(self, name: str, values: np.ndarray) -> None:
        ds = self._fh[name]
        start = ds.shape[0]
        ds.resize(start + values.shape[0], axis=0)
        direct = self._direct.get(name)
        if direct is None:
            ds[start:] = values
        else:
            direct.add(values)

    def append(self, sample: Sample) -> None:
        """Add the events of ``sample``; it must have this writer's levels and columns."""
        if self._fh is None:
            raise SimkitError(f"{self.path}: writer is closed")
        n = len(sample)
        for lv, cols in self.levels.items():
            table = sample.level(lv)
            if table.columns != cols:
                raise SimkitError(
                    f"{self.path}: {lv} columns {table.columns} differ from the file's {cols}"
                )
            bad = table.first_nonfinite()
            if bad is not None:
                raise SimkitError(
                    f"{self.path}: refusing to write NaN/inf: {lv} column {bad[0]!r} "
                    f"at row {self.n_events + bad[1]}"
                )
        if self.has_weights and not np.isfinite(sample.weights).all():
            row = int(np.flatnonzero(~np.isfinite(sample.weights))[0])
            raise SimkitError(f"{self.path}: refusing to write a non-finite weight at row {row}")
        if self.has_labels and sample.labels is None:
            raise SimkitError(f"{self.path}: the file has labels but the sample has none")
        missing = set(self.score_names) - set(sample.scores)
        if missing:
            raise SimkitError(f"{self.path}: the sample lacks score(s) {sorted(missing)}")
        for lv in self.levels:
            table = sample.level(lv)
            self._grow(f"{lv}/features", table.features)
            self._grow(f"{lv}/pass", table.passed)
        if self.has_weights:
            self._grow("weights", sample.weights)
        if self.has_labels:
            self._grow("labels", sample.labels)
        for name in self.score_names:
            score = np.asarray(sample.scores[name], dtype=np.float32)
            if not np.isfinite(score).all():
                raise SimkitError(f"{self.path}: refusing to write non-finite score {name!r}")
            self._grow(f"scores/{name}", score)
        self.n_events += n

    def update_provenance(self, **fields) -> None:
        """Add fields to the provenance written at :meth:`close` (e.g. run time)."""
        self.provenance.update(fields)

    def close(self) -> Path:
        """Finish the file and rename it into place; returns the final path."""
        if self._fh is None:
            return self.path
        fh = self._fh
        for direct in self._direct.values():
            direct.flush()
        del fh["provenance"]
        fh.create_dataset(
            "provenance",
            data=json.dumps(self.provenance, sort_keys=True),
            dtype=h5py.string_dtype(),
            track_times=False,
        )
        fh.attrs["n_events"] = np.int64(self.n_events)
        fh.close()
        self._fh = None
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial file; nothing appears at the target path."""
        if self._fh is not None:
            with contextlib.suppress(Exception):
                self._fh.close()
            self._fh = None
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()

    def __enter__(self) -> SampleWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:  # a writer dropped without close() leaves no file behind
        if getattr(self, "_fh", None) is not None:
            self.abort()


def write_sample(
    path: str | os.PathLike,
    sample: Sample,
    *,
    provenance: Mapping | None = None,
    compression: Mapping | None = None,
) -> Path:
    """Write a whole sample atomically. Weights are written unless all equal 1."""
    weights = not np.all(sample.weights == 1.0)
    with SampleWriter.like(
        path,
        sample,
        weights=weights,
        provenance=sample.provenance if provenance is None else provenance,
        compression=compression,
        chunk_rows=max(1, min(CHUNK_ROWS, len(sample))),
    ) as out:
        out.append(sample)
    return out.path


def write_arrays(
    path: str | os.PathLike,
    arrays: Mapping[str, np.ndarray],
    *,
    provenance: Mapping | None = None,
) -> Path:
    """Write per-event arrays (``omnifold/push``, ``weights``, ``scores/x``) as an event file.

    Used for files that hold weights for another file's events, row-aligned with it.
    """
    with atomic_path(path) as tmp, h5py.File(tmp, "w", libver="v110") as fh:
        _init_file(fh, provenance)
        n = None
        for name, values in arrays.items():
            values = np.asarray(values)
            if values.dtype.kind == "f" and not np.isfinite(values).all():
                bad = np.argwhere(~np.isfinite(values))[0]
                raise SimkitError(f"refusing to write non-finite /{name} at index {tuple(bad)}")
            rows = values.shape[-1] if name.startswith("omnifold/") else values.shape[0]
            if n is not None and rows != n:
                raise SimkitError(f"/{name} has {rows} rows, other datasets {n}")
            n = rows
            fh.create_dataset(name, data=values, track_times=False, **COMPRESSION)
        fh.attrs["n_events"] = np.int64(n or 0)
    return Path(path)
