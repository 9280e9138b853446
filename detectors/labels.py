"""Label strategies: which events (or jets) a detector trains on, chosen without truth.

- ``all`` — every passing event: for a background sample that is already trusted,
  e.g. OmniFold-validated simulation or surrogate events.
- ``sideband`` — events outside a signal region of one column (``mjj`` in
  3300 ≤ mjj < 3700 GeV by default, the LHC Olympics 2020 window), optionally inside
  outer sideband bounds. A resonance sits in its mass window, so the sidebands are
  background-rich. With ``classes=True`` it is CWoLa (Metodiev, Nachman & Thaler,
  JHEP 10 (2017) 174; Collins, Howe & Nachman, PRL 121 (2018) 241803): a classifier
  of signal region (1) against sidebands (0), weakly supervised.
- ``tag-and-probe`` — per jet: when one jet of a dijet event (the tag) passes a
  background-like selection over *its own* columns ``<q>_jX``, the other jet (the
  probe) becomes a training example; both orderings (j1 tags j2, j2 tags j1). A
  detector trained so scores each jet and combines them into an event score.
- ``truth`` — reads ``/labels``: background only for an AE/VAE, both classes for a
  classifier. The supervised reference; no other strategy sees labels (they are
  stripped from the table before a strategy runs, and used afterwards only to report
  the signal fraction the strategy let in).

>>> import numpy as np
>>> from simkit.events import EventTable
>>> table = EventTable.from_columns({"mjj": np.array([3000.0, 3500.0, 4000.0]),
...                                  "x": np.zeros(3)})
>>> choose(table, "sideband", features=["x"]).event_rows
array([0, 2])
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from simkit.errors import SimkitError
from simkit.events import EventTable
from simkit.regions import (  # noqa: F401  (SR_COLUMN, parse_range: re-exported)
    SIGNAL_REGION,
    SR_COLUMN,
    SignalRegion,
    parse_range,
)

STRATEGIES = ("all", "sideband", "tag-and-probe", "truth")
JETS = ("j1", "j2")
#: Per-jet substructure quantities of the dijet feature set (columns ``<q>_j1``, ``<q>_j2``).
JET_QUANTITIES = ("m", "tau21", "tau32", "n")
#: Default tag: a one-prong-like jet (τ21 > 0.5). A boosted X→qq or Y→qq is two-prong
#: (low τ21), so a resonance event rarely has a tag. On the reference simulation (41k QCD
#: and 5k W'(3500)→X(500)Y(100) passing events, Pythia chain) it keeps 82 % of the QCD
#: events and 30 % of the signal events, cutting the signal fraction of the training jets
#: 3.6-fold; "tau21>0.6" keeps 60 % and 13 %, a 5.5-fold cut.
DEFAULT_TAG = "tau21>0.5"
#: Event scores of a per-jet detector: the jets' scores combined by one of these.
COMBINE = ("max", "mean", "min")


# --------------------------------------------------------------------------- features


def default_features(columns: Sequence[str], exclude: Sequence[str] = (SR_COLUMN,)) -> tuple:
    """The jet-substructure columns (``m, tau21, tau32, n`` of each jet) present; for other
    samples every column but ``exclude``. ``mjj`` stays out: it defines the signal region
    and the bump hunt, and a detector that learned it would sculpt the spectrum.
    ``delta_mj`` stays out too: it is ``m_j1 − m_j2``, already in the inputs."""
    substructure = tuple(f"{q}_{j}" for j in JETS for q in JET_QUANTITIES if f"{q}_{j}" in columns)
    if substructure:
        return substructure
    rest = tuple(c for c in columns if c not in exclude)
    if not rest:
        raise SimkitError(f"no feature columns left once {', '.join(exclude)} is set aside")
    return rest


def jet_quantities(features: Sequence[str], columns: Sequence[str]) -> tuple[str, ...]:
    """Per-jet quantities named by ``features`` (``m`` or ``m_j1`` both mean ``m``), each
    checked to exist for both jets."""
    quantities: list[str] = []
    for name in features:
        stem = name[:-3] if name.endswith(("_j1", "_j2")) else name
        if stem not in quantities:
            quantities.append(stem)
    missing = [f"{q}_{j}" for q in quantities for j in JETS if f"{q}_{j}" not in columns]
    if missing:
        raise SimkitError(
            f"tag-and-probe needs per-jet columns <q>_j1 and <q>_j2; missing {', '.join(missing)}"
        )
    return tuple(quantities)


def jet_columns(quantities: Sequence[str], jet: str) -> tuple[str, ...]:
    return tuple(f"{q}_{jet}" for q in quantities)


# --------------------------------------------------------------------------- selections


_OPERATORS = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal}
_CUT = re.compile(
    r"^\s*([A-Za-z_]\w*)\s*(<=|>=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)


@dataclass(frozen=True)
class Cut:
    """One condition on a per-jet quantity, e.g. ``tau21 > 0.5``."""

    quantity: str
    operator: str
    value: float

    def __str__(self) -> str:
        return f"{self.quantity}{self.operator}{self.value:g}"


@dataclass(frozen=True)
class TagSelection:
    """A background-like jet selection: comma-separated cuts, all required.

    It reads only the tag jet's own columns ``<q>_<jet>``: the probe is never looked at.

    >>> TagSelection.parse("tau21>0.5, m<300").quantities
    ('tau21', 'm')
    """

    cuts: tuple[Cut, ...]

    @classmethod
    def parse(cls, text: str) -> TagSelection:
        cuts = []
        for part in str(text).split(","):
            match = _CUT.match(part)
            if not match:
                raise SimkitError(
                    f"--tag: cannot read {part.strip()!r}; write cuts like 'tau21>0.5,m<300' "
                    "(quantities without the _j1/_j2 suffix; operators < <= > >=)"
                )
            quantity, operator, value = match.groups()
            cuts.append(Cut(quantity, operator, float(value)))
        return cls(tuple(cuts))

    @property
    def quantities(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.quantity for c in self.cuts))

    def passes(self, table: EventTable, jet: str) -> np.ndarray:
        """Which events' ``jet`` passes; only columns ``<q>_<jet>`` are read."""
        if jet not in JETS:
            raise SimkitError(f"unknown jet {jet!r}; use {' or '.join(JETS)}")
        mask = np.ones(len(table), bool)
        for cut in self.cuts:
            column = f"{cut.quantity}_{jet}"
            if column not in table.columns:
                raise SimkitError(f"--tag needs column {column!r}, which the sample lacks")
            mask &= _OPERATORS[cut.operator](table.column(column), cut.value)
        return mask

    def __str__(self) -> str:
        return ",".join(map(str, self.cuts))


