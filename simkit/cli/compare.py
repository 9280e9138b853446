"""``simkit compare``: a candidate sample against a reference, and the validation gate."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from simkit.cli import (
    _float_in,
    add_blind,
    add_device,
    add_output,
    add_seed,
    blind_window,
    non_negative_float,
    positive_int,
    say,
    subparser,
)

#: Exit status of ``--strict`` when the candidate is not validated (bad input is 2).
NOT_VALIDATED_EXIT = 4


def probability(text: str) -> float:
    """argparse type: a float strictly between 0 and 1."""
    return _float_in(text, lambda v: 0.0 < v < 1.0, "strictly between 0 and 1")


def add_gate_options(parser) -> None:
    """``--alpha``, ``--auc-tolerance``, ``--chi2-tolerance``: the validation gate's
    settings (:mod:`validation.gate`, whose defaults they show), for compare and unfold."""
    from validation.gate import DEFAULT_ALPHA, DEFAULT_AUC_TOLERANCE, DEFAULT_CHI2_TOLERANCE

    parser.add_argument(
        "--alpha",
        type=probability,
        default=DEFAULT_ALPHA,
        help="gate: significance level; every p-value must be ≥ alpha / (number of tests: "
        "the AUC and one per column, Bonferroni)",
    )
    parser.add_argument(
        "--auc-tolerance",
        type=non_negative_float,
        default=DEFAULT_AUC_TOLERANCE,
        metavar="DELTA",
        help="gate: the AUC test is one-sided, of AUC ≤ 0.5 + DELTA, against the AUC's "
        "Mann–Whitney null spread",
    )
    parser.add_argument(
        "--chi2-tolerance",
        type=non_negative_float,
        default=DEFAULT_CHI2_TOLERANCE,
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
    p.add_argument("--level", choices=("reco", "gen"), default="reco", help="level to compare")
    p.add_argument("--columns", nargs="+", metavar="COL", help="columns (None: all)")
    add_gate_options(p)
    p.add_argument("--bins", type=positive_int, default=40, help="histogram bins per column")
    p.add_argument(
        "--bootstrap",
        type=int,
        default=100,
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
    p.set_defaults(func=run)


def _read(path: str, level: str, columns, weights_spec, blind):
    """The level's table and weights, without the rows inside the ``blind`` window."""
    import numpy as np

    from simkit.errors import SimkitError
    from simkit.events import in_window
    from simkit.io import read_sample, read_weights

    wanted = columns
    if blind is not None and columns is not None:  # the window's column, read once
        wanted = list(dict.fromkeys([*columns, blind[0]]))
    sample = read_sample(path, levels=[level], columns=wanted)
    table = sample.level(level)
    weights = None if weights_spec is None else read_weights(weights_spec, len(sample))
    if blind is None:
        return table, weights
    column, low, high = blind
    if column not in table.columns:
        have = ", ".join(table.columns)
        raise SimkitError(f"{path}: /{level} has no column {column!r} (columns: {have})")
    keep = ~in_window(table.column(column), low, high)
    if not np.any(keep & table.passed):
        raise SimkitError(f"{path}: no passing event outside the blinded window of {column}")
    table = table.mask(keep)
    return (
        table if columns is None else table.select(columns),
        None if weights is None else weights[keep],
    )


def run(args: argparse.Namespace) -> int:
    from simkit.errors import SimkitError
    from simkit.io import inspect, write_json
    from validation.compare import compare, verdict_line

    if args.bootstrap < 0:
        raise SimkitError(f"--bootstrap must be 0 or more, got {args.bootstrap}")
    if args.auc_tolerance >= 0.5:
        raise SimkitError(f"--auc-tolerance must be below 0.5, got {args.auc_tolerance}")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise SimkitError(f"{out}: exists and is not a folder")
    for path in (args.reference, args.candidate):
        info = inspect(path)
        if args.level not in info.levels:
            have = ", ".join(lv for lv in info.levels if lv != "truth") or "none"
            raise SimkitError(f"{path}: has no {args.level} level (it has: {have}); see --level")
    t0 = time.perf_counter()
    blind = blind_window(args)
    reference, ref_w = _read(
        args.reference, args.level, args.columns, args.reference_weights, blind
    )
    candidate, cand_w = _read(
        args.candidate, args.level, args.columns, args.candidate_weights, blind
    )
    out.mkdir(parents=True, exist_ok=True)
    metrics = compare(
        reference,
        candidate,
        reference_weights=ref_w,
        candidate_weights=cand_w,
        columns=args.columns,
        alpha=args.alpha,
        auc_tolerance=args.auc_tolerance,
        chi2_tolerance=args.chi2_tolerance,
        bins=args.bins,
        n_bootstrap=args.bootstrap,
        seed=args.seed,
        device=args.device,
        progress=not args.quiet,
        output=out,
    )
    metrics = {
        "reference": str(args.reference),
        "candidate": str(args.candidate),
        "level": args.level,
        **({} if blind is None else {"blind": list(blind)}),
        **metrics,
        "seconds": time.perf_counter() - t0,
    }
    write_json(out / "metrics.json", metrics)
    print(verdict_line(metrics), flush=True)  # the verdict is printed even with --quiet
    say(args, f"metrics and plots in {out}/")
    if args.strict and not metrics["validated"]:
        return NOT_VALIDATED_EXIT
    return 0
