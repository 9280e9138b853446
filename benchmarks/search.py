"""Benchmark: the search (issue 12) — every method's max SIC and Z before/after a 1 % cut.

Pythia 8 samples (``simkit.generators.pythia``), reco level, cached in
``runs/cache/search/`` (the monash simulation is the one ``benchmarks/detectors.py``
caches in ``runs/cache/detectors/``):

- *data*: QCD dijets, tune a14 and jet-energy scale 1.03 (the pipeline's "real" data,
  ``simkit/pipeline/demo.toml``), half of one generated sample, plus W'(3500) → X(500)
  Y(100) signal (a14, JES 1.03) injected at S/√B = 1, 2.1 (the LHC Olympics 0.6 %)
  or 4 in the signal region 3.3 ≤ mjj < 3.7 TeV;
- *idealized background*: the other half of the a14 sample (independent events);
- *simulation*: QCD dijets, tune monash, JES 1.0, gen + reco (what the data are
  unfolded against).

Methods, each scored on the data in the window:

- ``supervised``: HGB, k-folded, labelled signal (not injected) against the idealized
  background, out-of-fold scores (the upper bound);
- ``idealized-{hgb,mlp}``: :func:`detectors.search.search_window` with the idealized
  background as the template;
- ``validated-flow-*``, ``reweighted-sim-*``: templates from the simulation and
  OmniFold's reco-level pull weights, blinded to the window (fitted once, on the
  seed-0 data at S/√B = 2.1), the flow (mjj condition) fitted to the simulation;
- ``sideband-flow-*``: CATHODE (a flow of the data outside the window, fitted once on
  the seed-0 data at S/√B = 2.1);
- ``cwola-hgb``: data in the window against data in the sidebands (2.9–3.3 and
  3.7–4.1 TeV; their mjj is redrawn from the window's data, so that the search takes
  them as a template; mjj is not a feature);
- ``vae``: the detectors' VAE (:class:`detectors.train.Detector`) trained on half of
  the idealized background in the window, its efficiency taken on the other half.

Max SIC: background = the data's own background in the window (out-of-fold ranks),
signal = the signal events in the window that were not injected (scored by the fold
models, which never saw them). Z: :func:`search_window`'s local Z before the cut (the
sideband fit of the uncut spectrum) and after the cut keeping 1 % of the data in the
window (its template estimate, corrected by the data/template ratio r of the same cut in
the gate's sidebands, ``SearchConfig.sideband_correction``; the Z without r is kept as
``z_after_uncorrected``); for supervised and VAE the same count against the background
efficiency on a held-out background sample. The held-out signal is scored by
``WindowResult.fit``, the search's own classifier. Sculpting: the library's
``CutResult.sculpting_*`` (binomial, passing against all), with a two-sample pooled
test as a cross-check. Seeds change the classifier and fold seeds and the
injected-signal subset. The background-only rows (every method) are random halves of
the whole a14 sample (data; the other half is the idealized template); the simulation
and sideband-flow templates are still the ones fitted on the seed-0 data with signal.
The templates are cached under a hash of the library code that builds them.

    python benchmarks/search.py --quick            # a smoke run
    python benchmarks/search.py                    # the measured run (sizes are flags)
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy: one thread on a shared CPU

import argparse
import hashlib
import importlib.util
import json
import math
import platform
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

# This folder holds `detectors.py`, the name of the package benchmarked: keep it off the
# path, or `import detectors` would import that script.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from detectors.evaluate import bump_hunt, performance, poisson_significance  # noqa: E402
from detectors.labels import SignalRegion  # noqa: E402
from detectors.search import SearchConfig, search_window  # noqa: E402
from detectors.template import TemplateClassifier, TemplateClassifierConfig  # noqa: E402
from simkit.events import EventTable, Sample, in_window  # noqa: E402
from simkit.io import read_sample, write_json  # noqa: E402

ROOT = HERE.parent
CACHE = ROOT / "runs" / "cache" / "search"
WINDOW = (3300.0, 3700.0)
SIDEBANDS = ((2900.0, 3300.0), (3700.0, 4100.0))  # CWoLa; also the template gate's
FLOW_RANGE = (2700.0, 4300.0)  # simulation / data events the flows learn from
CATHODE = ("mj_light", "delta_mj", "tau21_light", "tau21_heavy")
SUBSTRUCTURE = tuple(f"{q}_{j}" for j in ("j1", "j2") for q in ("m", "tau21", "tau32", "n"))
METHODS = (
    "supervised",
    "idealized-hgb",
    "idealized-mlp",
    "validated-flow-hgb",
    "validated-flow-mlp",
    "sideband-flow-hgb",
    "sideband-flow-mlp",
    "reweighted-sim-hgb",
    "reweighted-sim-mlp",
    "cwola-hgb",
    "vae",
)
HEADLINE = 2.1  # S/√B in the window: the LHC Olympics R&D set's 0.6 % S/B
SIZES = {  # full, quick
    "qcd_events": (160000, 16000),  # a14, JES 1.03: half data, half idealized background
    "sim_events": (60000, 12000),  # monash
    "signal_events": (6000, 3000),
    "template_events": (150000, 20000),
    "seeds": (5, 2),
    "flow_epochs": (12, 2),
    "mlp_epochs": (15, 3),
    "vae_epochs": (60, 3),
}


def _bench_detectors():
    """``benchmarks/detectors.py`` (its sample cache), loaded by path under another name."""
    spec = importlib.util.spec_from_file_location("detectors_benchmark", HERE / "detectors.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    p.add_argument("--qcd-events", type=int, help="a14 QCD events generated (data + idealized)")
    p.add_argument("--sim-events", type=int, help="monash QCD events generated (simulation)")
    p.add_argument("--signal-events", type=int, help="W' → XY events generated (a14, JES 1.03)")
    p.add_argument("--template-events", type=int, help="events sampled by the flow templates")
    p.add_argument("--seeds", type=int, help="seeds per row")
    p.add_argument("--flow-epochs", type=int, help="epochs of both flows")
    p.add_argument("--mlp-epochs", type=int, help="maximum epochs of the template MLP")
    p.add_argument("--vae-epochs", type=int, help="maximum epochs of the VAE")
    p.add_argument("--mlp-batch", type=int, default=512, help="template MLP batch size")
    p.add_argument("--flow-layers", type=int, default=4, help="coupling layers of both flows")
    p.add_argument("--flow-batch", type=int, default=1024, help="batch size of both flows")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--ensemble", type=int, default=1, help="classifiers per fold")
    p.add_argument("--oversample", type=float, default=4.0)
    p.add_argument("--omnifold-iterations", type=int, default=3)
    p.add_argument(
        "--features",
        choices=("cathode", "substructure"),
        default="cathode",
        help="cathode: lighter-jet mass, |Δm|, τ21 of the lighter and heavier jet; "
        "substructure: m, τ21, τ32, n of both jets (the detectors' default). mjj never.",
    )
    p.add_argument(
        "--blocks",
        nargs="+",
        default=["headline", "null", "noise", "injections"],
        choices=("headline", "null", "noise", "injections"),
        help="which rows to run, in this order",
    )
    p.add_argument("--methods", nargs="+", choices=METHODS, help="only these methods")
    p.add_argument("--data-file", help="a14 QCD event file to use instead of generating")
    p.add_argument("--sim-file", help="monash QCD event file (gen + reco) instead of generating")
    p.add_argument("--signal-file", help="W' event file instead of generating")
    p.add_argument("--jobs", type=int, default=2, help="Pythia worker processes")
    p.add_argument("-o", "--output", default=str(ROOT / "runs" / "bench-search" / "search.json"))
    p.add_argument("--fresh", action="store_true", help="ignore rows already in --output")
    p.add_argument("--quiet", action="store_true")
    return p


def parse(argv=None) -> argparse.Namespace:
    args = parser().parse_args(argv)
    for name, (full, quick) in SIZES.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


# --------------------------------------------------------------------------- samples


def cached(process: str, n: int, seed: int, tune: str, jes: float, args) -> Path:
    """Generate once, then reuse; the monash JES-1 samples are the detectors benchmark's."""
    bench = _bench_detectors()
    if tune == "monash" and jes == 1.0:
        return bench.cached_sample(process, n, seed, args)
    from simkit.generators.pythia import generate

    path = CACHE / f"{process}_{tune}_jes{jes:g}_n{n}_seed{seed}_{bench.generator_version()}.h5"
    if not path.exists():
        t0 = time.perf_counter()
        generate(process, n, seed, tune=tune, jes=jes, jobs=args.jobs, output=path)
        print(f"generated {n} {process} ({tune}, JES {jes:g}) in {time.perf_counter() - t0:.0f} s")
    return path


