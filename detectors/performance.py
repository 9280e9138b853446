"""Judge a score the way the LHC Olympics did: ROC, AUC, SIC and ε_S at fixed ε_B.

- ROC and AUC come from :func:`simkit.stats.weighted_roc` / :func:`~simkit.stats.roc_auc`
  (one implementation for the whole project).
- SIC = ε_S/√ε_B (significance improvement of a cut). Its maximum is taken only over
  cuts that keep at least ``min_background`` background events (default 25): the
  relative uncertainty of √ε_B from n events is 1/(2√n), 10 % at 25, and below that the
  maximum chases fluctuations of a handful of events.
- ε_S at ε_B = 1e-2, 1e-3, 1e-4: the signal efficiency of the loosest cut whose
  background efficiency does not exceed the target (a cut one can really apply), with
  the binomial error √(ε(1−ε)/N_S) (N_S the Kish effective number of signal events).
  ``None`` when the background sample cannot resolve the target (N_B·ε_B < 1).
- :func:`calibrate_threshold` fixes a cut on a background-only sample for a target ε_B.

>>> import numpy as np
>>> perf = performance(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]), min_background=1)
>>> perf.auc, round(perf.max_sic, 3)
(0.75, 1.414)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from simkit.errors import SimkitError
from simkit.stats import effective_sample_size, roc_auc, weighted_roc

MIN_BACKGROUND = 25
EPS_B_TARGETS = (1e-2, 1e-3, 1e-4)


def target_key(target: float) -> str:
    """JSON key of an ε_B target: ``1e-02`` style, stable and sortable."""
    return f"{target:.0e}"


@dataclass
class Performance:
    """The ROC of a score on labelled events, with SIC and ε_S at fixed ε_B.

    ``background_events`` is the (unweighted) number of background events passing each
    ROC point's cut, which decides whether the point is trusted.
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    background_events: np.ndarray
    auc: float
    n_signal: int
    n_background: int
    n_signal_eff: float
    n_background_eff: float
    min_background: int = MIN_BACKGROUND
    eps_b_targets: tuple[float, ...] = EPS_B_TARGETS
    eps_s_at_eps_b: dict = field(default_factory=dict)

    @property
    def trusted(self) -> np.ndarray:
        """ROC points with at least ``min_background`` background events passing."""
        return (self.background_events >= self.min_background) & (self.fpr > 0)

    @property
    def sic(self) -> np.ndarray:
        """ε_S/√ε_B at every ROC point (NaN where ε_B = 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.fpr > 0, self.tpr / np.sqrt(self.fpr), np.nan)

    def _max_index(self) -> int | None:
        trusted = np.flatnonzero(self.trusted)
        if len(trusted) == 0:
            return None
        return int(trusted[np.argmax(self.sic[trusted])])

    @property
    def max_sic(self) -> float | None:
        k = self._max_index()
        return None if k is None else float(self.sic[k])

    def max_sic_error(self) -> float | None:
        """Binomial error of the max SIC from ε_S and ε_B (not the look-elsewhere of the max)."""
        k = self._max_index()
        if k is None:
            return None
        eps_s, eps_b = self.tpr[k], self.fpr[k]
        rel_s = _binomial(eps_s, self.n_signal_eff) / eps_s if eps_s > 0 else 0.0
        rel_b = _binomial(eps_b, self.n_background_eff) / (2 * eps_b)
        return float(self.sic[k] * math.hypot(rel_s, rel_b))

    def metrics(self) -> dict:
        """Flat, JSON-ready numbers (``None`` where a number cannot be computed)."""
        k = self._max_index()
        out = {
            "auc": self.auc,
            "max_sic": self.max_sic,
            "max_sic_error": self.max_sic_error(),
            "max_sic_eps_s": None if k is None else float(self.tpr[k]),
            "max_sic_eps_b": None if k is None else float(self.fpr[k]),
            "max_sic_background_events": None if k is None else int(self.background_events[k]),
            "min_background_events": self.min_background,
            "signal_events": self.n_signal,
            "background_events": self.n_background,
            "eps_s_at_eps_b": {},
            "eps_s_at_eps_b_error": {},
            "background_events_at_eps_b": {},
        }
        for target, (eps_s, error, n_bkg) in self.eps_s_at_eps_b.items():
            key = target_key(target)
            out["eps_s_at_eps_b"][key] = eps_s
            out["eps_s_at_eps_b_error"][key] = error
            out["background_events_at_eps_b"][key] = n_bkg
        return out


def _binomial(eps: float, n_eff: float) -> float:
    return math.sqrt(max(eps * (1.0 - eps), 0.0) / n_eff) if n_eff > 0 else math.nan


def performance(
    scores: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    min_background: int = MIN_BACKGROUND,
    eps_b_targets: Sequence[float] = EPS_B_TARGETS,
) -> Performance:
    """ROC, AUC, SIC and ε_S at fixed ε_B of ``scores`` (higher = more signal-like)."""
    if min_background < 1:
        raise SimkitError(f"minimum background count must be at least 1, got {min_background}")
    labels = np.asarray(labels).reshape(-1)
    w = np.ones(len(labels)) if weights is None else np.asarray(weights, dtype=np.float64)
    fpr, tpr, thresholds = weighted_roc(scores, labels, w)
    # unweighted counts at the same thresholds (ties make the points depend on scores only)
    counts_fpr, _, _ = weighted_roc(scores, labels)
    is_signal = labels == 1
    n_background = int((~is_signal).sum())
    perf = Performance(
        fpr=fpr,
        tpr=tpr,
        thresholds=thresholds,
        background_events=np.rint(counts_fpr * n_background).astype(np.int64),
        auc=roc_auc(scores, labels, w),
        n_signal=int(is_signal.sum()),
        n_background=n_background,
        n_signal_eff=effective_sample_size(w[is_signal]),
        n_background_eff=effective_sample_size(w[~is_signal]),
        min_background=int(min_background),
        eps_b_targets=tuple(eps_b_targets),
    )
    for target in perf.eps_b_targets:
        if target * perf.n_background_eff < 1.0:
            perf.eps_s_at_eps_b[target] = (None, None, None)
            continue
        k = int(np.flatnonzero(fpr <= target)[-1])  # the loosest cut within the target
        eps_s = float(tpr[k])
        perf.eps_s_at_eps_b[target] = (
            eps_s,
            _binomial(eps_s, perf.n_signal_eff),
            int(perf.background_events[k]),
        )
    return perf


def plot_roc(perf: Performance, ax=None, label: str | None = None):
    """Background rejection 1/ε_B against ε_S (log scale), with the ε_B targets marked."""
    ax = _axes(ax)
    keep = perf.fpr > 0
    (line,) = ax.plot(perf.tpr[keep], 1.0 / perf.fpr[keep], label=label or f"AUC {perf.auc:.3f}")
    eps = np.linspace(1e-3, 1, 200)
    ax.plot(eps, 1.0 / eps, ls=":", color="grey", label="random")
    for target, (eps_s, _, _) in perf.eps_s_at_eps_b.items():
        if eps_s is not None and eps_s > 0:
            ax.plot([eps_s], [1.0 / target], "o", color=line.get_color())
    ax.set_yscale("log")
    ax.set_xlabel(r"signal efficiency $\epsilon_S$")
    ax.set_ylabel(r"background rejection $1/\epsilon_B$")
    ax.set_xlim(0, 1)
    ax.legend()
    return ax


def plot_sic(perf: Performance, ax=None, label: str | None = None):
    """SIC = ε_S/√ε_B against ε_S over the trusted ROC points, the maximum marked."""
    ax = _axes(ax)
    trusted = perf.trusted
    (line,) = ax.plot(perf.tpr[trusted], perf.sic[trusted], label=label or "SIC")
    if perf.max_sic is not None:
        k = perf._max_index()
        ax.plot([perf.tpr[k]], [perf.max_sic], "*", ms=12, color=line.get_color())
    ax.axhline(1.0, ls=":", color="grey")
    ax.set_xlabel(r"signal efficiency $\epsilon_S$")
    ax.set_ylabel("SIC  ε$_S$ / √ε$_B$")
    ax.set_title(f"points with ≥ {perf.min_background} background events")
    ax.set_xlim(0, 1)
    ax.legend()
    return ax


def plot_scores(scores, labels=None, weights=None, threshold=None, ax=None, name="score"):
    """Score distributions (signal and background when labelled), the cut marked."""
    ax = _axes(ax)
    scores = np.asarray(scores, dtype=np.float64)
    w = np.ones(len(scores)) if weights is None else np.asarray(weights)
    edges = np.histogram_bin_edges(scores, bins=60)
    if labels is None:
        ax.hist(scores, bins=edges, weights=w, histtype="step", density=True, label="events")
    else:
        for value, text in ((0, "background"), (1, "signal")):
            sel = labels == value
            if sel.any():
                ax.hist(
                    scores[sel], edges, weights=w[sel], histtype="step", density=True, label=text
                )
    if threshold is not None and np.isfinite(threshold):
        ax.axvline(threshold, color="k", ls="--", label="cut")
    ax.set_yscale("log")
    ax.set_xlabel(name)
    ax.set_ylabel("density")
    ax.legend()
    return ax


def _axes(ax):
    if ax is None:
        from simkit.plotting import pyplot

        _, ax = pyplot().subplots(figsize=(6, 4.5))
    return ax


# --------------------------------------------------------------------------- calibration


def calibrate_threshold(
    background_scores: np.ndarray, eps_b: float, weights: np.ndarray | None = None
) -> float:
    """The cut ``score > t`` that keeps at most a fraction ``eps_b`` of a background sample.

    ``t`` is the highest-scoring event that no longer passes; with ties, fewer may pass.

    >>> calibrate_threshold(np.arange(1000.0), 0.01)
    989.0
    """
    if not 0 < eps_b < 1:
        raise SimkitError(f"target ε_B must be between 0 and 1, got {eps_b}")
    scores = np.asarray(background_scores, dtype=np.float64).reshape(-1)
    if not np.isfinite(scores).all():
        raise SimkitError("calibration scores contain NaN or inf")
    w = np.ones(len(scores)) if weights is None else np.asarray(weights, dtype=np.float64)
    if eps_b * effective_sample_size(w) < 1:
        raise SimkitError(
            f"a calibration sample of {len(scores)} events cannot resolve ε_B = {eps_b:g} "
            f"(needs at least {math.ceil(1 / eps_b)} effective events)"
        )
    order = np.argsort(-scores, kind="mergesort")
    fraction = np.cumsum(w[order]) / w.sum()
    n_pass = int(np.searchsorted(fraction, eps_b, side="right"))
    return float(scores[order][n_pass])
