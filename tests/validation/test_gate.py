"""The calibrated validation gate: known nulls, stated tolerances, one verdict.

Toy columns: ``m_j1`` ~ N(100, 10), a jet-mass-like peak of 10 % relative width, and
``tau21_j1`` ~ Beta(4, 3). "A 5 % shift" is a 5 % scale error on the mass
(m → 1.05 m, as a 5 % jet-energy-scale error would do): half the peak's width.
"""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

import validation.gate
from simkit.errors import SimkitError
from simkit.events import EventTable
from simkit.stats import effective_sample_size, roc_auc
from validation.compare import compare, verdict_line
from validation.gate import (
    auc_null_sigma,
    calibrated_gate,
    chi2_p_value,
    shape_chi2,
)
from validation.metrics import auc_null_distribution, binned

#: A cheap classifier for the end-to-end tests (the gate's null holds for any classifier).
CHEAP = {"epochs": 3, "batch_size": 16384}


def _toy(rng, n: int, mass_scale: float = 1.0) -> EventTable:
    return EventTable.from_columns(
        {"m_j1": mass_scale * rng.normal(100.0, 10.0, n), "tau21_j1": rng.beta(4.0, 3.0, n)}
    )


def test_doctests():
    assert doctest.testmod(validation.gate).failed == 0


# --------------------------------------------------------------------------- the AUC's null


def test_analytic_sigma_is_the_weighted_mann_whitney_spread(rng):
    """σ₀ with Kish sizes is the exact null spread of the weighted AUC of i.i.d. scores.

    2000 replicas estimate the spread to 1/sqrt(2·1999) = 1.6 %; 3σ is 4.7 %.
    """
    n_ref, n_cand = 300, 500
    labels = np.r_[np.zeros(n_ref), np.ones(n_cand)].astype(np.int8)
    weights = rng.uniform(0.2, 3.0, n_ref + n_cand)
    aucs = [roc_auc(rng.normal(size=n_ref + n_cand), labels, weights) for _ in range(2000)]
    sigma = auc_null_sigma(
        effective_sample_size(weights[:n_ref]), effective_sample_size(weights[n_ref:])
    )
    assert abs(np.std(aucs, ddof=1) / sigma - 1) < 3 / math.sqrt(2 * 1999)
    assert abs(np.mean(aucs) - 0.5) < 3 * sigma / math.sqrt(2000)


def test_empirical_null_of_a_trained_classifier_agrees_with_sigma(rng):
    """Classifiers trained on two random halves of one sample: their held-out AUCs spread
    as σ₀ says (500 held-out events a side: σ₀ = 0.0183). With 60 trials the measured
    spread has a relative error of 1/sqrt(2·59) = 9.2 %: 3σ is 28 %; the mean is within
    3σ₀/sqrt(60) of 0.5."""
    sample = np.c_[rng.normal(100.0, 10.0, 2000), rng.beta(4.0, 3.0, 2000)]
    null = auc_null_distribution(sample, trials=60, seed=3, device="cpu", epochs=5, batch_size=512)
    sigma = float(np.mean(null.null_sigmas))
    assert sigma == pytest.approx(auc_null_sigma(500, 500))
    assert abs(null.spread / sigma - 1) < 3 / math.sqrt(2 * 59)
    assert abs(np.mean(null.aucs) - 0.5) < 3 * sigma / math.sqrt(60)


@pytest.mark.slow
def test_empirical_null_with_weights_agrees_with_sigma(rng):
    """The same with event weights (Kish sizes in σ₀): 300 trials, relative error
    1/sqrt(2·299) = 4.1 %, 3σ = 12 %."""
    sample = np.c_[rng.normal(100.0, 10.0, 4000), rng.beta(4.0, 3.0, 4000)]
    weights = rng.uniform(0.2, 3.0, 4000)
    null = auc_null_distribution(
        sample, weights=weights, trials=300, seed=5, device="cpu", epochs=5, batch_size=1024
    )
    sigma = float(np.mean(null.null_sigmas))
    assert sigma > auc_null_sigma(1000, 1000)  # the weights cost effective events
    assert abs(null.spread / sigma - 1) < 3 / math.sqrt(2 * 299)
    assert abs(np.mean(null.aucs) - 0.5) < 3 * sigma / math.sqrt(300)


# --------------------------------------------------------------------------- the χ² test