def with_features(table: EventTable, names: tuple[str, ...]) -> EventTable:
    """mjj and the benchmark's features; CATHODE's are built from the pT-ordered jets."""
    columns = {"mjj": table.column("mjj")}
    if names == CATHODE:
        m1, m2 = table.column("m_j1"), table.column("m_j2")
        t1, t2 = table.column("tau21_j1"), table.column("tau21_j2")
        light = m1 <= m2
        columns |= {
            "mj_light": np.minimum(m1, m2),
            "delta_mj": np.abs(m1 - m2),
            "tau21_light": np.where(light, t1, t2),
            "tau21_heavy": np.where(light, t2, t1),
        }
    else:
        columns |= {c: table.column(c) for c in names}
    return EventTable.from_columns(
        columns, weights=table.weights, passed=table.passed, labels=table.labels
    )


def add_noise(table: EventTable, k: int, rng: np.random.Generator) -> EventTable:
    """``k`` standard-normal columns appended (Finke et al., arXiv:2309.13111)."""
    if k == 0:
        return table
    noise = rng.standard_normal((len(table), k)).astype(np.float32)
    return replace(
        table,
        features=np.hstack([table.features, noise]),
        columns=(*table.columns, *(f"noise_{i}" for i in range(k))),
        units=None,
    )


