"""``simkit template`` and ``simkit search``: build a background template, then search the
data against it in an mjj window (:mod:`detectors.templates`, :mod:`detectors.search`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from simkit.cli import (
    _float_in,
    add_device,
    add_output,
    add_seed,
    positive_float,
    positive_int,
    say,
    subparser,
)


def _efficiencies(text: str) -> tuple[float, ...]:
    values = []
    for part in text.split(","):
        values.append(_float_in(part.strip(), lambda v: 0.0 < v < 1.0, "strictly in (0, 1)"))
    if not values:
        raise argparse.ArgumentTypeError("give at least one efficiency, e.g. 0.1,0.01")
    return tuple(values)


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"expected column names like m_j1,tau21_j1, got {text!r}")
    return names


def _window_options(p, required: bool = True) -> None:
    p.add_argument(
        "--window",
        required=required,
        metavar="LOW:HIGH",
        help="the signal-region window in mjj (GeV), e.g. 3300:3700",
    )
    p.add_argument(
        "--sideband-width",
        type=positive_float,
        metavar="GEV",
        help="width of the sidebands on each side of the window (default: the window's width)",
    )
    p.add_argument(
        "--features",
        type=_names,
        metavar="A,B,…",
        help="classifier / template features (default: every jet-substructure column the "
        "files share, mjj excluded)",
    )


def register(sub, common) -> None:
    from detectors.scan import SCAN_MIN_COUNT, SCAN_WIDTH_FACTOR
    from detectors.search import SearchConfig
    from detectors.template import CLASSIFIERS, TemplateClassifierConfig
    from detectors.templates import TEMPLATE_KINDS

    defaults = TemplateClassifierConfig()
    search_defaults = SearchConfig()

    t = subparser(
        sub,
        "template",
        common,
        help="build a background template for the search in an mjj window",
        description="Build a background template: what the data in a window would look "
        "like without signal.\n"
        "  validated-flow  the flow fitted to the simulation (--flow), sampled with mjj "
        "from the simulation, weighted by the reco-level reweighting of the blinded "
        "OmniFold weights (--weights)\n"
        "  reweighted-sim  the simulation × the blinded OmniFold weights (SALAD)\n"
        "  sideband-flow   a flow given mjj learnt on the data outside the window, mjj "
        "inside drawn from the dijet fit of the data (CATHODE)\n"
        "--run RUN_DIR takes the simulation, the weights (unfold/weights.h5:omnifold/pull), "
        "the flow (surrogate-flow/model) and the data from a `simkit run` folder.",
    )
    t.add_argument("kind", choices=TEMPLATE_KINDS, help="which template")
    t.add_argument("--run", metavar="RUN_DIR", help="take the inputs from a `simkit run` folder")
    t.add_argument("--sim", metavar="SIM.h5", help="the simulation (reco level is read)")
    t.add_argument(
        "--weights",
        metavar="W.h5:DATASET",
        help="per-event weights of the simulation, e.g. unfold/weights.h5:omnifold/pull "
        "(blinded to the window)",
    )
    t.add_argument(
        "--flow", metavar="MODEL", help="a flow fitted to the simulation (mjj condition)"
    )
    t.add_argument("--data", metavar="DATA.h5", help="the data (sideband-flow)")
    t.add_argument(
        "--events",
        type=positive_int,
        default=200_000,
        help="events sampled by the flow templates",
    )
    t.add_argument(
        "--flow-epochs", type=positive_int, default=40, help="sideband-flow: training epochs"
    )
    _window_options(t)
    add_seed(t)
    add_device(t)
    add_output(t, "the template event file to write")
    t.set_defaults(func=run_template)

    p = subparser(
        sub,
        "search",
        common,
        help="search the data against a background template in an mjj window",
        description="Train a k-folded classifier of the data against the template inside "
        "the window, cut at fixed data efficiencies, and compare the count after the cut "
        "with the template's estimate (its efficiency × the background from the sideband "
        "fit of the uncut spectrum): local Z before and after the cut, the bump hunt after "
        "the cut as a cross-check, sculpting of the background's mjj shape, and the "
        "template gate (data against the template in the sidebands). Writes metrics.json "
        "and plots.",
    )
    p.add_argument("--data", required=True, metavar="DATA.h5", help="the data event file")
    p.add_argument(
        "--template",
        metavar="T.h5",
        help="the template (`simkit template`); with --scan it serves every window",
    )
    p.add_argument(
        "--template-weights", metavar="W.h5:DATASET", help="extra per-event template weights"
    )
    _window_options(p, required=False)
    p.add_argument(
        "--classifier", choices=CLASSIFIERS, default=defaults.classifier, help="the classifier"
    )
    p.add_argument("--folds", type=positive_int, default=defaults.folds, help="k of k-folding")
    p.add_argument(
        "--ensemble", type=positive_int, default=defaults.ensemble, help="models per fold"
    )
    p.add_argument(
        "--oversample",
        type=positive_float,
        default=defaults.oversample,
        help="template events per data event in training",
    )
    p.add_argument(
        "--efficiencies",
        type=_efficiencies,
        default=search_defaults.efficiencies,
        metavar="E1,E2,…",
        help="data efficiencies of the cuts",
    )
    p.add_argument(
        "--primary",
        type=lambda s: _float_in(s, lambda v: 0.0 < v < 1.0, "strictly in (0, 1)"),
        default=search_defaults.primary_efficiency,
        help="fix the cut whose Z is the window's z_local (one of --efficiencies); "
        "default: the most significant cut, with the trials factor for the number of cuts",
    )
    p.add_argument(
        "--bin-width",
        type=positive_float,
        default=search_defaults.bin_width,
        help="mjj bin width of the sideband fits (GeV)",
    )
    from simkit.cli.compare import add_gate_options

    add_gate_options(p)
    p.add_argument("--no-gate", action="store_true", help="skip the template gate")
    p.add_argument(
        "--sideband-correction",
        choices=("auto", "always", "never"),
        default=search_defaults.sideband_correction,
        help="scale the template's efficiency by data/template of the same cut in the "
        "sidebands: auto = when the template fails its gate",
    )
    scan = p.add_argument_group("scanning mjj")
    scan.add_argument(
        "--scan",
        action="store_true",
        help="scan windows across mjj instead of --window: width --scan-width × the dijet "
        "mass resolution σ(m)·m measured on the simulation, step half a width, from the "
        "trigger plateau up to where a window holds --scan-min-count data events; a local Z "
        "per window and the global Z (Gross–Vitells)",
    )
    scan.add_argument(
        "--run",
        metavar="RUN_DIR",
        help="with --scan: rebuild a template of --template-kind in every window from a "
        "`simkit run` folder, OmniFold blinded to that window (its simulation, data, flow)",
    )
    scan.add_argument(
        "--template-kind",
        choices=TEMPLATE_KINDS,
        default="validated-flow",
        help="with --scan --run: the template rebuilt per window",
    )
    scan.add_argument(
        "--sim",
        metavar="SIM.h5",
        help="with --scan and --template: the simulation (gen + reco) whose mjj response "
        "gives the resolution",
    )
    scan.add_argument(
        "--scan-width",
        type=positive_float,
        default=SCAN_WIDTH_FACTOR,
        help="window width in units of σ(m)·m",
    )
    scan.add_argument(
        "--scan-min-count",
        type=positive_int,
        default=SCAN_MIN_COUNT,
        help="data events the highest window must hold",
    )
    scan.add_argument(
        "--events",
        type=positive_int,
        default=200_000,
        help="with --scan --run: events sampled by the flow templates",
    )
    add_seed(p)
    add_device(p)
    add_output(p, "output folder (metrics.json and plots)")
    p.set_defaults(func=run_search)


# --------------------------------------------------------------------------- template


def _from_run(args) -> None:
    """Fill --sim/--weights/--flow/--data from a run folder where not given."""
    if args.run is None:
        return
    run = Path(args.run)
    if not run.is_dir():
        from simkit.errors import SimkitError

        raise SimkitError(f"{run}: not a run folder")
    args.sim = args.sim or str(run / "sim" / "sim.h5")
    args.weights = args.weights or f"{run / 'unfold' / 'weights.h5'}:omnifold/pull"
    args.flow = args.flow or str(run / "surrogate-flow" / "model")
    args.data = args.data or str(run / "data" / "data.h5")


def _require(args, *names) -> None:
    from simkit.errors import SimkitError

    missing = [f"--{n}" for n in names if getattr(args, n) is None]
    if missing:
        raise SimkitError(f"{args.kind} needs {', '.join(missing)} (or --run RUN_DIR)")


def run_template(args) -> int:
    from detectors.templates import build_template
    from simkit.events import Sample
    from simkit.io import make_provenance, read_sample, read_weights, write_sample
    from simkit.regions import SignalRegion

    t0 = time.perf_counter()
    _from_run(args)
    region = SignalRegion.parse(args.window, what="--window")
    inputs: dict = {}
    sim = weights = flow = data = None
    if args.kind in ("reweighted-sim", "validated-flow"):
        _require(args, "sim", "weights", *(["flow"] if args.kind == "validated-flow" else []))
        sim = read_sample(args.sim, levels=["reco"]).reco
        weights = read_weights(args.weights, len(sim))
        inputs = {"sim": args.sim, "weights": args.weights}
    if args.kind == "validated-flow":
        from simkit.surrogates import load_surrogate

        flow = load_surrogate(args.flow, device=args.device)
        inputs["flow"] = args.flow
    if args.kind == "sideband-flow":
        _require(args, "data")
        data = read_sample(args.data, levels=["reco"]).reco
        inputs = {"data": args.data}
    features = args.features
    if args.kind == "sideband-flow" and features is None:
        from detectors.search import search_features

        features = search_features(data, data)
    table = build_template(
        args.kind, region, sideband_width=args.sideband_width, sim=sim, weights=weights,
        flow=flow, data=data, features=features, events=args.events, seed=args.seed,
        device=args.device, flow_options={"epochs": args.flow_epochs},
        progress=not args.quiet,
    )  # fmt: skip
    mjj = table.column("mjj")
    provenance = make_provenance(
        "simkit.template",
        seed=args.seed,
        template=args.kind,
        window=[region.low, region.high],
        **inputs,
    )
    path = write_sample(args.output, Sample(reco=table), provenance=provenance)
    say(
        args,
        f"template {args.kind}: {len(table)} events in {mjj.min():.0f}–{mjj.max():.0f} GeV "
        f"(window {region.low:g}–{region.high:g}) → {path} ({time.perf_counter() - t0:.1f} s)",
    )
    return 0


# --------------------------------------------------------------------------- search


def _template_name(path: str) -> str:
    from simkit.io import inspect

    info = inspect(path)
    return str(info.provenance.get("settings", {}).get("template", Path(path).stem))


def _template(args):
    from simkit.io import read_sample, read_weights

    template = read_sample(args.template, levels=["reco"]).reco
    if args.template_weights:
        extra = read_weights(args.template_weights, len(template))
        template = template.with_weights(template.weights * extra)
    return template


def _scan(args, config):
    """``--scan``: one template for every window (``--template``, resolution from
    ``--sim``), or a template rebuilt and re-blinded per window from ``--run``."""
    from detectors.scan import blinded_scan, mjj_resolution, scan, scan_windows
    from simkit.errors import SimkitError
    from simkit.io import read_sample

    if args.window is not None:
        raise SimkitError("--scan chooses its windows: drop --window")
    if args.run is not None:
        run = Path(args.run)
        if not run.is_dir():
            raise SimkitError(f"{run}: not a run folder")
        flow = None
        if args.template_kind == "validated-flow":
            from simkit.surrogates import load_surrogate

            flow = load_surrogate(run / "surrogate-flow" / "model", device=args.device)
        return blinded_scan(
            args.template_kind,
            read_sample(args.data, levels=["reco"]),
            read_sample(run / "sim" / "sim.h5"),
            config,
            flow=flow,
            unfold={"device": args.device},
            features=args.features,
            events=args.events,
            sideband_width=args.sideband_width,
            width_factor=args.scan_width,
            min_count=args.scan_min_count,
            seed=args.seed,
            device=args.device,
            progress=not args.quiet,
        )
    if args.template is None or args.sim is None:
        raise SimkitError(
            "--scan needs --run RUN_DIR, or --template and --sim (for the mjj resolution)"
        )
    sim = read_sample(args.sim, columns=["mjj"])
    if sim.gen is None:
        raise SimkitError(f"{args.sim}: has no generator level to measure the resolution with")
    both = sim.gen.passed & sim.reco.passed
    resolution = mjj_resolution(sim.gen.column("mjj")[both], sim.reco.column("mjj")[both])
    data = read_sample(args.data, levels=["reco"]).reco
    windows = scan_windows(
        data.passing().column("mjj"),
        resolution,
        width_factor=args.scan_width,
        min_count=args.scan_min_count,
        bin_width=args.bin_width,
    )
    template = _template(args)
    result = scan(
        data,
        lambda window: template,
        windows,
        config,
        template_name=_template_name(args.template),
        seed=args.seed,
        progress=not args.quiet,
        width_rule=f"{args.scan_width:g} × σ(m)·m, σ(m)/m = {resolution.a:.4f} + "
        f"{resolution.b:.1f} GeV / m; one template for every window (not re-blinded)",
    )
    result.scan["resolution"] = resolution.to_dict()
    return result


def run_search(args) -> int:
    from detectors.search import SearchConfig, search
    from detectors.template import TemplateClassifierConfig
    from simkit.io import read_sample
    from simkit.regions import SignalRegion

    t0 = time.perf_counter()
    classifier = TemplateClassifierConfig(
        classifier=args.classifier,
        folds=args.folds,
        ensemble=args.ensemble,
        oversample=args.oversample,
        device=args.device,
    )
    config = SearchConfig(
        features=args.features,
        efficiencies=args.efficiencies,
        primary_efficiency=args.primary,
        bin_width=args.bin_width,
        sideband_width=args.sideband_width,
        gate=not args.no_gate,
        sideband_correction=args.sideband_correction,
        gate_alpha=args.alpha,
        gate_auc_tolerance=args.auc_tolerance,
        gate_chi2_tolerance=args.chi2_tolerance,
        classifier=classifier,
    )
    from simkit.errors import SimkitError

    if args.scan:
        result = _scan(args, config)
    else:
        if args.window is None or args.template is None:
            raise SimkitError("give --window and --template (or --scan)")
        region = SignalRegion.parse(args.window, what="--window")
        result = search(
            read_sample(args.data, levels=["reco"]).reco,
            _template(args),
            [region],
            config,
            template_name=_template_name(args.template),
            seed=args.seed,
            progress=not args.quiet,
        )
    result.save(args.output)
    say(args, result.summary_line())
    say(args, f"wrote {args.output}/metrics.json and plots ({time.perf_counter() - t0:.1f} s)")
    return 0
