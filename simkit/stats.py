"""Weighted statistics shared by validation and detectors: ROC, AUC, ESS, quantiles.

One implementation each, so that the two-sample AUC of the validation gate and the
detector AUC are computed the same way.

>>> import numpy as np
>>> roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
0.75
"""

from __future__ import annotations

import numpy as np

from simkit.errors import SimkitError


def _weights(n: int, weights: np.ndarray | None) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape != (n,):
        raise SimkitError(f"{w.shape[0]} weights for {n} values")
    if not np.isfinite(w).all():
        raise SimkitError("weights contain NaN or inf")
    return w


def weighted_roc(
    scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve for "higher score = more signal-like", ties handled as one threshold.

    Returns ``(fpr, tpr, thresholds)``, starting at (0, 0) with threshold +inf: the
    weighted fractions of background (label 0) and signal (label 1) with
    ``score >= threshold``.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if scores.shape != labels.shape:
        raise SimkitError(f"{scores.shape[0]} scores for {labels.shape[0]} labels")
    if not np.isfinite(scores).all():
        raise SimkitError("scores contain NaN or inf")
    w = _weights(len(scores), weights)
    is_signal = labels == 1
    w_sig, w_bkg = w[is_signal].sum(), w[~is_signal].sum()
    if not (w_sig > 0 and w_bkg > 0):
        raise SimkitError("a ROC curve needs both signal (label 1) and background (label 0)")
    order = np.argsort(-scores, kind="mergesort")
    s, sig, ww = scores[order], is_signal[order], w[order]
    tp = np.cumsum(ww * sig)
    fp = np.cumsum(ww * ~sig)
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tpr = np.r_[0.0, tp[last_of_tie] / w_sig]
    fpr = np.r_[0.0, fp[last_of_tie] / w_bkg]
    thresholds = np.r_[np.inf, s[last_of_tie]]
    return fpr, tpr, thresholds


def roc_auc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Area under the weighted ROC curve (trapezoids: ties count one half)."""
    fpr, tpr, _ = weighted_roc(scores, labels, weights)
    # trapezoid rule written out (np.trapz is gone in numpy 2, np.trapezoid new in it)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective number of events, (Σw)² / Σw²."""
    w = np.asarray(weights, dtype=np.float64)
    w2 = float((w * w).sum())
    return float(w.sum()) ** 2 / w2 if w2 > 0 else 0.0


def weighted_quantile(
    values: np.ndarray, quantiles, weights: np.ndarray | None = None
) -> np.ndarray:
    """Quantiles of a weighted sample (linear interpolation of the weighted CDF)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    w = _weights(len(values), weights)
    order = np.argsort(values)
    v, ww = values[order], w[order]
    cdf = (np.cumsum(ww) - 0.5 * ww) / ww.sum()
    return np.interp(np.asarray(quantiles, dtype=np.float64), cdf, v)