@dataclass
class Samples:
    data_background: EventTable  # a14, passing, labels 0
    idealized: EventTable  # a14, passing, independent events
    signal: EventTable  # a14 W', passing, labels 1
    sim: Sample  # monash, gen + reco, every event
    features: tuple[str, ...]
    info: dict = field(default_factory=dict)


def samples(args) -> Samples:
    t0 = time.perf_counter()
    features = CATHODE if args.features == "cathode" else SUBSTRUCTURE
    qcd_path = args.data_file or cached("qcd-dijet", args.qcd_events, 11, "a14", 1.03, args)
    signal_path = args.signal_file or cached("wprime-xy", args.signal_events, 11, "a14", 1.03, args)
    sim_path = args.sim_file or cached("qcd-dijet", args.sim_events, 1, "monash", 1.0, args)
    qcd = with_features(read_sample(qcd_path, levels=["reco"]).reco.passing(), features)
    qcd = replace(qcd, labels=np.zeros(len(qcd), np.int8))
    half = len(qcd) // 2
    signal = with_features(read_sample(signal_path, levels=["reco"]).reco.passing(), features)
    signal = replace(signal, labels=np.ones(len(signal), np.int8))
    raw = read_sample(sim_path, levels=["gen", "reco"])
    sim = Sample(gen=with_features(raw.gen, features), reco=with_features(raw.reco, features))
    made = Samples(qcd.mask(slice(0, half)), qcd.mask(slice(half, None)), signal, sim, features)
    window = _window()
    made.info = {
        "files": {"qcd_a14": str(qcd_path), "signal": str(signal_path), "sim": str(sim_path)},
        "data_background": len(made.data_background),
        "data_background_in_window": int(window.inside(made.data_background.column("mjj")).sum()),
        "idealized": len(made.idealized),
        "idealized_in_window": int(window.inside(made.idealized.column("mjj")).sum()),
        "signal": len(signal),
        "signal_in_window": int(window.inside(signal.column("mjj")).sum()),
        "sim_passing": int(sim.reco.passed.sum()),
        "sim_in_window": int((window.inside(sim.reco.column("mjj")) & sim.reco.passed).sum()),
        "load_seconds": time.perf_counter() - t0,
    }
    print("samples:", json.dumps(made.info), flush=True)
    return made


def _window() -> SignalRegion:
    return SignalRegion("mjj", *WINDOW)


@dataclass
class Injected:
    data: EventTable  # background + injected signal, labels kept (read only by the scores)
    held_out: EventTable  # signal in the window that was not injected
    s_in_window: int


def inject(made: Samples, s_over_sqrt_b: float, seed: int) -> Injected:
    """The data with signal at ``s_over_sqrt_b`` in the window, a subset per ``seed``;
    outside the window as many signal events as the signal's own mjj shape puts there."""
    window = _window()
    background = made.data_background
    b = int(window.inside(background.column("mjj")).sum())
    inside = window.inside(made.signal.column("mjj"))
    n_in = round(s_over_sqrt_b * math.sqrt(b))
    n_out = round(n_in * (~inside).sum() / inside.sum())
    if n_in > inside.sum() // 2:
        raise SystemExit(f"{n_in} signal events asked for in the window: generate more signal")
    rng = np.random.default_rng([seed, round(100 * s_over_sqrt_b), 7])
    rows_in = rng.permutation(np.flatnonzero(inside))
    rows_out = rng.choice(np.flatnonzero(~inside), n_out, replace=False)
    chosen = np.sort(np.r_[rows_in[:n_in], rows_out])
    data = EventTable.concatenate([background, made.signal.mask(chosen)])
    return Injected(data, made.signal.mask(np.sort(rows_in[n_in:])), n_in)


# --------------------------------------------------------------------------- templates


