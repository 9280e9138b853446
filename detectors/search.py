"""The search: cut on data-against-template in an mjj window, and count what survives.

For one signal-region window :func:`search_window`

1. fits the data's uncut mjj spectrum in the sidebands with the dijet function
   (:func:`detectors.evaluate.bump_hunt`): the background count B ± σ_B in the window,
   and the uncut bump hunt's local Z (``z_local_before_cut``);
2. trains the k-folded template classifier (:mod:`detectors.template`) on the data and
   the template inside the window;
3. cuts at stated data efficiencies ε (default 10 %, 1 %, 0.1 %). The template's
   efficiency ε_T for the same cut, times B, is the expected background:
   b = ε_T·B, with σ_b² = (ε_T σ_B)² + (B σ_T)². σ_T² is the template's binomial
   variance (Kish effective count, Jeffreys' prior) plus the part of the spread between
   the folds that statistics does not explain (the variance between the folds' models;
   :meth:`detectors.template.TemplateClassifier.template_efficiency`). When the
   template fails its gate (or always, if asked), ε_T is scaled by r = data/template
   of the same cut's count in the gate's sidebands, with r's error added
   (:func:`_sideband_ratio`): a flow template that its gate flags gave background-only
   local Z ≈ 7 without it, ≈ 0.8 with it. r is always measured and reported. The local
   Z of the observed count n against b ± σ_b is the profile-likelihood Poisson significance
   (:func:`detectors.evaluate.poisson_significance`);
4. cross-checks with the sideband-fit bump hunt after the cut, the data outside the
   window scored by the same models;
5. measures sculpting: the χ²/ndf of the mjj shape of background events that pass the
   cut against those that fail it (independent samples; ≈ 1 when the cut does not
   sculpt), on the template inside the window and, where the data carry labels, on the
   data's background over the whole spectrum (the LaCATHODE check: Hallin et al.,
   PRD 107 (2023) 114012);
6. gates the template: the same classifier, data against the template in the window's
   sidebands, judged by :func:`validation.gate.calibrated_gate`. A template that
   fails it makes the result untrustworthy, and the result says so.

A window's ``z_local`` is the most significant of its cuts, with the trials factor for
having looked at several: p = 1 − (1 − p_min)^k for k cuts (Šidák; conservative, the
nested cuts being positively correlated), Z = Φ⁻¹(1 − p). One fixed cut cannot serve
every signal: a signal that outnumbers ε of a window's data saturates the cut, and a
more populated neighbour holding only the signal's tail wins the scan
(``benchmarks/scan.py``: the best window held the mass in 1 of 4 toy pseudo-experiments
at S/√B = 4 with a fixed 1 % cut). ``primary_efficiency`` fixes the cut instead, chosen
before looking, with no trials factor.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from detectors.evaluate import (
    BumpHunt,
    bump_hunt,
    performance,
    poisson_significance,
)
from detectors.labels import SR_COLUMN, SignalRegion, default_features
from detectors.template import (
    TemplateClassifier,
    TemplateClassifierConfig,
    out_of_fold_auc,
)
from simkit.errors import SimkitError
from simkit.events import EventTable, in_window
from simkit.stats import effective_sample_size

DEFAULT_EFFICIENCIES = (0.1, 0.01, 0.001)
TEMPLATES = ("validated-flow", "sideband-flow", "reweighted-sim", "idealized")
SCULPTING_BINS = 8  # mjj bins inside the window for the template's sculpting χ²


@dataclass(frozen=True)
class SearchConfig:
    """Settings of the search in one window; each default declared once here.

    ``features``: the classifier's inputs (None: every column but mjj that data and
    template share). ``primary_efficiency``: the one cut whose local Z is the window's
    (None: the most significant cut, with the trials factor; see the module).
    ``sideband_correction``: scale the template's efficiency by the cut's count on the
    data over that on the template in the gate's sidebands —
    ``always``, ``never``, or ``auto`` (default): only when the template fails its gate.
    ``sideband_width``: the template gate's sidebands on each side of the window (None:
    one window width). ``gate_*``: the calibrated gate's settings (None: its own
    defaults).
    """

    features: tuple[str, ...] | None = None
    efficiencies: tuple[float, ...] = DEFAULT_EFFICIENCIES
    primary_efficiency: float | None = None
    bin_width: float = 100.0
    sideband_width: float | None = None
    gate: bool = True
    sideband_correction: str = "auto"
    gate_alpha: float | None = None
    gate_auc_tolerance: float | None = None
    gate_chi2_tolerance: float | None = None
    classifier: TemplateClassifierConfig = field(default_factory=TemplateClassifierConfig)

    def __post_init__(self) -> None:
        effs = tuple(float(e) for e in self.efficiencies)
        object.__setattr__(self, "efficiencies", effs)
        if self.features is not None:
            object.__setattr__(self, "features", tuple(self.features))
        if not effs or any(not 0.0 < e < 1.0 for e in effs) or len(set(effs)) != len(effs):
            raise SimkitError(
                f"cut efficiencies must be distinct numbers in (0, 1), got {list(effs)}"
            )
        if self.primary_efficiency is not None and self.primary_efficiency not in effs:
            raise SimkitError(
                f"the primary efficiency {self.primary_efficiency} must be one of the "
                f"cut efficiencies {list(effs)}"
            )
        if not self.bin_width > 0:
            raise SimkitError(f"the bin width must be positive, got {self.bin_width}")
        if self.sideband_correction not in ("auto", "always", "never"):
            raise SimkitError(
                f"sideband_correction must be auto, always or never, "
                f"got {self.sideband_correction!r}"
            )
        if self.sideband_width is not None and not self.sideband_width > 0:
            raise SimkitError(f"the sideband width must be positive, got {self.sideband_width}")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["classifier"] = self.classifier.to_dict()
        out["features"] = None if self.features is None else list(self.features)
        out["efficiencies"] = list(self.efficiencies)
        return out


@dataclass
class CutResult:
    """The count after one cut, its template estimate and the checks."""

    efficiency: float
    observed: float
    expected: float
    expected_error: float
    template_efficiency: float
    template_efficiency_stat: float
    template_efficiency_fold_spread: float
    template_efficiency_model: float
    sideband_ratio: float | None
    sideband_ratio_error: float | None
    sideband_corrected: bool
    z_local_uncorrected: float
    z_local: float
    bump_z_local: float | None
    bump_message: str
    sculpting_template: float | None
    sculpting_background: float | None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class WindowResult:
    """Everything the search found in one window (plot data kept out of ``to_dict``)."""

    low: float
    high: float
    n_data: int
    n_template: int
    background: float
    background_error: float
    z_local_before_cut: float
    cuts: list[CutResult]
    #: the cut that gives the window's Z (fixed, or the most significant one)
    chosen_efficiency: float
    #: the window's local Z after the cut: the chosen cut's, trials-corrected when the
    #: cut was chosen as the most significant of ``trials`` (1: fixed before looking)
    z_local: float
    trials: int
    gate: dict | None
    auc: float | None = None
    max_sic: float | None = None
    max_sic_error: float | None = None
    classifier: dict = field(default_factory=dict)
    # for the plots
    bump_before: BumpHunt | None = field(default=None, repr=False)
    bump_after: BumpHunt | None = field(default=None, repr=False)
    data_rank: np.ndarray | None = field(default=None, repr=False)  # every data event
    data_mjj: np.ndarray | None = field(default=None, repr=False)
    data_labels: np.ndarray | None = field(default=None, repr=False)
    roc: tuple | None = field(default=None, repr=False)  # (ranks, labels, weights)
    window_scores: tuple | None = field(default=None, repr=False)  # (data, template, w_t)
    window_features: tuple | None = field(default=None, repr=False)
    features: tuple[str, ...] = ()
    fit: TemplateClassifier | None = field(default=None, repr=False)  # scores other events

    @property
    def primary(self) -> CutResult:
        """The cut that gives the window's local Z."""
        return next(c for c in self.cuts if c.efficiency == self.chosen_efficiency)

    @property
    def trustworthy(self) -> bool | None:
        return None if self.gate is None else bool(self.gate["validated"])

    def save(self, path, *, provenance: Mapping | None = None) -> Path:
        """Write the window's result to ``path``, atomically: an HDF5 file whose arrays
        are datasets and the rest JSON (no pickle). It holds all that
        :meth:`SearchResult.to_dict` and :meth:`SearchResult.save_plots` read, not the
        classifier's models (:meth:`load` gives ``fit=None``). ``provenance`` (JSON) is
        stored beside, e.g. which shard of a scan this window is.
        """
        import h5py

        from simkit.io import COMPRESSION, atomic_path, json_default

        record = {name: getattr(self, name) for name in _RECORD}
        record["cuts"] = [c.to_dict() for c in self.cuts]
        record["features"] = list(self.features)
        arrays: dict[str, np.ndarray] = {}
        for name in _ARRAYS:
            if getattr(self, name) is not None:
                arrays[name] = np.asarray(getattr(self, name))
        for name in _TUPLES:
            if getattr(self, name) is not None:
                record[name] = len(getattr(self, name))
                for i, values in enumerate(getattr(self, name)):
                    arrays[f"{name}/{i}"] = np.asarray(values)
        for name in _BUMPS:
            bump = getattr(self, name)
            if bump is None:
                continue
            record[name] = {}
            for f in fields(bump):
                value = getattr(bump, f.name)
                if isinstance(value, np.ndarray):
                    arrays[f"{name}/{f.name}"] = value
                elif isinstance(value, SignalRegion):
                    record[name][f.name] = asdict(value)
                else:
                    record[name][f.name] = value
        with atomic_path(path) as tmp, h5py.File(tmp, "w", libver="v110") as fh:
            fh.attrs["format"] = WINDOW_FORMAT
            fh.attrs["format_version"] = np.int64(WINDOW_FORMAT_VERSION)
            for name, document in (("result", record), ("provenance", provenance or {})):
                text = json.dumps(document, sort_keys=True, default=json_default)
                fh.create_dataset(name, data=text, dtype=h5py.string_dtype(), track_times=False)
            for name, values in arrays.items():
                options = COMPRESSION if values.size >= 1024 else {}
                fh.create_dataset(f"arrays/{name}", data=values, track_times=False, **options)
        return Path(path)

    @classmethod
    def load(cls, path) -> WindowResult:
        """A window's result written by :meth:`save` (``fit`` is None)."""
        import h5py

        try:
            with h5py.File(path, "r") as fh:
                if fh.attrs.get("format") != WINDOW_FORMAT:
                    raise SimkitError(f"{path}: not a search window's result file")
                version = int(fh.attrs.get("format_version", -1))
                if version != WINDOW_FORMAT_VERSION:
                    raise SimkitError(
                        f"{path}: window result format version {version}, this simkit "
                        f"reads {WINDOW_FORMAT_VERSION}"
                    )
                record = json.loads(fh["result"].asstr()[()])
                arrays = {}

                def read(name, obj) -> None:
                    if isinstance(obj, h5py.Dataset):
                        arrays[name] = obj[()]

                if "arrays" in fh:
                    fh["arrays"].visititems(read)
        except OSError as exc:
            raise SimkitError(f"{path}: cannot read the window's result ({exc})") from None
        values = {name: record[name] for name in _RECORD}
        values["cuts"] = [CutResult(**c) for c in record["cuts"]]
        values["features"] = tuple(record["features"])
        for name in _ARRAYS:
            values[name] = arrays.get(name)
        for name in _TUPLES:
            if name in record:
                values[name] = tuple(arrays[f"{name}/{i}"] for i in range(record[name]))
        for name in _BUMPS:
            if name in record:
                state = dict(record[name])
                state["signal_region"] = SignalRegion(**state["signal_region"])
                for f in fields(BumpHunt):
                    if f"{name}/{f.name}" in arrays:
                        state[f.name] = arrays[f"{name}/{f.name}"]
                values[name] = BumpHunt(**state)
        return cls(**values)

    def to_dict(self) -> dict:
        p = self.primary
        return {
            "low": self.low,
            "high": self.high,
            "observed": p.observed,
            "expected": p.expected,
            "expected_error": p.expected_error,
            "z_local": self.z_local,
            "z_local_cut": p.z_local,
            "trials": self.trials,
            "z_local_before_cut": self.z_local_before_cut,
            "efficiency": p.efficiency,
            "n_data": self.n_data,
            "n_template": self.n_template,
            "background": self.background,
            "background_error": self.background_error,
            "trustworthy": self.trustworthy,
            "auc": self.auc,
            "max_sic": self.max_sic,
            "max_sic_error": self.max_sic_error,
            "cuts": [c.to_dict() for c in self.cuts],
        }


