"""A toy dijet sample with the agreed column names, for the detector tests.

Background: mjj falls like the dijet function; jets are one-prong-like (τ21 ≈ 0.6)
with QCD-like masses. Signal: a resonance at mjj ≈ 3500 GeV with two two-prong jets
of masses ≈ 500 and 100 GeV (the W'→XY of the LHC Olympics). j1 is the heavier jet.
"""

from __future__ import annotations

import numpy as np

from detectors.evaluate import dijet_function
from simkit.events import EventTable, Sample

COLUMNS = (
    "mjj",
    "pt_j1", "eta_j1", "phi_j1", "m_j1", "tau21_j1", "tau32_j1", "n_j1",
    "pt_j2", "eta_j2", "phi_j2", "m_j2", "tau21_j2", "tau32_j2", "n_j2",
    "delta_mj",
)  # fmt: skip


def falling_mjj(n: int, rng: np.random.Generator, low=2600.0, high=6500.0, p=(1, 10, 5, 0)):
    """mjj drawn from the dijet function by inverting its CDF on a fine grid."""
    grid = np.linspace(low, high, 20001)
    cdf = np.cumsum(dijet_function(grid / 13000.0, *p))
    return np.interp(rng.random(n), cdf / cdf[-1], grid)


def _jets(n, rng, signal):
    if signal:
        masses = (rng.normal(500, 30, n), rng.normal(100, 10, n))
        tau21 = (rng.normal(0.3, 0.08, n), rng.normal(0.3, 0.08, n))
        const = (rng.poisson(80, n), rng.poisson(70, n))
    else:
        masses = (rng.lognormal(np.log(90), 0.5, n), rng.lognormal(np.log(90), 0.5, n))
        tau21 = (rng.normal(0.62, 0.12, n), rng.normal(0.62, 0.12, n))
        const = (rng.poisson(55, n), rng.poisson(55, n))
    tau32 = (rng.normal(0.7, 0.1, n), rng.normal(0.7, 0.1, n))
    return masses, tau21, tau32, const


def dijet_sample(
    n_background: int, n_signal: int, rng: np.random.Generator, *, weights=None
) -> Sample:
    """A reco-level toy sample with labels (0 background, 1 signal), shuffled."""
    blocks = []
    for n, signal in ((n_background, False), (n_signal, True)):
        mjj = rng.normal(3500, 150, n) if signal else falling_mjj(n, rng)
        (ma, mb), (ta, tb), (sa, sb), (na, nb) = _jets(n, rng, signal)
        swap = mb > ma  # j1 is the heavier jet
        cols = {"mjj": mjj}
        heavy = {"j1": ~swap, "j2": swap}  # where the jet takes the "a" values
        for jet in ("j1", "j2"):
            take_a = heavy[jet]
            cols[f"pt_{jet}"] = mjj / 2 * rng.uniform(0.9, 1.0, n)
            cols[f"eta_{jet}"] = rng.normal(0, 1, n)
            cols[f"phi_{jet}"] = rng.uniform(-np.pi, np.pi, n)
            cols[f"m_{jet}"] = np.where(take_a, ma, mb)
            cols[f"tau21_{jet}"] = np.clip(np.where(take_a, ta, tb), 0.01, 1.0)
            cols[f"tau32_{jet}"] = np.clip(np.where(take_a, sa, sb), 0.01, 1.0)
            cols[f"n_{jet}"] = np.where(take_a, na, nb).astype(float)
        cols["delta_mj"] = cols["m_j1"] - cols["m_j2"]
        blocks.append((cols, np.full(n, int(signal), np.int8)))
    order = rng.permutation(n_background + n_signal)
    data = {c: np.concatenate([b[0][c] for b in blocks])[order] for c in COLUMNS}
    labels = np.concatenate([b[1] for b in blocks])[order]
    reco = EventTable.from_columns(data, labels=labels, weights=weights)
    return Sample(reco=reco, provenance={"generator": "tests.detectors.dijet_toy"})