def build_templates(made: Samples, args) -> dict[str, EventTable]:
    """validated-flow, reweighted-sim and sideband-flow, from the seed-0 data at the
    headline injection; cached as .npz in ``runs/cache/search/``."""
    from detectors.templates import build_template

    window = _window()
    files = hashlib.sha256(str(made.info["files"]).encode()).hexdigest()[:8]
    key = (
        f"templates_{files}_{library_hash()}_{args.features}_q{args.qcd_events}_s{args.sim_events}"
        f"_sig{args.signal_events}_t{args.template_events}_f{args.flow_epochs}"
        f"_l{args.flow_layers}_b{args.flow_batch}_it{args.omnifold_iterations}.npz"
    )
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / key
    names = ("validated-flow", "reweighted-sim", "sideband-flow")
    if path.exists():
        stored = np.load(path, allow_pickle=False)
        columns = tuple(str(c) for c in stored["columns"])
        info = json.loads(str(stored["info"]))
        print(f"templates from {path}", flush=True)
        tables = {}
        for n in names:
            weights = stored[f"{n}/w"]
            tables[n] = EventTable(stored[f"{n}/x"], columns, weights, np.ones(len(weights), bool))
        return tables | {"info": info}

    info: dict = {}
    data = inject(made, HEADLINE, seed=0).data
    blind_data = replace(data, labels=None)
    columns = ("mjj", *made.features)
    t0 = time.perf_counter()
    from validation.omnifold import OmniFold

    unfold = OmniFold(
        iterations=args.omnifold_iterations,
        classifier={"threads": 1},
        failed_reco="keep",  # demo.toml's setting, written out: the default may change
        seed=1,
        device="cpu",
        progress=not args.quiet,
    ).fit_samples(made.sim, Sample(reco=blind_data), columns=columns, blind=("mjj", *WINDOW))
    pull = unfold.pull_weights_[-1]
    info["omnifold_seconds"] = time.perf_counter() - t0
    info["omnifold_diagnostics"] = _jsonable(unfold.diagnostics_)
    print(f"OmniFold (blinded to {WINDOW}): {info['omnifold_seconds']:.0f} s", flush=True)

    from simkit.surrogates.flow import FlowSurrogate

    flow_options = {"epochs": args.flow_epochs, "n_layers": args.flow_layers, "hidden": 64}
    flow_options |= {"patience": 0, "batch_size": args.flow_batch}
    t0 = time.perf_counter()
    sim_reco = made.sim.reco.passing()
    near = in_window(sim_reco.column("mjj"), *FLOW_RANGE)
    flow = FlowSurrogate(
        condition=["mjj"], columns=list(made.features), seed=1, device="cpu",
        progress=not args.quiet, **flow_options,
    )  # fmt: skip
    flow.fit(sim_reco.mask(near).select(columns))
    info["sim_flow_seconds"] = time.perf_counter() - t0
    info["sim_flow_events"] = int(near.sum())
    print(f"flow on the simulation: {info['sim_flow_seconds']:.0f} s", flush=True)

    templates = {}
    t0 = time.perf_counter()
    templates["validated-flow"] = build_template(
        "validated-flow", window, sim=made.sim.reco, weights=pull, flow=flow,
        events=args.template_events, seed=1, device="cpu",
    )  # fmt: skip
    info["validated_flow_seconds"] = time.perf_counter() - t0
    templates["reweighted-sim"] = build_template(
        "reweighted-sim", window, sim=made.sim.reco, weights=pull
    )
    t0 = time.perf_counter()
    near_data = blind_data.mask(in_window(blind_data.column("mjj"), *FLOW_RANGE))
    per_region = max(args.template_events // 3, 1000)
    templates["sideband-flow"] = build_template(
        "sideband-flow", window, data=near_data, features=made.features, events=per_region,
        seed=1, device="cpu", flow_options=flow_options,
        progress=not args.quiet,
    )  # fmt: skip
    info["sideband_flow_seconds"] = time.perf_counter() - t0
    for name, table in templates.items():
        inside = window.inside(table.column("mjj"))
        from simkit.stats import effective_sample_size

        info[f"{name}_events"] = len(table)
        info[f"{name}_in_window"] = int(inside.sum())
        info[f"{name}_in_window_kish"] = float(effective_sample_size(table.weights[inside]))
    print("templates:", json.dumps(info, default=str)[:2000], flush=True)
    arrays = {}
    for name, table in templates.items():
        table = table.select(columns)
        arrays[f"{name}/x"] = table.features
        arrays[f"{name}/w"] = table.weights
    np.savez(path, columns=np.array(columns), info=json.dumps(info, default=str), **arrays)
    return {n: templates[n].select(columns) for n in names} | {"info": info}


LIBRARY = (  # the code the templates depend on: a change refits them
    "detectors/templates.py",
    "validation/omnifold.py",
    "validation/classifier.py",
    "simkit/surrogates/flow.py",
)


def library_hash() -> str:
    import detectors
    import simkit

    roots = {"detectors": Path(detectors.__file__).parent.parent,
             "validation": Path(detectors.__file__).parent.parent,
             "simkit": Path(simkit.__file__).parent.parent}  # fmt: skip
    digest = hashlib.sha256()
    for name in LIBRARY:
        digest.update((roots[name.split("/")[0]] / name).read_bytes())
    return digest.hexdigest()[:8]


def _jsonable(value):
    return json.loads(json.dumps(value, default=lambda v: float(v) if np.isscalar(v) else str(v)))


def cwola_template(data: EventTable, rng: np.random.Generator) -> EventTable:
    """The data in the sidebands, their mjj redrawn from the window's data (CWoLa assumes
    the features do not depend on mjj; the search reads the template in the window)."""
    mjj = data.column("mjj")
    side = np.zeros(len(data), bool)
    for low, high in SIDEBANDS:
        side |= in_window(mjj, low, high)
    table = replace(data.mask(side), labels=None)
    inside_mjj = mjj[in_window(mjj, *WINDOW)]
    features = table.features.copy()
    features[:, table.index("mjj")] = rng.choice(inside_mjj, len(table))
    return replace(table, features=features)


# --------------------------------------------------------------------------- one run


def classifier_config(kind: str, args) -> TemplateClassifierConfig:
    options = {"classifier": kind, "folds": args.folds, "ensemble": args.ensemble}
    options |= {"oversample": args.oversample, "device": "cpu", "threads": 1}
    if kind == "mlp":
        options |= {"epochs": args.mlp_epochs, "batch_size": args.mlp_batch, "patience": 5}
    return TemplateClassifierConfig(**options)


def sic(background_scores, background_weights, signal_scores) -> tuple[float | None, float]:
    labels = np.r_[np.zeros(len(background_scores)), np.ones(len(signal_scores))]
    weights = np.r_[background_weights, np.ones(len(signal_scores))]
    perf = performance(np.r_[background_scores, signal_scores], labels.astype(np.int8), weights)
    return perf.max_sic, perf.auc


def fixed_score_z(data: EventTable, score: np.ndarray, reference_score, reference_weights):
    """Z of the count keeping 1 % of the data in the window, against the background
    efficiency of the same cut on a held-out background sample × the sideband fit."""
    window = _window()
    mjj = data.column("mjj").astype(np.float64)
    inside = window.inside(mjj)
    before = bump_hunt(mjj, data.weights, signal_region=window, bin_width=100.0)
    threshold = np.quantile(score[inside], 0.99)
    observed = float(data.weights[inside & (score > threshold)].sum())
    w = np.asarray(reference_weights, dtype=np.float64)
    n = w.sum() ** 2 / (w**2).sum()
    k = n * w[reference_score > threshold].sum() / w.sum()
    eps = (k + 0.5) / (n + 1.0)
    stat = math.sqrt(eps * (1 - eps) / (n + 1.0))
    b, sb = before.expected_sr, before.expected_sr_error
    expected, error = eps * b, math.hypot(eps * sb, b * stat)
    return {
        "z_before": before.z_local,
        "z_after": poisson_significance(observed, expected, error),
        "observed": observed,
        "expected": expected,
        "expected_error": error,
        "template_efficiency": eps,
    }


def pooled_chi2_ndf(mjj, weights, passing, edges) -> float | None:
    """χ²/ndf of the mjj shape of passing against failing events: Pearson's test of
    homogeneity with the pooled expectation per bin (under/overflow as bins).

    A cross-check of the library's figure (``detectors.search._sculpting``, since
    91526ea the binomial χ² of passing against all events; before it a two-histogram χ²
    biased high at 1 % cuts, which this function worked around)."""
    passing = np.asarray(passing, bool)
    if passing.sum() < 10 or (~passing).sum() < 10:
        return None
    full = np.r_[-np.inf, edges, np.inf]
    a, _ = np.histogram(mjj[~passing], full, weights=weights[~passing])
    b, _ = np.histogram(mjj[passing], full, weights=weights[passing])
    pooled = (a + b) / (a.sum() + b.sum())
    use = pooled > 0
    chi2 = sum(((h - h.sum() * pooled)[use] ** 2 / (h.sum() * pooled[use])).sum() for h in (a, b))
    ndf = int(use.sum()) - 1
    return float(chi2 / ndf) if ndf > 0 else None


def uncorrected_z(result, cut) -> float | None:
    """The cut's local Z without the sideband correction (ε_T not scaled by r), as the
    library computed it before 91526ea: what the correction changes, on the same fit."""
    if cut.sideband_ratio is None:
        return cut.z_local
    eps = cut.template_efficiency / cut.sideband_ratio
    b, sb = result.background, result.background_error
    expected = eps * b
    error = expected * math.hypot(
        sb / b, math.hypot(cut.template_efficiency_stat, cut.template_efficiency_model) / eps
    )
    return poisson_significance(cut.observed, expected, error)


def run_search(data, template, held_out, features, kind, args, seed, gate) -> dict:
    config = SearchConfig(
        features=features,
        efficiencies=(0.1, 0.01),
        primary_efficiency=0.01,
        gate=gate,
        classifier=classifier_config(kind, args),
    )
    result = search_window(data, template, _window(), config, seed=seed)
    fit = result.fit  # the search's own classifier (not the gate's)
    inside = _window().inside(data.column("mjj"))
    background = inside & (data.labels == 0)
    held_rank = fit.rank(held_out.select(features).features, seed=seed + 11)
    max_sic, auc = sic(result.data_rank[background], data.weights[background], held_rank)
    p = result.primary
    passing = result.data_rank > 1.0 - p.efficiency
    mjj = data.column("mjj").astype(np.float64)
    labels = data.labels == 0
    t_in = template.passing()
    t_in = t_in.mask(_window().inside(t_in.column("mjj")))
    t_mjj = t_in.column("mjj")[fit.template_rows_].astype(np.float64)
    t_pass = fit.template_rank_ > 1.0 - p.efficiency
    row = {
        "sculpting_background_pooled": pooled_chi2_ndf(
            mjj[labels], data.weights[labels], passing[labels], result.bump_before.edges
        ),
        "sculpting_template_pooled": pooled_chi2_ndf(
            t_mjj, fit.template_weights_, t_pass, np.linspace(*WINDOW, 9)
        ),
        "max_sic": max_sic,
        "auc": auc,
        "in_data_max_sic": result.max_sic,
        "in_data_auc": result.auc,
        "z_before": result.z_local_before_cut,
        "z_after": p.z_local,
        "z_after_10pct": next(c.z_local for c in result.cuts if c.efficiency == 0.1),
        "bump_z_after": p.bump_z_local,
        "observed": p.observed,
        "expected": p.expected,
        "expected_error": p.expected_error,
        "template_efficiency": p.template_efficiency,
        "template_efficiency_model": p.template_efficiency_model,
        "sideband_ratio": p.sideband_ratio,
        "sideband_ratio_error": p.sideband_ratio_error,
        "z_after_uncorrected": uncorrected_z(result, p),
        "sculpting_background": p.sculpting_background,
        "sculpting_template": p.sculpting_template,
        "n_data_window": result.n_data,
        "n_template": result.n_template,
        "oversample_reached": result.classifier.get("oversample_reached"),
    }
    if result.gate is not None:
        row["gate_validated"] = bool(result.gate["validated"])
        row["gate_auc"] = result.gate.get("auc")
        row["gate"] = _jsonable(result.gate)
    return row


def run_supervised(made, injected: Injected, features, args, seed) -> dict:
    """HGB of labelled signal (not injected) against the idealized background in the
    window; SIC out of fold; Z of the cut applied to the data."""
    window = _window()
    ideal = made.idealized.mask(window.inside(made.idealized.column("mjj")))
    fit = TemplateClassifier(classifier_config("hgb", args), seed=seed).fit(
        injected.held_out.select(features).features, ideal.select(features).features
    )
    max_sic, auc = sic(fit.template_rank_, fit.template_weights_, fit.data_rank_)
    score = fit.rank(injected.data.select(features).features, seed=seed + 5)
    # the idealized events the classifier never trained on are the reference
    unused = np.setdiff1d(np.arange(len(ideal)), fit.template_rows_)
    if len(unused) > 100:
        ref_score = fit.rank(ideal.mask(unused).select(features).features, seed=seed + 6)
        ref_w = ideal.weights[unused]
    else:
        ref_score, ref_w = fit.template_rank_, fit.template_weights_
    return {"max_sic": max_sic, "auc": auc, "n_reference": len(ref_w)} | fixed_score_z(
        injected.data, score, ref_score, ref_w
    )


def run_vae(made, injected: Injected, features, args, seed) -> dict:
    from detectors.labels import choose
    from detectors.train import Detector

    window = _window()
    ideal = made.idealized.mask(window.inside(made.idealized.column("mjj")))
    rng = np.random.default_rng([seed, 31])
    train = rng.random(len(ideal)) < 0.5
    detector = Detector(
        "vae", epochs=args.vae_epochs, patience=10, device="cpu", seed=seed, threads=1
    ).fit(choose(ideal.mask(train), "all", features=features))

    def score(table):
        return np.asarray(detector.scores(table)[detector.score_], dtype=np.float64)

    data = injected.data
    data_score = score(data)
    inside = window.inside(data.column("mjj"))
    background = inside & (data.labels == 0)
    max_sic, auc = sic(data_score[background], data.weights[background], score(injected.held_out))
    reference = ideal.mask(~train)
    return {"max_sic": max_sic, "auc": auc, "score": detector.score_} | fixed_score_z(
        data, data_score, score(reference), reference.weights
    )


# --------------------------------------------------------------------------- the plan


def plan(args) -> list[tuple[str, float, int]]:
    """(method, S/√B, noise features) rows, most important first."""
    rows: list[tuple[str, float, int]] = []
    wanted = set(args.methods or METHODS)
    for block in args.blocks:
        if block == "headline":
            rows += [(m, HEADLINE, 0) for m in METHODS if "mlp" not in m]
            rows += [(m, HEADLINE, 0) for m in METHODS if "mlp" in m]
        elif block == "null":
            rows += [(m, 0.0, 0) for m in METHODS if "mlp" not in m]
            rows += [(m, 0.0, 0) for m in METHODS if "mlp" in m]
        elif block == "noise":
            for k in (5, 10):
                rows += [(m, HEADLINE, k) for m in ("idealized-hgb", "validated-flow-hgb")]
            rows += [("idealized-mlp", HEADLINE, k) for k in (5, 10)]
        elif block == "injections":
            for level in (1.0, 4.0):
                rows += [(m, level, 0) for m in ("idealized-hgb", "validated-flow-hgb")]
            rows += [("idealized-mlp", level, 0) for level in (1.0, 4.0)]
    return [r for r in rows if r[0] in wanted]


def null_data(made: Samples, seed: int) -> tuple[EventTable, EventTable]:
    """Background-only data and idealized template: a random half each of the a14 sample
    (seed 0: the benchmark's own split)."""
    if seed == 0:
        return made.data_background, made.idealized
    both = EventTable.concatenate([made.data_background, made.idealized])
    rng = np.random.default_rng([seed, 41])
    order = rng.permutation(len(both))
    half = len(both) // 2
    return both.mask(np.sort(order[:half])), both.mask(np.sort(order[half:]))


def one_run(made, templates, method, level, noise, seed, args) -> dict:
    features = (*made.features, *(f"noise_{i}" for i in range(noise)))
    rng = np.random.default_rng([seed, noise, 53])
    if level == 0.0:
        data, ideal = null_data(made, seed)
        # no signal injected: the held-out signal is all of it in the window (SIC is
        # meaningless here; supervised trains on it)
        injected = Injected(data, made.signal.mask(window_rows(made.signal)), 0)
    else:
        injected = inject(made, level, seed)
        ideal = made.idealized
    data = add_noise(injected.data, noise, rng)
    held_out = add_noise(injected.held_out, noise, rng)
    local = replace(
        made, idealized=add_noise(ideal, noise, rng), data_background=made.data_background
    )
    injected = Injected(data, held_out, injected.s_in_window)
    if method == "supervised":
        return run_supervised(local, injected, features, args, seed)
    if method == "vae":
        return run_vae(local, injected, features, args, seed)
    kind = method.rsplit("-", 1)[1]
    name = method.rsplit("-", 1)[0]
    if name == "idealized":
        template = local.idealized
    elif name == "cwola":
        template = cwola_template(data, rng)
    else:
        template = add_noise(templates[name], noise, rng)
    gate = seed == 0 and noise == 0 and level == HEADLINE and name != "cwola"
    if level == 0.0:
        gate = False
    return run_search(data, template, held_out, features, kind, args, seed, gate)


def window_rows(table: EventTable) -> np.ndarray:
    return np.flatnonzero(_window().inside(table.column("mjj")))


# --------------------------------------------------------------------------- summary


def _mean_std(values):
    values = [v for v in values if v is not None and np.isfinite(v)]
    if not values:
        return None, None, 0
    return (
        float(np.mean(values)),
        float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
        len(values),
    )


def summarize(rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["s_over_sqrt_b"], r["noise"]), []).append(r)
    out = []
    for (method, level, noise), members in groups.items():
        entry = {"method": method, "s_over_sqrt_b": level, "noise": noise, "seeds": len(members)}
        for key in ("max_sic", "auc", "z_before", "z_after", "sculpting_background",
                    "sculpting_template", "sculpting_background_pooled",
                    "sculpting_template_pooled", "in_data_max_sic", "seconds",
                    "z_after_uncorrected", "sideband_ratio"):  # fmt: skip
            mean, std, _ = _mean_std([m.get(key) for m in members])
            entry[key] = mean
            entry[f"{key}_std"] = std
        gates = [m["gate_validated"] for m in members if "gate_validated" in m]
        if gates:
            entry["gate_validated"] = gates[0]
            entry["gate_auc"] = next(m["gate_auc"] for m in members if "gate_auc" in m)
        out.append(entry)
    return out


