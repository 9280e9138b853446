"""Toy hadron-level dijet events written in both LHC Olympics 2020 layouts.

Each event has two back-to-back jets of one to three prongs (sprays of massless hadrons)
and soft hadrons around them; about a tenth have jets below the 1.2 TeV trigger. The
feature file is computed here from the same FastJet clustering as the importer's raw
path uses, jets ordered by pT as in the real file, and stored as float32: its rounding
is that of a float32 file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import vector

from simkit.generators import jets as J
from simkit.generators.detector import Particles

N_HADRONS = 700


def hadron_events(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Per event, an (m, 3) array of massless hadrons (pT, η, φ), m ≤ 700."""
    events = []
    for _ in range(n):
        soft = rng.random() < 0.1
        pt_jets = rng.uniform(800, 1100, 2) if soft else rng.uniform(1250, 1900, 2)
        eta_jets = rng.normal(0, 0.8, 2)
        phi0 = rng.uniform(-np.pi, np.pi)
        parts = []
        for pt_jet, eta_jet, phi_jet in zip(pt_jets, eta_jets, (phi0, phi0 + np.pi), strict=True):
            n_prongs = rng.integers(1, 4)
            shares = rng.dirichlet(np.full(n_prongs, 3.0))
            for share in shares:
                k = int(rng.integers(8, 40))
                pt = pt_jet * share * rng.dirichlet(np.ones(k))
                eta = eta_jet + rng.normal(0, 0.25) + rng.normal(0, 0.03, k)
                phi = phi_jet + rng.normal(0, 0.25) + rng.normal(0, 0.03, k)
                parts.append(np.column_stack([pt, eta, phi]))
        k = int(rng.integers(10, 60))
        parts.append(
            np.column_stack(
                [
                    rng.exponential(3.0, k) + 0.5,
                    rng.uniform(-2.5, 2.5, k),
                    rng.uniform(-np.pi, np.pi, k),
                ]
            )
        )
        hadrons = np.concatenate(parts)
        hadrons[:, 2] = np.angle(np.exp(1j * hadrons[:, 2]))  # φ in (−π, π]
        events.append(hadrons[np.argsort(-hadrons[:, 0])][:N_HADRONS])
    return events


def raw_frame(events: list[np.ndarray], labels: np.ndarray | None) -> pd.DataFrame:
    """The raw layout: 2100 zero-padded columns (+ the label), integer column names."""
    values = np.zeros((len(events), 3 * N_HADRONS + (labels is not None)))
    for i, hadrons in enumerate(events):
        values[i, : 3 * len(hadrons)] = hadrons.ravel()
    if labels is not None:
        values[:, -1] = labels
    return pd.DataFrame(values)


def feature_frame(events: list[np.ndarray], labels: np.ndarray | None) -> pd.DataFrame:
    """The feature layout from FastJet anti-kT R=1 jets of the same hadrons (float32)."""
    pt = np.concatenate([e[:, 0] for e in events])
    p4 = vector.array(
        {
            "pt": pt,
            "eta": np.concatenate([e[:, 1] for e in events]),
            "phi": np.concatenate([e[:, 2] for e in events]),
            "mass": np.zeros(len(pt)),
        }
    )
    particles = Particles.from_arrays(
        px=p4.px,
        py=p4.py,
        pz=p4.pz,
        e=p4.E,
        pid=np.zeros(len(pt), np.int64),
        charge=np.zeros(len(pt)),
        counts=[len(e) for e in events],
    )
    jets = J.cluster(particles)
    n = len(events)
    out = {
        f"{q}j{j}": np.zeros(n)
        for j in (1, 2)
        for q in ("px", "py", "pz", "m", "tau1", "tau2", "tau3")
    }
    first = np.concatenate([[0], np.cumsum(jets.counts)[:-1]])
    for j in (0, 1):  # the two leading-pT jets, in pT order (the file's convention)
        has = jets.counts > j
        rows = first[has] + j
        mom = jets.momenta()[rows]
        taus = J.nsubjettiness(jets.constituents[jets.source[rows]])
        for name, values in (
            ("px", mom.px),
            ("py", mom.py),
            ("pz", mom.pz),
            ("m", np.maximum(mom.mass, 0.0)),
            ("tau1", taus[:, 0]),
            ("tau2", taus[:, 1]),
            ("tau3", taus[:, 2]),
        ):
            out[f"{name}j{j + 1}"][has] = values
    frame = pd.DataFrame({k: v.astype(np.float32) for k, v in out.items()})
    if labels is not None:
        frame["label"] = labels.astype(np.float32)
    return frame


def write_both(folder, n: int, rng: np.random.Generator, *, labels: bool = True, fmt=None):
    """Write ``raw.h5`` and ``features.h5`` of the same ``n`` toy events; returns the paths."""
    events = hadron_events(n, rng)
    lab = (rng.random(n) < 0.3).astype(np.int8) if labels else None
    raw, features = folder / "raw.h5", folder / "features.h5"
    raw_frame(events, lab).to_hdf(raw, key="df", format=fmt)
    feature_frame(events, lab).to_hdf(features, key="df", format=fmt)
    return raw, features, lab
