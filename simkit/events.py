"""In-memory events: a table of named float columns, and a sample pairing levels.

An :class:`EventTable` is one level of a sample (generator or detector level):
``features`` of shape (N, F) with named ``columns``, per-event ``weights``, a
``passed`` mask (the level's selection) and optional truth ``labels``.

A :class:`Sample` pairs the levels row by row (row *i* of ``gen`` and of
``reco`` is the same event) and carries what belongs to the events rather than
to a level: provenance and anomaly scores.

>>> import numpy as np
>>> reco = EventTable.from_columns({"x": np.array([0.5, -1.0, 2.0])})
>>> reco.select(["x"]).mask(reco.column("x") > 0).column("x")
array([0.5, 2. ], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from simkit.errors import SimkitError

#: The levels a sample may hold, in file order. ``truth`` is the hidden truth of a
#: pseudo-data sample: kept for scoring closure tests, never read by the unfolding.
LEVELS = ("gen", "reco", "truth")


def in_window(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``low ≤ values < high`` (NaN is outside): the convention of every mjj window."""
    values = np.asarray(values)
    return (values >= low) & (values < high)


def first_nonfinite(features: np.ndarray, columns: Sequence[str]) -> tuple[str, int] | None:
    """Return ``(column, row)`` of the first NaN/inf in ``features`` (row-major), or None."""
    finite = np.isfinite(features)
    if finite.all():
        return None
    bad_rows = np.flatnonzero(~finite.all(axis=1))
    row = int(bad_rows[0])
    col = int(np.flatnonzero(~finite[row])[0])
    return columns[col], row


@dataclass(frozen=True, eq=False)
class EventTable:
    """One level of a sample: (N, F) float32 features with names, weights, pass mask, labels."""

    features: np.ndarray
    columns: tuple[str, ...]
    weights: np.ndarray
    passed: np.ndarray
    labels: np.ndarray | None = None
    units: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        features = np.asarray(self.features)
        if features.ndim != 2:
            raise SimkitError(f"features must be 2-D (events, columns), got shape {features.shape}")
        if features.dtype != np.float32:
            features = features.astype(np.float32)
        n, width = features.shape
        columns = tuple(str(c) for c in self.columns)
        if len(columns) != width:
            raise SimkitError(f"{len(columns)} column names for {width} feature columns")
        if len(set(columns)) != len(columns):
            dup = sorted({c for c in columns if columns.count(c) > 1})
            raise SimkitError(f"duplicate column names: {', '.join(dup)}")
        weights = np.asarray(self.weights, dtype=np.float64).reshape(-1)
        passed = np.asarray(self.passed, dtype=bool).reshape(-1)
        if weights.shape != (n,):
            raise SimkitError(f"weights have {weights.shape[0]} rows, features {n}")
        if passed.shape != (n,):
            raise SimkitError(f"pass mask has {passed.shape[0]} rows, features {n}")
        labels = self.labels
        if labels is not None:
            labels = np.asarray(labels, dtype=np.int8).reshape(-1)
            if labels.shape != (n,):
                raise SimkitError(f"labels have {labels.shape[0]} rows, features {n}")
        units = tuple(self.units) if self.units is not None else ("",) * width
        if len(units) != width:
            raise SimkitError(f"{len(units)} units for {width} feature columns")
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "columns", columns)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "passed", passed)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "units", units)

    @classmethod
    def from_columns(
        cls,
        data: Mapping[str, np.ndarray],
        *,
        weights: np.ndarray | None = None,
        passed: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        units: Mapping[str, str] | None = None,
    ) -> EventTable:
        """Build a table from ``{column: values}``; weights default to 1, pass to True."""
        if not data:
            raise SimkitError("an event table needs at least one column")
        columns = tuple(data)
        features = np.column_stack([np.asarray(data[c], dtype=np.float32) for c in columns])
        n = features.shape[0]
        return cls(
            features=features,
            columns=columns,
            weights=np.ones(n) if weights is None else weights,
            passed=np.ones(n, bool) if passed is None else passed,
            labels=labels,
            units=None if units is None else tuple(units.get(c, "") for c in columns),
        )

    def __len__(self) -> int:
        return self.features.shape[0]

    @property
    def n_features(self) -> int:
        return self.features.shape[1]

    def index(self, name: str) -> int:
        """Position of column ``name``; a clear error when it is absent."""
        try:
            return self.columns.index(name)
        except ValueError:
            raise SimkitError(
                f"no column {name!r}; columns are: {', '.join(self.columns)}"
            ) from None

    def column(self, name: str) -> np.ndarray:
        """The values of one column (a view)."""
        return self.features[:, self.index(name)]

    def select(self, columns: Iterable[str]) -> EventTable:
        """A table with only ``columns``, in that order."""
        idx = [self.index(c) for c in columns]
        return replace(
            self,
            features=self.features[:, idx],
            columns=tuple(self.columns[i] for i in idx),
            units=tuple(self.units[i] for i in idx),
        )

    def mask(self, rows: np.ndarray | slice) -> EventTable:
        """A table with the rows chosen by a boolean mask, an index array or a slice."""
        rows = rows if isinstance(rows, slice) else np.asarray(rows)
        return replace(
            self,
            features=self.features[rows],
            weights=self.weights[rows],
            passed=self.passed[rows],
            labels=None if self.labels is None else self.labels[rows],
        )

    def passing(self) -> EventTable:
        """The events that pass this level's selection."""
        return self.mask(self.passed)

    def with_weights(self, weights: np.ndarray) -> EventTable:
        return replace(self, weights=weights)

    def first_nonfinite(self) -> tuple[str, int] | None:
        """``(column, row)`` of the first NaN/inf feature, or None when all are finite."""
        return first_nonfinite(self.features, self.columns)

    @staticmethod
    def concatenate(tables: Sequence[EventTable]) -> EventTable:
        """Stack tables with the same columns row-wise."""
        if not tables:
            raise SimkitError("nothing to concatenate")
        first = tables[0]
        for t in tables[1:]:
            if t.columns != first.columns:
                raise SimkitError(
                    f"cannot concatenate tables with columns {first.columns} and {t.columns}"
                )
        has_labels = [t.labels is not None for t in tables]
        if any(has_labels) and not all(has_labels):
            raise SimkitError("cannot concatenate tables with and without labels")
        return EventTable(
            features=np.concatenate([t.features for t in tables]),
            columns=first.columns,
            weights=np.concatenate([t.weights for t in tables]),
            passed=np.concatenate([t.passed for t in tables]),
            labels=np.concatenate([t.labels for t in tables]) if all(has_labels) else None,
            units=first.units,
        )