def goals(summary: list[dict]) -> dict:
    def find(method, level=HEADLINE, noise=0):
        return next(
            (
                s
                for s in summary
                if s["method"] == method and s["s_over_sqrt_b"] == level and s["noise"] == noise
            ),
            None,
        )

    out: dict = {}
    for kind in ("hgb", "mlp"):
        flow, ideal = find(f"validated-flow-{kind}"), find(f"idealized-{kind}")
        if flow and ideal and flow["max_sic"] and ideal["max_sic"]:
            ratio = flow["max_sic"] / ideal["max_sic"]
            out[f"validated_flow_over_idealized_{kind}"] = {"ratio": ratio, "met": ratio >= 0.8}
    for s in summary:
        if s["s_over_sqrt_b"] == HEADLINE and s["noise"] == 0 and s["z_before"]:
            ratio = s["z_after"] / s["z_before"] if s["z_before"] > 0 else None
            out[f"z_ratio_{s['method']}"] = {
                "z_before": s["z_before"],
                "z_after": s["z_after"],
                "ratio": ratio,
                "met": ratio is not None and ratio >= 1.5,
            }
    for method in ("idealized-hgb", "validated-flow-hgb"):
        clean, noisy = find(method), find(method, noise=10)
        if clean and noisy and clean["max_sic"] and noisy["max_sic"]:
            ratio = noisy["max_sic"] / clean["max_sic"]
            out[f"noise10_kept_{method}"] = {"ratio": ratio, "met": ratio >= 0.7}
    for method in METHODS:
        null = find(method, level=0.0)
        if null:
            n = null["seeds"]
            mean, std = null["z_after"], null["z_after_std"]
            # N(0, 1) within 2σ of the sampling spread of the mean and of the std
            tol_mean = 2 / math.sqrt(n)
            tol_std = 2 / math.sqrt(2 * max(n - 1, 1))
            out[f"null_{method}"] = {
                "z_after_mean": mean,
                "z_after_std": std,
                "z_before_mean": null["z_before"],
                "tolerance_mean": tol_mean,
                "tolerance_std": tol_std,
                "met": mean is not None
                and abs(mean) <= tol_mean
                and (std is None or abs(std - 1) <= tol_std),
                "z_after_uncorrected_mean": null["z_after_uncorrected"],
                "sculpting_background": null["sculpting_background"],
                "sculpting_template": null["sculpting_template"],
                "sculpting_background_two_sample": null["sculpting_background_pooled"],
                "sculpting_template_two_sample": null["sculpting_template_pooled"],
                "sculpting_met": all(
                    v is None or v <= 1.5
                    for v in (null["sculpting_background"], null["sculpting_template"])
                ),
            }
    return out


