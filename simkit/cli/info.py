"""``simkit info FILE``: what an event file holds, at a glance."""

from __future__ import annotations

import argparse
import json

import numpy as np

from simkit.cli import subparser


def register(sub, common) -> None:
    p = subparser(
        sub,
        "info",
        common,
        help="summarize an event file: rows, levels, columns, weights, provenance",
    )
    p.add_argument("file", help="an HDF5 event file")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def summarize(path) -> dict:
    """Streamed summary of an event file (memory bounded by one chunk)."""
    from simkit.io import inspect, iter_samples

    info = inspect(path)
    levels = tuple(info.levels)
    summary: dict = {
        "file": str(info.path),
        "events": info.n_events,
        "levels": {},
        "labels": None,
        "scores": list(info.scores),
        "omnifold": {k: list(v) for k, v in info.omnifold.items()},
        "provenance": info.provenance,
    }
    stats = {lv: {"min": None, "max": None, "sum": None, "passed": 0} for lv in levels}
    w_sum = w2_sum = 0.0
    w_min, w_max = np.inf, -np.inf
    n_signal = 0
    if levels:
        for chunk in iter_samples(path, levels=levels):
            for lv in levels:
                table, s = chunk.level(lv), stats[lv]
                # statistics of passing events: failing rows hold placeholders
                f = table.features[table.passed].astype(np.float64)
                s["passed"] += len(f)
                if not len(f):
                    continue
                lo, hi, tot = f.min(0), f.max(0), f.sum(0)
                s["min"] = lo if s["min"] is None else np.minimum(s["min"], lo)
                s["max"] = hi if s["max"] is None else np.maximum(s["max"], hi)
                s["sum"] = tot if s["sum"] is None else s["sum"] + tot
            w = chunk.weights
            w_sum += float(w.sum())
            w2_sum += float((w * w).sum())
            w_min, w_max = min(w_min, float(w.min())), max(w_max, float(w.max()))
            if chunk.labels is not None:
                n_signal += int((chunk.labels == 1).sum())
    n = max(info.n_events, 1)
    for lv in levels:
        meta, s = info.levels[lv], stats[lv]
        empty = s["passed"] == 0
        summary["levels"][lv] = {
            "pass_fraction": s["passed"] / n,
            "columns": {
                c: {
                    "unit": u,
                    "min": None if empty else float(s["min"][i]),
                    "mean": None if empty else float(s["sum"][i] / s["passed"]),
                    "max": None if empty else float(s["max"][i]),
                }
                for i, (c, u) in enumerate(zip(meta.columns, meta.units, strict=False))
            },
        }
    if levels:
        summary["weights"] = {
            "stored": info.has_weights,
            "sum": w_sum,
            "min": w_min,
            "max": w_max,
            "effective_events": w_sum**2 / w2_sum if w2_sum > 0 else 0.0,
        }
    if info.has_labels:
        summary["labels"] = {"signal": n_signal, "background": info.n_events - n_signal}
    return summary


def run(args: argparse.Namespace) -> int:
    summary = summarize(args.file)
    if args.json:
        print(json.dumps(summary, indent=2, default=float))
        return 0
    print(f"{summary['file']}: {summary['events']} events")
    for lv, level in summary["levels"].items():
        print(
            f"\n[{lv}]  pass fraction {level['pass_fraction']:.4f}  (statistics of passing events)"
        )
        width = max(len(c) for c in level["columns"])
        print(f"  {'column':<{width}}  {'unit':<5} {'min':>12} {'mean':>12} {'max':>12}")
        for c, s in level["columns"].items():
            vals = "".join(
                f" {'—':>12}" if s[k] is None else f" {s[k]:>12.5g}" for k in ("min", "mean", "max")
            )
            print(f"  {c:<{width}}  {s['unit']:<5}{vals}")
    if "weights" in summary:
        w = summary["weights"]
        origin = "stored" if w["stored"] else "none stored: all 1"
        print(
            f"\nweights ({origin}): sum {w['sum']:.6g}, min {w['min']:.4g}, "
            f"max {w['max']:.4g}, effective events {w['effective_events']:.6g}"
        )
    if summary["labels"]:
        lab = summary["labels"]
        print(f"labels: {lab['signal']} signal, {lab['background']} background")
    if summary["scores"]:
        print(f"scores: {', '.join(summary['scores'])}")
    for name, shape in summary["omnifold"].items():
        print(f"omnifold/{name}: {shape[0]} iterations × {shape[1]} events")
    if summary["provenance"]:
        print("\nprovenance:")
        for line in json.dumps(summary["provenance"], indent=2, sort_keys=True).splitlines():
            print(f"  {line}")
    return 0
