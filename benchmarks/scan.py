"""Benchmark: the mjj scan (issue 13) — false positives, discovery power, and cost.

Pseudo-experiments of :func:`detectors.scan.scan` on the toy dijet sample of
``tests/dijet_toy.py`` (loaded by path): background mjj from the dijet function
(2.6–6.5 TeV), one-prong-like QCD jets; signal two two-prong jets (masses 500 and 100
GeV), its mjj here redrawn as N(m, 0.043 m) — the toy's own 150 GeV at 3.5 TeV, scaled
— for each tested mass m. The classifier sees the eight substructure features (m, τ21,
τ32, constituents of each jet), not mjj or the jets' pT (which track mjj).

Each pseudo-experiment draws new data (``--background`` events, plus signal) and a new
*idealized* template (an independent background sample, ``--template-factor`` × the
data's background), lays the windows over the data (``scan_windows``: 3 σ(m)·m wide with
σ(m)/m = 4.5 %, every half width, from the plateau while a window holds 200 events) and
scans them with ``SearchConfig(gate=False, classifier=TemplateClassifierConfig(folds=3,
ensemble=1, max_iter=60))`` (the template is ideal: nothing for the gate to catch).

- **False positives**: background-only pseudo-experiments; the fraction with global Z
  (Gross–Vitells, upcrossings counted on each scan) above 3 and above 2, against the
  nominal one-sided 0.135 % and 2.28 %, with its binomial error. The same with the
  upcrossings' mean taken over all background-only scans (the calibrated variant).
- **Power**: signal at S/√B in {1, 2, 4} — S the signal and B the background events in
  [m − 1.5 σ(m)·m, m + 1.5 σ(m)·m], the nominal window centred on the mass — for two
  masses off the window grid; *found* = the best window (largest local Z after the 1 %
  cut) contains m and global Z > 3.
- **Cost**: one dataset scanned over its first 2, 4, 8, … windows; seconds against
  windows, with a straight-line fit (the template is shared, every window's classifier
  is its own).

    python benchmarks/scan.py --quick       # a smoke run (a few minutes on 2 busy cores)
    python benchmarks/scan.py               # the measured run (sizes are flags)

Results (JSON) are written as they come, so a run cut short keeps what it reached.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy: one thread on a shared CPU

import argparse
import importlib.util
import json
import math
import platform
import sys
import time
from pathlib import Path

# This folder holds `detectors.py`, the name of the package benchmarked: keep it off the
# path, or `import detectors` would import that script.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402

from detectors.scan import Resolution, global_significance, scan, scan_windows  # noqa: E402
from detectors.search import SearchConfig  # noqa: E402
from detectors.template import TemplateClassifierConfig  # noqa: E402
from simkit.events import EventTable  # noqa: E402
from simkit.io import write_json  # noqa: E402

ROOT = HERE.parent
SUBSTRUCTURE = tuple(f"{q}_{j}" for j in ("j1", "j2") for q in ("m", "tau21", "tau32", "n"))
RESOLUTION = Resolution(0.045, 0.0)  # σ(m)/m of the toy's "detector" (as the tests use)
WIDTH_FACTOR = 3.0
SIGNAL_WIDTH = 150.0 / 3500.0  # the toy's signal: N(3500, 150) GeV
SIZES = {  # full, quick
    "background": (12000, 8000),
    "template_factor": (3.0, 2.0),
    "null_experiments": (40, 2),
    "signal_experiments": (4, 1),
    "cost_repeats": (1, 1),
}
NOMINAL = {3: float(stats.norm.sf(3.0)), 2: float(stats.norm.sf(2.0))}


def _toy():
    spec = importlib.util.spec_from_file_location("dijet_toy", ROOT / "tests" / "dijet_toy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOY = _toy()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    p.add_argument("--background", type=int, help="background events of each pseudo-dataset")
    p.add_argument("--template-factor", type=float, help="template events / data background")
    p.add_argument("--null-experiments", type=int, help="background-only pseudo-experiments")
    p.add_argument("--signal-experiments", type=int, help="pseudo-experiments per mass × S/√B")
    p.add_argument("--cost-repeats", type=int, help="timings per number of windows")
    p.add_argument("--masses", type=float, nargs="+", default=[3600.0, 4100.0])
    p.add_argument("--levels", type=float, nargs="+", default=[1.0, 2.0, 4.0], help="S/√B")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--budget", type=float, help="stop starting new pseudo-experiments after s")
    p.add_argument(
        "-o", "--output", default=str(ROOT / "runs" / "bench-scan" / "scan.json"), help="JSON"
    )
    p.add_argument(
        "--stock-binning",
        action="store_true",
        help="pseudo-experiments with scikit-learn's own (slow, same numbers) binning",
    )
    p.add_argument(
        "--sideband-correction",
        choices=("auto", "always", "never"),
        help="SearchConfig.sideband_correction (default: the library's; with the gate off "
        "here, auto never corrects)",
    )
    p.add_argument("--skip-cost", action="store_true", help="no cost measurement")
    p.add_argument(
        "--resummarize", action="store_true", help="recompute the summary of --output's rows"
    )
    p.add_argument(
        "--shard",
        default="0/1",
        help="K/N: run only every N-th pseudo-experiment from the K-th (0-based), so N "
        "processes share a run; --merge joins their outputs",
    )
    p.add_argument(
        "--merge", nargs="+", metavar="JSON", help="join the rows of these outputs into -o"
    )
    p.add_argument("--quiet", action="store_true")
    return p


def parse(argv=None) -> argparse.Namespace:
    args = parser().parse_args(argv)
    for name, (full, quick) in SIZES.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


def fast_binning(on: bool = True) -> None:
    """scikit-learn 1.9's weighted binning in HistGradientBoosting calls
    ``_weighted_percentile`` once per bin edge (254 sorts per feature): ~80 % of a scan's
    time here. The same function takes every percentile in one call, with the same
    numbers (checked in :func:`check_fast_binning`); scikit-learn PR #34248 does the
    same upstream. ``on=False`` restores the stock function."""
    from sklearn.ensemble._hist_gradient_boosting import binning

    if not hasattr(binning, "_stock_find_binning_thresholds"):
        binning._stock_find_binning_thresholds = binning._find_binning_thresholds
    stock = binning._stock_find_binning_thresholds
    if not on:
        binning._find_binning_thresholds = stock
        return

    def find_binning_thresholds(col_data, max_bins, sample_weight=None):
        if sample_weight is None:
            return stock(col_data, max_bins)
        keep = ~np.isnan(col_data) & (sample_weight != 0)
        col_data, sample_weight = col_data[keep], sample_weight[keep]
        distinct = np.unique(col_data)
        if len(distinct) <= max_bins:
            return stock(col_data, max_bins, sample_weight)  # midpoints: no percentiles
        percentiles = np.linspace(0, 100, num=max_bins + 1)[1:-1]
        order = np.argsort(col_data)
        thresholds = binning._weighted_percentile(
            col_data[order], sample_weight[order], percentiles, average=True
        )
        thresholds = np.unique(np.asarray(thresholds, dtype=np.float64))
        np.clip(thresholds, a_min=None, a_max=binning.ALMOST_INF, out=thresholds)
        return thresholds

    binning._find_binning_thresholds = find_binning_thresholds


def check_fast_binning(rng: np.random.Generator) -> float:
    """Largest difference between the stock and the fast thresholds on weighted data
    like the scan's (0 expected)."""
    from sklearn.ensemble._hist_gradient_boosting import binning

    fast_binning(False)
    stock = binning._find_binning_thresholds
    fast_binning(True)
    fast = binning._find_binning_thresholds
    worst = 0.0
    for column in (rng.lognormal(4.5, 0.5, 5000), rng.poisson(55, 5000).astype(float)):
        weights = np.where(rng.random(len(column)) < 0.2, 1.0, 0.25)
        a, b = stock(column, 255, weights), fast(column, 255, weights)
        if a.shape != b.shape:
            return math.inf
        worst = max(worst, float(np.max(np.abs(a - b), initial=0.0)))
    return worst


