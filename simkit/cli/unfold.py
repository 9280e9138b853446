"""``simkit unfold``: OmniFold a simulation to data; weights, reweighter, metrics, plots."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from simkit.cli import (
    add_blind,
    add_device,
    add_output,
    add_seed,
    blind_window,
    fraction,
    non_negative_float,
    positive_float,
    positive_int,
    say,
    subparser,
    widths,
)
from simkit.cli.compare import add_gate_options


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
        default=10,
        metavar="K",
        help="most OmniFold iterations (fewer when the convergence rule stops the fit)",
    )
    p.add_argument(
        "--tolerance",
        type=non_negative_float,
        default=2.0,
        metavar="T",
        help="convergence: stop once the step-1 held-out AUC is less than T standard "
        "deviations (of its null distribution) above 0.5 and the push weights have stopped "
        "moving (see --push-tolerance); 0: run all K iterations",
    )
    p.add_argument(
        "--push-tolerance",
        type=non_negative_float,
        default=0.05,
        metavar="R",
        help="convergence: the RMS change of log push in the last iteration is at most R "
        "times the first iteration's, or no longer shrinks (the classifiers' noise floor)",
    )
    add_seed(p)
    p.add_argument("--ensemble", type=positive_int, default=1, help="classifiers averaged per step")
    p.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="N",
        help="also unfold N Poisson-bootstrap replicas of the data: written as "
        "omnifold/bootstrap (N, N_sim) for statistical uncertainties",
    )
    p.add_argument(
        "--failed-reco",
        choices=("keep", "learn"),
        default="learn",
        help="sim events failing reco: learn their pull from gen-level features (step 1b; "
        "much faster convergence when the efficiency depends on the gen-level features), "
        "or keep their previous weight in step 1 (the original algorithm)",
    )
    group = p.add_argument_group("classifier")
    group.add_argument(
        "--hidden", type=widths, default=(64, 64), help="hidden layer widths, e.g. 64,64"
    )
    group.add_argument("--batch-size", type=positive_int, default=4096)
    group.add_argument("--epochs", type=positive_int, default=40, help="most epochs per step")
    group.add_argument("--lr", type=positive_float, default=2e-3, help="learning rate")
    group.add_argument(
        "--patience", type=int, default=8, help="early-stopping patience in epochs (0: off)"
    )
    group.add_argument(
        "--val-fraction", type=fraction, default=0.2, help="held out for early stopping"
    )
    group.add_argument(
        "--clip",
        type=positive_float,
        default=1e-4,
        help="classifier outputs are kept inside [clip, 1 - clip] before f/(1-f)",
    )
    group.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        help="torch CPU threads while training (1 is as fast for these small networks and "
        "robust on a shared machine)",
    )
    group.add_argument(
        "--no-warm-start",
        action="store_true",
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
    gate.add_argument("--bins", type=positive_int, default=40, help="histogram bins per column")
    p.add_argument(
        "--score-truth",
        action="store_true",
        help="pseudo-data only: after unfolding, compare the result with the data file's "
        "hidden /truth level (never used by the unfolding itself)",
    )
    add_device(p)
    add_output(p, "output folder")
    p.set_defaults(func=run)


def _load(args):
    from simkit.errors import SimkitError
    from simkit.io import inspect, read_sample, read_weights

    sim_info, data_info = inspect(args.sim), inspect(args.data)
    if "gen" not in sim_info.levels:
        raise SimkitError(
            f"{args.sim}: has no gen level; unfolding needs a simulation with paired "
            "gen and reco events"
        )
    if "reco" not in sim_info.levels:
        raise SimkitError(f"{args.sim}: has no reco level")
    if "reco" not in data_info.levels:
        raise SimkitError(f"{args.data}: has no reco level")
    if args.columns is None:
        data_cols = data_info.levels["reco"].columns
        for level in ("gen", "reco"):
            sim_cols = sim_info.levels[level].columns
            if set(sim_cols) != set(data_cols):
                raise SimkitError(
                    f"columns differ: {args.sim} {level} has {', '.join(sim_cols)}; "
                    f"{args.data} reco has {', '.join(data_cols)} (choose common ones "
                    "with --columns)"
                )
        columns = list(data_cols)
    else:
        columns = list(args.columns)
        for path, info, levels in (
            (args.sim, sim_info, ("gen", "reco")),
            (args.data, data_info, ("reco",)),
        ):
            for level in levels:
                missing = [c for c in columns if c not in info.levels[level].columns]
                if missing:
                    raise SimkitError(
                        f"columns differ: {path} {level} has no {', '.join(missing)} "
                        f"(it has: {', '.join(info.levels[level].columns)})"
                    )
    sim = read_sample(args.sim, levels=["gen", "reco"], columns=columns)
    # the data's reco level only: its hidden truth is never read for the unfolding
    data = read_sample(args.data, levels=["reco"], columns=columns)
    sim_w = sim.weights if args.sim_weights is None else read_weights(args.sim_weights, len(sim))
    data_w = (
        data.weights if args.data_weights is None else read_weights(args.data_weights, len(data))
    )
    return sim, data, columns, sim_w, data_w


def run(args: argparse.Namespace) -> int:
    from simkit.errors import SimkitError
    from simkit.io import make_provenance, write_arrays, write_json
    from validation.classifier import ClassifierConfig
    from validation.omnifold import OmniFold, bootstrap_weights

    if args.bootstrap < 0:
        raise SimkitError(f"--bootstrap must be 0 or more, got {args.bootstrap}")
    if args.patience < 0:
        raise SimkitError(f"--patience must be 0 or more, got {args.patience}")
    if args.auc_tolerance >= 0.5:
        raise SimkitError(f"--auc-tolerance must be below 0.5, got {args.auc_tolerance}")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise SimkitError(f"{out}: exists and is not a folder")
    t_start = time.perf_counter()
    sim, data, columns, sim_w, data_w = _load(args)
    say(
        args,
        f"unfolding {', '.join(columns)}: {len(sim)} simulated events "
        f"({int(sim.reco.passed.sum())} pass reco), {int(data.reco.passed.sum())} data events; "
        f"at most {args.iterations} iterations",
    )
    classifier = ClassifierConfig(
        hidden=args.hidden,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=args.patience,
        val_fraction=args.val_fraction,
        threads=args.threads,
    )
    estimator = OmniFold(
        iterations=args.iterations,
        classifier=classifier,
        ensemble=args.ensemble,
        clip=args.clip,
        failed_reco=args.failed_reco,
        tolerance=args.tolerance,
        push_tolerance=args.push_tolerance,
        warm_start=not args.no_warm_start,
        seed=args.seed,
        device=args.device,
        progress=not args.quiet,
    )
    fit_args = (sim, data)
    blind = blind_window(args)
    fit_kwargs = {"sim_weights": sim_w, "data_weights": data_w, "blind": blind}
    estimator.fit_samples(*fit_args, **fit_kwargs)
    arrays = {
        "omnifold/pull": estimator.pull_weights_,
        "omnifold/push": estimator.push_weights_,
    }
    replicas = None
    if args.bootstrap:
        say(args, f"unfolding {args.bootstrap} bootstrap replicas of the data")
        replicas = bootstrap_weights(estimator, args.bootstrap, *fit_args, **fit_kwargs)
        arrays["omnifold/bootstrap"] = replicas

    out.mkdir(parents=True, exist_ok=True)
    provenance = make_provenance(
        "validation.omnifold.OmniFold",
        seed=args.seed,
        sim=str(args.sim),
        data=str(args.data),
        columns=columns,
        iterations=args.iterations,
        iterations_run=estimator.n_iter_,
        tolerance=args.tolerance,
        push_tolerance=args.push_tolerance,
        ensemble=args.ensemble,
        failed_reco=args.failed_reco,
        blind=blind,
        classifier=classifier.to_dict(),
    )
    write_arrays(out / "weights.h5", arrays, provenance=provenance)
    estimator.reweighter_.save(out / "reweighter")

    metrics = _metrics(args, estimator, sim, data, columns, sim_w, data_w, replicas, blind, out)
    metrics["seconds_total"] = time.perf_counter() - t_start
    write_json(out / "metrics.json", metrics)
    say(args, _summary(metrics, estimator.n_iter_) + f"\n  {estimator.stop_reason_}")
    where = ""
    if "blind" in metrics:
        column, low, high = metrics["blind"]
        where = f" outside {low:g} ≤ {column} < {high:g}"
    print(
        f"gate at reco level{where}: before {_word(metrics['before_validated'])} "
        f"(AUC {metrics['before_auc']:.4f}, max χ²/ndf {metrics['before_max_chi2_ndf']:.2f}, "
        f"min p {metrics['before_min_p_value']:.2g}); after {_word(metrics['validated'])} "
        f"(AUC {metrics['after_auc']:.4f}, max χ²/ndf {metrics['after_max_chi2_ndf']:.2f}, "
        f"min p {metrics['after_min_p_value']:.2g}; every p must be ≥ "
        f"{metrics['gate_alpha_per_test']:.2g})",
        flush=True,
    )
    say(args, f"weights, reweighter, metrics and plots in {out}/")
    return 0


def _word(validated: bool) -> str:
    return "VALIDATED" if validated else "NOT VALIDATED"


def _summary(metrics: dict, iterations: int) -> str:
    lines = []
    for k in range(1, iterations + 1):
        lines.append(
            f"  iteration {k}: step 1 AUC {metrics[f'iter{k}_step1_auc']:.4f}, "
            f"step 2 AUC {metrics[f'iter{k}_step2_auc']:.4f}, "
            f"ESS/N {metrics[f'iter{k}_step2_ess']:.3f}, "
            f"{metrics[f'iter{k}_step1_seconds'] + metrics[f'iter{k}_step2_seconds']:.1f} s"
        )
    return "\n".join(lines)


def _metrics(
    args, estimator, sim, data, columns, sim_w, data_w, replicas, blind, out: Path
) -> dict:
    from simkit.events import in_window
    from simkit.io import read_sample
    from simkit.plotting import savefig
    from validation.compare import compare
    from validation.metrics import column_metrics
    from validation.plots import diagnostics_figure, plot_columns, plot_weights

    push = estimator.weights_
    metrics: dict = {
        "sim": str(args.sim),
        "data": str(args.data),
        "columns": columns,
        "iterations": estimator.n_iter_,
        "iterations_max": args.iterations,
        "converged": estimator.converged_,
        "stop_reason": estimator.stop_reason_,
        "tolerance": args.tolerance,
        "push_tolerance": args.push_tolerance,
        "ensemble": args.ensemble,
        "failed_reco": args.failed_reco,
        "n_sim": len(sim),
        "n_sim_pass_reco": int(sim.reco.passed.sum()),
        "n_sim_pass_gen": int(sim.gen.passed.sum()),
        "n_data_pass_reco": int(data.reco.passed.sum()),
        "seconds_unfold": estimator.fit_seconds_,
        "clip": args.clip,
    }
    for record in estimator.diagnostics_:
        k = record["iteration"]
        for key, value in record.items():
            if key != "iteration":
                metrics[f"iter{k}_{key}"] = value
    metrics["ess_final"] = metrics[f"iter{estimator.n_iter_}_step2_ess"]

    gate_sim, gate_data = np.ones(len(sim), bool), np.ones(len(data), bool)
    if blind is not None:  # the gate looks where the unfolding did: outside the window
        metrics["blind"] = list(blind)
        column, low, high = blind
        gate_sim = ~in_window(sim.reco.column(column), low, high)
        gate_data = ~in_window(data.reco.column(column), low, high)
    gate = {
        "alpha": args.alpha,
        "auc_tolerance": args.auc_tolerance,
        "chi2_tolerance": args.chi2_tolerance,
        "bins": args.bins,
        "seed": args.seed,
        "device": args.device,
        "n_bootstrap": 100,
    }
    ref, ref_w = data.reco.mask(gate_data), data_w[gate_data]
    cand, cand_w = sim.reco.mask(gate_sim), sim_w[gate_sim]
    before = compare(ref, cand, reference_weights=ref_w, candidate_weights=cand_w, **gate)
    after = compare(
        ref, cand, reference_weights=ref_w, candidate_weights=cand_w * push[gate_sim], **gate
    )
    for name, result in (("before", before), ("after", after)):
        for key in (
            "auc",
            "auc_low",
            "auc_high",
            "auc_null_sigma",
            "auc_p_value",
            "max_chi2_ndf",
            "worst_column",
            "min_p_value",
        ):
            metrics[f"{name}_{key}"] = result[key]
        for c in columns:
            metrics[f"{name}_chi2_ndf_{c}"] = result[f"chi2_ndf_{c}"]
            metrics[f"{name}_chi2_p_value_{c}"] = result[f"chi2_p_value_{c}"]
        metrics[f"{name}_validated"] = result["validated"]
    for key in ("tests", "alpha", "alpha_per_test", "auc_tolerance", "chi2_tolerance"):
        metrics[f"gate_{key}"] = after[f"gate_{key}"]
    metrics["validated"] = after["validated"]

    gen_rows = sim.gen.passed & (sim_w > 0)
    gen_x = sim.gen.features[gen_rows]
    unfolded_w = (sim_w * push)[gen_rows]
    if replicas is not None:
        metrics["bootstrap_replicas"] = len(replicas)
        for j, c in enumerate(columns):
            means = [np.average(gen_x[:, j], weights=(sim_w * r)[gen_rows]) for r in replicas]
            metrics[f"unfolded_mean_{c}_bootstrap_std"] = float(np.std(means, ddof=1))
    for j, c in enumerate(columns):
        mean = np.average(gen_x[:, j], weights=unfolded_w)
        metrics[f"unfolded_mean_{c}"] = float(mean)
        metrics[f"unfolded_std_{c}"] = float(
            np.sqrt(np.average((gen_x[:, j] - mean) ** 2, weights=unfolded_w))
        )

    # plots: reco level (what the unfolding was fitted to), gen level (the answer)
    reco_rows = sim.reco.passed & (sim_w > 0)
    data_rows = data.reco.passed & (data_w > 0)
    units = sim.reco.units
    fig = plot_columns(
        columns,
        (data.reco.features[data_rows], data_w[data_rows]),
        {
            "sim": (sim.reco.features[reco_rows], sim_w[reco_rows]),
            "sim × push": (sim.reco.features[reco_rows], (sim_w * push)[reco_rows]),
        },
        reference_label="data",
        bins=args.bins,
        units=units,
    )
    savefig(fig, out / "reco.png")
    gen_others = {"sim gen × push (unfolded)": (gen_x, unfolded_w)}
    reference = (gen_x, sim_w[gen_rows])
    reference_label = "sim gen (prior)"
    if args.score_truth:
        truth = read_sample(args.data, levels=["truth"], columns=columns).truth
        truth_rows = truth.passed & (truth.weights > 0)
        truth_x, truth_w = truth.features[truth_rows], truth.weights[truth_rows]
        scored = column_metrics(
            truth_x,
            gen_x,
            columns,
            reference_weights=truth_w,
            candidate_weights=unfolded_w,
            bins=args.bins,
        )
        for c, values in scored.items():
            for key, value in values.items():
                metrics[f"truth_{key}_{c}"] = value
            j = columns.index(c)
            t_mean = np.average(truth_x[:, j], weights=truth_w)
            metrics[f"truth_mean_{c}"] = float(t_mean)
            metrics[f"truth_std_{c}"] = float(
                np.sqrt(np.average((truth_x[:, j] - t_mean) ** 2, weights=truth_w))
            )
        gen_others = {"sim gen (prior)": reference, **gen_others}
        reference, reference_label = (truth_x, truth_w), "data truth"
    fig = plot_columns(
        columns,
        reference,
        gen_others,
        reference_label=reference_label,
        bins=args.bins,
        units=sim.gen.units,
    )
    savefig(fig, out / "gen.png")
    ax = plot_weights(
        {
            "pull (last)": estimator.pull_weights_[-1] * sim_w,
            "push (last)": push * sim_w,
        }
    )
    savefig(ax.figure, out / "weights.png")
    savefig(diagnostics_figure(estimator.diagnostics_), out / "iterations.png")
    return metrics
