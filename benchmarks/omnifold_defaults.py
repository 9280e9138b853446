"""OmniFold defaults by measurement: ``failed_reco`` keep/learn and the number of iterations.

Three closure problems, 10⁵ true events each in simulation and pseudo-data
(``simkit.generators.toy``):

- ``gaussian``: the reference problem (efficiency 1, no fakes);
- ``gaussian-hard``: bias, x-dependent resolution, efficiency 0.5 + 0.4·tanh(x + 1), 10 %
  fakes; inefficient region x < −1 (efficiency < ½);
- ``gaussian-2d-hard``: correlated 2-D truth, the same detector on each axis, efficiency
  of u = x + y/2; inefficient region u < −1.

Configurations: ``keep`` + 3 iterations (the old default), ``learn`` + 3, ``learn`` + 6 and
``learn`` + the convergence rule (``OmniFold(tolerance=2, push_tolerance=0.05)``, the
defaults, at most ``--max-iterations``); for comparison also ``learn`` + the maximum and
the rule's AUC condition alone (at 2σ and 1σ).
The ``learn`` rows come from one fit with the rule off and ``--max-iterations``
iterations: a fit's first k iterations do not depend on how many follow (the same seeds,
the same warm starts), so the k-iteration answer is that fit's ``push_weights_[k-1]`` and
the rule's answer is the push of the first iteration it accepts. The test
``test_convergence_stops_where_the_full_run_would_have`` checks that equivalence.

Score: the triangular discriminator Δ ×10³ (:func:`validation.metrics.triangular_discriminator`)
between the pseudo-data's hidden truth and the unfolded simulation at generator level
(events passing gen), overall and among events in the inefficient region (the Δ of the
shapes there). 1-D: 50 bins on [−4, 4]; 2-D: 16 × 16 cells of [−4, 4]² (outliers in the
border cells). The "exact weights" row reweights by the true density ratio: the floor set
by the finite samples. Mean ± standard deviation over ``--seeds`` seeds (new samples and
new classifier seeds each).

    python benchmarks/omnifold_defaults.py                 # 3 problems × 3 seeds, 10⁵ events
    python benchmarks/omnifold_defaults.py --quick         # 10⁴ events, 1 seed (smoke run)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy.stats

EDGES_1D = np.linspace(-4.0, 4.0, 51)
EDGES_2D = np.linspace(-4.0, 4.0, 17)
PROBLEMS = ("gaussian", "gaussian-hard", "gaussian-2d-hard")
# convergence rules reported: (tolerance in σ of the step-1 AUC's null, push_tolerance);
# None: condition 1 alone
RULES = ((2.0, 0.05), (2.0, None), (1.0, None))


def make_problem(name: str, n: int, seed: int):
    """(sim, data, truth density ratio function of gen features, region mask function)."""
    from simkit.generators import toy

    rng = np.random.default_rng([seed, 2026])
    if name == "gaussian":
        sim, data = toy.gaussian(n, rng), toy.gaussian(n, rng, data=True)

        def ratio(g):
            return _ratio_1d(g[:, 0], toy.DATA_TRUTH, toy.SIM_TRUTH)

        return sim, data, ratio, None
    if name == "gaussian-hard":
        sim, data = toy.gaussian_hard(n, rng), toy.gaussian_hard(n, rng, data=True)

        def ratio(g):
            return _ratio_1d(g[:, 0], toy.DATA_TRUTH, toy.SIM_TRUTH)

        return sim, data, ratio, lambda g: g[:, 0] < -1.0
    if name == "gaussian-2d-hard":
        sim, data = toy.gaussian_2d_hard(n, rng), toy.gaussian_2d_hard(n, rng, data=True)

        def ratio(g):
            return _pdf_2d(g, toy.DATA_TRUTH_2D) / _pdf_2d(g, toy.SIM_TRUTH_2D)

        return (
            sim,
            data,
            ratio,
            lambda g: toy.efficiency_variable_2d(g[:, 0], g[:, 1]) < -1.0,
        )
    raise ValueError(name)


def _ratio_1d(x, target, source):
    return scipy.stats.norm.pdf(x, *target) / scipy.stats.norm.pdf(x, *source)


def _pdf_2d(g, truth):
    (mx, my), (sx, sy), rho = truth
    cov = [[sx * sx, rho * sx * sy], [rho * sx * sy, sy * sy]]
    return scipy.stats.multivariate_normal([mx, my], cov).pdf(g)


def delta_e3(truth_g, gen_g, weights) -> float:
    """Δ ×10³ of unit-area histograms (1-D: 50 bins; 2-D: 16 × 16 cells, flattened)."""
    from validation.metrics import triangular_discriminator

    if gen_g.shape[1] == 1:
        return 1e3 * triangular_discriminator(
            truth_g[:, 0], gen_g[:, 0], bins=EDGES_1D, candidate_weights=weights
        )
    side = len(EDGES_2D) - 1

    def cell(g):
        ij = [np.clip(np.digitize(g[:, k], EDGES_2D) - 1, 0, side - 1) for k in (0, 1)]
        return (ij[0] * side + ij[1]).astype(np.float64)

    edges = np.arange(side * side + 1) - 0.5
    return 1e3 * triangular_discriminator(
        cell(truth_g), cell(gen_g), bins=edges, candidate_weights=weights
    )


def score(sim, data, weights, region) -> dict:
    gen_ok, truth_ok = sim.gen.passed, data.truth.passed
    gen_g, truth_g = sim.gen.features[gen_ok], data.truth.features[truth_ok]
    w = weights[gen_ok]
    out = {"delta": delta_e3(truth_g, gen_g, w)}
    if region is not None:
        in_gen, in_truth = region(gen_g), region(truth_g)
        out["delta_region"] = delta_e3(truth_g[in_truth], gen_g[in_gen], w[in_gen])
    return out


def stop_iteration(diagnostics, tolerance: float, push_tolerance: float | None):
    """Where ``OmniFold(tolerance=…, push_tolerance=…)`` stops (1-based; the last iteration
    when the rule never holds) and whether it converged. ``push_tolerance=None``: the AUC
    condition alone."""
    from validation.omnifold import iteration_converged

    for record in diagnostics:
        if iteration_converged(
            record, tolerance, np.inf if push_tolerance is None else push_tolerance
        ):
            return record["iteration"], True
    return diagnostics[-1]["iteration"], False


def rule_name(tolerance, push_tolerance, max_iterations) -> str:
    if push_tolerance is None:
        return f"learn, AUC within {tolerance:g}σ only (max {max_iterations})"
    return f"learn, converged ({tolerance:g}σ, {push_tolerance:g}; max {max_iterations})"


def run_problem(name: str, n: int, seed: int, max_iterations: int, device: str) -> dict:
    from validation.omnifold import OmniFold

    sim, data, ratio, region = make_problem(name, n, seed)
    gen_ok = sim.gen.passed
    exact = np.ones(len(sim))
    exact[gen_ok] = ratio(sim.gen.features[gen_ok].astype(np.float64))
    rows = {
        "prior (no unfolding)": score(sim, data, np.ones(len(sim)), region),
        "exact weights (floor)": score(sim, data, exact, region),
    }
    t0 = time.perf_counter()
    keep = OmniFold(
        iterations=3, failed_reco="keep", tolerance=None, seed=seed, device=device
    ).fit_samples(sim, data)
    seconds_keep = time.perf_counter() - t0
    rows["keep, 3 iterations"] = {
        **score(sim, data, keep.weights_, region),
        "iterations": 3,
        "seconds": seconds_keep,
    }
    t0 = time.perf_counter()
    learn = OmniFold(
        iterations=max_iterations, failed_reco="learn", tolerance=None, seed=seed, device=device
    ).fit_samples(sim, data)
    seconds_learn = time.perf_counter() - t0
    per_iteration = [
        r["step1_seconds"] + r["step2_seconds"] + r.get("step1b_seconds", 0.0)
        for r in learn.diagnostics_
    ]
    for k in (k for k in (3, 6) if k <= max_iterations):
        rows[f"learn, {k} iterations"] = {
            **score(sim, data, learn.push_weights_[k - 1], region),
            "iterations": k,
            "seconds": float(sum(per_iteration[:k])),
        }
    rows[f"learn, {max_iterations} iterations"] = {
        **score(sim, data, learn.push_weights_[-1], region),
        "iterations": max_iterations,
        "seconds": float(sum(per_iteration)),
    }
    for tol, push_tol in RULES:
        k, converged = stop_iteration(learn.diagnostics_, tol, push_tol)
        rows[rule_name(tol, push_tol, max_iterations)] = {
            **score(sim, data, learn.push_weights_[k - 1], region),
            "iterations": k,
            "converged": converged,
            "seconds": float(sum(per_iteration[:k])),
        }
    trace = [
        {
            "iteration": r["iteration"],
            "step1_auc": r["step1_auc"],
            "step1_auc_z": r["step1_auc_z"],
            "push_change": r["push_change"],
            "push_change_relative": r["push_change_relative"],
            **score(sim, data, learn.push_weights_[r["iteration"] - 1], region),
        }
        for r in learn.diagnostics_
    ]
    return {
        "rows": rows,
        "trace": trace,
        "seconds_keep3": seconds_keep,
        "seconds_learn_max": seconds_learn,
        "seconds_per_learn_iteration": per_iteration,
    }


def _cell(values, digits=2) -> str:
    values = np.asarray(values, dtype=float)
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def table(results: dict) -> str:
    lines = [
        "| problem | configuration | iterations | Δ ×10³ | Δ ×10³, inefficient region | time [s] |",
        "|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        for row in runs[0]["rows"]:
            cells = [run["rows"][row] for run in runs]
            its = [c.get("iterations") for c in cells]
            if its[0] is None:
                it_text = "–"
            elif len(set(its)) == 1:
                it_text = str(its[0])
            else:
                it_text = " / ".join(str(i) for i in its)
            if any(c.get("converged") is False for c in cells):
                it_text += " (max reached)"
            region = (
                _cell([c["delta_region"] for c in cells]) if "delta_region" in cells[0] else "–"
            )
            seconds = _cell([c["seconds"] for c in cells], 0) if "seconds" in cells[0] else "–"
            lines.append(
                f"| {name} | {row} | {it_text} | {_cell([c['delta'] for c in cells])} "
                f"| {region} | {seconds} |"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10⁴ events, one seed")
    parser.add_argument("--events", type=int, default=None, help="true events per sample")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-iterations", type=int, default=10)
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=PROBLEMS)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--json", type=Path, help="also write every number here")
    args = parser.parse_args(argv)

    import torch

    n = args.events or (10_000 if args.quick else 100_000)
    seeds = 1 if args.quick else args.seeds
    results: dict = {}
    t_start = time.perf_counter()
    for name in args.problems:
        results[name] = []
        for seed in range(seeds):
            run = run_problem(name, n, seed, args.max_iterations, args.device)
            results[name].append(run)
            print(
                f"{name} seed {seed}: keep+3 {run['seconds_keep3']:.1f} s, learn × "
                f"{args.max_iterations} {run['seconds_learn_max']:.1f} s; per iteration "
                + ", ".join(
                    f"{t['iteration']}: AUC {t['step1_auc']:.4f} ({t['step1_auc_z']:+.1f}σ) "
                    f"Δlog w {t['push_change']:.4f} ({t['push_change_relative']:.3f}) "
                    f"Δ {t['delta']:.2f}"
                    + (f"/{t['delta_region']:.2f}" if "delta_region" in t else "")
                    for t in run["trace"]
                ),
                flush=True,
            )
    cpu = platform.processor() or platform.machine()
    print(
        f"\nOmniFold defaults: {n} true events per sample, seeds 0..{seeds - 1}, "
        f"{os.cpu_count()} CPU cores ({cpu}), torch {torch.__version__}, "
        f"{time.perf_counter() - t_start:.0f} s in all\n"
    )
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps({"events": n, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
