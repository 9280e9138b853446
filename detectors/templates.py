"""Background templates for the search: what the data in a window would look like without
signal.

Each builder returns an :class:`~simkit.events.EventTable` with ``mjj`` and the features,
weighted, covering the window and its neighbourhood (the template gate compares it with
the data in the sidebands).

- ``reweighted-sim`` (:func:`reweighted_sim`): the simulation × OmniFold weights blinded
  to the window — the SALAD idea (Andreassen, Nachman & Shih, PRD 101 (2020) 095004).
- ``validated-flow`` (:func:`validated_flow`): the flow fitted to the simulation,
  sampled with mjj from the simulation, and weighted by the reco-level reweighting
  learnt from the simulation and its blinded OmniFold weights. SALAD's correction on
  CATHODE's oversampled generative template: a combination no peer code has.
- ``sideband-flow`` (:func:`sideband_flow`): CATHODE proper (Hallin et al., PRD 106
  (2022) 055006): a flow conditioned on mjj learns the data outside the window, and mjj
  inside it is drawn from the dijet fit of the data's spectrum.
- ``idealized``: an independent background sample, passed as it is (benchmarks, tests).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from detectors.labels import SR_COLUMN, SignalRegion
from simkit.errors import SimkitError
from simkit.events import EventTable, in_window


def _weighted(table: EventTable, weights: np.ndarray | None, what: str) -> EventTable:
    if weights is None:
        return table
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    if weights.shape != (len(table),):
        raise SimkitError(f"{len(weights)} {what} for {len(table)} simulated events")
    if not np.isfinite(weights).all():
        raise SimkitError(
            f"the {what} are not finite (row {int(np.argmax(~np.isfinite(weights)))})"
        )
    if (weights < 0).any():
        raise SimkitError(f"the {what} must not be negative")
    return table.with_weights(table.weights * weights)


def reweighted_sim(sim: EventTable, weights: np.ndarray | None = None) -> EventTable:
    """The simulation's passing events, each weighted MC weight × ``weights`` (one per
    simulated event, e.g. OmniFold's reco-level pull weights blinded to the window)."""
    table = _weighted(sim, weights, "template weights").passing()
    table = table.mask(table.weights > 0)
    if len(table) == 0:
        raise SimkitError("no simulated event passes with a positive weight")
    return table


def reco_reweighter(
    sim: EventTable,
    weights: np.ndarray,
    columns: Sequence[str],
    *,
    seed: int = 0,
    device: str = "auto",
    epochs: int = 40,
    source: EventTable | None = None,
) -> Callable[[EventTable], np.ndarray]:
    """A function of reco-level columns that carries ``weights`` to new events.

    A classifier (:mod:`validation.classifier`) learns the simulation × ``weights``
    (target) against the simulation (source), the same events with both weights on one
    row; its odds f/(1−f) are the density ratio, i.e. the weight as a smooth function of
    ``columns``. With ``source`` (e.g. a surrogate's own events) the classifier learns
    the target against those instead, so the weight also corrects what the surrogate
    got wrong about the simulation. Odds are clipped at the OmniFold default (f in
    [1e-3, 1 − 1e-3]).
    """
    from validation.classifier import ClassifierConfig, build_classifier, fit_classifier, logits

    table = sim.passing()
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape != (len(sim),):
        raise SimkitError(f"{len(w)} weights for {len(sim)} simulated events")
    w = w[sim.passed]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise SimkitError(f"the simulation has no column {', '.join(map(repr, missing))}")
    x = table.select(columns).features
    target, other = table.weights * w, table.weights
    if source is not None:
        missing = [c for c in columns if c not in source.columns]
        if missing:
            raise SimkitError(f"the source events have no column {', '.join(map(repr, missing))}")
        x = np.concatenate([x, source.select(columns).features])
        target = np.r_[target, np.zeros(len(source))]
        other = np.r_[np.zeros(len(table)), source.weights]
    config = ClassifierConfig(epochs=epochs, device=device)
    model = build_classifier(x.shape[1], config, seed=seed)
    fit_classifier(model, x, target, other, config, seed=seed)
    bound = np.log((1 - 1e-3) / 1e-3)

    def weigh(events: EventTable) -> np.ndarray:
        z = logits(model, events.select(columns).features, device=device)
        return np.exp(np.clip(z, -bound, bound))

    return weigh