# --------------------------------------------------------------------------- strategies


@dataclass
class TrainingSet:
    """The examples a strategy chose, with where they came from and what it let in.

    ``features`` are event columns, or for ``per_jet`` sets the per-jet quantities
    ``columns`` of one jet per row. ``event_rows`` is the row of each example in the
    table the strategy ran on; ``targets`` (classifiers only) is 1 for the positive class.
    """

    strategy: str
    features: np.ndarray
    columns: tuple[str, ...]
    weights: np.ndarray
    event_rows: np.ndarray
    targets: np.ndarray | None = None
    per_jet: bool = False
    report: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.event_rows)


def choose(
    table: EventTable,
    strategy: str,
    *,
    features: Sequence[str] | None = None,
    classes: bool = False,
    signal_region: SignalRegion | None = None,
    tag: TagSelection | str | None = None,
) -> TrainingSet:
    """Choose the training examples of ``table`` (passing events only) by ``strategy``.

    ``classes`` asks for two classes to train a classifier on: ``sideband`` gives CWoLa
    (signal region vs sidebands), ``truth`` gives signal vs background. Only ``truth``
    reads labels; the others run on the table with its labels removed. When the table
    has labels, ``report["signal_fraction"]`` is the weighted signal fraction of the
    chosen examples.
    """
    if strategy not in STRATEGIES:
        raise SimkitError(f"unknown label strategy {strategy!r}; use {', '.join(STRATEGIES)}")
    if classes and strategy in ("all", "tag-and-probe"):
        raise SimkitError(
            f"a classifier needs two classes; --labels {strategy} gives one "
            "(use sideband for CWoLa or truth for the supervised reference)"
        )
    if len(table) == 0:
        raise SimkitError("the sample holds no events")
    # strategies other than truth never see labels: they get a table without them
    blind = table if strategy == "truth" else replace(table, labels=None)
    if strategy == "tag-and-probe":
        chosen = _tag_and_probe(blind, features, tag)
    else:
        features = tuple(features) if features else default_features(table.columns)
        if strategy == "all":
            chosen = _event_set(blind, strategy, features, blind.passed.copy())
        elif strategy == "sideband":
            chosen = _sideband(blind, features, signal_region or SignalRegion(), classes)
        else:
            chosen = _truth(blind, features, classes)
    chosen.report = _report(table, chosen)
    return chosen


