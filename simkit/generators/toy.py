"""Analytic closure problems for the unfolding, with known answers.

``gaussian`` is the OmniFold reference problem (Andreassen et al., PRL 124 (2020)
182001): generator-level truth x ~ N(μ, σ), detector response x + N(0, 0.5).
Simulation has μ=0, σ=1; pseudo-data has μ=0.2, σ=0.8 and keeps its truth in a
``truth`` level that the unfolding never reads.

``gaussian-hard`` adds what real detectors do: a bias and a resolution that grows
with x, an efficiency below one that depends on x (events failing reco), and fakes
(reco events with no generator-level partner, failing gen). Simulation and
pseudo-data share the detector; only the truth differs.

``gaussian_2d_hard`` is the same detector in two dimensions: correlated Gaussian truth
(x, y), each axis biased and smeared like ``gaussian-hard``, an efficiency that depends on
x + y/2 (below ½ where x + y/2 < −1: the *inefficient region*), and 10 % fakes.

Each function is pure: arrays in, a :class:`~simkit.events.Sample` out, all
randomness from the ``numpy.random.Generator`` passed in.

>>> import numpy as np
>>> sim = gaussian(1000, np.random.default_rng(1))
>>> sim.levels
('gen', 'reco')
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simkit.errors import SimkitError
from simkit.events import EventTable, Sample

SIM_TRUTH = (0.0, 1.0)  # (mean, width) of simulation truth
DATA_TRUTH = (0.2, 0.8)  # (mean, width) of pseudo-data truth
SMEARING = 0.5
# ((mean x, mean y), (width x, width y), correlation) of the 2-D problem's truth
SIM_TRUTH_2D = ((0.0, 0.0), (1.0, 1.0), 0.0)
DATA_TRUTH_2D = ((0.2, -0.1), (0.8, 1.1), 0.3)


@dataclass(frozen=True)
class HardDetector:
    """The detector of ``gaussian-hard``: reco = bias + scale·x + N(0, σ(x)), with
    σ(x) = σ₀·sqrt(1 + (x/2)²); efficiency ε(x) = ε₀ + ε₁·tanh(x + 1); fakes are a fixed
    fraction of the true events, drawn from N(fake_mean, fake_width) at reco."""

    bias: float = 0.2
    scale: float = 1.05
    smearing: float = 0.5
    eff_mid: float = 0.5
    eff_slope: float = 0.4
    fake_fraction: float = 0.1
    fake_mean: float = 0.5
    fake_width: float = 1.2

    def efficiency(self, x: np.ndarray) -> np.ndarray:
        return self.eff_mid + self.eff_slope * np.tanh(x + 1.0)

    def resolution(self, x: np.ndarray) -> np.ndarray:
        return self.smearing * np.sqrt(1.0 + (x / 2.0) ** 2)


def _check(n: int) -> None:
    if int(n) != n or n < 1:
        raise SimkitError(f"number of events must be a positive integer, got {n}")


def _tables(gen_x, gen_pass, reco_x, reco_pass) -> dict[str, EventTable]:
    n = len(gen_x)
    ones = np.ones(n)
    return {
        "gen": EventTable(gen_x[:, None], ("x",), ones, gen_pass),
        "reco": EventTable(reco_x[:, None], ("x",), ones, reco_pass),
    }


def _as_data(sim_like: Sample, provenance: dict) -> Sample:
    """Pseudo-data: the reco level; the generator level kept aside as hidden truth."""
    return Sample(reco=sim_like.reco, truth=sim_like.gen, provenance=provenance)


def gaussian(
    n: int,
    rng: np.random.Generator,
    *,
    mean: float = SIM_TRUTH[0],
    width: float = SIM_TRUTH[1],
    smearing: float = SMEARING,
    data: bool = False,
) -> Sample:
    """The OmniFold reference problem: truth N(mean, width), reco = truth + N(0, smearing).

    With ``data=True`` (and by default the pseudo-data truth N(0.2, 0.8) — pass
    ``mean``/``width`` to change it) the sample holds ``reco`` and hidden ``truth``.
    """
    _check(n)
    if data and (mean, width) == SIM_TRUTH:
        mean, width = DATA_TRUTH
    truth = rng.normal(mean, width, n)
    reco = truth + rng.normal(0.0, smearing, n)
    every = np.ones(n, bool)
    sample = Sample(**_tables(truth, every, reco, every))
    provenance = {
        "process": "gaussian",
        "truth_mean": mean,
        "truth_width": width,
        "smearing": smearing,
        "data": data,
    }
    return (
        _as_data(sample, provenance)
        if data
        else Sample(gen=sample.gen, reco=sample.reco, provenance=provenance)
    )


def gaussian_hard(
    n: int,
    rng: np.random.Generator,
    *,
    mean: float = SIM_TRUTH[0],
    width: float = SIM_TRUTH[1],
    detector: HardDetector = HardDetector(),
    data: bool = False,
) -> Sample:
    """Gaussian truth through a biased, inefficient detector with fakes.

    ``n`` true events are drawn; the ones the detector misses fail ``reco``; then
    ``round(fake_fraction · n)`` fakes (failing ``gen``, placeholder gen value 0) are
    mixed in at random positions. ``data=True`` uses N(0.2, 0.8) truth by default.
    """
    _check(n)
    if data and (mean, width) == SIM_TRUTH:
        mean, width = DATA_TRUTH
    truth = rng.normal(mean, width, n)
    reco = (
        detector.bias
        + detector.scale * truth
        + rng.normal(0.0, 1.0, n) * detector.resolution(truth)
    )
    detected = rng.random(n) < detector.efficiency(truth)
    n_fake = round(detector.fake_fraction * n)
    fake_reco = rng.normal(detector.fake_mean, detector.fake_width, n_fake)
    gen_x = np.concatenate([truth, np.zeros(n_fake)])
    gen_pass = np.concatenate([np.ones(n, bool), np.zeros(n_fake, bool)])
    reco_x = np.concatenate([np.where(detected, reco, 0.0), fake_reco])
    reco_pass = np.concatenate([detected, np.ones(n_fake, bool)])
    order = rng.permutation(n + n_fake)
    sample = Sample(**_tables(gen_x[order], gen_pass[order], reco_x[order], reco_pass[order]))
    provenance = {
        "process": "gaussian-hard",
        "truth_mean": mean,
        "truth_width": width,
        "detector": detector.__dict__,
        "data": data,
    }
    return (
        _as_data(sample, provenance)
        if data
        else Sample(gen=sample.gen, reco=sample.reco, provenance=provenance)
    )


def efficiency_variable_2d(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """u = x + y/2: the efficiency of ``gaussian_2d_hard`` is ``HardDetector.efficiency(u)``,
    below ½ where u < −1 (the inefficient region)."""
    return np.asarray(x) + 0.5 * np.asarray(y)


def gaussian_2d_hard(
    n: int,
    rng: np.random.Generator,
    *,
    truth: tuple = SIM_TRUTH_2D,
    detector: HardDetector = HardDetector(),
    data: bool = False,
) -> Sample:
    """Correlated 2-D Gaussian truth (columns ``x``, ``y``) through a biased, inefficient
    detector with fakes.

    ``truth = ((mean_x, mean_y), (width_x, width_y), correlation)``; ``data=True`` uses
    ``DATA_TRUTH_2D`` by default. Each axis is measured as ``detector`` measures x in
    :func:`gaussian_hard` (independent smearing); an event is detected with probability
    ``detector.efficiency(x + y/2)``; ``round(fake_fraction · n)`` fakes (failing gen,
    placeholder gen values 0) have reco x and y drawn independently from
    N(fake_mean, fake_width).
    """
    _check(n)
    if data and truth == SIM_TRUTH_2D:
        truth = DATA_TRUTH_2D
    (mx, my), (sx, sy), rho = truth
    cov = [[sx * sx, rho * sx * sy], [rho * sx * sy, sy * sy]]
    gen = rng.multivariate_normal([mx, my], cov, n)
    reco = (
        detector.bias
        + detector.scale * gen
        + rng.normal(0.0, 1.0, (n, 2)) * detector.resolution(gen)
    )
    detected = rng.random(n) < detector.efficiency(efficiency_variable_2d(gen[:, 0], gen[:, 1]))
    n_fake = round(detector.fake_fraction * n)
    fake_reco = rng.normal(detector.fake_mean, detector.fake_width, (n_fake, 2))
    gen_x = np.concatenate([gen, np.zeros((n_fake, 2))])
    gen_pass = np.concatenate([np.ones(n, bool), np.zeros(n_fake, bool)])
    reco_x = np.concatenate([np.where(detected[:, None], reco, 0.0), fake_reco])
    reco_pass = np.concatenate([detected, np.ones(n_fake, bool)])
    order = rng.permutation(n + n_fake)
    ones = np.ones(n + n_fake)
    columns = ("x", "y")
    sample = Sample(
        gen=EventTable(gen_x[order], columns, ones, gen_pass[order]),
        reco=EventTable(reco_x[order], columns, ones, reco_pass[order]),
    )
    provenance = {
        "process": "gaussian-2d-hard",
        "truth": [[mx, my], [sx, sy], rho],
        "detector": detector.__dict__,
        "data": data,
    }
    return (
        _as_data(sample, provenance)
        if data
        else Sample(gen=sample.gen, reco=sample.reco, provenance=provenance)
    )
