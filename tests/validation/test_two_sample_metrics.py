"""Weighted two-sample metrics: null values, known values on shifted Gaussians, weights.

Tolerances come from the statistics of each estimator and are stated per test.
"""

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.stats

from simkit.errors import SimkitError
from validation.metrics import (
    chi2_ndf,
    column_edges,
    column_metrics,
    effective_sample_size,
    histogram,
    ks_distance,
    triangular_discriminator,
    two_sample_auc,
    wasserstein,
)

SHIFT = 0.5
N = 20_000


def _gauss(rng, n=N, shift=0.0):
    return rng.normal(shift, 1.0, n)


def test_null_values_on_identical_samples(rng):
    x = _gauss(rng)
    w = rng.uniform(0.5, 2.0, len(x))
    assert triangular_discriminator(x, x) == 0.0
    assert triangular_discriminator(x, x, reference_weights=w, candidate_weights=w) == 0.0
    assert chi2_ndf(x, x).chi2 == 0.0
    assert wasserstein(x, x, reference_weights=w, candidate_weights=w) == 0.0
    assert ks_distance(x, x, reference_weights=w, candidate_weights=w) == 0.0
    assert effective_sample_size(np.ones(1000)) == pytest.approx(1000)


def test_null_values_on_independent_samples_of_one_distribution(rng):
    a, b = _gauss(rng), _gauss(rng)
    chi2 = chi2_ndf(a, b, bins=30)
    # χ²/ndf of a true null fluctuates by sqrt(2/ndf); allow 3 of those
    assert abs(chi2.per_ndf - 1.0) < 3 * math.sqrt(2 / chi2.ndf)
    # KS: the two-sample Kolmogorov 0.1 % critical value
    assert ks_distance(a, b) < 1.95 * math.sqrt(2 / N)
    # W1 of two samples of N(0,1): E|F̂−Ĝ| ≤ sqrt(2 F(1−F)/N) pointwise; 3× its integral
    bound = scipy.integrate.quad(
        lambda t: math.sqrt(2 * scipy.stats.norm.cdf(t) * scipy.stats.norm.sf(t) / N),
        -8,
        8,
    )[0]
    assert wasserstein(a, b) < 3 * bound
    # Δ of two samples from one distribution averages ½ Σ (p/N + q/N)/(p+q) = bins/(2N);
    # its spread is of the same order, so 4× the mean is a generous 3σ-like bound
    edges = column_edges(a, bins=40)
    assert triangular_discriminator(a, b, bins=edges) < 4 * len(edges) / (2 * N)


def _binned_gauss(edges, shift):
    cdf = scipy.stats.norm.cdf(np.r_[-np.inf, edges, np.inf], loc=shift)
    return np.diff(cdf)


def test_known_values_on_shifted_gaussians(rng):
    edges = np.linspace(-3, 3.5, 41)
    p, q = _binned_gauss(edges, 0.0), _binned_gauss(edges, SHIFT)
    expected_td = 0.5 * np.sum((p - q) ** 2 / (p + q))
    # finite samples add ½ Σ (var p̂ + var q̂)/(p+q) ≈ ½ Σ (p+q)/N/(p+q) on average
    noise_td = 0.5 * len(p) / N
    tds, ws = [], []
    for _ in range(8):
        a, b = _gauss(rng), _gauss(rng, shift=SHIFT)
        tds.append(triangular_discriminator(a, b, bins=edges))
        ws.append(wasserstein(a, b))
    # the mean of 8 replicas within 3 standard errors (plus the noise term for Δ)
    assert abs(np.mean(tds) - expected_td - noise_td) < 3 * np.std(tds, ddof=1) / math.sqrt(8)
    assert abs(np.mean(ws) - SHIFT) < 3 * np.std(ws, ddof=1) / math.sqrt(8)

    a, b = _gauss(rng), _gauss(rng, shift=SHIFT)
    # KS: |D̂ − D| is bounded by a null two-sample KS statistic; its 0.1 % critical value
    expected_ks = 2 * scipy.stats.norm.cdf(SHIFT / 2) - 1
    assert abs(ks_distance(a, b) - expected_ks) < 1.95 * math.sqrt(2 / N)
    # χ²: non-central with λ = Σ N²(p−q)²/(N(p+q)), mean ndf+λ, variance 2(ndf+2λ)
    chi2 = chi2_ndf(a, b, bins=edges)
    lam = np.sum(N * (p - q) ** 2 / (p + q))
    assert abs(chi2.chi2 - (chi2.ndf + lam)) < 3 * math.sqrt(2 * (chi2.ndf + 2 * lam))


def test_exact_density_ratio_weights_give_null_metrics(rng):
    # N(0,1) weighted by N(δ,1)/N(0,1) = exp(δx − δ²/2) is N(δ,1)
    source = _gauss(rng, n=4 * N)
    weights = np.exp(SHIFT * source - SHIFT**2 / 2)
    target = _gauss(rng, shift=SHIFT)
    edges = np.linspace(-3, 3.5, 31)
    chi2 = chi2_ndf(target, source, bins=edges, candidate_weights=weights)
    assert abs(chi2.per_ndf - 1.0) < 3 * math.sqrt(2 / chi2.ndf)
    unweighted = chi2_ndf(target, source, bins=edges)
    assert unweighted.per_ndf > 20  # the shift itself is unmistakable
    ess = effective_sample_size(weights)
    # KS with weights: the critical value with the Kish effective size of the weighted side
    assert ks_distance(target, source, candidate_weights=weights) < 1.95 * math.sqrt(
        1 / N + 1 / ess
    )
    assert abs(wasserstein(target, source, candidate_weights=weights)) < 0.05