def _event_set(table, strategy, features, kept, targets=None, **options) -> TrainingSet:
    rows = np.flatnonzero(kept)
    if len(rows) == 0:
        raise SimkitError(f"--labels {strategy} kept no events: nothing to train on")
    return TrainingSet(
        strategy=strategy,
        features=table.select(features).features[rows],
        columns=tuple(features),
        weights=table.weights[rows],
        event_rows=rows,
        targets=None if targets is None else targets[rows].astype(np.float32),
        options=options,
    )


def _sideband(table, features, region: SignalRegion, classes: bool) -> TrainingSet:
    values = table.column(region.column)
    inside = table.passed & region.inside(values)
    outside = table.passed & region.in_sidebands(values)
    options = {"signal_region": region.to_dict(), "cwola": classes}
    if not classes:
        return _event_set(table, "sideband", features, outside, **options)
    if not (inside.any() and outside.any()):
        raise SimkitError("CWoLa needs events both in the signal region and in the sidebands")
    return _event_set(table, "sideband", features, inside | outside, inside, **options)


def _truth(table, features, classes: bool) -> TrainingSet:
    if table.labels is None:
        raise SimkitError("--labels truth needs a sample with /labels (simulation)")
    signal = table.labels == 1
    if classes:
        if not ((table.passed & signal).any() and (table.passed & ~signal).any()):
            raise SimkitError("a supervised classifier needs both signal and background events")
        return _event_set(table, "truth", features, table.passed, signal.astype(np.int8))
    return _event_set(table, "truth", features, table.passed & ~signal)


def _tag_and_probe(table, features, tag) -> TrainingSet:
    tag = (
        TagSelection.parse(DEFAULT_TAG if tag is None else tag)
        if not isinstance(tag, TagSelection)
        else tag
    )
    if features:
        quantities = jet_quantities(features, table.columns)
    else:
        quantities = tuple(
            q for q in JET_QUANTITIES if all(f"{q}_{j}" in table.columns for j in JETS)
        )
        if not quantities:
            raise SimkitError(
                "tag-and-probe needs per-jet columns <q>_j1/<q>_j2 (e.g. m_j1, tau21_j2)"
            )
    blocks, rows, tagged = [], [], {}
    for tag_jet, probe_jet in (("j1", "j2"), ("j2", "j1")):
        mask = table.passed & tag.passes(table, tag_jet)
        tagged[tag_jet] = mask
        index = np.flatnonzero(mask)
        blocks.append(table.select(jet_columns(quantities, probe_jet)).features[index])
        rows.append(index)
    event_rows = np.concatenate(rows)
    if len(event_rows) == 0:
        raise SimkitError(f"tag-and-probe: no jet passes the tag selection {tag}")
    return TrainingSet(
        strategy="tag-and-probe",
        features=np.concatenate(blocks),
        columns=quantities,
        weights=table.weights[event_rows],
        event_rows=event_rows,
        per_jet=True,
        options={
            "tag": str(tag),
            "tagged_j1": int(tagged["j1"].sum()),
            "tagged_j2": int(tagged["j2"].sum()),
            "both_tagged": int((tagged["j1"] & tagged["j2"]).sum()),
        },
    )


def _report(table: EventTable, chosen: TrainingSet) -> dict:
    """How many events the strategy kept and, with labels, the signal it let in."""
    passing = int(table.passed.sum())
    kept = np.zeros(len(table), bool)
    kept[chosen.event_rows] = True
    report = {
        "strategy": chosen.strategy,
        "passing_events": passing,
        "kept_events": int(kept.sum()),
        "kept_fraction": float(kept.sum() / passing) if passing else 0.0,
        "training_examples": len(chosen),
        **{k: v for k, v in chosen.options.items() if not isinstance(v, dict)},
    }
    if table.labels is None:
        report["signal_fraction"] = None
        return report
    signal = table.labels[chosen.event_rows] == 1
    w = chosen.weights
    report["signal_fraction"] = float((w * signal).sum() / w.sum())
    report["signal_events_kept"] = int((kept & (table.labels == 1)).sum())
    if chosen.targets is not None:  # per class: what each side of a classifier holds
        for name, value in (("positive", 1), ("negative", 0)):
            side = chosen.targets == value
            report[f"signal_fraction_{name}_class"] = (
                float((w[side] * signal[side]).sum() / w[side].sum()) if side.any() else None
            )
    return report
