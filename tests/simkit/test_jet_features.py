"""Jets and dijet features on hand-made events (no Pythia): kinematics, ordering, selection,
N-subjettiness against FastJet's own implementation."""

import awkward as ak
import fastjet
import numpy as np
import pytest
import vector

from simkit.generators import jets as J
from simkit.generators.detector import Particles


def spray(rng, n, pt, eta, phi, width=0.02):
    """n massless particles sharing pt around (eta, phi)."""
    shares = rng.dirichlet(np.ones(n))
    return [(pt * s, eta + rng.normal(0, width), phi + rng.normal(0, width)) for s in shares]


def events(*particle_lists):
    """Particles from per-event lists of (pt, eta, phi) massless particles."""
    flat = [p for event in particle_lists for p in event]
    pt, eta, phi = (np.array([p[i] for p in flat]) for i in range(3))
    mom = vector.array({"pt": pt, "eta": eta, "phi": phi, "mass": np.zeros(len(pt))})
    return Particles.from_arrays(
        px=mom.px,
        py=mom.py,
        pz=mom.pz,
        e=mom.E,
        pid=np.full(len(pt), 22),
        charge=np.zeros(len(pt)),
        counts=[len(e) for e in particle_lists],
    )


@pytest.fixture
def dijet(rng):
    """Event 0: a two-prong 1500 GeV jet and a one-prong 1400 GeV jet; event 1: one jet
    only; event 2: two jets below the 1.2 TeV threshold."""
    two_prong = spray(rng, 30, 800, 0.2, 0.0) + spray(rng, 30, 700, 0.2, 0.4)
    one_prong = spray(rng, 40, 1400, -0.3, np.pi - 0.05, width=0.05)
    lonely = spray(rng, 20, 1500, 0.0, 1.0)
    soft = spray(rng, 20, 900, 0.5, 0.0) + spray(rng, 20, 850, -0.5, 3.0)
    return two_prong, one_prong, events(two_prong + one_prong, lonely, soft)


def column(features, name):
    return features[:, J.COLUMNS.index(name)]


def test_features_of_a_known_dijet(dijet):
    two_prong, one_prong, particles = dijet
    features, passed = J.dijet_features(J.cluster(particles))
    assert passed.tolist() == [True, False, False]
    assert features.dtype == np.float32 and features.shape == (3, len(J.COLUMNS))
    assert (features[1:] == 0).all()  # failing rows: finite placeholders
    f = features[0]

    def total(ps):
        m = vector.array(
            {
                "pt": [p[0] for p in ps],
                "eta": [p[1] for p in ps],
                "phi": [p[2] for p in ps],
                "mass": np.zeros(len(ps)),
            }
        )
        return vector.obj(px=m.px.sum(), py=m.py.sum(), pz=m.pz.sum(), E=m.E.sum())

    a, b = total(two_prong), total(one_prong)
    # j1 is the heavier jet: the two-prong one (ΔR = 0.4 between prongs)
    assert column(features, "m_j1")[0] == pytest.approx(a.mass, rel=1e-5)
    assert column(features, "m_j2")[0] == pytest.approx(b.mass, rel=1e-5)
    assert column(features, "pt_j1")[0] == pytest.approx(a.pt, rel=1e-5)
    assert column(features, "eta_j2")[0] == pytest.approx(b.eta, abs=1e-5)
    assert column(features, "mjj")[0] == pytest.approx((a + b).mass, rel=1e-5)
    assert column(features, "n_j1")[0] == 60 and column(features, "n_j2")[0] == 40
    assert column(features, "delta_mj")[0] == pytest.approx(a.mass - b.mass, rel=1e-4)
    assert f[J.COLUMNS.index("delta_mj")] >= 0
    # two prongs: τ2 ≪ τ1; one prong: τ21 well above
    assert column(features, "tau21_j1")[0] < 0.2 < column(features, "tau21_j2")[0]


