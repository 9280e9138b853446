"""Jets and the LHC-Olympics-style dijet features, through FastJet on whole batches.

Anti-kT jets of radius R = 1.0 (Cacciari, Salam, Soyez, JHEP 04 (2008) 063) are found
by scikit-hep ``fastjet`` on an Awkward batch of events at once. An event *passes* when
it has two jets and the leading one has pT above ``min_pt`` (1.2 TeV, the LHC Olympics
2020 R&D selection). Of the two leading-pT jets, **j1 is the heavier** (the LHC Olympics
convention). The features, identical at generator and detector level::

    mjj, pt_j1, eta_j1, phi_j1, m_j1, tau21_j1, tau32_j1, n_j1,
         pt_j2, eta_j2, phi_j2, m_j2, tau21_j2, tau32_j2, n_j2, delta_mj

with energies in GeV, ``n_jX`` the number of constituents and ``delta_mj`` = m_j1 − m_j2
(≥ 0). Rows of events that fail hold 0 in every column (finite placeholders).

N-subjettiness (Thaler, Van Tilburg, JHEP 03 (2011) 015), β = 1, normalized with
R0 = R: τ_N = Σ_i pT_i min_k ΔR(i, a_k) / Σ_i pT_i R0 (ΔR in rapidity and azimuth), with
the axes a_k the exclusive kT subjets of the jet with winner-take-all recombination
(``WTA_KT_Axes`` of fastjet-contrib's Nsubjettiness; Larkoski, Neill, Thaler, JHEP 04
(2014) 017): recoil-free, and unlike plain kT axes they keep τ21 and τ32 below 1 (with
plain kT axes ~5 % of QCD jets had τ21 > 1). The axes come from FastJet; the sum is
taken here, three times faster than ``ClusterSequence.njettiness`` (which re-clusters
for every N) and equal to it to rounding (tested). A jet with fewer constituents than
N has τ_N = 0, and a ratio τ_N/τ_{N−1} with τ_{N−1} = 0 is defined as 0 (its limit
when the jet has fewer than N particles).
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from dataclasses import dataclass

import awkward as ak
import numpy as np
import vector

from simkit.generators.detector import Particles

vector.register_awkward()

JET_RADIUS = 1.0
#: Jets softer than this are not kept (well below any jet the selection looks at).
MIN_JET_PT = 20.0
#: Leading-jet pT threshold of the LHC Olympics 2020 R&D selection.
MIN_LEADING_PT = 1200.0
#: kT with this radius merges all constituents: its exclusive subjets are the N-subjettiness
#: axes (fastjet::JetDefinition::max_allowable_R, as fastjet-contrib's axes definitions use).
_AXES_RADIUS = 1000.0

COLUMNS = (
    "mjj",
    "pt_j1",
    "eta_j1",
    "phi_j1",
    "m_j1",
    "tau21_j1",
    "tau32_j1",
    "n_j1",
    "pt_j2",
    "eta_j2",
    "phi_j2",
    "m_j2",
    "tau21_j2",
    "tau32_j2",
    "n_j2",
    "delta_mj",
)
_GEV = {"mjj", "pt_j1", "m_j1", "pt_j2", "m_j2", "delta_mj"}
UNITS = tuple("GeV" if c in _GEV else "" for c in COLUMNS)


# --------------------------------------------------------------------------- FastJet setup

_definitions: dict[tuple[str, float], object] = {}


def _jet_definition(algorithm: str, radius: float):
    """A FastJet jet definition, made once per process (SWIG objects do not pickle)."""
    import fastjet

    key = (algorithm, radius)
    if key not in _definitions:
        if not _definitions:
            _silence_banner()
        if algorithm == "antikt":
            definition = fastjet.JetDefinition(fastjet.antikt_algorithm, radius)
        else:  # the N-subjettiness axes: kT with winner-take-all recombination
            definition = fastjet.JetDefinition(fastjet.kt_algorithm, radius, fastjet.WTA_pt_scheme)
        _definitions[key] = definition
    return _definitions[key]


def _silence_banner() -> None:
    """FastJet prints its banner on stdout at the first clustering of a process; the Python
    package has no switch for it, so run one tiny clustering with stdout sent to /dev/null.
    (The banner asks to cite FastJet: docs/howto/simulate.md does.)"""
    import fastjet

    one = ak.Array([[{"px": 1.0, "py": 0.0, "pz": 0.0, "E": 1.0}]], with_name="Momentum4D")
    definition = fastjet.JetDefinition(fastjet.antikt_algorithm, 0.4)
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            fastjet.ClusterSequence(one, definition).inclusive_jets()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


# --------------------------------------------------------------------------- clustering


def to_awkward(particles: Particles) -> ak.Array:
    """Events × particles as an Awkward array of ``Momentum4D`` (px, py, pz, E)."""
    flat = ak.zip(
        {"px": particles.px, "py": particles.py, "pz": particles.pz, "E": particles.e},
        with_name="Momentum4D",
    )
    return ak.unflatten(flat, particles.counts)


@dataclass(frozen=True, eq=False)
class Jets:
    """The jets of a batch of events: flat four-momenta sorted by decreasing pT within each
    event (``counts[i]`` jets in event *i*), and their constituents.

    ``constituents`` is (jets in FastJet's order) × particles; ``source[j]`` is the row of
    sorted jet *j* there, so that only the constituents of the jets used are gathered.
    """

    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    counts: np.ndarray
    constituents: ak.Array
    source: np.ndarray

    @classmethod
    def sorted_by_pt(cls, px, py, pz, e, counts, constituents, source) -> Jets:
        pt = np.hypot(px, py)
        event = np.repeat(np.arange(len(counts)), counts)
        order = np.lexsort((-pt, event))  # events in order, decreasing pT inside each
        return cls(px[order], py[order], pz[order], e[order], counts, constituents, source[order])

    def __len__(self) -> int:
        return len(self.counts)

    @property
    def n_jets(self) -> int:
        return len(self.px)

    def momenta(self):
        """The jet four-momenta as a ``vector`` numpy array."""
        return vector.array({"px": self.px, "py": self.py, "pz": self.pz, "E": self.e})

    def scaled(self, factors: np.ndarray) -> Jets:
        """The jets with their four-momenta multiplied by per-jet ``factors`` (in jet order),
        re-sorted by pT. Constituents are not touched: N-subjettiness ratios and constituent
        counts do not depend on the jet energy scale."""
        f = np.asarray(factors, dtype=np.float64)
        return Jets.sorted_by_pt(
            self.px * f,
            self.py * f,
            self.pz * f,
            self.e * f,
            self.counts,
            self.constituents,
            self.source,
        )


def cluster(
    particles: Particles, *, radius: float = JET_RADIUS, min_jet_pt: float = MIN_JET_PT
) -> Jets:
    """Anti-kT jets (E-scheme) of every event of the batch, sorted by decreasing pT."""
    import fastjet

    sequence = fastjet.ClusterSequence(to_awkward(particles), _jet_definition("antikt", radius))
    jets = sequence.inclusive_jets(min_pt=min_jet_pt)
    # constituents come jet by jet in the order of inclusive_jets (both from the same call)
    constituents = ak.flatten(sequence.constituents(min_pt=min_jet_pt), axis=1)
    p4 = _vectors(ak.flatten(jets))
    return Jets.sorted_by_pt(
        p4.px,
        p4.py,
        p4.pz,
        p4.E,
        counts=ak.to_numpy(ak.num(jets)).astype(np.int64),
        constituents=constituents,
        source=np.arange(len(p4)),
    )


def nsubjettiness(
    constituents: ak.Array, *, n_max: int = 3, beta: float = 1.0, r0: float = JET_RADIUS
) -> np.ndarray:
    """τ_1..τ_{n_max} of each jet, shape (n_jets, n_max); ``constituents`` is jets × particles.

    Normalized measure (β, R0) with winner-take-all exclusive-kT axes, as fastjet-contrib's
    ``Nsubjettiness(N, WTA_KT_Axes(), NormalizedMeasure(beta, R0))``.
    """
    import fastjet

    counts = ak.to_numpy(ak.num(constituents))
    if (counts == 0).any():
        raise ValueError("a jet without constituents has no N-subjettiness")
    taus = np.zeros((len(counts), n_max))
    # FastJet's exclusive jets need at least n_max particles per jet; the (rare) smaller jets
    # go through fastjet's own, slower, N-subjettiness
    big = counts >= n_max
    if (~big).any():
        sequence = fastjet.ClusterSequence(constituents[~big], _jet_definition("antikt", r0))
        taus[~big] = ak.to_numpy(
            sequence.njettiness(
                measure_definition="NormalizedMeasure",
                axes_definition="WTA_KT_Axes",
                njets=list(range(1, n_max + 1)),
                beta=beta,
                R0=r0,
            )
        )
    if not big.any():
        return taus
    constituents, counts = constituents[big], counts[big]
    n_jets = len(counts)
    sequence = fastjet.ClusterSequence(constituents, _jet_definition("kt-wta", _AXES_RADIUS))
    parts = _vectors(ak.flatten(constituents))
    jet_of = np.repeat(np.arange(n_jets), counts)
    weight = parts.pt
    norm = np.bincount(jet_of, weights=weight, minlength=n_jets) * r0**beta
    nearest = np.empty(len(jet_of))
    for n in range(1, n_max + 1):
        with _kt_exclusive_jets():
            axes = ak.without_parameters(sequence.exclusive_jets(n_jets=n))  # jets × n
        # exactly n axes per jet: a regular (jets, n) block per component
        block = {
            c: ak.to_numpy(ak.flatten(axes[c])).reshape(-1, n) for c in ("px", "py", "pz", "E")
        }
        nearest.fill(np.inf)
        for k in range(n):
            axis = vector.array({c: v[:, k] for c, v in block.items()})[jet_of]
            nearest = np.minimum(nearest, parts.deltaRapidityPhi(axis) ** beta)
        taus[big, n - 1] = np.bincount(jet_of, weights=weight * nearest, minlength=n_jets) / norm
    return taus


@contextlib.contextmanager
def _kt_exclusive_jets():
    # fastjet 3.5.2 compares the JetDefinition object (not its algorithm) with the kT/C-A
    # enums, so it warns that exclusive jets need care even for kT: not the case here
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="dcut and exclusive jets", category=UserWarning)
        yield


def _vectors(records: ak.Array):
    """A flat Awkward array of Momentum4D records as a ``vector`` numpy array."""
    plain = ak.without_parameters(records)  # plain fields: no vector-awkward dispatch
    return vector.array({c: ak.to_numpy(plain[c]) for c in ("px", "py", "pz", "E")})


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """τ_N/τ_{N−1}, defined as 0 where τ_{N−1} = 0 (a jet with fewer than N particles)."""
    out = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


# --------------------------------------------------------------------------- features


def dijet_features(jets: Jets, *, min_pt: float = MIN_LEADING_PT) -> tuple[np.ndarray, np.ndarray]:
    """The :data:`COLUMNS` of each event (float32, (N, 16)) and its pass flag.

    Passing: two jets, the leading one with pT > ``min_pt``. Failing rows are all 0.
    """
    n_events = len(jets)
    first = np.concatenate([[0], np.cumsum(jets.counts)[:-1]]).astype(np.int64)
    has_two = jets.counts >= 2
    leading_pt = np.zeros(n_events)
    leading_pt[has_two] = np.hypot(jets.px[first[has_two]], jets.py[first[has_two]])
    passed = has_two & (leading_pt > min_pt)
    features = np.zeros((n_events, len(COLUMNS)), dtype=np.float32)
    if not passed.any():
        return features, passed

    two = np.stack([first[passed], first[passed] + 1], axis=1)  # the two leading jets
    constituents = jets.constituents[jets.source[two.ravel()]]
    taus = nsubjettiness(constituents).reshape(-1, 2, 3)
    n_constituents = ak.to_numpy(ak.num(constituents)).reshape(-1, 2).astype(np.float64)
    p4 = jets.momenta()[two]
    # A jet is a sum of time- or light-like four-vectors, so m² ≥ 0; a negative m² is
    # rounding (one massless constituent, or collinear ones), which vector would turn into
    # a negative mass: it is 0.
    mass = np.maximum(np.asarray(p4.mass, dtype=np.float64), 0.0)
    # j1 is the heavier of the two leading jets (LHC Olympics convention)
    swap = mass[:, 1] > mass[:, 0]
    order = np.stack([swap.astype(np.int64), (~swap).astype(np.int64)], axis=1)
    rows = np.arange(len(order))[:, None]
    p4, taus, n_constituents = p4[rows, order], taus[rows, order], n_constituents[rows, order]
    mass = mass[rows, order]
    j1, j2 = p4[:, 0], p4[:, 1]
    per_jet = []
    for i, jet in ((0, j1), (1, j2)):
        per_jet += [
            jet.pt,
            jet.eta,
            jet.phi,
            mass[:, i],
            ratio(taus[:, i, 1], taus[:, i, 0]),
            ratio(taus[:, i, 2], taus[:, i, 1]),
            n_constituents[:, i],
        ]
    features[passed] = np.column_stack([(j1 + j2).mass, *per_jet, mass[:, 0] - mass[:, 1]]).astype(
        np.float32
    )
    return features, passed