def test_chi2_p_values_are_uniform_under_the_null(rng):
    """Without tolerance, independent samples of one distribution give p < 0.05 in 5 %
    of 400 replicas, ± 3·sqrt(0.05·0.95/400) = ± 3.3 %; the tolerance only raises p."""
    plain, tolerant = [], []
    for _ in range(400):
        h = binned(rng.normal(100, 10, 2000), rng.normal(100, 10, 2000), bins=40)
        histograms = (h.reference, h.reference_w2, h.candidate, h.candidate_w2)
        plain.append(chi2_p_value(*shape_chi2(*histograms)))
        tolerant.append(chi2_p_value(*shape_chi2(*histograms, tolerance=0.05)))
    assert abs(np.mean(np.array(plain) < 0.05) - 0.05) < 3 * math.sqrt(0.05 * 0.95 / 400)
    assert np.all(np.array(tolerant) >= np.array(plain))


def test_shape_chi2_tolerance_in_quadrature():
    # both bins 500 counts off an expected 10 500 (unweighted: Σw² = counts); the 5 %
    # tolerance adds (0.05 · 10 500)² = 525² to each bin's variance
    reference, candidate = np.array([10_000.0, 11_000.0]), np.array([10_500.0, 10_500.0])
    chi2, ndf = shape_chi2(reference, reference, candidate, candidate)
    assert ndf == 1
    assert chi2 == pytest.approx(500**2 / (10_000 + 10_500) + 500**2 / (11_000 + 10_500))
    loose, _ = shape_chi2(reference, reference, candidate, candidate, tolerance=0.05)
    expected = 500**2 / (10_000 + 10_500 + 525**2) + 500**2 / (11_000 + 10_500 + 525**2)
    assert loose == pytest.approx(expected)
    assert chi2_p_value(0.0, 0) == 1.0


# --------------------------------------------------------------------------- the verdict