#: A window's result file (:meth:`WindowResult.save`): its format name and version.
WINDOW_FORMAT = "simkit-window"
WINDOW_FORMAT_VERSION = 1
# WindowResult's fields as a window's result file stores them: JSON values, arrays,
# tuples of arrays, bump hunts (arrays and JSON)
_RECORD = (
    "low", "high", "n_data", "n_template", "background", "background_error",
    "z_local_before_cut", "chosen_efficiency", "z_local", "trials", "gate", "auc",
    "max_sic", "max_sic_error", "classifier",
)  # fmt: skip
_ARRAYS = ("data_rank", "data_mjj", "data_labels")
_TUPLES = ("roc", "window_scores", "window_features")
_BUMPS = ("bump_before", "bump_after")


# --------------------------------------------------------------------------- pieces


def _check_columns(table: EventTable, names: Sequence[str], what: str) -> None:
    missing = [c for c in names if c not in table.columns]
    if missing:
        raise SimkitError(
            f"the {what} has no column {', '.join(map(repr, missing))} "
            f"(it has: {', '.join(table.columns)})"
        )


def _check_weights(table: EventTable, what: str) -> np.ndarray:
    w = np.asarray(table.weights, dtype=np.float64)
    bad = ~np.isfinite(w)
    if bad.any():
        raise SimkitError(f"the {what} has a non-finite weight at row {int(np.argmax(bad))}")
    if (w < 0).any():
        raise SimkitError(f"the {what} has a negative weight at row {int(np.argmax(w < 0))}")
    return w


