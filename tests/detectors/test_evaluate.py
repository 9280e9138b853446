"""ROC/AUC/SIC against hand-computed values, calibration, the significance formula, and
the bump hunt: finds an injected bump, none in a smooth spectrum."""

import math

import numpy as np
import pytest
from dijet_toy import falling_mjj
from scipy import optimize

from detectors.evaluate import (
    bump_edges,
    bump_hunt,
    calibrate_threshold,
    dijet_function,
    evaluate,
    performance,
    poisson_significance,
    target_key,
)
from detectors.labels import SignalRegion
from simkit.errors import SimkitError

# --------------------------------------------------------------------------- ROC, SIC


def test_auc_and_sic_by_hand():
    # background 0.1 0.2 0.3 0.4, signal 0.35 0.5. Cuts (score ≥ t), from the top:
    #   t=0.5  ε_S=1/2 ε_B=0     t=0.4  ε_S=1/2 ε_B=1/4 (1 bkg)   t=0.35 ε_S=1 ε_B=1/4
    #   t=0.3  ε_S=1 ε_B=1/2 (2 bkg) ...
    # AUC = P(s > b) = (4/4 + 3/4)/2 = 0.875. SIC at (1, 1/4) = 1/√(1/4) = 2, but that
    # cut keeps one background event; with ≥ 2 required the best is 1/√(1/2) = √2.
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.35, 0.5])
    labels = np.array([0, 0, 0, 0, 1, 1])
    loose = performance(scores, labels, min_background=1)
    assert loose.auc == pytest.approx(0.875)
    assert loose.max_sic == pytest.approx(2.0)
    strict = performance(scores, labels, min_background=2)
    assert strict.max_sic == pytest.approx(math.sqrt(2))
    assert strict.metrics()["max_sic_background_events"] == 2
    assert performance(scores, labels, min_background=5).max_sic is None


def test_weights_act_like_duplicated_events():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=400)
    labels = (rng.random(400) < 0.3).astype(int)
    scores[labels == 1] += 1.0
    weights = rng.integers(1, 4, 400)
    weighted = performance(scores, labels, weights.astype(float), min_background=1)
    dup = performance(np.repeat(scores, weights), np.repeat(labels, weights), min_background=1)
    assert weighted.auc == pytest.approx(dup.auc, abs=1e-12)
    np.testing.assert_allclose(weighted.tpr, dup.tpr)
    np.testing.assert_allclose(weighted.fpr, dup.fpr)


def test_eps_s_at_fixed_eps_b_with_binomial_error():
    # background scores 0..9999 (uniform), signal scores: 60 % above 9900, 40 % at -1.
    # At ε_B = 1e-2 the loosest cut keeps background 9900..9999 (100 events) and all
    # signal above it: ε_S = 0.6, error √(0.6·0.4/1000).
    background = np.arange(10000.0)
    signal = np.r_[np.linspace(9900.5, 9999.5, 600), np.full(400, -1.0)]
    scores = np.r_[background, signal]
    labels = np.r_[np.zeros(10000), np.ones(1000)]
    perf = performance(scores, labels)
    eps_s, error, n_bkg = perf.eps_s_at_eps_b[1e-2]
    assert eps_s == pytest.approx(0.6)
    assert error == pytest.approx(math.sqrt(0.6 * 0.4 / 1000))
    assert n_bkg == 100
    # 1e-3: background 9990..9999 (10 events); the loosest such cut sits just above the
    # next background event (9989), so it keeps every signal score above 9989
    expected = (signal > 9989).mean()
    assert perf.eps_s_at_eps_b[1e-3][0] == pytest.approx(expected)
    # 1e-4 is resolved by 10000 background events (one event)
    assert perf.eps_s_at_eps_b[1e-4][2] == 1
    metrics = perf.metrics()
    assert set(metrics["eps_s_at_eps_b"]) == {"1e-02", "1e-03", "1e-04"}
    # a background sample too small for a target gives None, not a number
    small = performance(scores[9000:], labels[9000:])
    assert small.eps_s_at_eps_b[1e-4] == (None, None, None)


def test_target_key():
    assert [target_key(t) for t in (1e-2, 1e-3, 1e-4)] == ["1e-02", "1e-03", "1e-04"]


# --------------------------------------------------------------------------- calibration