def config(sideband_correction: str | None = None) -> SearchConfig:
    """The scan's settings; ``sideband_correction`` None keeps the library's default."""
    extra = {} if sideband_correction is None else {"sideband_correction": sideband_correction}
    return SearchConfig(
        features=SUBSTRUCTURE,
        efficiencies=(0.1, 0.01),
        gate=False,
        classifier=TemplateClassifierConfig(folds=3, ensemble=1, max_iter=60),
        **extra,
    )


def nominal_window(mass: float) -> tuple[float, float]:
    half = 0.5 * WIDTH_FACTOR * float(RESOLUTION.relative(mass)) * mass
    return mass - half, mass + half


def background_in(mass: float, n_background: int) -> float:
    """Expected background events in the nominal window at ``mass``, from the toy's mjj
    density (a 2·10⁶-event draw, fixed seed: 0.1 % precision)."""
    mjj = TOY.falling_mjj(2_000_000, np.random.default_rng(0))
    low, high = nominal_window(mass)
    return n_background * float(np.mean((mjj >= low) & (mjj < high)))


def pseudo_data(args, rng, mass: float | None, n_in: int) -> tuple[EventTable, EventTable]:
    """Data (background + signal with ``n_in`` events in the nominal window at ``mass``)
    and an independent idealized template."""
    blocks = [TOY.dijet_sample(args.background, 0, rng).reco]
    if mass is not None and n_in > 0:
        low, high = nominal_window(mass)
        sigma = SIGNAL_WIDTH * mass
        inside = stats.norm.cdf(high, mass, sigma) - stats.norm.cdf(low, mass, sigma)
        n_total = round(n_in / inside)
        signal = TOY.dijet_sample(0, n_total, rng).reco
        features = signal.features.copy()
        features[:, signal.index("mjj")] = rng.normal(mass, sigma, n_total)
        blocks.append(
            EventTable(
                features=features,
                columns=signal.columns,
                weights=signal.weights,
                passed=signal.passed,
                labels=signal.labels,
            )
        )
    data = EventTable.concatenate(blocks)
    template = TOY.dijet_sample(round(args.template_factor * args.background), 0, rng).reco
    return data, template