def _finite(table: EventTable, columns: Sequence[str], what: str) -> None:
    bad = table.select(columns).first_nonfinite()
    if bad is not None:
        raise SimkitError(f"the {what} has a non-finite {bad[0]} at row {bad[1]}")


def search_features(data: EventTable, template: EventTable, features=None) -> tuple[str, ...]:
    """The classifier's inputs: ``features``, or every non-mjj column both tables share
    among the detectors' defaults."""
    if features is None:
        shared = [c for c in default_features(data.columns) if c in template.columns]
        if not shared:
            raise SimkitError(
                "the data and the template share no feature column; name them with --features"
            )
        return tuple(shared)
    features = tuple(features)
    # mjj may be a feature (CATHODE uses it); the template's mjj must then match the data's
    _check_columns(data, features, "data")
    _check_columns(template, features, "template")
    return features


def gate_sidebands(region: SignalRegion, width: float | None) -> tuple[tuple, tuple]:
    """The template gate's two sidebands next to the window: ``(low…, …high)``."""
    width = (region.high - region.low) if width is None else float(width)
    return (region.low - width, region.low), (region.high, region.high + width)


def template_gate(
    data: EventTable,
    template: EventTable,
    region: SignalRegion,
    features: Sequence[str],
    config: SearchConfig,
    *,
    seed: int = 0,
) -> dict | None:
    """Data against the template in the window's sidebands, with the search's classifier.

    The classifier's out-of-fold AUC and each feature's χ² go to the calibrated gate
    (:func:`validation.gate.calibrated_gate`). ``None`` when the template has no
    events in the sidebands (the gate cannot be run, which the search reports).
    """
    from validation.gate import calibrated_gate
    from validation.metrics import binned

    (lo1, hi1), (lo2, hi2) = gate_sidebands(region, config.sideband_width)

    def sidebands(table):
        m = table.column(SR_COLUMN)
        return table.mask(in_window(m, lo1, hi1) | in_window(m, lo2, hi2))

    d, t = sidebands(data), sidebands(template)
    k = config.classifier.folds
    if len(d) < 10 * k or len(t) < 10 * k:
        return None
    gate_classifier = TemplateClassifierConfig.from_dict(
        {**config.classifier.to_dict(), "ensemble": 1}
    )
    fit = TemplateClassifier(gate_classifier, seed=seed).fit(
        d.select(features).features,
        t.select(features).features,
        d.weights,
        t.weights,
    )
    auc = out_of_fold_auc(fit)
    rows = fit.template_rows_
    histograms = {
        name: binned(
            d.column(name),
            t.column(name)[rows],
            bins=20,
            reference_weights=d.weights,
            candidate_weights=t.weights[rows],
        )
        for name in features
    }
    options = {
        key: value
        for key, value in (
            ("alpha", config.gate_alpha),
            ("auc_tolerance", config.gate_auc_tolerance),
            ("chi2_tolerance", config.gate_chi2_tolerance),
        )
        if value is not None
    }
    verdict = calibrated_gate(
        auc,
        effective_sample_size(d.weights),
        effective_sample_size(t.weights[rows]),
        histograms,
        **options,
    )
    return {
        **verdict,
        "auc": auc,
        "sidebands": [[lo1, hi1], [lo2, hi2]],
        "n_data": len(d),
        "n_template": len(rows),
    }


