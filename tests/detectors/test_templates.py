"""Background templates: each builder covers the window with the right columns and weights."""

from __future__ import annotations

import numpy as np
import pytest
from dijet_toy import dijet_sample

from detectors.labels import SignalRegion
from detectors.templates import (
    dijet_fit_mjj,
    reco_reweighter,
    reweighted_sim,
    sideband_flow,
    validated_flow,
)
from simkit.errors import SimkitError
from simkit.events import in_window

WINDOW = SignalRegion(low=3300.0, high=3700.0)
FEATURES = ("m_j1", "tau21_j1", "m_j2", "tau21_j2")


def test_reweighted_sim_multiplies_weights_and_drops_zero_weight_events():
    sim = dijet_sample(2000, 0, np.random.default_rng(0)).reco
    w = np.where(np.arange(len(sim)) % 2 == 0, 2.0, 0.0)
    template = reweighted_sim(sim, w)
    assert len(template) == (w > 0).sum()
    assert np.allclose(template.weights, 2.0)
    bad = w.copy()
    bad[5] = np.nan
    with pytest.raises(SimkitError, match="not finite"):
        reweighted_sim(sim, bad)
    with pytest.raises(SimkitError, match="for 2000 simulated events"):
        reweighted_sim(sim, w[:10])


def test_reco_reweighter_learns_a_weight_that_depends_on_a_column():
    """Weights 1 + (m_j1 > 90 GeV): the learnt weight must be ≈ 2 above and ≈ 1 below
    (balanced classes: the ratio of normalized densities, so compare the ratio of the
    two, within 10 %, a few times the spread of a 20-event-per-bin estimate)."""
    sim = dijet_sample(20000, 0, np.random.default_rng(1)).reco
    heavy = sim.column("m_j1") > 90
    weigh = reco_reweighter(sim, 1.0 + heavy, ["m_j1"], seed=2, device="cpu")
    w = weigh(sim)
    far_above = sim.column("m_j1") > 130
    far_below = sim.column("m_j1") < 60
    ratio = w[far_above].mean() / w[far_below].mean()
    assert 1.8 < ratio < 2.2, ratio


def test_dijet_fit_mjj_stays_in_the_window_and_falls():
    sim = dijet_sample(30000, 0, np.random.default_rng(2)).reco
    mjj = dijet_fit_mjj(sim.column("mjj"), WINDOW, 20000, np.random.default_rng(3))
    assert in_window(mjj, WINDOW.low, WINDOW.high).all()
    low_half = (mjj < 3500).mean()
    assert low_half > 0.55  # a falling spectrum puts more events in the lower half


def test_sideband_flow_covers_the_window_and_its_sidebands():
    data = dijet_sample(6000, 0, np.random.default_rng(4)).reco
    template = sideband_flow(
        data, WINDOW, FEATURES, events=2000, seed=1, device="cpu",
        flow_options={"epochs": 2, "n_layers": 2, "hidden": 16},
    )  # fmt: skip
    assert set(template.columns) == {"mjj", *FEATURES}
    mjj = template.column("mjj")
    assert in_window(mjj, WINDOW.low, WINDOW.high).sum() == 2000
    assert in_window(mjj, 2900, 3300).any() and in_window(mjj, 3700, 4100).any()


def test_validated_flow_samples_in_range_with_learnt_weights():
    from simkit.surrogates.flow import FlowSurrogate

    sim = dijet_sample(6000, 0, np.random.default_rng(5)).reco
    flow = FlowSurrogate(condition=["mjj"], columns=list(FEATURES), epochs=2, n_layers=2,
                         hidden=16, device="cpu").fit(sim.select(["mjj", *FEATURES]))  # fmt: skip
    template = validated_flow(flow, sim, np.ones(len(sim)), (2900.0, 4100.0), events=3000,
                              seed=2, device="cpu")  # fmt: skip
    assert len(template) == 3000
    assert in_window(template.column("mjj"), 2900.0, 4100.0).all()
    assert np.isfinite(template.weights).all() and (template.weights > 0).all()
    with pytest.raises(SimkitError, match="no simulated event"):
        validated_flow(flow, sim, np.ones(len(sim)), (9000.0, 9100.0), events=10, device="cpu")