SIDEBAND_CORRECTION: list[str | None] = [None]  # set from the command line


def one_scan(data: EventTable, template: EventTable, windows, seed: int) -> tuple[object, float]:
    t0 = time.perf_counter()
    search = config(SIDEBAND_CORRECTION[0])
    result = scan(data, lambda window: template, windows, search, seed=seed)
    return result, time.perf_counter() - t0


def record(result, seconds: float, mass: float | None) -> dict:
    best = result.best
    return {
        "n_windows": len(result.windows),
        "seconds": seconds,
        "windows": [[w.low, w.high] for w in result.windows],
        "z_local": [w.z_local for w in result.windows],
        "z_local_before_cut": [w.z_local_before_cut for w in result.windows],
        "best": [best.low, best.high],
        "best_z_local": best.z_local,
        "best_efficiency": best.chosen_efficiency,
        "best_z_before_cut": best.z_local_before_cut,
        "z_global": result.scan["z_global"],
        "z_global_before_cut": result.scan["z_global_before_cut"],
        "upcrossings": result.scan["upcrossings"],
        "best_contains_mass": None if mass is None else bool(best.low <= mass < best.high),
        # diagnostics of how the best window is chosen: each fixed cut's local Z
        "z_local_10pct": [w.cuts[0].z_local for w in result.windows],
        "z_local_1pct": [w.cuts[1].z_local for w in result.windows],
        "observed": [w.primary.observed for w in result.windows],
        "cpu_seconds": None,
    }


def binomial(k: int, n: int, p0: float) -> dict:
    """The observed fraction, its error, the nominal's binomial error for n, and a 95 %
    upper limit (Clopper–Pearson) on the rate."""
    upper = float(stats.beta.ppf(0.95, k + 1, n - k)) if k < n else 1.0
    return {
        "k": k,
        "n": n,
        "fraction": k / n if n else None,
        "fraction_error": math.sqrt(max(k, 1) * (1 - k / n)) / n if n else None,
        "nominal": p0,
        "nominal_error": math.sqrt(p0 * (1 - p0) / n) if n else None,
        "upper_95": upper,
    }


