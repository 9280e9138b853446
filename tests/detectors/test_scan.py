"""The mjj scan: resolution, windows, the global significance, and the scan's nulls."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from dijet_toy import dijet_sample, falling_mjj
from scipy import stats

from detectors.scan import (
    global_significance,
    mjj_resolution,
    scan,
    scan_windows,
    upcrossings,
)
from detectors.search import SearchConfig
from detectors.template import TemplateClassifierConfig
from simkit.errors import SimkitError

FAST = SearchConfig(
    gate=False,
    efficiencies=(0.1, 0.01),
    classifier=TemplateClassifierConfig(folds=3, ensemble=1, max_iter=60),
)


def test_resolution_recovers_a_known_response():
    """reco = gen (1 + N(0, 0.04 + 60/m)): the fit must give a, b within a few % of the
    truth (each mass bin holds ≥ 4000 events: its width is known to ≈ 1.5 %)."""
    rng = np.random.default_rng(0)
    gen = falling_mjj(60000, rng)
    reco = gen * (1 + rng.normal(0, 1, len(gen)) * (0.04 + 60 / gen))
    res = mjj_resolution(gen, reco)
    for m in (3000.0, 4000.0, 5000.0):
        truth = 0.04 + 60 / m
        assert abs(res.relative(m) - truth) < 0.05 * truth


def test_windows_follow_the_resolution_and_step_half_a_width():
    rng = np.random.default_rng(1)
    mjj = falling_mjj(50000, rng)
    res = mjj_resolution(mjj, mjj * (1 + rng.normal(0, 0.05, len(mjj))))
    windows = scan_windows(mjj, res, width_factor=3.0, min_count=200)
    assert len(windows) >= 3
    for w, nxt in itertools.pairwise(windows):
        width = w.high - w.low
        centre = 0.5 * (w.low + w.high)
        assert width == pytest.approx(3.0 * float(res.relative(w.low)) * w.low, rel=1e-3)
        assert nxt.low == pytest.approx(w.low + width / 2, abs=0.2)
        assert centre < 0.5 * (nxt.low + nxt.high)
        assert np.count_nonzero((mjj >= w.low) & (mjj < w.high)) >= 200
    with pytest.raises(SimkitError, match="no scan window holds"):
        scan_windows(mjj[:50], res, min_count=200)


def test_upcrossings_and_global_significance():
    assert upcrossings(np.array([0.0, 1.0, 0.0, 2.0, 3.0, 0.0]), 0.5) == 2
    assert upcrossings(np.array([1.0, 0.0]), 0.5) == 1  # a start above counts
    one = global_significance([4.0])
    assert one["z_global"] == pytest.approx(stats.norm.isf(stats.norm.sf(4.0) + np.exp(-8.0)))
    many = global_significance([4.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    assert many["upcrossings"] == 4
    assert many["z_global"] < one["z_global"] < 4.0
    assert global_significance([-1.0, -2.0])["z_global"] == 0.0
    with pytest.raises(SimkitError, match="finite"):
        global_significance([np.nan])


def test_gross_vitells_is_calibrated_on_gaussian_process_scans():
    """Smooth Gaussian scans (correlated neighbours, as overlapping windows make them):
    p_global must be ≈ uniform above the region the approximation is meant for. With
    4000 scans the fraction with p_global < 0.05 is 0.05 ± 0.0035 (binomial); the
    asymptotic formula is conservative, so only the upper side is tight: ≤ 0.05 + 3σ."""
    rng = np.random.default_rng(2)
    n, length = 4000, 20
    white = rng.normal(size=(n, length + 2))
    z = (white[:, :-2] + white[:, 1:-1] + white[:, 2:]) / np.sqrt(3.0)
    p = np.array([global_significance(row)["p_global"] for row in z])
    assert (p < 0.05).mean() <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / n)
    assert (p < 0.05).mean() >= 0.01  # not useless either


def test_a_resonance_between_window_centres_is_found_where_it_is():
    """A toy resonance at 3600 GeV, between two window centres (3481 and 3713 GeV here):
    the best window is one of the two that contain it."""
    rng = np.random.default_rng(3)
    data = dijet_sample(30000, 0, rng).reco
    signal = dijet_sample(0, 150, rng).reco  # mjj ~ N(3500, 150) in the toy: move it
    mjj = signal.features[:, signal.index("mjj")]
    signal.features[:, signal.index("mjj")] = mjj + 100.0
    from simkit.events import EventTable

    data = EventTable.concatenate([data, signal])
    template = dijet_sample(80000, 0, rng).reco
    res = mjj_resolution(
        data.column("mjj"), data.column("mjj") * (1 + rng.normal(0, 0.045, len(data)))
    )
    windows = scan_windows(data.column("mjj"), res, min_count=200)
    assert not any(0.5 * (w.low + w.high) == pytest.approx(3600, abs=20) for w in windows)
    # the windows within 600 GeV of the mass keep the test short; the scan is the same
    near = [w for w in windows if abs(0.5 * (w.low + w.high) - 3600) < 600]
    assert len(near) >= 3
    result = scan(data, lambda window: template, near, FAST, seed=1)
    best = result.best
    assert best.low <= 3600 < best.high
    assert best.z_local > 3
    assert result.scan["z_global"] > 2
    assert result.scan["n_windows"] == len(near)


@pytest.mark.slow
def test_background_only_scan_has_unit_normal_local_z():
    """No signal: local Z over the windows of 3 seeded scans, mean 0 within 3/√n and a
    spread within 1 ± 3/√(2(n−1)) (windows overlap, so n overstates the independent
    count a little: the bound is loose by that factor), and no global Z above 3."""
    zs, globals_ = [], []
    for seed in range(3):
        rng = np.random.default_rng(40 + seed)
        data = dijet_sample(30000, 0, rng).reco
        template = dijet_sample(60000, 0, rng).reco
        res = mjj_resolution(
            data.column("mjj"), data.column("mjj") * (1 + rng.normal(0, 0.045, len(data)))
        )
        windows = scan_windows(data.column("mjj"), res, min_count=200)
        result = scan(data, lambda window, t=template: t, windows, FAST, seed=seed)
        zs += [w.z_local for w in result.windows]
        globals_.append(result.scan["z_global"])
    zs = np.array(zs)
    n = len(zs)
    assert abs(zs.mean()) < 3 / np.sqrt(n), zs
    assert abs(zs.std(ddof=1) - 1) < 3 / np.sqrt(2 * (n - 1)), zs
    assert max(globals_) < 3


def test_a_mismodelled_template_makes_the_scan_untrustworthy():
    """A template whose m_j1 is 10 % too high, as a shifted simulation the unfolding did not
    correct would be: every window's gate fails and the scan says not to trust it."""
    from simkit.events import EventTable

    rng = np.random.default_rng(5)
    data = dijet_sample(30000, 0, rng).reco
    template = dijet_sample(60000, 0, rng).reco
    features = template.features.copy()
    features[:, template.index("m_j1")] *= 1.1
    template = EventTable(
        features=features,
        columns=template.columns,
        weights=template.weights,
        passed=template.passed,
    )
    res = mjj_resolution(
        data.column("mjj"), data.column("mjj") * (1 + rng.normal(0, 0.045, len(data)))
    )
    windows = scan_windows(data.column("mjj"), res, min_count=200)[:2]
    config = SearchConfig(
        efficiencies=(0.1, 0.01), classifier=TemplateClassifierConfig(folds=3, ensemble=1)
    )
    result = scan(data, lambda window: template, windows, config, seed=2)
    assert result.trustworthy is False
    assert all(w.gate is not None and not w.gate["validated"] for w in result.windows)
    assert "NOT TRUSTWORTHY" in result.summary_line()
