"""``simkit template`` and ``simkit search``: build a background template, then search the
data against it in an mjj window (:mod:`detectors.templates`, :mod:`detectors.search`)."""

from __future__ import annotations

import argparse
import time

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
from simkit.cli.parser import task_defaults
from simkit.cli.sharding import add_sharding


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
    from detectors.template import CLASSIFIERS
    from detectors.templates import TEMPLATE_KINDS

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
        help="events sampled by the flow templates",
    )
    t.add_argument("--flow-epochs", type=positive_int, help="sideband-flow: training epochs")
    _window_options(t)
    add_seed(t)
    add_device(t)
    add_output(t, "the template event file to write")
    task_defaults(t, "simkit.tasks.search:TemplateConfig")
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
    p.add_argument("--classifier", choices=CLASSIFIERS, help="the classifier")
    p.add_argument("--folds", type=positive_int, help="k of k-folding")
    p.add_argument("--ensemble", type=positive_int, help="models per fold")
    p.add_argument(
        "--oversample",
        type=positive_float,
        help="template events per data event in training",
    )
    p.add_argument(
        "--efficiencies",
        type=_efficiencies,
        metavar="E1,E2,…",
        help="data efficiencies of the cuts",
    )
    p.add_argument(
        "--primary",
        type=lambda s: _float_in(s, lambda v: 0.0 < v < 1.0, "strictly in (0, 1)"),
        help="fix the cut whose Z is the window's z_local (one of --efficiencies); "
        "default: the most significant cut, with the trials factor for the number of cuts",
    )
    p.add_argument(
        "--bin-width",
        type=positive_float,
        help="mjj bin width of the sideband fits (GeV)",
    )
    from simkit.cli.compare import add_gate_options

    add_gate_options(p)
    p.add_argument("--no-gate", dest="gate", action="store_false", help="skip the template gate")
    p.add_argument(
        "--sideband-correction",
        choices=("auto", "always", "never"),
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
        help="window width in units of σ(m)·m",
    )
    scan.add_argument(
        "--scan-min-count",
        type=positive_int,
        help="data events the highest window must hold",
    )
    scan.add_argument(
        "--events",
        type=positive_int,
        help="with --scan --run: events sampled by the flow templates",
    )
    add_sharding(
        p,
        folder="OUTPUT/scan.shards/",
        shard="one result file per window",
        title="with --scan: each window one shard",
    )
    add_seed(p)
    add_device(p)
    add_output(p, "output folder (metrics.json and plots)")
    p.add_argument(
        "--signal",
        metavar="SIGNAL.h5",
        help="a labelled signal-only event file whose events join the ROC (never trained on)",
    )
    task_defaults(p, "simkit.tasks.search:SearchTaskConfig")
    p.set_defaults(func=run_search)


# --------------------------------------------------------------------------- run


def run_template(args) -> int:
    from simkit.tasks.search import TemplateConfig, TemplateInputs, template

    config = TemplateConfig.from_args(args, progress=not args.quiet)
    result = template(config, TemplateInputs.from_args(args), args.output)
    say(args, result.summary_line(args.output))
    return 0


def run_search(args) -> int:
    from simkit.tasks.search import SearchInputs, SearchTaskConfig, search

    t0 = time.perf_counter()
    config = SearchTaskConfig.from_args(args, progress=not args.quiet)
    result = search(config, SearchInputs.from_args(args), args.output)
    say(args, result.summary_line())
    say(args, f"wrote {args.output}/metrics.json and plots ({time.perf_counter() - t0:.1f} s)")
    return 0