def summarize(rows: list[dict], args) -> dict:
    null = [r for r in rows if r["kind"] == "null"]
    out: dict = {"null": {}, "signal": [], "cost": {}}
    if null:
        zg = np.array([r["z_global"] for r in null])
        z_all = np.concatenate([r["z_local"] for r in null])
        mean_up = float(np.mean([r["upcrossings"] for r in null]))
        zg_cal = np.array(
            [global_significance(r["z_local"], mean_upcrossings=mean_up)["z_global"] for r in null]
        )
        out["null"] = {
            "experiments": len(null),
            "windows_mean": float(np.mean([r["n_windows"] for r in null])),
            "local_z_mean": float(z_all.mean()),
            "local_z_std": float(z_all.std(ddof=1)),
            "local_z_before_cut_mean": float(
                np.concatenate([r["z_local_before_cut"] for r in null]).mean()
            ),
            "local_z_before_cut_std": float(
                np.concatenate([r["z_local_before_cut"] for r in null]).std(ddof=1)
            ),
            "max_local_z_mean": float(np.mean([max(r["z_local"]) for r in null])),
            "z_global_max": float(zg.max()),
            "mean_upcrossings": mean_up,
            "global_above_3": binomial(int((zg > 3).sum()), len(zg), NOMINAL[3]),
            "global_above_2": binomial(int((zg > 2).sum()), len(zg), NOMINAL[2]),
            "calibrated_above_3": binomial(int((zg_cal > 3).sum()), len(zg), NOMINAL[3]),
            "calibrated_above_2": binomial(int((zg_cal > 2).sum()), len(zg), NOMINAL[2]),
            "seconds_per_scan": float(np.mean([r["seconds"] for r in null])),
            "cpu_seconds_per_scan": float(np.mean([r["cpu_seconds"] for r in null])),
        }
    for mass in args.masses:
        for level in args.levels:
            group = [
                r
                for r in rows
                if r["kind"] == "signal" and r["mass"] == mass and r["s_over_sqrt_b"] == level
            ]
            if not group:
                continue
            found = [r["best_contains_mass"] and r["z_global"] > 3 for r in group]
            out["signal"].append(
                {
                    "mass": mass,
                    "s_over_sqrt_b": level,
                    "signal_in_window": group[0]["signal_in_window"],
                    "background_in_window": group[0]["background_in_window"],
                    "experiments": len(group),
                    "found": int(sum(found)),
                    "found_fraction": float(np.mean(found)),
                    "contains_mass": float(np.mean([r["best_contains_mass"] for r in group])),
                    # a window holding m has local Z > 3 (whether or not it is the best)
                    "any_window_with_mass_above_3": float(
                        np.mean(
                            [
                                any(
                                    lo <= mass < hi and z > 3
                                    for (lo, hi), z in zip(r["windows"], r["z_local"], strict=True)
                                )
                                for r in group
                            ]
                        )
                    ),
                    # the best window chosen at the 10 % cut instead would hold m
                    "best_at_10pct_contains_mass": float(
                        np.mean(
                            [
                                r["windows"][int(np.argmax(r["z_local_10pct"]))][0]
                                <= mass
                                < r["windows"][int(np.argmax(r["z_local_10pct"]))][1]
                                for r in group
                            ]
                        )
                    ),
                    "z_global_above_3": float(np.mean([r["z_global"] > 3 for r in group])),
                    # were the 10 % cut the primary one: best window holds m, global Z > 3
                    "found_at_10pct": float(
                        np.mean([_found_at(r, mass, "z_local_10pct") for r in group])
                    ),
                    "z_global_median": float(np.median([r["z_global"] for r in group])),
                    "best_z_local_median": float(np.median([r["best_z_local"] for r in group])),
                    "best_z_before_median": float(
                        np.median([r["best_z_before_cut"] for r in group])
                    ),
                }
            )
    for binning in ("stock", "fast"):
        cost = [r for r in rows if r["kind"] == "cost" and r["binning"] == binning]
        if len({r["n_windows"] for r in cost}) < 2:
            continue
        n = np.array([r["n_windows"] for r in cost], float)
        entry = {"points": [[r["n_windows"], r["seconds"], r["cpu_seconds"]] for r in cost]}
        for what in ("seconds", "cpu_seconds"):
            t = np.array([r[what] for r in cost])
            slope, intercept = np.polyfit(n, t, 1)
            residual = t - (slope * n + intercept)
            entry[what] = {
                "per_window": float(slope),
                "intercept": float(intercept),
                "rms_residual": float(np.sqrt(np.mean(residual**2))),
                # a quadratic term small against the slope over the range: linear
                "quadratic": float(np.polyfit(n, t, 2)[0]) if len(set(n)) > 2 else None,
            }
        out["cost"][binning] = entry
    same = [
        (a["z_local"], b["z_local"])
        for a in rows
        if a["kind"] == "cost" and a["binning"] == "stock"
        for b in rows
        if b["kind"] == "cost"
        and b["binning"] == "fast"
        and (b["n_windows"], b["repeat"]) == (a["n_windows"], a["repeat"])
    ]
    if same:
        out["cost"]["stock_vs_fast_max_z_difference"] = float(
            max(np.max(np.abs(np.subtract(a, b))) for a, b in same)
        )
    return out


