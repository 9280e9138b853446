"""Surrogate speed and fidelity against the Pythia 8 reference chain, side by side.

Two phases, each resumable from the work folder (``-o``); without ``--phase`` both run:

``fit``
    simulates a Pythia QCD dijet sample with the reference chain (Pythia 8 → parametric
    detector → FastJet → features) and fits flows (one per ``--flow-hidden`` width; 128
    is the default architecture) and GANs (one per ``--gan-seeds`` seed) to its 16
    reco-level columns, unconditional (``simkit surrogate fit``'s task: 20 % of the
    events held out for the two-sample classifier AUC, the fidelity figure).
``race`` (``--models DIR ...``)
    saved models timed in turn, ``--rounds`` times, in memory and into a gzip file (flows
    also through the torch path, ``sampler="torch"``, without the compiled spline stage;
    with ``--normflows`` through normflows' own evaluation): the comparable measure on a
    machine whose speed drifts (results in ``-o``/race.json).
``time``
    every rate, in one process, one after the other on the same machine: the Pythia chain
    (two workers end to end into a file, and one process stage by stage); each flow
    sampled in memory through normflows' own evaluation ("normflows raw") and through
    simkit's fast path ("ours"), and into event files with ``simkit surrogate sample``'s
    task (gzip level 1 + shuffle, and uncompressed); a zuko neural-spline flow of the same
    size (``pip install zuko``); the GAN into event files. Fits take long and do not
    depend on the load; rates do, so ``time`` is the phase to run on a quiet machine.

    python benchmarks/surrogate_speed.py --quick -o /tmp/surr-quick       # smoke run
    python benchmarks/surrogate_speed.py --phase fit -o runs/bench-surrogates
    python benchmarks/surrogate_speed.py --phase time -o runs/bench-surrogates
    python benchmarks/surrogate_speed.py --phase race --rounds 3 -o runs/race \
        --models runs/bench-surrogates/flow-128 runs/bench-surrogates/gan-seed1

    # issue 17, the GAN on five seeds and the flow, on the existing sample (results in
    # benchmarks/results/cpu-2026-12-03/gan_recipe_v2.json):
    python benchmarks/surrogate_speed.py --phase fit --fit-threads 1 --quiet \
        --sim runs/bench-surrogates-17/qcd.h5 --flow-hidden 128 --gan-seeds 1 2 3 4 5 \
        -o runs/bench-surrogates-17-gan-v2

Results in ``-o``/results.json and printed as the BENCHMARKS.md tables.
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
import torch
from _machine import cpu  # this folder, on sys.path when run as a script

from simkit.generators.pythia import generate, measure_rate
from simkit.io import read_sample, write_json
from simkit.surrogates import load_surrogate
from simkit.tasks.surrogate import fit_surrogate, sample_surrogate

QUICK = {
    "events": 3000,
    "flow_epochs": 3,
    "gan_epochs": 3,
    "sample_events": 300_000,
    "raw_events": 50_000,
    "chain_events": 1000,
}
FULL = {
    "events": 50_000,
    "flow_epochs": 40,
    "gan_epochs": 80,
    "sample_events": 1_000_000,
    "raw_events": 200_000,
    "chain_events": 10_000,
}


def machine() -> dict:
    return {
        "cpu": cpu(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "load_average": list(os.getloadavg()),
    }


# --------------------------------------------------------------------------- fit phase


def fit_phase(args, sizes: dict, out: Path, results: dict) -> None:
    sim = args.sim or out / "qcd.h5"
    if args.sim is not None:
        if not sim.exists():
            raise SystemExit(f"--sim {sim}: no such file")
        results["simulation"] = {"file": str(sim)}
    elif not sim.exists():
        print(f"Pythia QCD dijets: {sizes['events']} events on {args.jobs} worker(s) ...")
        t0 = time.perf_counter()
        generate("qcd-dijet", sizes["events"], args.seed, jobs=args.jobs, output=sim)
        results["simulation"] = {"events": sizes["events"], "seconds": time.perf_counter() - t0}
    models = [(f"flow-{h}", "flow", {"hidden": h, **args.flow_settings}) for h in args.flow_hidden]
    models += [(f"gan-seed{s}", "gan", {"seed": s, **args.gan_settings}) for s in args.gan_seeds]
    for name, kind, options in models:
        if name in results.get("fits", {}):
            continue
        print(f"fit {name} ...", flush=True)
        settings = {k: v for k, v in options.items() if k != "seed"}
        metrics = fit_surrogate(
            sim,
            out / name,
            kind=kind,
            level="reco",
            epochs=sizes[f"{kind}_epochs"],
            seed=options.get("seed", args.seed),
            device=args.device,
            progress=not args.quiet,
            n_bootstrap=100,
            **settings,
        )
        keys = ("two_sample_auc", "two_sample_auc_low", "two_sample_auc_high", "auc_null_sigma")
        keys += ("events_train", "events_test", "epochs", "best_epoch", "train_seconds")
        keys += ("stopped_early", "best_val_loss")
        entry = {"kind": kind, **options, **{k: metrics.get(k) for k in keys}}
        entry["test_nll"] = metrics.get("test_nll")
        saved = json.loads((out / name / "config.json").read_text())["config"]
        entry["params"] = saved["params"]  # the model's settings, defaults included
        entry["azimuth"] = saved["transform"].get("azimuth")
        results.setdefault("fits", {})[name] = entry
        write_json(out / "results.json", results)
        print(json.dumps(entry), flush=True)


# --------------------------------------------------------------------------- time phase


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("nan")


def in_memory(folder: Path, n: int, sampler: str, seed: int) -> float:
    """Events/s of ``Surrogate.sample`` (noise → physical events in an EventTable)."""
    model = load_surrogate(folder, device="cpu")
    if sampler != "default":
        model.sampler = sampler
    model.sample(min(n, 20_000), seed=seed)  # warm-up
    t0 = time.perf_counter()
    model.sample(n, seed=seed)
    return _rate(n, time.perf_counter() - t0)


def to_file(folder: Path, target: Path, n: int, compression: str, seed: int) -> dict:
    timing = sample_surrogate(folder, target, n, seed=seed, compression=compression)
    size = target.stat().st_size
    target.unlink()  # large; the numbers are what count
    return {
        "events_per_second": timing["events_per_second"],
        "generate_events_per_second": timing["generate_events_per_second"],
        "write_events_per_second": _rate(n, timing["write_seconds"]),
        "file_bytes_per_event": size / n,
    }


def zuko_rate(n_features: int, hidden: int, n: int) -> dict | None:
    """A zuko coupling neural-spline flow of the same size, untrained (the arithmetic does
    not depend on the weights): 6 transforms, 8 bins, 4 hidden layers of ``hidden`` (as
    many linear maps as normflows' residual net of 2 blocks)."""
    try:
        import zuko
    except ImportError:
        print("zuko not installed (pip install zuko, or simkit[bench]): skipped")
        return None
    torch.manual_seed(0)
    flow = zuko.flows.NSF(
        n_features, 0, bins=8, transforms=6, passes=2, hidden_features=(hidden,) * 4
    ).eval()
    with torch.inference_mode():
        flow().sample((10_000,))  # warm-up
        t0 = time.perf_counter()
        for start in range(0, n, 1 << 17):
            flow().sample((min(1 << 17, n - start),))
        seconds = time.perf_counter() - t0
    return {"version": zuko.__version__, "events_per_second": _rate(n, seconds)}


def paths_agree(folder: Path, n: int, seed: int) -> dict:
    """The same model and seed sampled through the fast path and through normflows: the
    largest difference, absolute and relative to each column's spread (so the fit phase's
    AUC, computed with the default path, is normflows' AUC too)."""
    model = load_surrogate(folder, device="cpu")
    fast = model.sample(n, seed=seed).features.astype(np.float64)
    model.sampler = "normflows"
    slow = model.sample(n, seed=seed).features.astype(np.float64)
    spread = slow.std(axis=0)
    difference = np.abs(fast - slow)
    return {
        "events": n,
        "max_abs": float(difference.max()),
        "max_over_column_std": float((difference / spread).max()),
    }


def time_phase(args, sizes: dict, out: Path, results: dict) -> None:
    timing: dict = {"machine_start": machine()}
    print(f"Pythia chain: {sizes['chain_events']} events on {args.jobs} workers ...", flush=True)
    chain_file = out / "chain.h5"
    t0 = time.perf_counter()
    generate("qcd-dijet", sizes["chain_events"], args.seed + 7, jobs=args.jobs, output=chain_file)
    seconds = time.perf_counter() - t0
    n_pass = int(read_sample(chain_file, levels=["reco"]).reco.passed.sum())
    chain_file.unlink()
    timing["pythia"] = {
        "jobs": args.jobs,
        "events": sizes["chain_events"],
        "seconds": seconds,
        "events_per_second": sizes["chain_events"] / seconds,
        "passing_events_per_second": n_pass / seconds,
        "one_process_stages_per_second": measure_rate(
            200 if args.quick else 1000, seed=args.seed + 1
        ),
    }
    chain = timing["pythia"]["passing_events_per_second"]
    print(json.dumps(timing["pythia"]), flush=True)
    n, n_raw = sizes["sample_events"], sizes["raw_events"]
    for name, fit in results.get("fits", {}).items():
        folder = out / name
        entry: dict = {}
        print(f"time {name} ...", flush=True)
        if fit["kind"] == "flow":
            entry["paths_agree"] = paths_agree(folder, min(n_raw, 50_000), args.seed)
            entry["normflows_memory"] = in_memory(folder, n_raw, "normflows", args.seed)
            entry["ours_memory"] = in_memory(folder, n, "default", args.seed)
        elif any(m.startswith("gan") for m in timing.get("models", {})):
            continue  # the GAN's rate once; its other seeds are for the fidelity spread
        else:
            entry["ours_memory"] = in_memory(folder, n, "default", args.seed)
        for compression in ("gzip", "none"):
            entry[f"file_{compression}"] = to_file(
                folder, out / f"{name}-{compression}.h5", n, compression, args.seed
            )
        entry["times_pythia_chain_gzip"] = entry["file_gzip"]["events_per_second"] / chain
        timing.setdefault("models", {})[name] = entry
        print(json.dumps(entry), flush=True)
    n_features = 16
    hidden = (args.flow_hidden or [128])[0]
    timing["zuko"] = zuko_rate(n_features, hidden, n_raw)
    if timing["zuko"]:
        timing["zuko"]["hidden"] = hidden
    print(json.dumps(timing["zuko"]), flush=True)
    timing["machine_end"] = machine()
    timing["command"] = " ".join([Path(sys.executable).name, *sys.argv])
    results["timing"] = timing


def race_phase(args, sizes: dict, out: Path) -> dict:
    """Saved models (``--models``) timed in turn, ``--rounds`` times: the VM's speed drifts
    by tens of percent over an hour, so rates compare only within one interleaved run."""
    n = sizes["sample_events"]
    folders = [Path(m) for m in args.models]
    # each model's kind, read once: a bad folder fails before any timing
    kinds = {folder: load_surrogate(folder, device="cpu").kind for folder in folders}
    race: dict = {"machine_start": machine(), "events": n, "rounds": args.rounds, "models": {}}
    for r in range(args.rounds):
        for folder in folders:
            load = os.getloadavg()[0]
            memory = in_memory(folder, n, "default", args.seed)
            gzip = to_file(folder, out / "race-gzip.h5", n, "gzip", args.seed)
            row = {"round": r, "load_before": load, "memory": memory, "file_gzip": gzip}
            if kinds[folder] == "flow":
                # the fast path without its compiled spline stage: what it adds
                row["torch_memory"] = in_memory(folder, n, "torch", args.seed)
            if args.normflows and kinds[folder] == "flow":
                row["normflows_memory"] = in_memory(
                    folder, sizes["raw_events"], "normflows", args.seed
                )
            race["models"].setdefault(str(folder), []).append(row)
            print(
                f"round {r} {folder}: {memory:,.0f} events/s in memory, "
                f"{gzip['events_per_second']:,.0f} into a gzip file"
                + (
                    f", torch path {row['torch_memory']:,.0f} in memory"
                    if "torch_memory" in row
                    else ""
                )
                + (
                    f", normflows' path {row['normflows_memory']:,.0f} in memory"
                    if "normflows_memory" in row
                    else ""
                )
                + f" (load {load:.2f})",
                flush=True,
            )
    race["machine_end"] = machine()
    race["command"] = " ".join([Path(sys.executable).name, *sys.argv])
    return race


# --------------------------------------------------------------------------- report


def markdown(results: dict) -> str:
    """The BENCHMARKS.md tables of a run."""
    lines = []
    fits = results.get("fits", {})
    timing = results.get("timing", {})
    if "pythia" in timing:
        p = timing["pythia"]
        stages = p["one_process_stages_per_second"]
        lines += [
            f"Pythia chain ({p['jobs']} workers, {p['events']} events into a file): "
            f"{p['events_per_second']:.1f} events/s, {p['passing_events_per_second']:.1f} "
            f"passing events/s; one process end to end {stages['end_to_end_per_s']:.1f}/s",
            "",
        ]
    lines += [
        "| model | AUC [95 % CI] | null σ | train events × epochs | in memory, normflows raw "
        "| in memory, ours | file, gzip | of which generating | file, no compression "
        "| × chain (gzip) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    models = timing.get("models", {})
    for name, fit in fits.items():
        t = models.get(name, {})
        ci = ""
        if fit.get("two_sample_auc_low") is not None:
            ci = f" [{fit['two_sample_auc_low']:.3f}, {fit['two_sample_auc_high']:.3f}]"

        def rate(value):
            return "–" if value is None else f"{value:,.0f}"

        gz, raw = t.get("file_gzip", {}), t.get("file_none", {})
        chain = t.get("times_pythia_chain_gzip")
        lines.append(
            f"| {name} | {fit['two_sample_auc']:.3f}{ci} | {fit['auc_null_sigma']:.4f} | "
            f"{fit['events_train']} × {fit['epochs']} | {rate(t.get('normflows_memory'))} | "
            f"{rate(t.get('ours_memory'))} | {rate(gz.get('events_per_second'))} | "
            f"{rate(gz.get('generate_events_per_second'))} | "
            f"{rate(raw.get('events_per_second'))} | "
            f"{'–' if chain is None else f'{chain:,.0f}'} |"
        )
    if timing.get("zuko"):
        z = timing["zuko"]
        lines += [
            "",
            f"zuko {z['version']} NSF (coupling, 6 × 8 bins, 4 × {z['hidden']} hidden, "
            f"untrained), in memory: {z['events_per_second']:,.0f} events/s",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--phase",
        choices=("fit", "time", "race"),
        help="one phase (default: fit and time); race: --models timed in turn",
    )
    parser.add_argument("--models", nargs="+", default=[], help="race: saved model folders")
    parser.add_argument("--rounds", type=int, default=3, help="race: rounds over --models")
    parser.add_argument(
        "--normflows",
        action="store_true",
        help="race: also each flow through normflows' own evaluation (--raw-events events)",
    )
    parser.add_argument("--events", type=int, help="Pythia events to simulate and fit")
    parser.add_argument("--flow-epochs", type=int)
    parser.add_argument("--gan-epochs", type=int)
    parser.add_argument("--sample-events", type=int, help="events sampled per model")
    parser.add_argument("--raw-events", type=int, help="events for normflows raw and zuko")
    parser.add_argument("--chain-events", type=int, help="Pythia events of the timed chain")
    parser.add_argument("--flow-hidden", type=int, nargs="*", default=[128])
    parser.add_argument("--gan-seeds", type=int, nargs="*", default=[1])
    parser.add_argument(
        "--gan-settings",
        type=json.loads,
        default={},
        help="GAN settings other than the defaults, as JSON (e.g. '{\"n_critic\": 2}')",
    )
    parser.add_argument(
        "--flow-settings",
        type=json.loads,
        default={},
        help="flow settings other than the defaults and the width, as JSON (e.g. "
        "'{\"n_layers\": 4}')",
    )
    parser.add_argument(
        "--sim", type=Path, help="fit this event file instead of simulating -o/qcd.h5"
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="Pythia workers")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--fit-threads", type=int, help="torch threads while fitting (1 on a busy machine)"
    )
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("-o", "--output", default="runs/bench-surrogates", help="work folder")
    args = parser.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    for key in sizes:
        if getattr(args, key, None) is not None:
            sizes[key] = getattr(args, key)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    if args.phase == "race":
        if not args.models:
            parser.error("--phase race needs --models DIR [DIR ...]")
        race = race_phase(args, sizes, out)
        write_json(out / "race.json", race)
        print(f"results in {out / 'race.json'}")
        return 0
    saved = out / "results.json"
    results = json.loads(saved.read_text()) if saved.exists() else {}
    results.update({"mode": "quick" if args.quick else "full", "sizes": sizes})
    if args.phase in (None, "fit"):
        results["fit_machine"] = machine()
        results["fit_command"] = " ".join([Path(sys.executable).name, *sys.argv])
        threads = torch.get_num_threads()
        torch.set_num_threads(args.fit_threads or threads)
        fit_phase(args, sizes, out, results)
        torch.set_num_threads(threads)
    if args.phase in (None, "time"):
        time_phase(args, sizes, out, results)
    write_json(saved, results)
    print(f"results in {saved}")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