def _sculpting(mjj: np.ndarray, weights: np.ndarray, passing: np.ndarray, edges) -> float | None:
    """χ²/ndf of the mjj shape of the events passing the cut against all of them.

    Each bin's passing weight P_i is binomial around f·T_i (T_i the bin's total, f the
    overall passing fraction), with variance f(1−f)·Σw²_i: χ² = Σ (P_i − f T_i)² /
    (f(1−f) Σw²_i) over filled bins, ndf = bins − 1. Pooling keeps a small passing sample
    from turning its empty bins into the failing sample's whole count (a two-histogram
    χ² does). None: fewer than 10 events on either side.
    """
    if passing.sum() < 10 or (~passing).sum() < 10:
        return None
    total, _ = np.histogram(mjj, edges, weights=weights)
    passed, _ = np.histogram(mjj[passing], edges, weights=weights[passing])
    w2, _ = np.histogram(mjj, edges, weights=weights * weights)
    f = passed.sum() / total.sum()
    used = w2 > 0
    ndf = int(used.sum()) - 1
    if ndf < 1 or not 0 < f < 1:
        return None
    chi2 = np.sum((passed[used] - f * total[used]) ** 2 / (f * (1 - f) * w2[used]))
    return float(chi2 / ndf)


def _sideband_ratio(data_pass, data_w, template_pass, template_w) -> tuple[float, float]:
    """Data over template for one cut in the sidebands: r = (k + 1)/(μ + 1) ± error.

    k is the data passing (Kish effective count), μ the template's prediction of it (its
    passing fraction × the data's count). One pseudo-event on each side pulls r to 1
    when the sidebands say nothing (a cut that neither passes) and is negligible when
    they do; the error adds k's Poisson error and μ's binomial one.
    """
    n_d = effective_sample_size(data_w)
    k = n_d * data_w[data_pass].sum() / data_w.sum()
    frac = float(template_w[template_pass].sum() / template_w.sum())
    n_t = effective_sample_size(template_w)
    mu = frac * n_d
    sigma_mu = n_d * math.sqrt(max(frac * (1 - frac), 0.0) / n_t)
    ratio = (k + 1.0) / (mu + 1.0)
    return ratio, ratio * math.hypot(1.0 / math.sqrt(k + 1.0), sigma_mu / (mu + 1.0))