@dataclass(eq=False)
class Sample:
    """Levels of the same events, row-aligned, with provenance and scores.

    Weights and labels belong to the event, not to a level: every level of a
    sample holds the same ones (checked here).
    """

    gen: EventTable | None = None
    reco: EventTable | None = None
    truth: EventTable | None = None
    provenance: dict = field(default_factory=dict)
    scores: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        levels = self.levels
        if not levels:
            raise SimkitError("a sample needs at least one level (gen, reco or truth)")
        first = getattr(self, levels[0])
        for name in levels[1:]:
            table = getattr(self, name)
            if len(table) != len(first):
                raise SimkitError(
                    f"{levels[0]} has {len(first)} rows but {name} has {len(table)}: "
                    "levels must be row-aligned"
                )
            if not np.array_equal(table.weights, first.weights):
                raise SimkitError(f"{levels[0]} and {name} carry different event weights")
            if (table.labels is None) != (first.labels is None) or (
                table.labels is not None and not np.array_equal(table.labels, first.labels)
            ):
                raise SimkitError(f"{levels[0]} and {name} carry different labels")
        for name, score in self.scores.items():
            score = np.asarray(score, dtype=np.float32).reshape(-1)
            if score.shape != (len(first),):
                raise SimkitError(f"score {name!r} has {score.shape[0]} rows, sample {len(first)}")
            self.scores[name] = score

    @property
    def levels(self) -> tuple[str, ...]:
        """The levels present, in file order."""
        return tuple(name for name in LEVELS if getattr(self, name) is not None)

    def level(self, name: str) -> EventTable:
        """The table of one level; a clear error when the sample lacks it."""
        if name not in LEVELS:
            raise SimkitError(f"unknown level {name!r}; levels are {', '.join(LEVELS)}")
        table = getattr(self, name)
        if table is None:
            have = ", ".join(self.levels)
            raise SimkitError(f"the sample has no {name} level (it has: {have})")
        return table

    def _primary(self) -> EventTable:
        return getattr(self, self.levels[0])

    def __len__(self) -> int:
        return len(self._primary())

    @property
    def weights(self) -> np.ndarray:
        return self._primary().weights

    @property
    def labels(self) -> np.ndarray | None:
        return self._primary().labels

    def _map(self, fn) -> dict[str, EventTable]:
        return {name: fn(getattr(self, name)) for name in self.levels}

    def mask(self, rows: np.ndarray | slice) -> Sample:
        """The sample restricted to some rows (all levels and scores together)."""
        rows = rows if isinstance(rows, slice) else np.asarray(rows)
        return Sample(
            **self._map(lambda t: t.mask(rows)),
            provenance=self.provenance,
            scores={k: v[rows] for k, v in self.scores.items()},
        )

    def with_weights(self, weights: np.ndarray) -> Sample:
        """The same events with new per-event weights on every level."""
        weights = np.asarray(weights, dtype=np.float64)
        return Sample(
            **self._map(lambda t: t.with_weights(weights)),
            provenance=self.provenance,
            scores=dict(self.scores),
        )

    def with_labels(self, labels: np.ndarray | None) -> Sample:
        return Sample(
            **self._map(lambda t: replace(t, labels=labels)),
            provenance=self.provenance,
            scores=dict(self.scores),
        )

    @staticmethod
    def concatenate(samples: Sequence[Sample], provenance: dict | None = None) -> Sample:
        """Stack samples with the same levels, columns and scores row-wise."""
        if not samples:
            raise SimkitError("nothing to concatenate")
        levels = samples[0].levels
        for s in samples[1:]:
            if s.levels != levels:
                raise SimkitError(f"cannot concatenate samples with levels {levels} and {s.levels}")
        score_names = set(samples[0].scores)
        if any(set(s.scores) != score_names for s in samples[1:]):
            raise SimkitError("cannot concatenate samples with different scores")
        return Sample(
            **{lv: EventTable.concatenate([getattr(s, lv) for s in samples]) for lv in levels},
            provenance=samples[0].provenance if provenance is None else provenance,
            scores={k: np.concatenate([s.scores[k] for s in samples]) for k in score_names},
        )