def test_features_do_not_depend_on_particle_order(dijet, rng):
    two_prong, one_prong, _ = dijet
    event = two_prong + one_prong
    shuffled = [event[i] for i in rng.permutation(len(event))]
    a, _ = J.dijet_features(J.cluster(events(event)))
    b, _ = J.dijet_features(J.cluster(events(shuffled)))
    assert np.allclose(a, b, rtol=1e-5)


def test_threshold_is_on_the_leading_jet(dijet):
    _, _, particles = dijet
    _, passed = J.dijet_features(J.cluster(particles), min_pt=800.0)
    assert passed.tolist() == [True, False, True]


def test_nsubjettiness_equals_fastjet_njettiness(rng):
    """The fast path (FastJet WTA-kT exclusive axes, sum here) against fastjet-contrib's
    Nsubjettiness, on jets of 1 to 80 particles."""
    sizes = [1, 2, 3, 4, 7, 20, 80] * 3
    jets_list = []
    for n in sizes:
        ps = spray(rng, n, 500, rng.uniform(-2, 2), rng.uniform(-3, 3), width=0.3)
        m = vector.array(
            {
                "pt": [p[0] for p in ps],
                "eta": [p[1] for p in ps],
                "phi": [p[2] for p in ps],
                "mass": np.zeros(n),
            }
        )
        jets_list.append(
            [
                {"px": x, "py": y, "pz": z, "E": e}
                for x, y, z, e in zip(m.px, m.py, m.pz, m.E, strict=True)
            ]
        )
    constituents = ak.Array(jets_list, with_name="Momentum4D")
    ours = J.nsubjettiness(constituents)
    sequence = fastjet.ClusterSequence(
        constituents, fastjet.JetDefinition(fastjet.antikt_algorithm, 1.0)
    )
    reference = ak.to_numpy(
        sequence.njettiness(axes_definition="WTA_KT_Axes", njets=[1, 2, 3], beta=1.0, R0=1.0)
    )
    assert np.allclose(ours, reference, rtol=1e-9, atol=1e-12)
    sizes = np.array(sizes)
    assert (ours[sizes == 1] == 0).all() and (ours[sizes <= 3, 2] == 0).all()


def test_ratio_is_zero_where_undefined():
    assert J.ratio(np.array([0.0, 0.2]), np.array([0.0, 0.4])).tolist() == [0.0, 0.5]


def test_scaled_jets_are_resorted_with_their_constituents(dijet):
    _, _, particles = dijet
    jets = J.cluster(particles)
    pt = jets.momenta().pt
    n_constituents = ak.to_numpy(ak.num(jets.constituents[jets.source]))
    assert jets.counts[0] == 2 and pt[0] > pt[1]
    factors = np.ones(jets.n_jets)
    factors[1] = 2.0  # the second jet of event 0 becomes the leading one
    scaled = jets.scaled(factors)
    assert scaled.momenta().pt[0] == pytest.approx(2 * pt[1])
    assert scaled.momenta().pt[1] == pytest.approx(pt[0])
    assert np.array_equal(scaled.counts, jets.counts)
    after = ak.to_numpy(ak.num(scaled.constituents[scaled.source]))
    assert after[:2].tolist() == n_constituents[:2][::-1].tolist()
    assert np.array_equal(after[2:], n_constituents[2:])


def test_one_particle_jets_have_mass_zero_not_a_negative_rounding(rng):
    # a jet of one massless particle has m² = 0 up to rounding; vector turns a negative
    # rounding of m² into a negative mass: the features clip it to 0
    one = [(1500.0, 0.3, 0.1)]
    other = [(1400.0, -0.4, np.pi - 0.1)]
    batch = events(*[one + other for _ in range(50)])
    features, passed = J.dijet_features(J.cluster(batch))
    assert passed.all()
    for name in ("m_j1", "m_j2"):
        assert (column(features, name) >= 0).all()
        assert np.abs(column(features, name)).max() < 1e-2
    assert (column(features, "delta_mj") >= 0).all()