def _found_at(row: dict, mass: float, key: str) -> bool:
    z = row[key]
    low, high = row["windows"][int(np.argmax(z))]
    return bool(low <= mass < high and global_significance(z)["z_global"] > 3)


def goals(summary: dict, args) -> dict:
    out = {}
    null = summary.get("null") or {}
    if null:
        above = null["global_above_3"]
        out["null_global_above_3_le_0.5pct"] = {
            "fraction": above["fraction"],
            "upper_95": above["upper_95"],
            # met if the observed fraction is ≤ 0.5 %; *shown* only if the 95 % upper
            # limit is too (which needs ≥ 600 pseudo-experiments with none above)
            "met": above["fraction"] <= 0.005,
            "demonstrated": above["upper_95"] <= 0.005,
        }
    for mass in args.masses:
        rows = [s for s in summary["signal"] if s["mass"] == mass and s["s_over_sqrt_b"] == 4.0]
        if rows:
            out[f"found_at_4_mass_{mass:g}_ge_90pct"] = {
                "fraction": rows[0]["found_fraction"],
                "experiments": rows[0]["experiments"],
                "met": rows[0]["found_fraction"] >= 0.9,
            }
    cost = (summary.get("cost") or {}).get("stock")
    if cost:
        out["cost_linear"] = {
            "cpu_seconds_per_window": cost["cpu_seconds"]["per_window"],
            "cpu_intercept": cost["cpu_seconds"]["intercept"],
            "cpu_rms_residual": cost["cpu_seconds"]["rms_residual"],
            "cpu_quadratic": cost["cpu_seconds"]["quadratic"],
        }
    return out


def markdown(summary: dict) -> str:
    lines = []
    null = summary.get("null") or {}
    if null:
        a3, a2 = null["global_above_3"], null["global_above_2"]
        lines += [
            f"background only: {null['experiments']} scans, {null['windows_mean']:.1f} windows "
            f"each; local Z mean {null['local_z_mean']:+.3f}, sd {null['local_z_std']:.3f}; "
            f"global Z > 3: {a3['k']}/{a3['n']} (nominal {100 * a3['nominal']:.3f} % ± "
            f"{100 * a3['nominal_error']:.3f} %, 95 % upper {100 * a3['upper_95']:.1f} %); "
            f"> 2: {a2['k']}/{a2['n']} (nominal {100 * a2['nominal']:.2f} % ± "
            f"{100 * a2['nominal_error']:.2f} %)",
        ]
    if summary["signal"]:
        lines += ["", "| mass | S/√B | S | B | found | best contains m | median Z_global |"]
        lines += ["|---|---|---|---|---|---|---|"]
        for s in summary["signal"]:
            lines.append(
                f"| {s['mass']:g} | {s['s_over_sqrt_b']:g} | {s['signal_in_window']} | "
                f"{s['background_in_window']:.0f} | {s['found']}/{s['experiments']} | "
                f"{100 * s['contains_mass']:.0f} % | {s['z_global_median']:.2f} |"
            )
    for binning, cost in (summary.get("cost") or {}).items():
        if not isinstance(cost, dict):
            continue
        c, w = cost["cpu_seconds"], cost["seconds"]
        lines += [
            "",
            f"cost ({binning} binning): CPU {c['per_window']:.2f} s/window + "
            f"{c['intercept']:.2f} s "
            f"(rms residual {c['rms_residual']:.2f} s, quadratic {c['quadratic']}); wall "
            f"{w['per_window']:.2f} s/window + {w['intercept']:.2f} s",
        ]
    return "\n".join(lines) + "\n"


def _commit() -> str | None:
    import subprocess

    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "detectors", "simkit"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + (" (library files modified)" if dirty else "")


