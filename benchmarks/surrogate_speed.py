"""Surrogate speed and fidelity against the Pythia 8 reference chain, in one run.

1. Simulates a Pythia QCD dijet sample with the reference chain (Pythia 8 → parametric
   detector → FastJet → features) and times it end to end: the chain's rate, per
   generated event and per event passing the selection (a surrogate event stands for a
   selected one).
2. Fits a flow and a GAN (``simkit surrogate fit``'s function) to the reco-level passing
   events of that sample, all 16 columns, unconditional; the fit holds out 20 % of the
   events and reports the two-sample classifier AUC of generated vs held-out events.
3. Samples events from each model into event files (``simkit surrogate sample``'s
   function: inference mode, large chunks, streamed writes), with simkit's default
   compression (gzip level 1 + shuffle) and without, and times generating and
   writing separately.

Run ``python benchmarks/surrogate_speed.py --quick`` for a smoke run (minutes), without
``--quick`` for the recorded numbers (BENCHMARKS.md). ``--device cuda`` on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from simkit.tasks.surrogate import fit_surrogate, sample_surrogate
from simkit.generators.pythia import generate, measure_rate
from simkit.io import read_sample, write_json

QUICK = {"events": 3000, "flow_epochs": 3, "gan_epochs": 3, "sample_events": 300_000}
FULL = {"events": 50_000, "flow_epochs": 40, "gan_epochs": 80, "sample_events": 1_000_000}


def machine() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--events", type=int, help="Pythia events to simulate")
    parser.add_argument("--flow-epochs", type=int)
    parser.add_argument("--gan-epochs", type=int)
    parser.add_argument("--sample-events", type=int, help="events to sample per model")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="Pythia workers")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kinds", nargs="+", default=["flow", "gan"], choices=("flow", "gan"))
    parser.add_argument("-o", "--output", default="runs/bench-surrogates", help="work folder")
    args = parser.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    for key in sizes:
        if getattr(args, key, None) is not None:
            sizes[key] = getattr(args, key)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"mode": "quick" if args.quick else "full", **sizes, "machine": machine()}
    results["command"] = " ".join([Path(sys.executable).name, *sys.argv])

    # --------------------------------------------------------------- the reference chain
    print(f"Pythia QCD dijets: {sizes['events']} events on {args.jobs} worker(s) ...", flush=True)
    t0 = time.perf_counter()
    path = generate("qcd-dijet", sizes["events"], args.seed, jobs=args.jobs, output=out / "qcd.h5")
    chain_seconds = time.perf_counter() - t0
    n_pass = int(read_sample(path, levels=["reco"]).reco.passed.sum())
    stages = measure_rate(200 if args.quick else 1000, seed=args.seed + 1)
    results["pythia"] = {
        "jobs": args.jobs,
        "seconds": chain_seconds,
        "events": sizes["events"],
        "events_passing": n_pass,
        "events_per_second": sizes["events"] / chain_seconds,
        "passing_events_per_second": n_pass / chain_seconds,
        "one_process_stages_per_second": stages,
    }
    chain_rate = n_pass / chain_seconds
    print(
        f"  {sizes['events'] / chain_seconds:.1f} events/s, {chain_rate:.1f} passing/s", flush=True
    )

    # --------------------------------------------------------------- surrogates
    for kind in args.kinds:
        folder = out / kind
        print(f"fit {kind} ...", flush=True)
        metrics = fit_surrogate(
            path,
            folder,
            kind=kind,
            level="reco",
            epochs=sizes[f"{kind}_epochs"],
            seed=args.seed,
            device=args.device,
            progress=True,
            n_bootstrap=100,
        )
        entry = {
            "two_sample_auc": metrics["two_sample_auc"],
            "two_sample_auc_interval": [
                metrics["two_sample_auc_low"],
                metrics["two_sample_auc_high"],
            ],
            "auc_null_sigma": metrics["auc_null_sigma"],
            "events_train": metrics["events_train"],
            "events_test": metrics["events_test"],
            "epochs": metrics["epochs"],
            "best_epoch": metrics["best_epoch"],
            "train_seconds": metrics["train_seconds"],
            "train_events_per_second": metrics["train_events_per_second"],
            "test_nll": metrics["test_nll"],
            "device": metrics["device"],
        }
        for compression in ("gzip", "none"):
            print(f"sample {kind} ({compression}) ...", flush=True)
            timing = sample_surrogate(
                folder,
                out / f"{kind}-{compression}.h5",
                sizes["sample_events"],
                seed=args.seed,
                compression=compression,
                device=args.device,
                progress=True,
            )
            size = (out / f"{kind}-{compression}.h5").stat().st_size
            entry[f"sample_{compression}"] = {
                **{k: v for k, v in timing.items() if k != "output"},
                "write_events_per_second": timing["events"] / timing["write_seconds"],
                "file_bytes_per_event": size / timing["events"],
                "times_pythia_chain": timing["events_per_second"] / chain_rate,
            }
            (out / f"{kind}-{compression}.h5").unlink()  # large; the numbers are what count
        results[kind] = entry
        print(json.dumps(entry, indent=2), flush=True)

    write_json(out / "results.json", results)
    print(f"results in {out / 'results.json'}")
    print(markdown(results))
    return 0


def markdown(results: dict) -> str:
    """The BENCHMARKS.md table rows of a run."""
    chain = results["pythia"]
    lines = [
        f"Pythia chain ({chain['jobs']} workers): {chain['events_per_second']:.1f} events/s, "
        f"{chain['passing_events_per_second']:.1f} passing events/s",
        "",
        "| surrogate | AUC [95 % CI] | null σ | train events × epochs | train s | "
        "sample ev/s (gzip) | generate ev/s | write ev/s (gzip) | ev/s (no compression) | "
        "× chain |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in ("flow", "gan"):
        if kind not in results:
            continue
        r = results[kind]
        gz, raw = r["sample_gzip"], r["sample_none"]
        low, high = r["two_sample_auc_interval"]
        ci = f" [{low:.3f}, {high:.3f}]" if low is not None else ""
        lines.append(
            f"| {kind} | {r['two_sample_auc']:.3f}{ci} | {r['auc_null_sigma']:.4f} | "
            f"{r['events_train']} × {r['epochs']} | {r['train_seconds']:.0f} | "
            f"{gz['events_per_second']:,.0f} | {gz['generate_events_per_second']:,.0f} | "
            f"{gz['write_events_per_second']:,.0f} | {raw['events_per_second']:,.0f} | "
            f"{gz['times_pythia_chain']:,.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
