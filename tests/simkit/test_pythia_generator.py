"""The Pythia 8 reference chain: settings, seeds, and the physics of small samples.

The fast tests share two small samples (300 QCD and 300 W' events, a few seconds);
tolerances are set from the physics (line shapes) and stay ≫ the statistical error of
the quantities tested, which is given beside each check. Larger samples are `slow`.
"""

import numpy as np
import pytest

from simkit.errors import SimkitError
from simkit.generators import jets as J
from simkit.generators import pythia as P

MWPRIME, MX, MY = 3500.0, 500.0, 100.0


@pytest.fixture(scope="module")
def qcd():
    return P.generate("qcd-dijet", 300, seed=11, shard_size=150)


@pytest.fixture(scope="module")
def signal():
    return P.generate("wprime-xy", 300, seed=11, shard_size=150, mwprime=MWPRIME, mx=MX, my=MY)


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tune": "monash2013"}, "unknown tune 'monash2013'; tunes are: monash, a14"),
        ({"n_events": 0}, "number of events must be a whole number ≥ 1"),
        ({"n_events": -5}, "number of events"),
        ({"n_events": 2.5}, "number of events"),
        ({"seed": -1}, "seed must be a whole number ≥ 0"),
        ({"jobs": 0}, "number of jobs"),
        ({"process": "ttbar"}, "unknown process 'ttbar'; processes are: qcd-dijet, wprime-xy"),
        ({"mx": 3000.0, "my": 600.0}, "mX + mY = 3600 GeV must be below mW' = 3500 GeV"),
        ({"mx": -1.0}, "mx must be a positive number of GeV"),
        ({"pthat_min": 100.0}, "wprime-xy has no option pthat_min"),
        ({"min_pt": 0.0}, "leading-jet pT threshold must be positive"),
        ({"jes": 0.0}, "jes must be"),
    ],
)
def test_bad_settings_are_clear_errors(tmp_path, kwargs, message):
    args = {"process": "wprime-xy", "n_events": 10, "seed": 1, "output": tmp_path / "x.h5"}
    args.update(kwargs)
    with pytest.raises(SimkitError, match=message.replace("+", r"\+")):
        P.generate(args.pop("process"), args.pop("n_events"), args.pop("seed"), **args)
    assert list(tmp_path.iterdir()) == []


def test_every_pythia_setting_is_checked():
    with pytest.raises(SimkitError, match="Pythia refused the setting 'Nonsense:knob = 3'"):
        P._pythia([*P.pythia_settings("qcd-dijet"), "Nonsense:knob = 3"])
    with pytest.raises(SimkitError, match="Pythia refused"):
        P._pythia(["PhaseSpace:pTHatMin = not-a-number"])


def test_settings_hold_tune_first_and_the_process_card():
    settings = P.pythia_settings("wprime-xy", "a14", mwprime=3000.0, mx=400.0, my=80.0)
    assert settings[0] == "Tune:pp = 21"
    for line in ("34:m0 = 3000", "24:m0 = 400", "23:m0 = 80", "34:onIfMatch = 24 23"):
        assert line in settings
    assert "PartonLevel:MPI = off" in settings
    assert "PartonLevel:MPI = off" not in P.pythia_settings("qcd-dijet", mpi=True)
    assert "PhaseSpace:pTHatMin = 1100" in P.pythia_settings("qcd-dijet")


def test_shard_seeds_are_in_range_distinct_and_reproducible():
    seeds = {
        P.shard_seeds(seed, process, tune, shard)[0]
        for seed in (0, 1, 2**40)
        for process in P.PROCESSES
        for tune in ("monash", "a14")
        for shard in range(20)
    }
    assert len(seeds) == 3 * 2 * 2 * 20
    assert min(seeds) >= 1 and max(seeds) <= P.MAX_PYTHIA_SEED
    a = P.shard_seeds(5, "qcd-dijet", "monash", 3)
    b = P.shard_seeds(5, "qcd-dijet", "monash", 3)
    assert a[0] == b[0]
    assert np.array_equal(a[1].generate_state(4), b[1].generate_state(4))


def test_shard_sizes():
    assert P.shard_sizes(2500, 1000) == [1000, 1000, 500]
    assert P.shard_sizes(1000, 1000) == [1000]
    assert P.shard_sizes(7, 1000) == [7]


# --------------------------------------------------------------------------- samples