def validated_flow(
    flow,
    sim: EventTable,
    weights: np.ndarray,
    mjj_range: tuple[float, float],
    *,
    events: int,
    seed: int = 0,
    device: str = "auto",
    threads: int | None = 1,
    sample: EventTable | None = None,
) -> EventTable:
    """Flow events with mjj in ``mjj_range`` (drawn from the simulation's passing events
    there, by MC weight), each weighted by :func:`reco_reweighter` from the flow's own
    events to the simulation × ``weights``: one classifier corrects both what the
    simulation gets wrong about the data (the OmniFold weights) and what the flow gets
    wrong about the simulation (measured on the demo: without the second part the
    template failed its gate, sideband AUC 0.531).

    ``flow`` is a fitted conditional surrogate (:mod:`simkit.surrogates`) whose
    condition is mjj. ``sample``: flow events drawn before (e.g. once for every window
    of a scan, with mjj from the whole spectrum); those in ``mjj_range`` are weighted
    and nothing is drawn.
    """
    from simkit.nn import cpu_threads
    from simkit.surrogates.contexts import contexts_from

    if tuple(flow.condition) != (SR_COLUMN,):
        raise SimkitError(
            f"the flow must be conditioned on {SR_COLUMN} alone, not {flow.condition}"
        )
    passing = sim.passing()
    mjj = passing.column(SR_COLUMN)
    rows = in_window(mjj, *mjj_range)
    if not rows.any():
        raise SimkitError(f"no simulated event in {mjj_range[0]:g}:{mjj_range[1]:g} GeV")
    if sample is None:
        contexts = contexts_from(mjj[rows], passing.weights[rows])
        with cpu_threads(threads, device):
            sample = flow.sample(events, context=contexts, seed=seed, device=device)
    else:
        sample = sample.mask(in_window(sample.column(SR_COLUMN), *mjj_range))
        if len(sample) == 0:
            raise SimkitError(f"no flow event in {mjj_range[0]:g}:{mjj_range[1]:g} GeV")
    keep = in_window(sim.column(SR_COLUMN), *mjj_range) & sim.passed
    reweigh = reco_reweighter(
        sim.mask(keep), np.asarray(weights)[keep], flow.columns_, seed=seed + 1, device=device,
        source=sample,
    )  # fmt: skip
    return sample.with_weights(reweigh(sample))


def dijet_fit_mjj(
    mjj: np.ndarray, region: SignalRegion, n: int, rng: np.random.Generator, bin_width=100.0
) -> np.ndarray:
    """``n`` mjj values inside ``region`` from the dijet-function fit of the spectrum's
    sidebands (:func:`detectors.evaluate.bump_hunt`), by inverting its CDF on a grid."""
    from detectors.bumphunt import _log_dijet, bump_hunt

    hunt = bump_hunt(mjj, signal_region=region, bin_width=bin_width)
    grid = np.linspace(region.low, region.high, 4001)
    density = np.exp(_log_dijet(grid / hunt.sqrt_s, hunt.parameters))
    cdf = np.r_[0.0, np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(grid))]
    return np.interp(rng.random(n), cdf / cdf[-1], grid)