def _fmt(mean, std=None, digits=2):
    if mean is None:
        return "n/a"
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown(summary: list[dict]) -> str:
    lines = [
        "| method | S/√B | noise | seeds | max SIC | AUC | Z before | Z after 1 % cut "
        "| (Z without sideband corr.) | sideband r | sculpting χ²/ndf, bkg / template "
        "(two-sample) | gate | s/run |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        gate = ""
        if "gate_validated" in s:
            gate = f"{'pass' if s['gate_validated'] else 'FAIL'} (AUC {s['gate_auc']:.3f})"
        level = "0 (bkg only)" if s["s_over_sqrt_b"] == 0 else f"{s['s_over_sqrt_b']:g}"
        sic_text = "—" if s["s_over_sqrt_b"] == 0 else _fmt(s["max_sic"], s["max_sic_std"], 1)
        auc_text = "—" if s["s_over_sqrt_b"] == 0 else _fmt(s["auc"], None, 3)
        lines.append(
            f"| {s['method']} | {level} | {s['noise']} | {s['seeds']} | {sic_text} "
            f"| {auc_text} | {_fmt(s['z_before'], s['z_before_std'])} "
            f"| {_fmt(s['z_after'], s['z_after_std'])} "
            f"| ({_fmt(s['z_after_uncorrected'], s['z_after_uncorrected_std'])}) "
            f"| {_fmt(s['sideband_ratio'], None)} "
            f"| {_fmt(s['sculpting_background'])} / "
            f"{_fmt(s['sculpting_template'])} ({_fmt(s['sculpting_background_pooled'])}"
            f" / {_fmt(s['sculpting_template_pooled'])}) "
            f"| {gate} | {_fmt(s['seconds'], None, 0)} |"
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    torch.set_num_threads(1)
    args = parse(argv)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    made = samples(args)
    templates = build_templates(made, args)
    template_info = templates.pop("info")
    sizes = {k: getattr(args, k) for k in SIZES}
    settings = {
        "features": list(made.features),
        "folds": args.folds,
        "ensemble": args.ensemble,
        "oversample": args.oversample,
        "mlp_batch": args.mlp_batch,
        **sizes,
    }
    rows: list[dict] = []
    if out.exists() and not args.fresh:
        previous = json.loads(out.read_text())
        if previous.get("settings") == settings:
            rows = previous["rows"]
            print(f"resuming: {len(rows)} runs already in {out}", flush=True)
    done = {(r["method"], r["s_over_sqrt_b"], r["noise"], r["seed"]) for r in rows}

    def save():
        summary = summarize(rows)
        result = {
            "date": time.strftime("%Y-%m-%d"),
            "command": " ".join(["benchmarks/search.py", *(argv or sys.argv[1:])]),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, 1 torch thread, CPU",
            "settings": settings,
            "samples": made.info,
            "templates": template_info,
            "total_seconds_this_call": time.perf_counter() - t_start,
            "summary": summary,
            "goals": goals(summary),
            "rows": rows,
        }
        write_json(out, _jsonable(result))
        (out.with_suffix(".md")).write_text(markdown(summary))

    # seeds in passes (0–2, then the rest), so that a run cut short still has every row
    passes = [range(min(3, args.seeds)), range(min(3, args.seeds), args.seeds)]
    for seeds in passes:
        for method, level, noise in plan(args):
            for seed in seeds:
                if (method, level, noise, seed) in done:
                    continue
                t0 = time.perf_counter()
                row = one_run(made, templates, method, level, noise, seed, args)
                row = {"method": method, "s_over_sqrt_b": level, "noise": noise, "seed": seed} | row
                row["seconds"] = time.perf_counter() - t0
                rows.append(row)
                print(
                    f"{method:>20} S/√B {level:g} noise {noise:2d} seed {seed}: max SIC "
                    f"{_fmt(row.get('max_sic'))}  Z {row['z_before']:.2f} → {row['z_after']:.2f}"
                    f"  ({row['seconds']:.0f} s)",
                    flush=True,
                )
                save()
    save()
    print(markdown(summarize(rows)))
    print(json.dumps(goals(summarize(rows)), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