# --------------------------------------------------------------------------- the window


def choose_cut(
    cuts: Sequence[CutResult], primary_efficiency: float | None = None
) -> tuple[float, float, int]:
    """The cut that gives a window's local Z: ``(efficiency, z_local, trials)``.

    With ``primary_efficiency`` that cut, its Z, one trial. Otherwise the cut of largest
    Z, its p-value corrected for the k cuts looked at, p = 1 − (1 − p_min)^k (Šidák):

    >>> from types import SimpleNamespace as S
    >>> eff, z, k = choose_cut([S(efficiency=0.1, z_local=1.0), S(efficiency=0.01, z_local=3.0)])
    >>> eff, round(z, 3), k
    (0.01, 2.782, 2)
    """
    from scipy import stats

    if primary_efficiency is not None:
        cut = next(c for c in cuts if c.efficiency == primary_efficiency)
        return cut.efficiency, cut.z_local, 1
    best = max(cuts, key=lambda c: c.z_local)
    k = len(cuts)
    p_min = float(stats.norm.sf(best.z_local))
    if p_min < 1e-300:  # beyond float range: p ≈ k·p_min, i.e. Z² ≈ z² − 2 ln k
        return best.efficiency, math.sqrt(best.z_local**2 - 2.0 * math.log(k)), k
    p = -math.expm1(k * math.log1p(-p_min)) if p_min < 1.0 else 1.0
    return best.efficiency, float(stats.norm.isf(p)), k


