"""The reference dijet columns from two jets' kinematics and N-subjettiness.

The same columns, order and conventions as :mod:`simkit.generators.jets` (the reference
simulation), for files that already hold jets (the LHC Olympics feature file, NanoAOD or
Delphes ``FatJet``): of the two leading-pT jets **j1 is the heavier**, τ21 = τ2/τ1 and
τ32 = τ3/τ2 (0 where the denominator is 0), ``delta_mj`` = m_j1 − m_j2 ≥ 0, and an event
*passes* when it has two jets and the leading one has pT above ``min_pt``. Rows of events
that fail hold 0 in every column (finite placeholders). ``n_jX`` (constituents) is a
column only when the source has it.

>>> import numpy as np
>>> jets = TwoJets(pt=np.array([[1500.0, 1300.0]]), eta=np.zeros((1, 2)),
...                phi=np.array([[0.0, np.pi]]), mass=np.array([[100.0, 500.0]]),
...                taus=np.full((1, 2, 3), 0.5))
>>> features, passed = dijet_columns(jets)
>>> dict(zip(columns(False), features[0].round(1)))["m_j1"], bool(passed[0])
(np.float32(500.0), True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simkit.formats import require


def reference():
    """:mod:`simkit.generators.jets`, imported on first use (it needs awkward, an extra)."""
    require("awkward", "the jet features", "lhco")
    from simkit.generators import jets

    return jets


def columns(with_constituents: bool) -> tuple[str, ...]:
    """The reference columns, without ``n_j1``/``n_j2`` when the source has no counts."""
    every = reference().COLUMNS
    return every if with_constituents else tuple(c for c in every if not c.startswith("n_j"))


def units(with_constituents: bool) -> tuple[str, ...]:
    """Units of :func:`columns` (GeV for momenta and masses)."""

    jets = reference()
    return tuple(jets.UNITS[jets.COLUMNS.index(c)] for c in columns(with_constituents))


@dataclass(frozen=True, eq=False)
class TwoJets:
    """The two leading-pT jets of N events, in any order: arrays of shape (N, 2).

    ``taus`` is (N, 2, 3): τ1, τ2, τ3 of each jet. ``present`` marks events that have both
    jets (default: all). ``n_constituents`` is optional.
    """

    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    mass: np.ndarray
    taus: np.ndarray
    n_constituents: np.ndarray | None = None
    present: np.ndarray | None = None

    @classmethod
    def from_cartesian(cls, px, py, pz, mass, taus, **kwargs) -> TwoJets:
        """Jets given as (px, py, pz, m), each (N, 2), as the LHC Olympics feature file has."""
        import vector  # imported on first use: it loads sympy (~0.7 s)

        p4 = vector.array(
            {
                "px": np.asarray(px, np.float64).ravel(),
                "py": np.asarray(py, np.float64).ravel(),
                "pz": np.asarray(pz, np.float64).ravel(),
                "mass": np.asarray(mass, np.float64).ravel(),
            }
        )
        shape = np.shape(px)
        with np.errstate(divide="ignore", invalid="ignore"):  # absent jets: pt = 0
            eta = np.asarray(p4.eta).reshape(shape)
        return cls(
            pt=np.asarray(p4.pt).reshape(shape),
            eta=eta,
            phi=np.asarray(p4.phi).reshape(shape),
            mass=np.asarray(mass, np.float64),
            taus=taus,
            **kwargs,
        )


def dijet_columns(jets: TwoJets, *, min_pt: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The :func:`columns` of each event (float32) and its pass flag.

    Passing: both jets present and the leading one with pT > ``min_pt`` (None: the
    reference simulation's threshold, ``simkit.generators.jets.MIN_LEADING_PT``).
    """
    import vector  # imported on first use: it loads sympy (~0.7 s)

    ratio = reference().ratio
    min_pt = reference().MIN_LEADING_PT if min_pt is None else min_pt
    pt = np.asarray(jets.pt, np.float64)
    n = pt.shape[0]
    present = np.ones(n, bool) if jets.present is None else np.asarray(jets.present, bool)
    with_counts = jets.n_constituents is not None
    names = columns(with_counts)
    passed = present & (pt.max(axis=1, initial=-np.inf) > min_pt)
    features = np.zeros((n, len(names)), dtype=np.float32)
    if not passed.any():
        return features, passed

    def pick(values):
        return np.asarray(values, np.float64)[passed]

    pt, eta, phi = pick(jets.pt), pick(jets.eta), pick(jets.phi)
    # m² < 0 is rounding in a jet's four-vector (as in simkit.generators.jets): mass 0
    mass = np.maximum(pick(jets.mass), 0.0)
    taus = pick(jets.taus)
    counts = pick(jets.n_constituents) if with_counts else None
    swap = mass[:, 1] > mass[:, 0]  # j1 is the heavier jet (LHC Olympics convention)
    order = np.stack([swap, ~swap], axis=1).astype(np.int64)
    rows = np.arange(len(order))[:, None]
    pt, eta, phi, mass, taus = (a[rows, order] for a in (pt, eta, phi, mass, taus))
    if counts is not None:
        counts = counts[rows, order]
    j1, j2 = (
        vector.array({"pt": pt[:, i], "eta": eta[:, i], "phi": phi[:, i], "mass": mass[:, i]})
        for i in (0, 1)
    )
    per_jet = []
    for i in (0, 1):
        per_jet += [
            pt[:, i],
            eta[:, i],
            phi[:, i],
            mass[:, i],
            ratio(taus[:, i, 1], taus[:, i, 0]),
            ratio(taus[:, i, 2], taus[:, i, 1]),
        ]
        if counts is not None:
            per_jet.append(counts[:, i])
    mjj = np.maximum(np.asarray((j1 + j2).mass, np.float64), 0.0)
    block = np.column_stack([mjj, *per_jet, mass[:, 0] - mass[:, 1]])
    features[passed] = block.astype(np.float32)
    return features, passed
