"""``simkit unfold``: OmniFold a simulation to data; weights, reweighter, metrics, plots."""

from __future__ import annotations

import argparse

from simkit.cli import (
    add_blind,
    add_device,
    add_output,
    add_seed,
    fraction,
    non_negative_float,
    positive_float,
    positive_int,
    say,
    subparser,
    widths,
)
from simkit.cli.compare import add_gate_options
from simkit.cli.parser import task_defaults


def register(sub, common) -> None:
    p = subparser(
        sub,
        "unfold",
        common,
        help="unfold data with a paired simulation by OmniFold (per-event weights)",
        description="OmniFold (MultiFold) unfolding of all --columns at once: iterate\n"
        "  step 1: sim reco (MC × push) vs data → pull;\n"
        "  step 2: sim gen vs sim gen × pull → push.\n"
        "Writes DIR/weights.h5 (omnifold/pull and omnifold/push, float64, shape (K, N_sim),\n"
        "rows aligned with the sim file; the unfolded weights are push[-1]), DIR/reweighter/\n"
        "(the final step-2 classifier, for new generator-level events), DIR/metrics.json\n"
        "(per-iteration AUC, ESS, seconds; the validation gate before and after at reco\n"
        "level) and PNG plots.",
    )
    p.add_argument("--sim", required=True, metavar="SIM.h5", help="simulation with gen and reco")
    p.add_argument("--data", required=True, metavar="DATA.h5", help="data (reco level is used)")
    p.add_argument(
        "--columns",
        nargs="+",
        metavar="COL",
        help="observables to unfold, the same at gen and reco (None: all data columns)",
    )
    p.add_argument(
        "--iterations",
        type=positive_int,
        metavar="K",
        help="most OmniFold iterations (fewer when the convergence rule stops the fit)",
    )
    p.add_argument(
        "--tolerance",
        type=non_negative_float,
        metavar="T",
        help="convergence: stop once the step-1 held-out AUC is less than T standard "
        "deviations (of its null distribution) above 0.5 and the push weights have stopped "
        "moving (see --push-tolerance); 0: run all K iterations",
    )
    p.add_argument(
        "--push-tolerance",
        type=non_negative_float,
        metavar="R",
        help="convergence: the RMS change of log push in the last iteration is at most R "
        "times the first iteration's, or no longer shrinks (the classifiers' noise floor)",
    )
    add_seed(p)
    p.add_argument("--ensemble", type=positive_int, help="classifiers averaged per step")
    p.add_argument(
        "--bootstrap",
        type=int,
        metavar="N",
        help="also unfold N Poisson-bootstrap replicas of the data: written as "
        "omnifold/bootstrap (N, N_sim) for statistical uncertainties",
    )
    p.add_argument(
        "--failed-reco",
        choices=("keep", "learn"),
        help="sim events failing reco: learn their pull from gen-level features (step 1b; "
        "much faster convergence when the efficiency depends on the gen-level features), "
        "or keep their previous weight in step 1 (the original algorithm)",
    )
    group = p.add_argument_group("classifier")
    group.add_argument("--hidden", type=widths, help="hidden layer widths, e.g. 64,64")
    group.add_argument("--batch-size", type=positive_int)
    group.add_argument("--epochs", type=positive_int, help="most epochs per step")
    group.add_argument("--lr", type=positive_float, help="learning rate")
    group.add_argument("--patience", type=int, help="early-stopping patience in epochs (0: off)")
    group.add_argument("--val-fraction", type=fraction, help="held out for early stopping")
    group.add_argument(
        "--clip",
        type=positive_float,
        help="classifier outputs are kept inside [clip, 1 - clip] before f/(1-f)",
    )
    group.add_argument(
        "--threads",
        type=positive_int,
        help="torch CPU threads while training (1 is as fast for these small networks and "
        "robust on a shared machine)",
    )
    group.add_argument(
        "--no-warm-start",
        dest="warm_start",
        action="store_false",
        help="train every iteration's classifiers from scratch",
    )
    add_blind(
        p,
        "keep reco events with LOW ≤ --blind-column < HIGH (a signal region) out of step 1 "
        "and out of the gate: their pull is interpolated from the rest, so a signal in the "
        "data is not absorbed into the weights",
    )
    p.add_argument("--sim-weights", metavar="W.h5:DATASET", help="MC weights (default: file's)")
    p.add_argument("--data-weights", metavar="W.h5:DATASET", help="data weights (default: file's)")
    gate = p.add_argument_group("validation gate (reco level, before and after)")
    add_gate_options(gate)
    gate.add_argument("--bins", type=positive_int, help="histogram bins per column")
    p.add_argument(
        "--score-truth",
        action="store_true",
        help="pseudo-data only: after unfolding, compare the result with the data file's "
        "hidden /truth level (never used by the unfolding itself)",
    )
    add_device(p)
    add_output(p, "output folder")
    task_defaults(p, "simkit.tasks.unfold:UnfoldConfig")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from simkit.tasks.unfold import UnfoldConfig, UnfoldInputs
    from simkit.tasks.unfold import run as unfold

    config = UnfoldConfig.from_args(args, progress=not args.quiet)
    result = unfold(
        config, UnfoldInputs.from_args(args), args.output, log=lambda line: say(args, line)
    )
    say(args, "\n".join(result.summary_lines()))
    print(result.gate_line(), flush=True)  # the verdict is printed even with --quiet
    say(args, f"weights, reweighter, metrics and plots in {args.output}/")
    return 0