def search_window(
    data: EventTable,
    template: EventTable,
    region: SignalRegion,
    config: SearchConfig | None = None,
    *,
    seed: int = 0,
    progress: bool = False,
    extra_signal: EventTable | None = None,
) -> WindowResult:
    """Search one window (see the module). ``data`` and ``template`` are reco-level
    tables with ``mjj`` and the features; their passing events and weights are used.
    Data labels, when present, give AUC and max SIC and are read by nothing else;
    ``extra_signal``, labelled signal events never used in training (a signal-only
    sample), joins the data's own signal events in that ROC (scored like the data
    outside the window: each event by one fold's models).

    >>> import sys; sys.path.insert(0, "tests")
    >>> from dijet_toy import dijet_sample
    >>> rng = np.random.default_rng(2)
    >>> data = dijet_sample(20000, 200, rng).reco
    >>> template = dijet_sample(40000, 0, rng).reco
    >>> config = SearchConfig(classifier=TemplateClassifierConfig(folds=3, ensemble=1))
    >>> result = search_window(data, template, SignalRegion(low=3300.0, high=3700.0),
    ...                        config, seed=1)
    >>> result.z_local > result.z_local_before_cut
    True
    """
    config = config or SearchConfig()
    for table, what in ((data, "data"), (template, "template")):
        _check_columns(table, [SR_COLUMN], what)
    features = search_features(data, template, config.features)
    data = data.passing()
    template = template.passing()
    _check_weights(data, "data")
    _check_weights(template, "template")
    _finite(data, (SR_COLUMN, *features), "data")
    _finite(template, (SR_COLUMN, *features), "template")
    window = SignalRegion(SR_COLUMN, region.low, region.high)
    mjj = data.column(SR_COLUMN).astype(np.float64)
    inside = window.inside(mjj)
    t_inside = window.inside(template.column(SR_COLUMN))
    k = config.classifier.folds
    if inside.sum() < 2 * k:
        raise SimkitError(
            f"{int(inside.sum())} data events in the window {region.low:g}:{region.high:g}: "
            f"too few to search ({2 * k} at least)"
        )
    if t_inside.sum() < 2 * k:
        raise SimkitError(
            f"{int(t_inside.sum())} template events in the window "
            f"{region.low:g}:{region.high:g}: the template does not cover it"
        )

    before = bump_hunt(mjj, data.weights, signal_region=window, bin_width=config.bin_width)
    background = before.expected_sr
    background_error = before.expected_sr_error

    d_in, t_in = data.mask(inside), template.mask(t_inside)
    fit = TemplateClassifier(config.classifier, seed=seed, progress=progress).fit(
        d_in.select(features).features,
        t_in.select(features).features,
        d_in.weights,
        t_in.weights,
    )
    rank = np.zeros(len(data))
    rank[inside] = fit.data_rank_
    if (~inside).any():
        rank[~inside] = fit.rank(data.mask(~inside).select(features).features, seed=1)
    t_mjj = t_in.column(SR_COLUMN)[fit.template_rows_]
    w_t = fit.template_weights_
    template_edges = np.linspace(region.low, region.high, SCULPTING_BINS + 1)
    labels = data.labels
    background_rows = None if labels is None else labels == 0

    gate = None
    if config.gate:
        gate = template_gate(data, template, window, features, config, seed=seed + 1)

    # data over template for the same cut next to the window: what the template gets
    # wrong about this very cut. Always measured; applied when asked, or (auto) when the
    # template fails its gate. Not by default on a template that passes: a resonance
    # wider than the windows puts signal in the sidebands, which r then takes for template
    # error (benchmarks/search.py: 120 of 357 injected W' events; Z after the cut 4.5 →
    # 2.1 for the idealized template), while a template that passes its gate gave
    # unit-normal background-only Z without it.
    (lo1, hi1), (lo2, hi2) = gate_sidebands(window, config.sideband_width)
    d_sb = in_window(mjj, lo1, hi1) | in_window(mjj, lo2, hi2)
    t_all = template.column(SR_COLUMN)
    t_sb = in_window(t_all, lo1, hi1) | in_window(t_all, lo2, hi2)
    measurable = d_sb.sum() >= 10 * k and t_sb.sum() >= 10 * k
    correct = measurable and (
        config.sideband_correction == "always"
        or (config.sideband_correction == "auto" and gate is not None and not gate["validated"])
    )
    t_sb_rank = None
    if measurable:
        t_sb_rank = fit.rank(template.mask(t_sb).select(features).features, seed=3)

    cuts = []
    bumps = {}
    for eps in config.efficiencies:
        passing = rank > 1.0 - eps
        observed = float(data.weights[inside & passing].sum())
        eff = fit.template_efficiency(eps)
        eps_t = eff.value
        relative = [background_error / background, eff.error / eps_t]
        ratio = ratio_error = None
        if measurable:
            ratio, ratio_error = _sideband_ratio(
                passing[d_sb], data.weights[d_sb], t_sb_rank > 1.0 - eps, template.weights[t_sb]
            )
        z_uncorrected = poisson_significance(
            observed, eps_t * background, eps_t * background * math.hypot(*relative)
        )
        if correct:
            eps_t *= ratio
            relative.append(ratio_error / ratio)
        expected = eps_t * background
        error = expected * math.hypot(*relative)
        z = poisson_significance(observed, expected, error)
        bump_z, message = None, ""
        try:
            after = bump_hunt(
                mjj[passing],
                data.weights[passing],
                signal_region=window,
                mjj_range=(before.edges[0], before.edges[-1]),
                bin_width=config.bin_width,
            )
            bump_z = after.z_local
            bumps[eps] = after
        except SimkitError as exc:
            message = str(exc)
        sculpt_bkg = None
        if background_rows is not None:
            rows = background_rows
            sculpt_bkg = _sculpting(mjj[rows], data.weights[rows], passing[rows], before.edges)
        cuts.append(
            CutResult(
                efficiency=eps,
                observed=observed,
                expected=expected,
                expected_error=error,
                template_efficiency=eps_t,
                template_efficiency_stat=eff.stat,
                template_efficiency_fold_spread=eff.fold_spread,
                template_efficiency_model=eff.model,
                sideband_ratio=ratio,
                sideband_ratio_error=ratio_error,
                sideband_corrected=correct,
                z_local_uncorrected=z_uncorrected,
                z_local=z,
                bump_z_local=bump_z,
                bump_message=message,
                sculpting_template=_sculpting(
                    t_mjj, w_t, fit.template_rank_ > 1.0 - eps, template_edges
                ),
                sculpting_background=sculpt_bkg,
            )
        )

    chosen, z_window, trials = choose_cut(cuts, config.primary_efficiency)

    auc = max_sic = max_sic_error = None
    roc = None
    if labels is not None:
        roc_rank, roc_labels, roc_w = fit.data_rank_, labels[inside], d_in.weights
        if extra_signal is not None:
            sig = extra_signal.passing()
            _check_columns(sig, (SR_COLUMN, *features), "signal sample")
            sig = sig.mask(window.inside(sig.column(SR_COLUMN)))
            if len(sig):
                roc_rank = np.r_[roc_rank, fit.rank(sig.select(features).features, seed=2)]
                roc_labels = np.r_[roc_labels, np.ones(len(sig), np.int8)]
                roc_w = np.r_[roc_w, sig.weights]
        if 0 < roc_labels.sum() < len(roc_labels):
            perf = performance(roc_rank, roc_labels, roc_w)
            auc, max_sic, max_sic_error = perf.auc, perf.max_sic, perf.max_sic_error()
            roc = (roc_rank, roc_labels, roc_w)

    return WindowResult(
        low=float(region.low),
        high=float(region.high),
        n_data=int(inside.sum()),
        n_template=len(w_t),
        background=background,
        background_error=background_error,
        z_local_before_cut=before.z_local,
        cuts=cuts,
        chosen_efficiency=chosen,
        z_local=z_window,
        trials=trials,
        gate=gate,
        auc=auc,
        max_sic=max_sic,
        max_sic_error=max_sic_error,
        classifier=fit.describe(),
        bump_before=before,
        bump_after=bumps.get(chosen),
        data_rank=rank,
        data_mjj=mjj,
        data_labels=labels,
        roc=roc,
        window_scores=(fit.data_score_, fit.template_score_, w_t),
        window_features=(
            d_in.select(features).features,
            d_in.weights,
            t_in.select(features).features[fit.template_rows_],
            w_t,
        ),
        features=features,
        fit=fit,
    )


