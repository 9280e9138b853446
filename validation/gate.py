"""The validation gate: tests with a known null, stated tolerances, one verdict.

A candidate sample (simulation, a surrogate, a reweighted sample, a background
template) is *validated* against a reference (data) when no test rejects, at a stated
significance level, the hypothesis that the two agree **within stated tolerances**:

* **Classifier AUC** (:func:`auc_p_value`). Under H0 (one distribution) a classifier
  trained on other events scores the held-out events of both samples alike, so the
  held-out AUC is the Mann–Whitney statistic of i.i.d. scores: about normal around 0.5
  with σ₀ = sqrt((n₁ + n₂ + 1) / (12 n₁ n₂)) for n₁, n₂ held-out events (Mann and
  Whitney, Ann. Math. Stat. 18 (1947) 50), whatever the classifier learnt. With event
  weights, n₁, n₂ are Kish's effective sizes (Σw)²/Σw²: the weighted statistic's
  variance has the same form. The test is one-sided, of AUC ≤ 0.5 + δ:
  z = (AUC − 0.5 − δ)/σ₀, p = Φ̄(z).
* **χ² per column** (:func:`shape_chi2`, :func:`chi2_p_value`). The shape χ² of the two
  histograms (candidate scaled to the reference's total) with each bin's variance
  σ²_R + s²σ²_C + (τ · expected)², expected = the candidate's scaled count: a relative
  mis-modelling τ per bin is allowed in quadrature. p = P(χ²_ndf ≥ χ²).

**Verdict** (:func:`calibrated_gate`): validated iff every p-value ≥ α/m, with m the
number of tests (the AUC and one per column): a Bonferroni correction, so an
independent sample of the reference's own distribution fails with probability at most
≈ α, at any sample size. The tolerances are what makes a pass mean something at any
size: without them every real difference fails once the samples are large enough
(175 k data events: simulation × push at AUC 0.502 failed a fixed χ²/ndf ≤ 2); with
them, "validated" means "compatible with agreement to within δ in AUC and τ per bin".

Defaults, and why:

* α = 0.01: a same-distribution candidate fails 1 % of the time or less.
* δ = 0.01: for a mean shift of d standard deviations in one Gaussian feature the best
  classifier's AUC is Φ(d/√2) ≈ 0.5 + 0.28 d, so δ = 0.01 tolerates d ≈ 0.035.
* τ = 0.05: with infinite statistics χ² → Σᵢ εᵢ²/τ² for relative bin deviations εᵢ.
  The same d = 0.035 shift on the default 40 bins (plus under/overflow) reaches the χ²
  test's rejection point at α/m for τ = 0.050–0.053 (m = 2–17), so τ = 0.05 makes the
  two tests tolerate about the same mis-modelling. At small samples the τ term is
  negligible against the counts' own variance and the test is the usual χ² test.

>>> import numpy as np
>>> reference = np.array([250_000.0, 500_000.0, 250_000.0])  # 10⁶ events
>>> candidate = np.array([255_000.0, 500_000.0, 245_000.0])  # a 2 % tilt
>>> histograms = {"x": (reference, reference, candidate, candidate)}  # Σw, Σw² (unweighted)
>>> gate = calibrated_gate(0.503, 250_000, 250_000, histograms)
>>> gate["validated"], round(gate["auc_null_sigma"], 5), round(gate["chi2_p_value_x"], 2)
(True, 0.00082, 0.85)
>>> calibrated_gate(None, None, None, histograms, chi2_tolerance=0.0)["validated"]  # plain χ²
False
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from simkit.errors import SimkitError

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_AUC_TOLERANCE",
    "DEFAULT_CHI2_TOLERANCE",
    "auc_null_sigma",
    "auc_p_value",
    "calibrated_gate",
    "check_gate_options",
    "chi2_p_value",
    "shape_chi2",
]

#: Family-wise significance level of the gate (Bonferroni over its tests).
DEFAULT_ALPHA = 0.01
#: Tolerated excess of the two-sample AUC over 0.5.
DEFAULT_AUC_TOLERANCE = 0.01
#: Tolerated relative mis-modelling per histogram bin, added in quadrature.
DEFAULT_CHI2_TOLERANCE = 0.05


def check_gate_options(
    alpha: float = DEFAULT_ALPHA,
    auc_tolerance: float = DEFAULT_AUC_TOLERANCE,
    chi2_tolerance: float = DEFAULT_CHI2_TOLERANCE,
) -> None:
    """One clear :class:`SimkitError` for a significance level or tolerance out of range."""
    if not 0.0 < _number(alpha) < 1.0:
        raise SimkitError(f"the gate's alpha must be in (0, 1), got {alpha}")
    if not 0.0 <= _number(auc_tolerance) < 0.5:
        raise SimkitError(f"the AUC tolerance must be in [0, 0.5), got {auc_tolerance}")
    if not 0.0 <= _number(chi2_tolerance) < math.inf:
        raise SimkitError(f"the χ² tolerance must be a finite number ≥ 0, got {chi2_tolerance}")


def _number(value: Any) -> float:
    """``value`` as a float; NaN (which fails every comparison) for anything else."""
    if isinstance(value, (bool, str)):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def auc_null_sigma(n_reference: float, n_candidate: float) -> float:
    """Standard deviation of a held-out two-sample AUC when both samples agree.

    σ₀ = sqrt((n₁ + n₂ + 1) / (12 n₁ n₂)), the Mann–Whitney null spread, for n₁, n₂
    held-out events (Kish effective sizes with weights).

    >>> round(auc_null_sigma(1000, 1000), 4)
    0.0129
    """
    n1, n2 = _number(n_reference), _number(n_candidate)
    if not (math.isfinite(n1) and math.isfinite(n2) and n1 > 0 and n2 > 0):
        raise SimkitError(
            f"the held-out effective sample sizes must be positive, got {n_reference} and "
            f"{n_candidate}"
        )
    return math.sqrt((n1 + n2 + 1.0) / (12.0 * n1 * n2))


def auc_p_value(
    auc: float,
    n_reference: float,
    n_candidate: float,
    *,
    tolerance: float = DEFAULT_AUC_TOLERANCE,
) -> float:
    """One-sided p-value of a held-out AUC against AUC ≤ 0.5 + ``tolerance``.

    p = Φ̄((AUC − 0.5 − δ)/σ₀) with σ₀ from :func:`auc_null_sigma`.

    >>> round(auc_p_value(0.5, 1000, 1000, tolerance=0.0), 2)
    0.5
    """
    from scipy.special import ndtr

    check_gate_options(auc_tolerance=tolerance)
    if not 0.0 <= _number(auc) <= 1.0:
        raise SimkitError(f"the AUC must be a number in [0, 1], got {auc}")
    sigma = auc_null_sigma(n_reference, n_candidate)
    return float(ndtr(-(auc - 0.5 - tolerance) / sigma))


def _counts(values, name: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.isfinite(v).all():
        raise SimkitError(f"the {name} histogram is not finite (NaN or inf) in bin {_first(v)}")
    if (v < 0).any():
        raise SimkitError(f"the {name} histogram is negative in bin {int(np.argmax(v < 0))}")
    return v


def _first(v: np.ndarray) -> int:
    return int(np.flatnonzero(~np.isfinite(v))[0])


def shape_chi2(
    reference: np.ndarray,
    reference_w2: np.ndarray,
    candidate: np.ndarray,
    candidate_w2: np.ndarray,
    *,
    tolerance: float = 0.0,
) -> tuple[float, int]:
    """Shape χ² and ndf of two weighted histograms (Σw and Σw² per bin, same bins).

    The candidate is scaled to the reference's total s; then
    χ² = Σᵢ (Rᵢ − s·Cᵢ)² / (σ²_Rᵢ + s²σ²_Cᵢ + (τ·s·Cᵢ)²) over the bins where either is
    filled, and ndf = (filled bins) − 1 for the normalization. ``tolerance`` τ = 0 gives
    the plain statistical χ².

    >>> chi2, ndf = shape_chi2([100, 100], [100, 100], [50, 150], [50, 150])
    >>> round(chi2, 2), ndf  # 50²/(100 + 50) + 50²/(100 + 150)
    (26.67, 1)
    """
    ref, ref_w2 = _counts(reference, "reference"), _counts(reference_w2, "reference Σw²")
    cand, cand_w2 = _counts(candidate, "candidate"), _counts(candidate_w2, "candidate Σw²")
    if not len(ref) == len(ref_w2) == len(cand) == len(cand_w2):
        raise SimkitError(
            f"histograms of different lengths: {len(ref)}, {len(ref_w2)}, {len(cand)}, "
            f"{len(cand_w2)} bins"
        )
    check_gate_options(chi2_tolerance=tolerance)
    if not (ref.sum() > 0 and cand.sum() > 0):
        raise SimkitError("a histogram of the χ² test is empty")
    scale = ref.sum() / cand.sum()
    expected = scale * cand
    variance = ref_w2 + scale**2 * cand_w2 + (tolerance * expected) ** 2
    used = variance > 0
    chi2 = np.sum((ref[used] - expected[used]) ** 2 / variance[used])
    return float(chi2), int(used.sum()) - 1


def chi2_p_value(chi2: float, ndf: int) -> float:
    """P(χ²_ndf ≥ ``chi2``); 1 when there is nothing to test (ndf ≤ 0).

    >>> round(chi2_p_value(41.0, 41), 2)
    0.47
    """
    from scipy.special import chdtrc

    if not 0.0 <= _number(chi2) < math.inf:
        raise SimkitError(f"χ² must be a finite number ≥ 0, got {chi2}")
    return 1.0 if ndf <= 0 else float(chdtrc(ndf, chi2))


def _histograms(item: Any, column: str) -> tuple:
    if all(hasattr(item, a) for a in ("reference", "reference_w2", "candidate", "candidate_w2")):
        return item.reference, item.reference_w2, item.candidate, item.candidate_w2
    if isinstance(item, (tuple, list)) and len(item) == 4:
        return tuple(item)
    raise SimkitError(
        f"column {column!r}: expected histograms (reference, reference_w2, candidate, "
        f"candidate_w2) or a validation.metrics.Binned, got {type(item).__name__}"
    )


def calibrated_gate(
    auc: float | None,
    n_reference_eff: float | None,
    n_candidate_eff: float | None,
    histograms: Mapping[str, Any],
    *,
    alpha: float = DEFAULT_ALPHA,
    auc_tolerance: float = DEFAULT_AUC_TOLERANCE,
    chi2_tolerance: float = DEFAULT_CHI2_TOLERANCE,
) -> dict:
    """The gate's verdict from a held-out AUC and per-column histograms.

    ``auc`` is a held-out two-sample AUC (None: no AUC test) with ``n_reference_eff``,
    ``n_candidate_eff`` the effective sizes of the *held-out* events it was computed on;
    ``histograms`` maps each column to its two histograms on common bins — a
    :class:`validation.metrics.Binned` or a tuple ``(reference, reference_w2, candidate,
    candidate_w2)`` of Σw and Σw² per bin. Validated iff every p-value ≥ ``alpha`` / m
    (Bonferroni over the m tests). Returns a flat dict: ``validated``, ``auc_ok``,
    ``chi2_ok``, ``failing_columns`` (p below α/m), ``auc_null_sigma``,
    ``auc_p_value`` (None without an AUC), ``chi2_p_value_<col>``, ``min_p_value``,
    ``gate_tests`` (m), ``gate_alpha``, ``gate_alpha_per_test``, ``gate_auc_tolerance``,
    ``gate_chi2_tolerance``. See the module docstring for the tests and the defaults.

    >>> import numpy as np
    >>> h = np.array([500.0, 1000.0, 500.0])
    >>> calibrated_gate(0.62, 1000, 1000, {"x": (h, h, h, h)})["failing_columns"]
    []
    >>> calibrated_gate(0.62, 1000, 1000, {"x": (h, h, h, h)})["auc_ok"]
    False
    """
    check_gate_options(alpha, auc_tolerance, chi2_tolerance)
    if auc is None and not histograms:
        raise SimkitError("the gate has nothing to test: no AUC and no histograms")
    out: dict = {}
    p_values: list[float] = []
    if auc is None:
        out["auc_null_sigma"] = out["auc_p_value"] = None
    else:
        if n_reference_eff is None or n_candidate_eff is None:
            raise SimkitError("an AUC needs the effective sizes of its held-out events")
        out["auc_null_sigma"] = auc_null_sigma(n_reference_eff, n_candidate_eff)
        out["auc_p_value"] = auc_p_value(
            auc, n_reference_eff, n_candidate_eff, tolerance=auc_tolerance
        )
        p_values.append(out["auc_p_value"])
    column_p = {}
    for column, item in histograms.items():
        chi2, ndf = shape_chi2(*_histograms(item, column), tolerance=chi2_tolerance)
        column_p[column] = chi2_p_value(chi2, ndf)
        out[f"chi2_p_value_{column}"] = column_p[column]
    p_values += column_p.values()
    tests = len(p_values)
    per_test = alpha / tests
    failing = [column for column, p in column_p.items() if p < per_test]
    auc_ok = auc is None or out["auc_p_value"] >= per_test
    out.update(
        {
            "min_p_value": min(p_values),
            "gate_tests": tests,
            "gate_alpha": alpha,
            "gate_alpha_per_test": per_test,
            "gate_auc_tolerance": auc_tolerance,
            "gate_chi2_tolerance": chi2_tolerance,
            "auc_ok": bool(auc_ok),
            "chi2_ok": not failing,
            "failing_columns": failing,
            "validated": bool(auc_ok) and not failing,
        }
    )
    return out