def test_sample_layout(qcd, signal):
    for sample, label in ((qcd, 0), (signal, 1)):
        assert sample.levels == ("gen", "reco") and len(sample) == 300
        for level in ("gen", "reco"):
            table = sample.level(level)
            assert table.columns == J.COLUMNS
            assert dict(zip(table.columns, table.units, strict=True))["mjj"] == "GeV"
            assert (table.labels == label).all()
            assert table.first_nonfinite() is None
            assert (table.features[~table.passed] == 0).all()  # placeholders
            passing = table.passing()
            assert (passing.column("delta_mj") >= 0).all()
            assert (passing.column("pt_j1").clip(min=0) > 0).all()
            leading = np.maximum(passing.column("pt_j1"), passing.column("pt_j2"))
            assert (leading > J.MIN_LEADING_PT).all()
            assert np.allclose(
                passing.column("delta_mj"),
                passing.column("m_j1") - passing.column("m_j2"),
                atol=1e-3,
            )
            for tau in ("tau21_j1", "tau32_j1", "tau21_j2", "tau32_j2"):
                assert ((passing.column(tau) >= 0) & (passing.column(tau) <= 1)).all()
    prov = qcd.provenance
    assert prov["settings"]["pythia_settings"][0] == "Tune:pp = 14"
    assert prov["seed"] == 11 and prov["settings"]["shard_size"] == 150
    assert prov["cross_section_pb"] > 0


def test_qcd_selection_is_efficient(qcd):
    # pT-hat > 1100 GeV against a 1200 GeV leading-jet cut: ~70 % pass (binomial σ ≈ 2.6 %)
    for level in ("gen", "reco"):
        assert 0.55 < qcd.level(level).passed.mean() < 0.85


@pytest.mark.parametrize("level", ["gen", "reco"])
def test_signal_peaks_at_the_resonance_masses(signal, level):
    t = signal.level(level).passing()
    assert len(t) > 120
    # W' line shape: 5 % width and a PDF-driven low-mass tail put the median ~3 % below
    # mW'; the median's statistical error is ~0.5 %
    assert np.median(t.column("mjj")) == pytest.approx(MWPRIME, rel=0.06)
    # the heavier jet is X: radiation in and out of the R = 1 jet moves its median by a
    # few percent at most (statistical error ~1 %)
    assert np.median(t.column("m_j1")) == pytest.approx(MX, rel=0.06)
    # the lighter jet is Y: a 100 GeV boson at pT ~ 1.5 TeV has prongs ~0.13 apart,
    # comparable to the 0.1 towers, whose cell-centre positions raise the reco mass by
    # ~10 %; radiation adds a few percent at gen level (statistical error ~2 %)
    assert np.median(t.column("m_j2")) == pytest.approx(MY, rel=0.08 if level == "gen" else 0.2)


@pytest.mark.parametrize("level", ["gen", "reco"])
def test_two_prong_signal_jets_have_lower_tau21_than_qcd(signal, qcd, level):
    s, b = signal.level(level).passing(), qcd.level(level).passing()
    # medians ~0.2 (signal) vs ~0.5 (QCD); each median's statistical error is ~0.01
    for jet in ("j1", "j2"):
        assert np.median(s.column(f"tau21_{jet}")) < np.median(b.column(f"tau21_{jet}")) - 0.15


def test_reco_gen_mjj_response_is_one_within_resolution(qcd, signal):
    for sample in (qcd, signal):
        both = sample.gen.passed & sample.reco.passed
        response = sample.reco.column("mjj")[both] / sample.gen.column("mjj")[both]
        low, median, high = np.percentile(response, [16, 50, 84])
        half_width = (high - low) / 2
        # resolution: a few percent (towers ⊕ the 3 % jet term), never zero
        assert 0.005 < half_width < 0.08
        # calibrated detector: the median is 1 within 2 % (statistical error ~0.3 %)
        assert median == pytest.approx(1.0, abs=0.02)


