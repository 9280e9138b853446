"""Scan the search across mjj: windows from the dijet mass resolution, a local Z per
window, and a global significance with the look-elsewhere effect.

- :func:`mjj_resolution` measures the relative mjj resolution σ(m)/m from the reference
  simulation's paired generator- and detector-level events, in bins of the generated
  mjj (a robust width: half the 16–84 % interquantile range of reco/gen), and fits it
  with a + b/m (stochastic-like term shrinking at high mass, so the window is wider in
  GeV at high mass).
- :func:`scan_windows` lays windows of width ``width_factor × σ(m)·m`` (default 3: ±1.5σ,
  near the ±1.4σ that maximizes S/√B for a Gaussian peak on a smooth background, and
  holding 87 % of it) with centres half a width apart, from the trigger plateau (the peak
  of the data's spectrum, below which the turn-on shapes it) up to where a window still
  holds ``min_count`` data events and one window width of sideband is left above it.
- :func:`global_significance` turns the scan's local Z into a global one by the
  upcrossing method of Gross & Vitells (EPJC 70 (2010) 525): for the largest local
  q₀ = Z², p_global ≈ p_local + ⟨N(c₀)⟩ exp(−(q₀ − c₀)/2), with ⟨N(c₀)⟩ the mean number
  of upcrossings of the level c₀ in the q₀ scan, counted on the observed scan itself (or
  given from background-only pseudo-experiments). Negative local Z count as q₀ = 0
  (one-sided discovery test).

>>> import numpy as np
>>> global_significance(np.array([0.1, -0.5, 3.2, 1.0, -0.3, 0.4]))["z_global"] < 3.2
True
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from detectors.labels import SR_COLUMN, SignalRegion
from simkit.errors import SimkitError
from simkit.events import EventTable
from simkit.progress import progress_bar

#: The scan's defaults: window width in units of σ(m)·m, and the data events the highest
#: window must hold.
SCAN_WIDTH_FACTOR = 3.0
SCAN_MIN_COUNT = 200


@dataclass(frozen=True)
class Resolution:
    """σ(m)/m = a + b/m (m in GeV), from :func:`mjj_resolution`."""

    a: float
    b: float
    centres: tuple[float, ...] = ()
    measured: tuple[float, ...] = ()

    def relative(self, mjj) -> np.ndarray:
        return self.a + self.b / np.asarray(mjj, dtype=np.float64)

    def to_dict(self) -> dict:
        return {
            "a": self.a,
            "b": self.b,
            "rule": "sigma(m)/m = a + b/m",
            "centres": list(self.centres),
            "measured": list(self.measured),
        }


def mjj_resolution(gen_mjj, reco_mjj, *, bins: int = 12, min_events: int = 50) -> Resolution:
    """The relative dijet mass resolution from paired generator/detector-level mjj."""
    gen = np.asarray(gen_mjj, dtype=np.float64)
    reco = np.asarray(reco_mjj, dtype=np.float64)
    ok = np.isfinite(gen) & np.isfinite(reco) & (gen > 0) & (reco > 0)
    gen, reco = gen[ok], reco[ok]
    if len(gen) < 2 * min_events:
        raise SimkitError(f"{len(gen)} paired events are too few to measure the mjj resolution")
    bins = max(2, min(bins, len(gen) // min_events))  # small samples: fewer, fuller bins
    edges = np.quantile(gen, np.linspace(0.0, 0.995, bins + 1))
    centres, widths = [], []
    for lo, hi in itertools.pairwise(edges):
        rows = (gen >= lo) & (gen < hi)
        if rows.sum() < min_events:
            continue
        ratio = reco[rows] / gen[rows]
        q16, q84 = np.quantile(ratio, [0.16, 0.84])
        centres.append(float(np.median(gen[rows])))
        widths.append(float(0.5 * (q84 - q16)))
    if len(centres) < 2:
        raise SimkitError("too few mass bins with events to measure the mjj resolution")
    design = np.column_stack([np.ones(len(centres)), 1.0 / np.asarray(centres)])
    (a, b), *_ = np.linalg.lstsq(design, np.asarray(widths), rcond=None)
    if not (a + b / max(centres)) > 0:
        raise SimkitError("the measured mjj resolution is not positive")
    return Resolution(float(a), float(b), tuple(centres), tuple(widths))


def scan_windows(
    mjj: np.ndarray,
    resolution: Resolution,
    *,
    width_factor: float = SCAN_WIDTH_FACTOR,
    min_count: int = SCAN_MIN_COUNT,
    low: float | None = None,
    high: float | None = None,
    bin_width: float = 100.0,
) -> list[SignalRegion]:
    """Windows of width ``width_factor·σ(m)·m`` every half width, over the range where the
    data suffice: from ``low`` (default: one bin above the peak of the spectrum, the
    trigger plateau) while a window holds at least ``min_count`` data events (or up to
    ``high``), keeping one window width of sideband on each side for the fits: above
    ``low`` below it, and below the 99.9 % quantile of the data above it."""
    mjj = np.asarray(mjj, dtype=np.float64)
    if not width_factor > 0:
        raise SimkitError(f"the window width factor must be positive, got {width_factor}")
    if low is None:
        edges = np.arange(mjj.min(), np.quantile(mjj, 0.9), bin_width)
        counts, _ = np.histogram(mjj, edges)
        low = float(edges[int(np.argmax(counts)) + 1])
    top = float(np.quantile(mjj, 0.999)) if high is None else float(high)
    windows: list[SignalRegion] = []
    # the first window leaves one width of sideband above the plateau for the fits
    width = width_factor * float(resolution.relative(low)) * low
    start = low + width
    while True:
        width = width_factor * float(resolution.relative(start)) * start
        end = start + width
        if end + width > top:
            break
        if np.count_nonzero((mjj >= start) & (mjj < end)) < min_count:
            break
        windows.append(SignalRegion(SR_COLUMN, round(start, 1), round(end, 1)))
        start += 0.5 * width
    if not windows:
        raise SimkitError(
            f"no scan window holds {min_count} data events above the plateau at {low:.0f} GeV"
        )
    return windows


def upcrossings(q: np.ndarray, level: float) -> int:
    """How many times the scan ``q`` crosses ``level`` upwards (a start above counts)."""
    above = np.asarray(q) > level
    return int(above[0]) + int(np.count_nonzero(~above[:-1] & above[1:]))


def global_significance(
    z_local: Sequence[float], *, level: float = 0.0, mean_upcrossings: float | None = None
) -> dict:
    """Gross–Vitells global significance of the largest local Z of a scan (see module).

    ``level`` is c₀ in units of Z (default 0: q₀ = 0, which counts the excursions above
    zero and is well populated on a short scan); ``mean_upcrossings`` replaces the
    count on the observed scan with a background-only average where one is known.
    """
    from scipy import stats

    z = np.asarray(z_local, dtype=np.float64)
    if z.size == 0 or not np.isfinite(z).all():
        raise SimkitError("the local significances of the scan must be finite and not empty")
    q = np.where(z > 0, z * z, 0.0)
    z_max = float(max(z.max(), 0.0))
    c0 = level * level
    n_up = upcrossings(q, c0) if mean_upcrossings is None else float(mean_upcrossings)
    p_local = float(stats.norm.sf(z_max))
    p_global = min(1.0, p_local + n_up * math.exp(-(z_max * z_max - c0) / 2.0))
    p_global = max(p_global, p_local)
    z_global = float(stats.norm.isf(p_global)) if p_global < 0.5 else 0.0
    return {
        "z_global": max(z_global, 0.0),
        "p_global": p_global,
        "z_max_local": z_max,
        "p_local": p_local,
        "upcrossings": n_up,
        "upcrossing_level": level,
        "trials_factor": p_global / p_local if p_local > 0 else math.inf,
    }


def scan(
    data: EventTable,
    template_for: Callable[[SignalRegion], EventTable],
    windows: Sequence[SignalRegion],
    config=None,
    *,
    template_name: str = "template",
    seed: int = 0,
    progress: bool = False,
    extra_signal: EventTable | None = None,
    mean_upcrossings: float | None = None,
    width_rule: str = "as given",
):
    """The search in every window, each with the template ``template_for(window)`` built
    for it (blinded to it), and the global significance of the scan.

    Returns a :class:`detectors.search.SearchResult` whose ``scan`` holds the windows'
    range, the global significance and its inputs.
    """
    from detectors.search import SearchConfig, search_window

    config = config or SearchConfig()
    if not windows:
        raise SimkitError("no window to scan")
    results = []
    bar = progress_bar(windows, desc="scan", unit="window", enabled=progress)
    for i, window in enumerate(bar):
        template = template_for(window)
        results.append(
            search_window(
                data, template, window, config, seed=seed + 1000 * i, extra_signal=extra_signal
            )
        )
    return scan_result(
        results,
        config,
        template_name=template_name,
        mean_upcrossings=mean_upcrossings,
        width_rule=width_rule,
    )


def scan_result(
    results: Sequence,
    config,
    *,
    template_name: str = "template",
    mean_upcrossings: float | None = None,
    width_rule: str = "as given",
):
    """The scan's :class:`detectors.search.SearchResult` from its windows' results, in
    window order: their range, widths and the global significance."""
    from detectors.search import SearchResult

    z = [w.z_local for w in results]
    z_before = [w.z_local_before_cut for w in results]
    outcome = SearchResult(list(results), template_name, config)
    widths = [w.high - w.low for w in results]
    outcome.scan = {
        "n_windows": len(results),
        "low": results[0].low,
        "high": results[-1].high,
        "widths": [min(widths), max(widths)],
        "n_untrusted": sum(w.trustworthy is False for w in results),
        "width_rule": width_rule,
        **global_significance(z, mean_upcrossings=mean_upcrossings),
        "z_global_before_cut": global_significance(z_before)["z_global"],
    }
    return outcome


def window_templates(
    kind: str,
    *,
    sim=None,
    data=None,
    flow=None,
    unfold: dict | None = None,
    features: Sequence[str] | None = None,
    events: int = 200_000,
    sideband_width: float | None = None,
    seed: int = 0,
    device: str = "auto",
) -> Callable[[SignalRegion], EventTable]:
    """``template_for(window)`` for :func:`scan`: a template of ``kind`` blinded to each
    window. What does not depend on the window is made once: the flow's events
    (validated-flow: drawn over the whole spectrum, mjj from the simulation); what does
    is redone per window: OmniFold (``unfold``: its keyword arguments) blinded to the
    window, whose reco-level pull weights the template carries; the sideband flow
    (sideband-flow) learnt outside the window.

    ``sim`` is a :class:`~simkit.events.Sample` with gen and reco (validated-flow,
    reweighted-sim), ``data`` a Sample with reco (every kind).
    """
    from detectors.templates import build_template

    shared = None
    if kind == "validated-flow":
        from simkit.nn import cpu_threads
        from simkit.surrogates.contexts import contexts_from

        passing = sim.reco.passing()
        contexts = contexts_from(passing.column(SR_COLUMN), passing.weights)
        with cpu_threads(1, device):
            shared = flow.sample(events, context=contexts, seed=seed, device=device)

    def template_for(window: SignalRegion) -> EventTable:
        weights = None
        if kind in ("validated-flow", "reweighted-sim"):
            from validation.omnifold import OmniFold

            options = {"device": device, "seed": seed, **dict(unfold or {})}
            columns = options.pop("columns", None)
            fit = OmniFold(**options).fit_samples(
                sim, data, columns=columns, blind=(SR_COLUMN, window.low, window.high)
            )
            weights = fit.pull_weights_[-1]
        return build_template(
            kind, window, sideband_width=sideband_width, sim=None if sim is None else sim.reco,
            weights=weights, flow=flow, data=None if data is None else data.reco,
            features=features, events=events, seed=seed, device=device, flow_sample=shared,
        )  # fmt: skip

    return template_for


def blinded_scan(
    kind: str,
    data,
    sim,
    config=None,
    *,
    flow=None,
    unfold: dict | None = None,
    features: Sequence[str] | None = None,
    events: int = 200_000,
    sideband_width: float | None = None,
    width_factor: float = SCAN_WIDTH_FACTOR,
    min_count: int = SCAN_MIN_COUNT,
    seed: int = 0,
    device: str = "auto",
    progress: bool = False,
    extra_signal: EventTable | None = None,
):
    """The whole scan from samples: the mjj resolution from ``sim`` (a Sample with gen and
    reco), windows over the data's spectrum, a template of ``kind`` blinded to each
    window (:func:`window_templates`), the search in each, the global significance.
    ``data`` is a Sample with reco. This is the scan in memory; the CLI (``simkit search
    --scan --run``) and the pipeline run the same from files, each window a shard
    (:mod:`detectors.scan_shards`), which workers can run and a rerun can resume."""
    both = sim.gen.passed & sim.reco.passed
    resolution = mjj_resolution(sim.gen.column(SR_COLUMN)[both], sim.reco.column(SR_COLUMN)[both])
    data_table = data.reco
    windows = scan_windows(
        data_table.passing().column(SR_COLUMN),
        resolution,
        width_factor=width_factor,
        min_count=min_count,
        bin_width=100.0 if config is None else config.bin_width,
    )
    template_for = window_templates(
        kind, sim=None if kind == "sideband-flow" else sim, data=data, flow=flow,
        unfold=unfold, features=features, events=events, sideband_width=sideband_width,
        seed=seed, device=device,
    )  # fmt: skip
    result = scan(
        data_table,
        template_for,
        windows,
        config,
        template_name=kind,
        seed=seed + 1,
        progress=progress,
        extra_signal=extra_signal,
        width_rule=f"{width_factor:g} × σ(m)·m with σ(m)/m = {resolution.a:.4f} + "
        f"{resolution.b:.1f} GeV / m (simulation); step half a width",
    )
    result.scan["resolution"] = resolution.to_dict()
    return result
