"""What a two-sample classifier sees in a surrogate: per-column, per-pair and physics AUCs.

For each model folder written by ``simkit surrogate fit`` (or the fit phase of
``benchmarks/surrogate_speed.py``), the held-out events of that fit are rebuilt
(``fit_surrogate``'s split: the model's seed, 20 % test) and as many events are
generated as the fidelity report does (seed + 1). A gradient-boosted classifier
(scikit-learn's ``HistGradientBoostingClassifier``, trained on half, AUC on the other
half) then tells the two apart on

- each column alone, and on each pair of columns (the largest pairs are printed);
- all columns (a second opinion on the fidelity report's network classifier);
- dijet physics: |Δφ(j1, j2)| (back to back: peaks at π), pT balance pt_j2/pt_j1,
  Δη, mjj against the mjj of the two jets' four-vectors (``vector``), delta_mj against
  m_j1 − m_j2, and the mass ordering m_j1 ≥ m_j2.

One thread (threadpoolctl), a few minutes per model on a 2-core machine::

    python benchmarks/surrogate_diagnosis.py runs/bench-surrogates-17/gan-seed1 \\
        --sim runs/bench-surrogates-17/qcd.h5 [--no-pairs] [-o diag.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np


def held_out(sim: Path, seed: int, columns, test_fraction: float = 0.2):
    """The test events of ``fit_surrogate(sim, seed=seed)`` (the same permutation)."""
    from simkit.io import read_sample
    from simkit.tasks.surrogate import held_out_split

    table = read_sample(sim, levels=["reco"]).level("reco").passing()
    return held_out_split(table, seed, test_fraction)[0].select(columns)


def hgb_auc(reference: np.ndarray, candidate: np.ndarray, seed: int = 0) -> float:
    """Held-out AUC of a boosted-tree classifier (half of each sample to train)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    x = np.concatenate([reference, candidate])
    x = x.reshape(len(x), -1)
    y = np.r_[np.zeros(len(reference)), np.ones(len(candidate))]
    rng = np.random.default_rng(seed)
    train = rng.random(len(x)) < 0.5
    model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, random_state=seed)
    model.fit(x[train], y[train])
    return float(roc_auc_score(y[~train], model.predict_proba(x[~train])[:, 1]))


def physics(x: np.ndarray, columns) -> dict[str, np.ndarray]:
    """Derived dijet quantities (absent columns: skipped)."""
    import vector

    c = {name: x[:, i].astype(np.float64) for i, name in enumerate(columns)}
    out = {}
    if {"phi_j1", "phi_j2"} <= c.keys():
        out["abs_dphi"] = np.abs(np.angle(np.exp(1j * (c["phi_j2"] - c["phi_j1"]))))
    if {"pt_j1", "pt_j2"} <= c.keys():
        out["pt_balance"] = c["pt_j2"] / c["pt_j1"]
    if {"eta_j1", "eta_j2"} <= c.keys():
        out["delta_eta"] = c["eta_j1"] - c["eta_j2"]
    jet = ("pt_{}", "eta_{}", "phi_{}", "m_{}")
    if {"mjj"} | {f.format(j) for f in jet for j in ("j1", "j2")} <= c.keys():
        j1, j2 = (
            vector.array(
                {
                    "pt": c[f"pt_{j}"],
                    "eta": c[f"eta_{j}"],
                    "phi": c[f"phi_{j}"],
                    "mass": np.maximum(c[f"m_{j}"], 0),
                }
            )
            for j in ("j1", "j2")
        )
        out["mjj_over_jets"] = c["mjj"] / (j1 + j2).mass
    if {"delta_mj", "m_j1", "m_j2"} <= c.keys():
        out["delta_mj_residual"] = c["delta_mj"] - (c["m_j1"] - c["m_j2"])
        out["m_j1_below_m_j2"] = (c["m_j1"] < c["m_j2"]).astype(np.float64)
    return out


def quantiles(values: np.ndarray, q=(1, 5, 25, 50, 75, 95, 99)) -> list[float]:
    return [round(float(v), 4) for v in np.percentile(values, q)]


def diagnose(folder: Path, sim: Path, pairs: bool = True, top: int = 12) -> dict:
    from simkit.surrogates import load_surrogate

    model = load_surrogate(folder, device="cpu")
    seed = int(model.seed)
    columns = list(model.columns_)
    reference = held_out(sim, seed, columns).features.astype(np.float64)
    generated = model.sample(len(reference), seed=seed + 1).features.astype(np.float64)
    result: dict = {"model": str(folder), "events": len(reference)}
    result["all_columns"] = hgb_auc(reference, generated)
    result["columns"] = {
        name: hgb_auc(reference[:, i], generated[:, i]) for i, name in enumerate(columns)
    }
    ref_phys, gen_phys = physics(reference, columns), physics(generated, columns)
    result["physics"] = {
        name: {
            "auc": hgb_auc(ref_phys[name], gen_phys[name]),
            "reference_quantiles": quantiles(ref_phys[name]),
            "generated_quantiles": quantiles(gen_phys[name]),
            "reference_mean": float(ref_phys[name].mean()),
            "generated_mean": float(gen_phys[name].mean()),
        }
        for name in ref_phys
    }
    if pairs:
        aucs = {
            f"{columns[i]}+{columns[j]}": hgb_auc(reference[:, [i, j]], generated[:, [i, j]])
            for i, j in itertools.combinations(range(len(columns)), 2)
        }
        # a pair's excess over the larger of its two single-column AUCs: the correlation
        excess = {
            key: auc - max(result["columns"][a] for a in key.split("+"))
            for key, auc in aucs.items()
        }
        ranked = sorted(aucs, key=excess.get, reverse=True)[:top]
        result["pairs_top_excess"] = {k: {"auc": aucs[k], "excess": excess[k]} for k in ranked}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="surrogate model folders")
    parser.add_argument("--sim", type=Path, required=True, help="the event file they learned")
    parser.add_argument("--no-pairs", action="store_true", help="skip the 120 pair AUCs")
    parser.add_argument("-o", "--output", type=Path, help="write the results as JSON")
    args = parser.parse_args(argv)
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    results = []
    with threadpool_limits(1):
        for folder in args.models:
            result = diagnose(folder, args.sim, pairs=not args.no_pairs)
            results.append(result)
            print(json.dumps(result, indent=1), flush=True)
    if args.output:
        args.output.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