def sideband_flow(
    data: EventTable,
    region: SignalRegion,
    features: Sequence[str],
    *,
    events: int,
    sideband_width: float | None = None,
    seed: int = 0,
    device: str = "auto",
    flow_options: Mapping | None = None,
    progress: bool = False,
    threads: int | None = 1,
) -> EventTable:
    """CATHODE's template: a flow of ``features`` given mjj, learnt on the data outside the
    window; ``events`` events inside it with mjj from the dijet fit, and as many in the
    gate's sidebands (``sideband_width``, default one window width) with mjj from the
    data there. Those sideband events are in-sample for the flow: its gate is a check
    of the fit, not an independent test.
    """
    from simkit.nn import cpu_threads
    from simkit.surrogates.contexts import contexts_from
    from simkit.surrogates.flow import FlowSurrogate

    data = data.passing()
    mjj = data.column(SR_COLUMN).astype(np.float64)
    outside = ~in_window(mjj, region.low, region.high)
    if outside.sum() < 100:
        raise SimkitError(f"{int(outside.sum())} data events outside the window: too few")
    options = {"epochs": 40, "n_layers": 6, "hidden": 64, "patience": 0, **dict(flow_options or {})}
    flow = FlowSurrogate(
        condition=[SR_COLUMN],
        columns=list(features),
        seed=seed,
        device=device,
        progress=progress,
        **options,
    )
    with cpu_threads(threads, device):
        flow.fit(data.mask(outside).select([SR_COLUMN, *features]))
    rng = np.random.default_rng([seed, 3])
    window = SignalRegion(SR_COLUMN, region.low, region.high)
    inside_mjj = dijet_fit_mjj(mjj, window, events, rng)
    width = (region.high - region.low) if sideband_width is None else sideband_width
    near = in_window(mjj, region.low - width, region.low) | in_window(
        mjj, region.high, region.high + width
    )
    with cpu_threads(threads, device):
        parts = [flow.sample(events, context=inside_mjj[:, None], seed=seed + 1, device=device)]
        if near.any():
            context = contexts_from(mjj[near])
            parts.append(flow.sample(events, context=context, seed=seed + 2, device=device))
    return EventTable.concatenate(parts)


TEMPLATE_KINDS = ("validated-flow", "sideband-flow", "reweighted-sim")


def build_template(
    kind: str,
    region: SignalRegion,
    *,
    sideband_width: float | None = None,
    sim: EventTable | None = None,
    weights: np.ndarray | None = None,
    flow=None,
    data: EventTable | None = None,
    features: Sequence[str] | None = None,
    events: int = 200_000,
    seed: int = 0,
    device: str = "auto",
    flow_options: Mapping | None = None,
    progress: bool = False,
    flow_sample: EventTable | None = None,
) -> EventTable:
    """One template of ``kind`` over the window and its sidebands (the range the search
    and its gate read), from what that kind needs: ``sim`` and ``weights``
    (reweighted-sim), and ``flow`` (validated-flow; ``flow_sample``: its events drawn
    once for several windows), or ``data`` and ``features`` (sideband-flow). The CLI's
    ``simkit template``, the pipeline and the scan call this.
    """
    from detectors.search import gate_sidebands

    (low, _), (_, high) = gate_sidebands(region, sideband_width)

    def need(**given):
        missing = [name for name, value in given.items() if value is None]
        if missing:
            raise SimkitError(f"the {kind} template needs {', '.join(missing)}")

    if kind == "reweighted-sim":
        need(sim=sim, weights=weights)
        table = reweighted_sim(sim, weights)
    elif kind == "validated-flow":
        need(sim=sim, weights=weights, flow=flow)
        table = validated_flow(
            flow, sim, weights, (low, high), events=events, seed=seed, device=device,
            sample=flow_sample,
        )  # fmt: skip
    elif kind == "sideband-flow":
        need(data=data, features=features)
        table = sideband_flow(
            data, region, features, events=events, sideband_width=sideband_width, seed=seed,
            device=device, flow_options=flow_options, progress=progress,
        )  # fmt: skip
    else:
        raise SimkitError(f"unknown template {kind!r}; use {', '.join(TEMPLATE_KINDS)}")
    if features is not None and kind != "sideband-flow":
        missing = [f for f in features if f not in table.columns]
        if missing:
            raise SimkitError(f"the {kind} template has no column {', '.join(map(repr, missing))}")
        table = table.select([SR_COLUMN, *[f for f in features if f != SR_COLUMN]])
    return table.mask(in_window(table.column(SR_COLUMN), low, high))