def _gate_at(rng, n: int, candidate_mass: np.ndarray, candidate_weights=None, **options):
    """The gate on n reference events of ``m_j1``, with the AUC of the Bayes-optimal
    score (the mass itself, monotonic in the likelihood ratio of a pure shift or a
    monotonic tilt) on held-out halves: no training, the gate's own null."""
    reference = rng.normal(100.0, 10.0, n)
    w = np.ones(len(candidate_mass)) if candidate_weights is None else candidate_weights
    half_ref, half_cand = slice(0, n // 2), slice(0, len(candidate_mass) // 2)
    scores = np.r_[reference[half_ref], candidate_mass[half_cand]]
    labels = np.r_[np.zeros(n // 2), np.ones(len(candidate_mass) // 2)].astype(np.int8)
    weights = np.r_[np.ones(n // 2), w[half_cand]]
    auc = roc_auc(scores, labels, weights)
    histograms = {"m_j1": binned(reference, candidate_mass, bins=40, candidate_weights=w)}
    return calibrated_gate(auc, n // 2, effective_sample_size(w[half_cand]), histograms, **options)


def test_gate_at_a_million_events(rng):
    """10⁶ events a side. The same distribution passes; a 5 % mass shift fails both tests;
    a mis-modelling inside the tolerances (a ±2 %-per-σ linear tilt of the mass) passes
    with them and fails without: the tolerances are what "validated" means at this size."""
    n = 1_000_000
    same = _gate_at(rng, n, rng.normal(100.0, 10.0, n))
    assert same["validated"] and same["min_p_value"] > 0.1
    assert same["auc_null_sigma"] == pytest.approx(auc_null_sigma(n // 2, n // 2))

    shifted = _gate_at(rng, n, 1.05 * rng.normal(100.0, 10.0, n))
    assert not shifted["validated"]
    assert not shifted["auc_ok"] and shifted["failing_columns"] == ["m_j1"]

    mass = rng.normal(100.0, 10.0, n)
    tilt = 1 + 0.02 * (mass - 100.0) / 10.0
    assert _gate_at(rng, n, mass, tilt)["validated"]
    strict = _gate_at(rng, n, mass, tilt, auc_tolerance=0.0, chi2_tolerance=0.0)
    assert not strict["auc_ok"] and strict["failing_columns"] == ["m_j1"]


def test_bonferroni_over_the_tests():
    h = np.array([500.0, 1000.0, 500.0])
    columns = {c: (h, h, h, h) for c in ("a", "b", "c")}
    gate = calibrated_gate(0.5, 1000, 1000, columns, alpha=0.02)
    assert gate["gate_tests"] == 4 and gate["gate_alpha_per_test"] == pytest.approx(0.005)
    # an AUC whose p-value lies between α/4 and α: passes only thanks to the correction
    sigma = auc_null_sigma(1000, 1000)
    auc = 0.5 + 0.01 + 2.2 * sigma  # p = Φ̄(2.2) = 0.0139
    assert calibrated_gate(auc, 1000, 1000, columns, alpha=0.02)["auc_ok"]
    assert not calibrated_gate(auc, 1000, 1000, {}, alpha=0.02)["auc_ok"]
    only_histograms = calibrated_gate(None, None, None, columns)
    assert only_histograms["gate_tests"] == 3 and only_histograms["auc_p_value"] is None


def test_compare_passes_an_independent_sample_and_fails_a_shift_at_2k(rng):
    reference = _toy(rng, 2000)
    same = compare(reference, _toy(rng, 2000), device="cpu", n_bootstrap=0, seed=1)
    assert same["validated"], verdict_line(same)
    # held-out halves: 1000 events a side
    assert same["auc_null_sigma"] == pytest.approx(auc_null_sigma(1000, 1000))
    shifted = compare(reference, _toy(rng, 2000, 1.05), device="cpu", n_bootstrap=0, seed=1)
    assert not shifted["validated"] and not shifted["auc_ok"]
    assert shifted["failing_columns"] == ["m_j1"]
    line = verdict_line(shifted)
    assert line.startswith("NOT VALIDATED") and "failing: AUC, m_j1" in line
    for key in (
        "auc",
        "auc_null_sigma",
        "auc_p_value",
        "chi2_p_value_m_j1",
        "chi2_p_value_tau21_j1",
        "chi2_ndf_m_j1",
        "min_p_value",
        "max_chi2_ndf",
        "worst_column",
        "gate_alpha",
        "gate_auc_tolerance",
        "gate_chi2_tolerance",
        "auc_ok",
        "chi2_ok",
        "failing_columns",
        "validated",
    ):
        assert key in shifted


@pytest.mark.slow
def test_compare_at_200k_events(rng):
    """200 k events a side, a cheap classifier: the same distribution passes (σ₀ = 0.0013,
    so the AUC tolerance of 0.01 is 7.7σ₀ away), the 5 % shift fails."""
    reference = _toy(rng, 200_000)
    options = {"device": "cpu", "n_bootstrap": 0, "seed": 2, "classifier": CHEAP}
    same = compare(reference, _toy(rng, 200_000), **options)
    assert same["validated"], verdict_line(same)
    shifted = compare(reference, _toy(rng, 200_000, 1.05), **options)
    assert not shifted["validated"] and not shifted["auc_ok"]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"alpha": 0.0}, "alpha must be in (0, 1), got 0.0"),
        ({"alpha": 1.0}, "alpha must be in (0, 1), got 1.0"),
        ({"alpha": math.nan}, "alpha must be in (0, 1), got nan"),
        ({"auc_tolerance": -0.01}, "AUC tolerance must be in [0, 0.5), got -0.01"),
        ({"auc_tolerance": 0.5}, "AUC tolerance must be in [0, 0.5), got 0.5"),
        ({"chi2_tolerance": -1.0}, "χ² tolerance must be a finite number ≥ 0, got -1.0"),
        ({"chi2_tolerance": math.nan}, "χ² tolerance must be a finite number ≥ 0, got nan"),
        ({"auc": math.nan}, "the AUC must be a number in [0, 1], got nan"),
        ({"n_reference_eff": 0}, "effective sample sizes must be positive"),
        ({"n_candidate_eff": None}, "an AUC needs the effective sizes of its held-out events"),
        ({"bad_bin": math.nan}, "the candidate histogram is not finite (NaN or inf) in bin 1"),
        ({"bad_bin": -1.0}, "the candidate histogram is negative in bin 1"),
        ({"histograms": {"x": (np.ones(3), np.ones(3), np.ones(2), np.ones(2))}}, "lengths"),
        ({"histograms": {"x": np.ones(3)}}, "expected histograms"),
        ({"auc": None, "histograms": {}}, "nothing to test"),
    ],
)
def test_bad_input_is_one_clear_error(kwargs, message):
    h = np.array([500.0, 1000.0, 500.0])
    candidate = h.copy()
    if "bad_bin" in kwargs:
        candidate[1] = kwargs.pop("bad_bin")
    arguments = {
        "auc": 0.5,
        "n_reference_eff": 1000,
        "n_candidate_eff": 1000,
        "histograms": {"x": (h, h, candidate, h)},
    }
    options = {
        k: kwargs.pop(k) for k in ("alpha", "auc_tolerance", "chi2_tolerance") if k in kwargs
    }
    arguments.update(kwargs)
    with pytest.raises(SimkitError) as error:
        calibrated_gate(*arguments.values(), **options)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_compare_checks_the_gate_before_training(rng):
    table = _toy(rng, 100)
    with pytest.raises(SimkitError, match=r"alpha must be in \(0, 1\), got 2"):
        compare(table, table, alpha=2, device="cpu")
