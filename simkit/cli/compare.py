"""``simkit compare``: a candidate sample against a reference, and the validation gate."""

from __future__ import annotations

import argparse

from simkit.cli import (
    _float_in,
    add_blind,
    add_device,
    add_output,
    add_seed,
    non_negative_float,
    positive_int,
    say,
    subparser,
)
from simkit.cli.parser import task_defaults

#: Exit status of ``--strict`` when the candidate is not validated (bad input is 2).
NOT_VALIDATED_EXIT = 4


def probability(text: str) -> float:
    """argparse type: a float strictly between 0 and 1."""
    return _float_in(text, lambda v: 0.0 < v < 1.0, "strictly between 0 and 1")


def add_gate_options(parser) -> None:
    """``--alpha``, ``--auc-tolerance``, ``--chi2-tolerance``: the validation gate's
    settings (:mod:`validation.gate`), for compare and unfold; their defaults come from
    :class:`simkit.tasks.unfold.GateOptions`."""
    parser.add_argument(
        "--alpha",
        type=probability,
        help="gate: significance level; every p-value must be ≥ alpha / (number of tests: "
        "the AUC and one per column, Bonferroni)",
    )
    parser.add_argument(
        "--auc-tolerance",
        type=non_negative_float,
        metavar="DELTA",
        help="gate: the AUC test is one-sided, of AUC ≤ 0.5 + DELTA, against the AUC's "
        "Mann–Whitney null spread",
    )
    parser.add_argument(
        "--chi2-tolerance",
        type=non_negative_float,
        metavar="TAU",
        help="gate: relative mis-modelling allowed per histogram bin, added in quadrature "
        "to each bin's variance of the χ² test (0: the statistical χ² alone)",
    )


def register(sub, common) -> None:
    p = subparser(
        sub,
        "compare",
        common,
        help="compare a candidate sample with a reference: metrics, plots, validation gate",
        description="Compare a candidate sample (simulation, surrogate, reweighted) with a "
        "reference (data) at one level: per-column χ²/ndf, triangular discriminator, "
        "Wasserstein-1 and Kolmogorov–Smirnov distances, a classifier two-sample AUC with a "
        "bootstrap interval, and the validation gate: validated when no test rejects "
        "agreement within the tolerances at significance --alpha — the held-out AUC against "
        "its null (AUC ≤ 0.5 + --auc-tolerance) and each column's χ² with --chi2-tolerance "
        "per bin. Writes metrics.json and PNG plots.",
    )
    p.add_argument("--reference", required=True, metavar="A.h5", help="reference event file")
    p.add_argument("--candidate", required=True, metavar="B.h5", help="candidate event file")
    p.add_argument(
        "--candidate-weights",
        metavar="W.h5:DATASET",
        help="per-event weights for the candidate, e.g. unfold/weights.h5:omnifold/push "
        "(a 2-D dataset gives its last row); default: the file's own weights",
    )
    p.add_argument(
        "--reference-weights",
        metavar="W.h5:DATASET",
        help="per-event weights for the reference; default: the file's own weights",
    )
    p.add_argument("--level", choices=("reco", "gen"), help="level to compare")
    p.add_argument("--columns", nargs="+", metavar="COL", help="columns (None: all)")
    add_gate_options(p)
    p.add_argument("--bins", type=positive_int, help="histogram bins per column")
    p.add_argument(
        "--bootstrap",
        type=int,
        metavar="N",
        help="bootstrap replicas of the AUC interval (0: none)",
    )
    add_blind(
        p,
        "compare only events outside LOW ≤ --blind-column < HIGH in both samples (a "
        "signal region left blinded)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help=f"exit with status {NOT_VALIDATED_EXIT} when the candidate is not validated",
    )
    add_seed(p)
    add_device(p)
    add_output(p, "output folder for metrics.json and plots")
    task_defaults(p, "simkit.tasks.compare:CompareConfig")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from simkit.tasks.compare import CompareConfig, CompareInputs
    from simkit.tasks.compare import run as compare

    config = CompareConfig.from_args(args, progress=not args.quiet)
    result = compare(config, CompareInputs.from_args(args), args.output)
    print(result.verdict_line(), flush=True)  # the verdict is printed even with --quiet
    say(args, f"metrics and plots in {args.output}/")
    if args.strict and not result.validated:
        return NOT_VALIDATED_EXIT
    return 0