def test_calibrated_threshold_keeps_the_target_fraction():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=100000)
    for target in (1e-1, 1e-2, 1e-3):
        t = calibrate_threshold(scores, target)
        assert (scores > t).mean() == pytest.approx(target, abs=1.5 / len(scores))
    # weights: events of weight 2 count twice
    weights = np.where(scores > 0, 2.0, 1.0)
    t = calibrate_threshold(scores, 0.01, weights)
    assert weights[scores > t].sum() / weights.sum() <= 0.01
    assert weights[scores >= t].sum() / weights.sum() > 0.01
    with pytest.raises(SimkitError, match="cannot resolve"):
        calibrate_threshold(scores[:50], 1e-3)


def test_threshold_transfers_from_a_calibration_sample():
    # a cut fixed on one background sample keeps ε_B on another within binomial 3σ
    rng = np.random.default_rng(2)
    t = calibrate_threshold(rng.exponential(size=50000), 1e-2)
    other = rng.exponential(size=50000)
    sigma = math.sqrt(1e-2 * (1 - 1e-2) / 50000) * math.sqrt(2)  # both samples fluctuate
    assert abs((other > t).mean() - 1e-2) < 3 * sigma


# --------------------------------------------------------------------------- significance


def _profile_significance(n, b, sigma_b):
    """√(−2 ln λ) maximized numerically: n ~ Pois(s + β) and an auxiliary measurement
    m ~ Pois(τβ) with τ = b/σ², m = τb (Cowan's construction of b ± σ)."""
    tau = b / sigma_b**2
    m = tau * b

    def log_pmf(k, mu):  # continuous in k: m need not be an integer
        return k * math.log(mu) - mu - math.lgamma(k + 1)

    def nll(s, beta):
        return -(log_pmf(n, s + beta) + log_pmf(m, tau * beta))

    free = optimize.minimize(
        lambda p: nll(p[0], p[1]),
        [n - b, b],
        method="Nelder-Mead",
        options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 20000},
    )
    null = optimize.minimize_scalar(
        lambda beta: nll(0.0, beta), bounds=(1e-6, 10 * (n + b)), method="bounded"
    )
    return math.sqrt(max(2 * (null.fun - free.fun), 0.0))


@pytest.mark.parametrize("n, b, sigma_b", [(130, 100, 0.0), (130, 100, 10.0), (60, 40, 3.0)])
def test_significance_matches_the_profile_likelihood(n, b, sigma_b):
    z = poisson_significance(n, b, sigma_b)
    if sigma_b == 0:
        assert z == pytest.approx(math.sqrt(2 * (n * math.log(n / b) - (n - b))))
    else:
        assert z == pytest.approx(_profile_significance(n, b, sigma_b), rel=1e-3)


def test_significance_limits():
    assert poisson_significance(100, 100) == 0.0
    assert poisson_significance(80, 100) < 0  # a deficit is negative
    # large counts: Z → (n − b)/√(b + σ²)
    assert poisson_significance(10300, 10000, 50.0) == pytest.approx(
        300 / math.sqrt(12500), rel=0.02
    )
    assert poisson_significance(120, 100, 1e-9) == pytest.approx(poisson_significance(120, 100))
    with pytest.raises(SimkitError):
        poisson_significance(3, 0)


# --------------------------------------------------------------------------- bump hunt


def test_bump_edges_align_with_the_signal_region():
    edges = bump_edges(SignalRegion(), (2650, 5020), 100)
    assert 3300 in edges and 3700 in edges
    assert edges[0] >= 2650 and edges[-1] <= 5020
    edges = bump_edges(SignalRegion(), (2700, 5000), 150)  # 400/150 → 3 bins of 133.3
    np.testing.assert_allclose(np.diff(edges), 400 / 3)
    assert np.isclose(edges, 3700).any()
    with pytest.raises(SimkitError, match="enclose"):
        bump_edges(SignalRegion(), (3400, 5000), 100)


def test_dijet_function_is_the_standard_form():
    x = np.array([0.2, 0.3])
    expected = 2.0 * (1 - x) ** 7 / x ** (4 + 0.5 * np.log(x))
    np.testing.assert_allclose(dijet_function(x, 2.0, 7.0, 4.0, 0.5), expected)


def test_bump_hunt_finds_no_bump_in_a_smooth_spectrum():
    # 20 background-only toys: Z is a standard normal if the fit and the formula are
    # right. One toy may exceed 3σ with probability 0.3 %; check each toy against 3.5σ
    # and the mean of 20 against 3 × 1/√20.
    # The toys follow the 3-parameter function: Wilks' test at 95 % adds p3 in 1 toy of
    # 20 on average; 4 or more of 20 has probability 1.6 %.
    zs, n_parameters = [], []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        hunt = bump_hunt(falling_mjj(20000, rng), mjj_range=(2700, 6000))
        assert hunt.converged
        zs.append(hunt.z_local)
        n_parameters.append(len(hunt.parameters))
    assert n_parameters.count(4) <= 3
    zs = np.array(zs)
    assert np.all(np.abs(zs) < 3.5)
    assert abs(zs.mean()) < 3 / math.sqrt(20)
    assert 0.5 < zs.std() < 1.6  # a unit-width distribution (20 toys: loose bounds)