# --------------------------------------------------------------------------- the result


@dataclass
class SearchResult:
    """The search over one or more windows (``metrics.json`` is :meth:`to_dict`)."""

    windows: list[WindowResult]
    template: str
    config: SearchConfig
    notes: list[str] = field(default_factory=list)
    #: a scan's range, width rule and global significance (:func:`detectors.scan.scan`)
    scan: dict | None = None

    @property
    def best(self) -> WindowResult:
        return max(self.windows, key=lambda w: w.z_local)

    @property
    def trustworthy(self) -> bool | None:
        """Whether the claim can be trusted: the best window's template passed its gate
        (None: not gated). Other windows' verdicts are in ``windows`` (and counted in a
        scan's ``n_untrusted``)."""
        return self.best.trustworthy

    def to_dict(self) -> dict:
        best = self.best
        out = {
            "windows": [w.to_dict() for w in self.windows],
            "best": best.to_dict(),
            "template": self.template,
            "gate": best.gate,
            "trustworthy": self.trustworthy,
            "features": list(best.features),
            "config": self.config.to_dict(),
            "notes": list(self.notes),
        }
        if self.scan is not None:
            out["z_global"] = self.scan["z_global"]
            out["n_windows"] = self.scan["n_windows"]
            out["scan"] = self.scan
        if best.auc is not None:
            out["auc"] = best.auc
            out["max_sic"] = best.max_sic
            out["max_sic_error"] = best.max_sic_error
        return out

    def summary_line(self) -> str:
        best = self.best
        p = best.primary
        word = {
            True: "trusted",
            False: "NOT TRUSTWORTHY (template fails its gate)",
            None: "no gate",
        }
        scan = ""
        if self.scan is not None:
            scan = (
                f"; scan of {self.scan['n_windows']} windows, global Z = "
                f"{self.scan['z_global']:.2f}σ"
            )
        return (
            f"search ({self.template}) in {best.low:g}–{best.high:g} GeV: "
            f"Z = {best.z_local_before_cut:.2f}σ before the cut, {best.z_local:.2f}σ after "
            f"keeping {p.efficiency:.2%} of the data{_trials(best)} ({p.observed:.0f} observed, "
            f"{p.expected:.1f} ± {p.expected_error:.1f} expected){scan}; "
            f"{word[self.trustworthy]}"
        )

    def plot(self, ax=None):
        """Display-style: the scan's local Z against the window centre (a scan), or the
        best window's spectrum with the template's estimate; returns the axes."""
        return plot_scan(self, ax) if self.scan is not None else plot_spectrum(self.best, ax)

    def save(self, folder) -> Path:
        """``metrics.json`` and the plots into ``folder`` (written atomically each)."""
        from simkit.io import write_json

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.save_plots(folder)
        return write_json(folder / "metrics.json", self.to_dict())

    def save_plots(self, folder) -> list[Path]:
        """``features.png`` (data vs template in the window), ``scores.png``,
        ``spectrum.png`` (after the cut, with the template's estimate), ``bump_hunt.png``
        (the cross-check), and ``roc.png``/``sic.png`` where the data carry labels."""
        from detectors.evaluate import plot_roc, plot_sic, save_bump_hunt
        from simkit.plotting import pyplot, savefig
        from validation.plots import plot_columns

        plt = pyplot()
        folder = Path(folder)
        best = self.best
        written = []
        x_d, w_d, x_t, w_t = best.window_features
        fig = plot_columns(
            best.features,
            (x_d, w_d),
            {f"template ({self.template})": (x_t, w_t)},
            reference_label="data (window)",
        )
        written.append(savefig(fig, folder / "features.png"))

        fig, ax = plt.subplots(figsize=(6, 4.5))
        plot_template_scores(best, ax)
        written.append(savefig(fig, folder / "scores.png"))

        fig, ax = plt.subplots(figsize=(6.5, 4.8))
        plot_spectrum(best, ax)
        written.append(savefig(fig, folder / "spectrum.png"))
        if best.bump_after is not None:
            written.append(save_bump_hunt(best.bump_after, folder / "bump_hunt.png"))
        if self.scan is not None:
            fig, ax = plt.subplots(figsize=(7, 4.5))
            plot_scan(self, ax)
            written.append(savefig(fig, folder / "scan.png"))
        if best.roc is not None:
            perf = performance(*best.roc)
            for name, draw in (("roc", plot_roc), ("sic", plot_sic)):
                fig, ax = plt.subplots(figsize=(6, 4.5))
                draw(perf, ax, label=f"template classifier ({self.template})")
                written.append(savefig(fig, folder / f"{name}.png"))
        return written