def test_jes_scales_reco_jet_energies_by_the_factor_asked():
    """Same seed, JES 1 and 1.1: the same particles and detector draws, so every reco jet
    energy (and mass) scales by exactly 1.1 while angles, substructure and gen stay."""
    nominal = P.generate("qcd-dijet", 60, seed=5, shard_size=60)
    shifted = P.generate("qcd-dijet", 60, seed=5, shard_size=60, jes=1.1)
    assert np.array_equal(nominal.gen.features, shifted.gen.features)
    both = nominal.reco.passed & shifted.reco.passed
    assert both.sum() > 20
    a, b = nominal.reco.mask(both), shifted.reco.mask(both)
    for name in ("mjj", "pt_j1", "pt_j2", "m_j1", "m_j2", "delta_mj"):
        assert np.allclose(b.column(name), 1.1 * a.column(name), rtol=1e-5), name
    for name in ("eta_j1", "phi_j2", "tau21_j1", "tau32_j2", "n_j1", "n_j2"):
        assert np.allclose(b.column(name), a.column(name), rtol=1e-5, atol=1e-6), name
    # some events move above the 1.2 TeV threshold, none below
    assert shifted.reco.passed.sum() >= nominal.reco.passed.sum()
    assert not (nominal.reco.passed & ~shifted.reco.passed).any()


def test_measure_rate_reports_each_stage():
    rates = P.measure_rate(20, seed=2)
    assert rates["events"] == 20
    for key in ("generation_per_s", "detector_per_s", "clustering_features_per_s"):
        assert rates[key] > rates["end_to_end_per_s"] > 0


def test_failing_shard_is_named_and_the_finished_ones_resume(tmp_path, monkeypatch):
    """Shard 1 fails: the error names it, no output file appears, shard 0 stays in the
    shard folder; resuming simulates shard 1 only and gives the uninterrupted file."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    real = P.simulate_shard
    simulated = []

    def failing(run, index, n):
        if index == 1:
            raise SimkitError("the disk broke")
        return real(run, index, n)

    def counting(run, index, n):
        simulated.append(index)
        return real(run, index, n)

    monkeypatch.setattr(P, "simulate_shard", failing)
    out = tmp_path / "sim.h5"
    with pytest.raises(SimkitError, match=r"shard 1 of 2 \(events 10–19\) failed: the disk broke"):
        P.generate("qcd-dijet", 20, seed=1, shard_size=10, output=out)
    assert [p.name for p in tmp_path.iterdir()] == ["sim.h5.shards"]
    monkeypatch.setattr(P, "simulate_shard", counting)
    P.generate("qcd-dijet", 20, seed=1, shard_size=10, output=out, resume=True)
    assert simulated == [1]
    whole = P.generate("qcd-dijet", 20, seed=1, shard_size=10, output=tmp_path / "whole.h5")
    assert out.read_bytes() == whole.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sim.h5", "whole.h5"]


# --------------------------------------------------------------------------- slow physics


@pytest.mark.slow
def test_signal_mass_peaks_with_more_events():
    sample = P.generate("wprime-xy", 2000, seed=3, jobs=2)
    t = sample.gen.passing()
    # the mode of mjj (100 GeV bins) sits at the W' mass within two bins
    counts, edges = np.histogram(t.column("mjj"), bins=np.arange(2000, 4500, 100))
    mode = edges[np.argmax(counts)] + 50
    assert abs(mode - MWPRIME) <= 200
    assert np.median(t.column("m_j1")) == pytest.approx(MX, rel=0.03)
    assert np.median(t.column("m_j2")) == pytest.approx(MY, rel=0.08)


@pytest.mark.slow
def test_tunes_differ_like_generators_do():
    """The A14 FSR variations (final-state αs 0.139 vs 0.111): more radiation gives more
    massive QCD jets with more constituents, as real generators differ."""
    from scipy.stats import ks_2samp

    soft = P.generate("qcd-dijet", 1500, seed=4, tune="a14-var2-down", jobs=2).gen.passing()
    hard = P.generate("qcd-dijet", 1500, seed=4, tune="a14-var2-up", jobs=2).gen.passing()
    assert np.median(hard.column("m_j1")) > np.median(soft.column("m_j1"))
    assert ks_2samp(hard.column("n_j1"), soft.column("n_j1")).pvalue < 1e-3


@pytest.mark.slow
def test_mpi_on_runs_and_adds_particles():
    off = P.generate("qcd-dijet", 200, seed=6)
    on = P.generate("qcd-dijet", 200, seed=6, mpi=True)
    assert on.provenance["settings"]["process_options"]["mpi"] is True
    n_off = np.mean(off.gen.passing().column("n_j1"))
    n_on = np.mean(on.gen.passing().column("n_j1"))
    assert n_on > n_off  # the underlying event puts extra particles into R = 1.0 jets