def test_unweighted_metrics_match_scipy(rng):
    a, b = _gauss(rng, 3000), _gauss(rng, 2000, shift=0.3)
    assert ks_distance(a, b) == pytest.approx(scipy.stats.ks_2samp(a, b).statistic, abs=1e-12)
    assert wasserstein(a, b) == pytest.approx(scipy.stats.wasserstein_distance(a, b))


def test_effective_sample_size_known_value():
    w = np.r_[np.ones(500), 3 * np.ones(500)]
    # (Σw)²/Σw² = 2000² / (500 + 4500) = 800
    assert effective_sample_size(w) == pytest.approx(800)


def test_histogram_counts_flows_and_integer_edges():
    counts, w2 = histogram(np.array([-5.0, 0.5, 0.5, 2.0, 9.0]), np.array([0.0, 1.0, 2.0]))
    assert counts.tolist() == [1, 2, 0, 2]  # underflow, [0,1), [1,2), overflow (2.0 is out)
    assert w2.tolist() == counts.tolist()
    edges = column_edges(np.arange(10.0), bins=40)
    assert np.allclose(edges - np.floor(edges), 0.5)  # integer columns: half-integer edges


def test_column_metrics_per_column(rng):
    a = rng.normal(0, 1, (5000, 2))
    b = a + np.array([0.0, 1.0])
    out = column_metrics(a, b, ["same", "shifted"])
    assert out["same"]["chi2"] == 0.0 and out["same"]["ks"] == 0.0
    assert out["shifted"]["wasserstein"] == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(SimkitError, match="column names"):
        column_metrics(a, b, ["only one"])


def _auc_null_sigma(n1, n2):
    return math.sqrt((n1 + n2 + 1) / (12 * n1 * n2))


def test_two_sample_auc_null_and_known_value(rng):
    n = 10_000
    null = two_sample_auc(_gauss(rng, n), _gauss(rng, n), device="cpu", seed=1)
    # held-out halves: n/2 events each; 3σ of the null AUC distribution
    assert abs(null.auc - 0.5) < 3 * _auc_null_sigma(n // 2, n // 2)
    assert null.low is None and null.n_reference == n

    shifted = two_sample_auc(
        _gauss(rng, n), _gauss(rng, n, shift=SHIFT), device="cpu", seed=1, n_bootstrap=50
    )
    optimal = scipy.stats.norm.cdf(SHIFT / math.sqrt(2))  # Bayes-optimal AUC for a pure shift
    # held-out estimate: 3σ (null σ is an upper bound here) plus 0.01 for imperfect training
    assert abs(shifted.auc - optimal) < 3 * _auc_null_sigma(n // 2, n // 2) + 0.01
    assert shifted.low < shifted.auc < shifted.high
    # a 95 % interval spans about 2·1.96σ
    width = shifted.high - shifted.low
    assert (
        0.5 * 3.92 * _auc_null_sigma(n // 2, n // 2)
        < width
        < 2 * 3.92 * _auc_null_sigma(n // 2, n // 2)
    )


def test_two_sample_auc_uses_weights(rng):
    # weighting N(0,1) by the density ratio to N(δ,1) makes it indistinguishable from N(δ,1)
    n = 10_000
    source = _gauss(rng, 2 * n)
    weights = np.exp(SHIFT * source - SHIFT**2 / 2)
    result = two_sample_auc(
        _gauss(rng, n, shift=SHIFT), source, candidate_weights=weights, device="cpu", seed=2
    )
    ess_test = effective_sample_size(weights) / 2
    assert abs(result.auc - 0.5) < 3 * _auc_null_sigma(n // 2, ess_test) + 0.01


def test_two_sample_auc_bad_input(rng):
    a = rng.normal(size=(100, 2))
    with pytest.raises(SimkitError, match="columns"):
        two_sample_auc(a, rng.normal(size=(100, 3)), device="cpu")
    with pytest.raises(SimkitError, match="non-finite"):
        two_sample_auc(a, np.where(a > 2, np.nan, a), device="cpu")
    with pytest.raises(SimkitError, match="not finite"):
        two_sample_auc(a, a, candidate_weights=np.full(100, np.nan), device="cpu")
    with pytest.raises(SimkitError, match="negative"):
        wasserstein(a[:, 0], a[:, 1], candidate_weights=-np.ones(100))
    with pytest.raises(SimkitError, match="unknown classifier option"):
        two_sample_auc(a, a, device="cpu", hiden=(4,))


@pytest.mark.slow
def test_two_sample_auc_bootstrap_interval_coverage():
    """The 95 % interval covers the trained classifier's population AUC ~95 % of the time.

    Each experiment trains a classifier on a fresh toy pair and evaluates its *population*
    AUC on 200k fresh events per class; with 40 experiments, a true 95 % coverage gives
    38 ± 1.4 covered, so ≥ 33 is a 3σ-like lower bound.
    """
    from simkit.stats import roc_auc
    from validation.classifier import logits
    from validation.metrics import bootstrap_auc_interval, train_two_sample_classifier

    covered = 0
    for k in range(40):
        rng = np.random.default_rng(1000 + k)
        ref, cand = rng.normal(0, 1, (4000, 1)), rng.normal(0.3, 1, (4000, 1))
        trained = train_two_sample_classifier(ref, cand, seed=k, device="cpu", epochs=5)
        scores, labels, w = trained.test_scores(), trained.test_labels, trained.test_weights
        low, high = bootstrap_auc_interval(scores, labels, w, 200, rng)
        big = np.r_[rng.normal(0, 1, (200_000, 1)), rng.normal(0.3, 1, (200_000, 1))]
        big_labels = np.r_[np.zeros(200_000), np.ones(200_000)].astype(np.int8)
        population = roc_auc(logits(trained.model, big, device="cpu"), big_labels)
        covered += low <= population <= high
    assert covered >= 33
