"""Evaluate a detector's scores at once (:func:`evaluate`): ROC, SIC and ε_S at ε_B
where there are labels (:mod:`detectors.performance`), a cut fixed for a target ε_B,
and the bump hunt after it (:mod:`detectors.bumphunt`). The names of those two modules
are re-exported here.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> labels = (rng.random(2000) < 0.5).astype(np.int8)
>>> result = evaluate(rng.normal(size=2000) + labels, labels=labels)
>>> round(result.performance.auc, 2)
0.77
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from detectors.bumphunt import (  # noqa: F401  (re-exported)
    SQRT_S,
    BumpHunt,
    bump_edges,
    bump_hunt,
    default_mjj_range,
    dijet_function,
    poisson_significance,
    save_bump_hunt,
)
from detectors.performance import (  # noqa: F401  (re-exported)
    EPS_B_TARGETS,
    MIN_BACKGROUND,
    Performance,
    _axes,
    calibrate_threshold,
    performance,
    plot_roc,
    plot_scores,
    plot_sic,
    target_key,
)
from simkit.errors import SimkitError
from simkit.regions import SignalRegion


@dataclass
class Evaluation:
    """ROC/SIC on labelled events, a calibrated cut and the bump hunt after it."""

    score_name: str
    scores: np.ndarray
    labels: np.ndarray | None
    weights: np.ndarray
    roc_events: str
    roc_mask: np.ndarray
    performance: Performance | None
    threshold: float | None
    threshold_source: str
    target_eps_b: float
    bump: BumpHunt | None = None
    bump_before_cut: BumpHunt | None = None
    notes: list[str] = field(default_factory=list)

    def metrics(self) -> dict:
        """Flat, documented keys (see docs/howto/detectors.md, `simkit detect evaluate`)."""
        out: dict = {"score": self.score_name, "events": len(self.scores)}
        out["roc_events"] = self.roc_events
        out["roc_events_used"] = int(self.roc_mask.sum())
        if self.performance is not None:
            out.update(self.performance.metrics())
        else:
            out.update(auc=None, max_sic=None, eps_s_at_eps_b=None)
        out["threshold"] = self.threshold
        out["threshold_source"] = self.threshold_source
        out["target_eps_b"] = self.target_eps_b
        if self.threshold is not None:
            cut = self.scores > self.threshold
            out["cut_pass_fraction"] = float(self.weights[cut].sum() / self.weights.sum())
            if self.labels is not None:
                for name, value in (("eps_b", 0), ("eps_s", 1)):
                    sel = self.labels == value
                    w = self.weights[sel]
                    out[f"cut_{name}"] = float(w[cut[sel]].sum() / w.sum()) if sel.any() else None
        if self.bump is not None:
            out.update(self.bump.metrics())
        if self.bump_before_cut is not None:
            out["bump_z_local_before_cut"] = self.bump_before_cut.z_local
        out["notes"] = list(self.notes)
        return out

    def save_plots(self, folder) -> list:
        """roc.png, sic.png, scores.png, bump_hunt.png (those that apply) into ``folder``."""
        from pathlib import Path

        from simkit.plotting import pyplot, savefig

        plt = pyplot()
        folder = Path(folder)
        written = []
        if self.performance is not None:
            for name, draw in (("roc", plot_roc), ("sic", plot_sic)):
                fig, ax = plt.subplots(figsize=(6, 4.5))
                draw(self.performance, ax, label=self.score_name)
                written.append(savefig(fig, folder / f"{name}.png"))
        fig, ax = plt.subplots(figsize=(6, 4.5))
        plot_scores(self.scores, self.labels, self.weights, self.threshold, ax, self.score_name)
        written.append(savefig(fig, folder / "scores.png"))
        if self.bump is not None:
            written.append(save_bump_hunt(self.bump, folder / "bump_hunt.png"))
        return written


def evaluate(
    scores: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    mjj: np.ndarray | None = None,
    signal_region: SignalRegion | None = None,
    roc_events: str = "auto",
    min_background: int = MIN_BACKGROUND,
    eps_b_targets: Sequence[float] = EPS_B_TARGETS,
    target_eps_b: float = 1e-2,
    calibration_scores: np.ndarray | None = None,
    calibration_weights: np.ndarray | None = None,
    bin_width: float = 100.0,
    mjj_range: tuple[float, float] | None = None,
    sqrt_s: float = SQRT_S,
    score_name: str = "score",
) -> Evaluation:
    """Evaluate anomaly scores of (passing) events: ROC/SIC when labelled, then a cut
    fixed for ``target_eps_b`` and the bump hunt after it when ``mjj`` is given.

    ``roc_events``: ``signal-region`` restricts the ROC to events in the signal region
    (the LHC Olympics convention), ``all`` uses every event, ``auto`` takes the signal
    region when ``mjj`` is given. The cut is calibrated on ``calibration_scores`` (a
    background-only sample) when given, else on the evaluated events themselves — a
    fair proxy for background when the signal is a small admixture; labels never enter.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    n = len(scores)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    region = signal_region or SignalRegion()
    notes: list[str] = []
    if roc_events not in ("auto", "all", "signal-region"):
        raise SimkitError(f"unknown ROC events {roc_events!r}; use auto, all or signal-region")
    if roc_events == "auto":
        roc_events = "signal-region" if mjj is not None else "all"
    if roc_events == "signal-region":
        if mjj is None:
            raise SimkitError(f"ROC in the signal region needs the {region.column} column")
        roc_mask = region.inside(np.asarray(mjj))
    else:
        roc_mask = np.ones(n, bool)

    perf = None
    if labels is None:
        notes.append("no labels: ROC, AUC and SIC need a labelled (simulated) sample")
    else:
        labels = np.asarray(labels).reshape(-1)
        sel_labels = labels[roc_mask]
        if (sel_labels == 1).any() and (sel_labels == 0).any():
            perf = performance(
                scores[roc_mask],
                sel_labels,
                w[roc_mask],
                min_background=min_background,
                eps_b_targets=eps_b_targets,
            )
            if perf.max_sic is None:
                notes.append(
                    f"no cut keeps {min_background} background events: max SIC not computed"
                )
        else:
            notes.append(f"the {roc_events} events lack signal or background: no ROC")

    if calibration_scores is not None:
        threshold = calibrate_threshold(calibration_scores, target_eps_b, calibration_weights)
        source = "calibration sample"
    else:
        threshold = calibrate_threshold(scores, target_eps_b, w)
        source = "evaluated sample (background-dominated)"

    hunts: dict[str, BumpHunt | None] = {"after": None, "before": None}
    if mjj is not None:
        mjj = np.asarray(mjj, dtype=np.float64)
        fit_range = mjj_range or default_mjj_range(mjj, region, bin_width)
        options = {"signal_region": region, "mjj_range": fit_range, "bin_width": bin_width}
        for when, rows in (("after", scores > threshold), ("before", slice(None))):
            try:
                hunts[when] = bump_hunt(mjj[rows], w[rows], sqrt_s=sqrt_s, **options)
            except SimkitError as exc:  # e.g. too few events left: say so, go on
                notes.append(f"bump hunt {when} the cut not done: {exc}")
    else:
        notes.append(f"no {region.column} column: no bump hunt")
    return Evaluation(
        score_name=score_name,
        scores=scores,
        labels=labels,
        weights=w,
        roc_events=roc_events,
        roc_mask=roc_mask,
        performance=perf,
        threshold=threshold,
        threshold_source=source,
        target_eps_b=target_eps_b,
        bump=hunts["after"],
        bump_before_cut=hunts["before"],
        notes=notes,
    )
