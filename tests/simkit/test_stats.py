"""Weighted ROC/AUC, ESS and quantiles against hand-computed values."""

import numpy as np
import pytest

from simkit.errors import SimkitError
from simkit.io import write_json
from simkit.stats import effective_sample_size, roc_auc, weighted_quantile, weighted_roc


def test_auc_by_hand():
    # pairs (signal, background) ordered correctly: 3 of 4 → 0.75
    assert roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    assert roc_auc(np.array([1.0, 2.0]), np.array([0, 1])) == 1.0
    assert roc_auc(np.array([2.0, 1.0]), np.array([0, 1])) == 0.0


def test_ties_count_half():
    assert roc_auc(np.zeros(4), np.array([0, 1, 0, 1])) == pytest.approx(0.5)


def test_weights_equal_repetition():
    scores = np.array([0.2, 0.5, 0.7, 0.1, 0.9])
    labels = np.array([0, 1, 0, 1, 1])
    w = np.array([1, 2, 3, 1, 2])
    repeated = roc_auc(np.repeat(scores, w), np.repeat(labels, w))
    assert roc_auc(scores, labels, w) == pytest.approx(repeated)


def test_roc_points():
    fpr, tpr, thr = weighted_roc(np.array([3.0, 2.0, 1.0]), np.array([1, 0, 1]))
    np.testing.assert_allclose(fpr, [0, 0, 1, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1])
    assert thr[0] == np.inf


def test_auc_of_shifted_gaussians_matches_formula():
    # AUC of N(d,1) vs N(0,1) is Φ(d/√2); 3σ of the AUC's sampling error ≈ 3·0.0041
    r = np.random.default_rng(0)
    n, d = 20000, 1.0
    scores = np.r_[r.normal(0, 1, n), r.normal(d, 1, n)]
    labels = np.r_[np.zeros(n), np.ones(n)]
    from scipy.stats import norm

    assert roc_auc(scores, labels) == pytest.approx(norm.cdf(d / np.sqrt(2)), abs=0.012)


def test_roc_errors():
    with pytest.raises(SimkitError, match="both signal"):
        roc_auc(np.ones(3), np.zeros(3))
    with pytest.raises(SimkitError, match="NaN"):
        roc_auc(np.array([np.nan, 1.0]), np.array([0, 1]))


def test_ess_and_quantiles():
    assert effective_sample_size(np.ones(10)) == pytest.approx(10)
    assert effective_sample_size(np.array([1.0, 0, 0, 0])) == pytest.approx(1)
    q = weighted_quantile(np.arange(101.0), [0.5])
    assert q[0] == pytest.approx(50, abs=0.6)


def test_write_json_refuses_nan(tmp_path):
    write_json(tmp_path / "m.json", {"auc": np.float32(0.5), "a": np.arange(2)})
    assert '"auc": 0.5' in (tmp_path / "m.json").read_text()
    with pytest.raises(ValueError):
        write_json(tmp_path / "bad.json", {"auc": float("nan")})
    assert not (tmp_path / "bad.json").exists()
