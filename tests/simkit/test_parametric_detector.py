"""The parametric detector: closure of each response against its parameters (no Pythia)."""

import re
from pathlib import Path

import numpy as np
import pytest
import vector

from simkit.errors import SimkitError
from simkit.generators.detector import (
    Detector,
    Particles,
    calo_resolution,
    jet_response,
    simulate,
    track_efficiency,
    track_resolution,
)

DETECTOR_PAGE = Path(__file__).resolve().parents[2] / "docs" / "explanation" / "simulation.md"
#: Tolerance of the statistical checks, in standard errors: the Pythia-chain tests hold a few
#: dozen such checks, so at 3σ one run in ~10 would fail somewhere by chance.
Z = 4


def single_particles(n, *, pid, charge, pt, eta, phi=0.3, mass=0.0):
    """n events, each holding one particle with the given kinematics."""
    p = vector.array(
        {
            "pt": np.full(n, pt),
            "eta": np.full(n, eta),
            "phi": np.full(n, phi),
            "mass": np.full(n, mass),
        }
    )
    return Particles.from_arrays(
        px=p.px,
        py=p.py,
        pz=p.pz,
        e=p.E,
        pid=np.full(n, pid),
        charge=np.full(n, charge),
        counts=np.ones(n, int),
    )


def test_photon_energy_response_closes_on_em_resolution(rng):
    n, energy, eta = 4000, 100.0, 0.3
    det = Detector()
    reco = simulate(single_particles(n, pid=22, charge=0, pt=energy / np.cosh(eta), eta=eta), rng)
    assert (reco.counts == 1).all() and (reco.pid == 0).all()  # one tower each
    sigma = energy * calo_resolution(np.array([energy]), np.array([eta]), True, det)[0]
    # mean within Zσ/√n; the width within Z × its standard error σ/√(2n)
    assert reco.e.mean() == pytest.approx(energy, abs=Z * sigma / np.sqrt(n))
    assert reco.e.std() == pytest.approx(sigma, abs=Z * sigma / np.sqrt(2 * n))
    towers = reco.momenta()
    # towers sit at the centre of their 0.1-wide η cell
    assert np.allclose(towers.eta, 0.35) and np.allclose(
        towers.mass, 0, atol=1e-4
    )  # m² = E² − p² rounding


def test_neutral_hadron_uses_hadronic_resolution_and_forward_calorimeter(rng):
    n, energy = 4000, 200.0
    det = Detector()
    for eta, forward in ((1.0, False), (4.0, True)):
        reco = simulate(
            single_particles(n, pid=2112, charge=0, pt=energy / np.cosh(eta), eta=eta, mass=0.94),
            rng,
        )
        sigma_rel = calo_resolution(np.array([energy]), np.array([eta]), False, det)[0]
        expected = np.hypot(
            (det.forward_stochastic if forward else det.had_stochastic) / np.sqrt(energy),
            det.forward_constant if forward else det.had_constant,
        )
        assert sigma_rel == pytest.approx(expected)
        assert (reco.counts == 1).all()
        assert reco.e.std() / energy == pytest.approx(sigma_rel, rel=Z / np.sqrt(2 * n))


def test_tracking_efficiency_resolution_and_energy_flow(rng):
    n, det = 20000, Detector()
    soft = simulate(single_particles(n, pid=211, charge=1, pt=10.0, eta=0.5, mass=0.14), rng)
    tracked = soft.pid == 211
    eff = det.track_efficiency_central
    # binomial: Z standard errors of the fraction
    assert tracked.mean() == pytest.approx(eff, abs=Z * np.sqrt(eff * (1 - eff) / n))
    # the untracked ones reach the calorimeter: every event still holds one object
    assert (soft.counts == 1).all()
    pt = soft.momenta().pt[tracked]
    sigma = track_resolution(np.array([10.0]), det)[0]
    assert np.std(pt / 10.0) == pytest.approx(sigma, rel=Z / np.sqrt(2 * tracked.sum()))
    # a 500 GeV pion is measured better by the calorimeter (σ_track 25 % vs ~3.5 %)
    hard = simulate(single_particles(500, pid=211, charge=1, pt=500.0, eta=0.5, mass=0.14), rng)
    assert (hard.pid == 0).all()
    # muons: tracker only, nothing in the calorimeter
    muons = simulate(single_particles(500, pid=13, charge=-1, pt=50.0, eta=3.0), rng)
    assert len(muons.e) == 0


