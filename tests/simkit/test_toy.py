"""The toy closure generators: the distributions they promise, and reproducibility."""

import numpy as np
import pytest

from simkit.errors import SimkitError
from simkit.generators.toy import HardDetector, gaussian, gaussian_hard

N = 200_000


def _within_3sigma(values, mean, width):
    # standard errors of the sample mean and sample std of a Gaussian
    n = len(values)
    assert abs(values.mean() - mean) < 3 * width / np.sqrt(n)
    assert abs(values.std() - width) < 3 * width / np.sqrt(2 * n)


def test_reference_problem_sim():
    s = gaussian(N, np.random.default_rng(1))
    _within_3sigma(s.gen.column("x").astype(np.float64), 0.0, 1.0)
    _within_3sigma(s.reco.column("x").astype(np.float64), 0.0, np.hypot(1.0, 0.5))
    residual = (s.reco.column("x") - s.gen.column("x")).astype(np.float64)
    _within_3sigma(residual, 0.0, 0.5)


def test_reference_problem_data_has_hidden_truth():
    d = gaussian(N, np.random.default_rng(2), data=True)
    assert d.levels == ("reco", "truth")
    _within_3sigma(d.truth.column("x").astype(np.float64), 0.2, 0.8)
    _within_3sigma(d.reco.column("x").astype(np.float64), 0.2, np.hypot(0.8, 0.5))


def test_hard_variant_efficiency_and_fakes():
    det = HardDetector()
    s = gaussian_hard(N, np.random.default_rng(3), detector=det)
    n_fake = round(det.fake_fraction * N)
    assert len(s) == N + n_fake
    assert int((~s.gen.passed).sum()) == n_fake
    fakes = ~s.gen.passed
    assert s.reco.passed[fakes].all()  # fakes are reconstructed by definition
    # the efficiency of true events matches the detector's ε(x) on average (binomial 3σ)
    true = s.gen.passed
    expected = det.efficiency(s.gen.column("x")[true].astype(np.float64)).mean()
    observed = s.reco.passed[true].mean()
    assert abs(observed - expected) < 3 * np.sqrt(expected * (1 - expected) / N)
    assert 0.5 < observed < 0.9
    # the bias: reco − scale·gen has mean = bias for detected true events
    both = true & s.reco.passed
    shift = s.reco.column("x")[both] - det.scale * s.gen.column("x")[both]
    assert abs(shift.mean() - det.bias) < 3 * 0.6 / np.sqrt(both.sum())


def test_same_seed_same_events_other_seed_differs():
    a = gaussian_hard(1000, np.random.default_rng(5))
    b = gaussian_hard(1000, np.random.default_rng(5))
    c = gaussian_hard(1000, np.random.default_rng(6))
    np.testing.assert_array_equal(a.reco.features, b.reco.features)
    np.testing.assert_array_equal(a.gen.passed, b.gen.passed)
    assert not np.array_equal(a.reco.features, c.reco.features)


@pytest.mark.parametrize("n", [0, -5, 2.5])
def test_bad_event_count(n):
    with pytest.raises(SimkitError, match="positive integer"):
        gaussian(n, np.random.default_rng(0))