def _trials(window: WindowResult) -> str:
    """ ", best of 3 cuts" when the window's Z carries a trials factor."""
    return f", best of {window.trials} cuts" if window.trials > 1 else ""


def plot_scan(result: SearchResult, ax=None):
    """Local Z before and after the cut against the window centre, with 3σ and 5σ."""
    from detectors.evaluate import _axes

    ax = _axes(ax)
    centre = [0.5 * (w.low + w.high) for w in result.windows]
    ax.plot(centre, [w.z_local_before_cut for w in result.windows], "o--", label="before the cut")
    ax.plot(centre, [w.z_local for w in result.windows], "s-", label="after the cut")
    for level in (3, 5):
        ax.axhline(level, color="grey", ls=":", lw=1)
        ax.text(centre[0], level, f" {level}σ", va="bottom", color="grey")
    untrusted = [c for c, w in zip(centre, result.windows, strict=True) if w.trustworthy is False]
    if untrusted:
        ax.plot(untrusted, [0] * len(untrusted), "x", color="C3", label="template fails its gate")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel(r"window centre $m_{jj}$ [GeV]")
    ax.set_ylabel("local Z")
    if result.scan is not None:
        ax.set_title(f"global Z = {result.scan['z_global']:.2f}σ ({len(centre)} windows)")
    ax.legend(fontsize=9)
    return ax


def plot_template_scores(window: WindowResult, ax=None):
    """The classifier's out-of-fold logits for data and template in the window."""
    from detectors.evaluate import _axes

    ax = _axes(ax)
    data_s, template_s, w_t = window.window_scores
    edges = np.histogram_bin_edges(np.r_[data_s, template_s], bins=50)
    ax.hist(template_s, edges, weights=w_t, density=True, histtype="step", label="template")
    ax.hist(data_s, edges, density=True, histtype="step", label="data")
    ax.set_yscale("log")
    ax.set_xlabel("classifier logit (out of fold)")
    ax.set_ylabel("density")
    ax.legend()
    return ax


def plot_spectrum(window: WindowResult, ax=None):
    """Data mjj before and after the window's chosen cut, the sideband fit, and the template's
    estimate ε_T × fit inside the window."""
    from detectors.evaluate import _axes

    ax = _axes(ax)
    before = window.bump_before
    edges = before.edges
    centre = 0.5 * (edges[1:] + edges[:-1])
    p = window.primary
    passing = window.data_rank > 1.0 - p.efficiency
    counts_all, _ = np.histogram(window.data_mjj, edges)
    counts_cut, _ = np.histogram(window.data_mjj[passing], edges)
    ax.errorbar(centre, counts_all, np.sqrt(counts_all), fmt="o", ms=3, color="k", label="data")
    ax.step(edges[1:], before.expected, where="pre", color="C0", label="sideband fit")
    ax.errorbar(
        centre,
        counts_cut,
        np.sqrt(counts_cut),
        fmt="s",
        ms=3,
        color="C3",
        label=f"data, cut at {p.efficiency:.1%}",
    )
    sr = before.in_signal_region
    estimate = before.expected * p.template_efficiency
    ax.step(
        edges[1:][sr],
        estimate[sr],
        where="pre",
        color="C1",
        lw=2,
        label=f"template estimate (ε_T = {p.template_efficiency:.2%})",
    )
    ax.axvspan(window.low, window.high, color="C1", alpha=0.12)
    ax.set_yscale("log")
    ax.set_xlabel(r"$m_{jj}$ [GeV]")
    ax.set_ylabel(f"events / {np.diff(edges).mean():.0f} GeV")
    ax.set_title(
        f"Z = {window.z_local_before_cut:.2f}σ before, {window.z_local:.2f}σ after the cut"
        f"{_trials(window)}\n({p.observed:.0f} obs, {p.expected:.1f} ± {p.expected_error:.1f} exp)",
        fontsize=10,
    )
    ax.legend(fontsize=9)
    return ax


def search(
    data: EventTable,
    template: EventTable,
    windows: Sequence[SignalRegion],
    config: SearchConfig | None = None,
    *,
    template_name: str = "template",
    seed: int = 0,
    progress: bool = False,
    extra_signal: EventTable | None = None,
) -> SearchResult:
    """:func:`search_window` in each of ``windows`` (each with its own seed)."""
    if not windows:
        raise SimkitError("no window to search")
    config = config or SearchConfig()
    results = [
        search_window(
            data,
            template,
            w,
            config,
            seed=seed + 1000 * i,
            progress=progress,
            extra_signal=extra_signal,
        )
        for i, w in enumerate(windows)
    ]
    return SearchResult(results, template_name, config)