def test_acceptance_and_loopers(rng):
    outside = simulate(single_particles(100, pid=22, charge=0, pt=50.0, eta=5.2), rng)
    loopers = simulate(single_particles(100, pid=211, charge=1, pt=0.3, eta=0.0, mass=0.14), rng)
    below_threshold = simulate(single_particles(100, pid=22, charge=0, pt=0.1, eta=0.0), rng)
    for reco in (outside, loopers, below_threshold):
        assert reco.n_events == 100 and reco.counts.sum() == 0
    assert track_efficiency(np.array([5.0]), np.array([2.6]), Detector())[0] == 0


def test_events_keep_their_objects(rng):
    """Objects stay with their event: event i gets a photon of energy 10·(i+1) GeV."""
    n = 50
    energies = 10.0 * (np.arange(n) + 1)
    p = vector.array(
        {
            "pt": energies / np.cosh(0.2),
            "eta": np.full(n, 0.2),
            "phi": np.zeros(n),
            "mass": np.zeros(n),
        }
    )
    particles = Particles.from_arrays(
        px=p.px,
        py=p.py,
        pz=p.pz,
        e=p.E,
        pid=np.full(n, 22),
        charge=np.zeros(n),
        counts=np.ones(n, int),
    )
    reco = simulate(particles, rng)
    assert (reco.counts == 1).all()
    assert np.allclose(reco.e / energies, 1, atol=0.1)  # 10 %/√E ⊕ 0.7 % ≪ 10 %


def test_same_generator_state_same_objects():
    particles = single_particles(200, pid=211, charge=1, pt=20.0, eta=1.0, mass=0.14)
    a = simulate(particles, np.random.default_rng(5))
    b = simulate(particles, np.random.default_rng(5))
    assert np.array_equal(a.e, b.e) and np.array_equal(a.counts, b.counts)


def test_jet_response_scale_and_width(rng):
    n = 20000
    exact = jet_response(10, np.random.default_rng(1), Detector(jes=1.07, jer=0.0))
    assert np.allclose(exact, 1.07)
    factors = jet_response(n, rng, Detector(jes=0.95, jer=0.08))
    # the median's standard error is ≈ 1.25 σ/√n
    assert np.median(factors) == pytest.approx(0.95, rel=Z * 0.08 * 1.25 / np.sqrt(n))
    assert np.log(factors).std() == pytest.approx(0.08, rel=Z / np.sqrt(2 * n))
    # the same draws whatever the knobs: the random stream does not depend on them
    g1, g2 = np.random.default_rng(3), np.random.default_rng(3)
    jet_response(7, g1, Detector(jer=0.0))
    jet_response(7, g2, Detector(jer=0.2))
    assert g1.random() == g2.random()


@pytest.mark.parametrize(
    "bad",
    [{"jes": 0.0}, {"jer": -0.1}, {"track_efficiency_central": 1.5}, {"cell_eta": float("nan")}],
)
def test_bad_detector_parameters(bad):
    with pytest.raises(SimkitError, match="detector"):
        Detector(**bad)


def test_docs_detector_table_matches_the_code():
    """Every Detector field appears in the documentation's table with its default value."""
    text = DETECTOR_PAGE.read_text()
    for name, value in Detector().as_dict().items():
        row = re.search(rf"^\|[^\n]*`{name}`[^\n]*$", text, flags=re.MULTILINE)
        assert row, f"the docs' detector table has no row for {name}"
        assert re.search(rf"\|\s*{value:g}\s*\|", row.group(0)), (
            f"the docs give another value than {value:g} for {name}: {row.group(0)}"
        )