def test_bump_hunt_predicts_the_true_background():
    # closure: the sideband fit interpolated into the SR agrees with the true expectation
    rng = np.random.default_rng(3)
    n_total = 50000
    hunt = bump_hunt(falling_mjj(n_total, rng), mjj_range=(2700, 6000))
    grid = np.linspace(2600, 6500, 200001)
    density = dijet_function(grid / 13000, 1, 10, 5, 0)
    in_range = (grid >= 2600) & (grid <= 6500)
    sr = (grid >= 3300) & (grid < 3700)
    true_b = n_total * density[sr].sum() / density[in_range].sum()
    # the prediction fluctuates with the sideband counts (its fit error) and the
    # observation with Poisson: 3σ of the fit error
    assert abs(hunt.expected_sr - true_b) < 3 * hunt.expected_sr_error
    assert hunt.fit_p_value > 1e-3


def test_bump_hunt_finds_an_injected_bump():
    # 400 signal events (σ = 120 GeV, 90 % inside the SR) over ~2100 background in the
    # SR: the expected Z (with the fit's uncertainty) is ≈ 5.5; it fluctuates by ~1, so
    # require > 3 (2.5σ below expectation) and that the excess is the injected one
    # within 3σ of its Poisson + fit uncertainty.
    rng = np.random.default_rng(4)
    background = falling_mjj(20000, rng)
    signal = rng.normal(3500, 120, 400)
    hunt = bump_hunt(np.r_[background, signal], mjj_range=(2700, 6000))
    assert hunt.z_local > 3
    injected = ((signal >= 3300) & (signal < 3700)).sum()
    excess = hunt.observed_sr - hunt.expected_sr
    sigma = math.sqrt(hunt.expected_sr + hunt.expected_sr_error**2)
    assert abs(excess - injected) < 3 * sigma


def test_bump_hunt_with_weights_uses_effective_counts():
    rng = np.random.default_rng(5)
    mjj = falling_mjj(20000, rng)
    plain = bump_hunt(mjj, mjj_range=(2700, 6000))
    doubled = bump_hunt(mjj, np.full(len(mjj), 2.0), mjj_range=(2700, 6000))
    # weights 2 everywhere: twice the counts, the same significance
    assert doubled.expected_sr == pytest.approx(2 * plain.expected_sr, rel=1e-4)
    assert doubled.z_local == pytest.approx(plain.z_local, abs=1e-3)


def test_bump_hunt_bad_input():
    with pytest.raises(SimkitError, match="3 or 4"):
        bump_hunt(np.ones(10), n_parameters=5)
    fixed = bump_hunt(falling_mjj(5000, np.random.default_rng(0)), mjj_range=(2700, 6000),
                      n_parameters=4)  # fmt: skip
    assert len(fixed.parameters) == 4
    with pytest.raises(SimkitError, match="no events"):
        bump_hunt(np.full(10, 100.0), mjj_range=(2700, 5000))


# --------------------------------------------------------------------------- all together


def test_evaluate_end_to_end(tmp_path):
    rng = np.random.default_rng(6)
    mjj = np.r_[falling_mjj(20000, rng), rng.normal(3500, 120, 150)]
    labels = np.r_[np.zeros(20000), np.ones(150)].astype(np.int8)
    scores = rng.normal(size=len(mjj)) + 3.0 * labels  # a good detector
    options = {"mjj": mjj, "mjj_range": (2700, 6000), "target_eps_b": 0.05}
    result = evaluate(scores, labels=labels, **options)
    metrics = result.metrics()
    for key in ("auc", "max_sic", "eps_s_at_eps_b", "threshold", "bump_z_local"):
        assert metrics[key] is not None
    assert metrics["roc_events"] == "signal-region"
    # the ROC uses SR events only; the labels never decide the cut
    assert metrics["roc_events_used"] == int(((mjj >= 3300) & (mjj < 3700)).sum())
    unlabelled = evaluate(scores, **options)
    assert unlabelled.threshold == result.threshold
    assert unlabelled.metrics()["auc"] is None
    # the bump after the cut is more significant than before it (the cut enriches signal)
    assert metrics["bump_z_local"] > metrics["bump_z_local_before_cut"]
    written = result.save_plots(tmp_path)
    assert {p.name for p in written} == {"roc.png", "sic.png", "scores.png", "bump_hunt.png"}