def main(argv=None) -> int:
    torch.set_num_threads(1)
    args = parse(argv)
    SIDEBAND_CORRECTION[0] = args.sideband_correction
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    rows: list[dict] = []
    settings = {
        k: getattr(args, k)
        for k in ("background", "template_factor", "masses", "levels", "seed", "quick")
    }
    settings |= {
        "resolution": "sigma(m)/m = 0.045",
        "width_factor": WIDTH_FACTOR,
        "signal_width": "N(m, 0.043 m)",
        "search": config(args.sideband_correction).to_dict(),
        "commit": _commit(),
    }

    header = {
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(["benchmarks/scan.py", *(argv or sys.argv[1:])]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, 1 thread",
    }
    if args.resummarize or args.merge:
        parts = [json.loads(Path(f).read_text()) for f in (args.merge or [out])]
        previous = parts[0]
        rows = [row for part in parts for row in part["rows"]]
        settings = previous["settings"]
        header = {k: previous[k] for k in header}
        if args.merge:
            header["command"] = " + ".join(part["command"] for part in parts)
        args.masses, args.levels = settings["masses"], settings["levels"]
        t_start -= max(part["total_seconds"] for part in parts)

    def save():
        summary = summarize(rows, args)
        write_json(
            out,
            {
                **header,
                "settings": settings,
                "total_seconds": time.perf_counter() - t_start,
                "summary": summary,
                "goals": goals(summary, args),
                "rows": rows,
            },
        )
        out.with_suffix(".md").write_text(markdown(summary))

    def over_budget() -> bool:
        return args.budget is not None and time.perf_counter() - t_start > args.budget

    def log(text: str) -> None:
        if not args.quiet:
            print(text, flush=True)

    def windows_of(data: EventTable):
        return scan_windows(data.column("mjj"), RESOLUTION, width_factor=WIDTH_FACTOR)

    if args.resummarize or args.merge:
        save()
        log(markdown(summarize(rows, args)))
        return 0
    settings["binning_check_max_difference"] = check_fast_binning(np.random.default_rng(0))
    # cost first (short): one dataset, scans over its first n windows, with the library as
    # it is (stock binning) and with the fast binning; the same numbers either way
    rng = np.random.default_rng([args.seed, 0])
    data, template = pseudo_data(args, rng, None, 0)
    windows = windows_of(data)
    counts = sorted({n for n in (1, 2, 4, 8, 16, 32) if n < len(windows)} | {len(windows)})
    for repeat in range(0 if args.skip_cost else args.cost_repeats):
        for binning in ("stock", "fast"):
            fast_binning(binning == "fast")
            for n in counts:
                cpu = time.process_time()
                result, seconds = one_scan(data, template, windows[:n], seed=repeat)
                rows.append(
                    {
                        "kind": "cost",
                        "binning": binning,
                        "n_windows": n,
                        "seconds": seconds,
                        "cpu_seconds": time.process_time() - cpu,
                        "z_local": [w.z_local for w in result.windows],
                        "repeat": repeat,
                    }
                )
                log(f"cost ({binning}): {n:2d} windows in {seconds:6.1f} s")
            save()
    fast_binning(not args.stock_binning)
    settings["binning"] = "stock" if args.stock_binning else "fast"

    levels = {
        (mass, level): (round(level * math.sqrt(background_in(mass, args.background))), mass)
        for mass in args.masses
        for level in args.levels
    }
    # interleave: null and signal experiments alternate, so a run cut short has both
    plan = []
    for i in range(max(args.null_experiments, args.signal_experiments)):
        if i < args.signal_experiments:
            plan += [("signal", i, mass, level) for mass in args.masses for level in args.levels]
        if i < args.null_experiments:
            plan.append(("null", i, None, None))
    k, n_shards = (int(x) for x in args.shard.split("/"))
    plan = plan[k::n_shards]
    for kind, i, mass, level in plan:
        if over_budget():
            log("budget reached: stopping")
            break
        n_in = 0 if kind == "null" else levels[(mass, level)][0]
        key = [args.seed, 1 if kind == "null" else 2, i, round(mass or 0), round(10 * (level or 0))]
        rng = np.random.default_rng(key)
        data, template = pseudo_data(args, rng, mass, n_in)
        cpu = time.process_time()
        result, seconds = one_scan(data, template, windows_of(data), seed=i)
        row = {"kind": kind, "experiment": i, "mass": mass, "s_over_sqrt_b": level}
        row |= record(result, seconds, mass)
        row["cpu_seconds"] = time.process_time() - cpu
        if kind == "signal":
            row["signal_in_window"] = n_in
            row["background_in_window"] = background_in(mass, args.background)
        rows.append(row)
        log(
            f"{kind:>6} {i:3d} m {mass or 0:5.0f} S/√B {level or 0:3.1f}: "
            f"{row['n_windows']} windows, best {row['best'][0]:.0f}–{row['best'][1]:.0f} "
            f"Z {row['best_z_before_cut']:+.2f} → {row['best_z_local']:+.2f}, "
            f"global {row['z_global']:.2f} ({seconds:.0f} s)"
        )
        save()
    save()
    log(markdown(summarize(rows, args)))
    log(json.dumps(goals(summarize(rows, args), args), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
