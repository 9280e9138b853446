"""Scaling of the sharded commands and of torchrun training (issue 16).

1. Generation: Pythia QCD dijets (``generate``, shards of ``--shard-size`` events) run
   by 1 and 2 local worker processes (``jobs``) and by Dask ``LocalCluster``s of 1 and 2
   one-thread workers (``scheduler``). Every run writes the same bytes (checked). Dask is
   timed twice: end to end as ``--scheduler local:N`` runs it (the cluster started and
   stopped inside), and on a cluster already running (what a site's scheduler gives),
   its workers started with the environment ``local:N`` gives them
   (:func:`simkit.shards.worker_environment`: without Dask's ``MALLOC_TRIM_THRESHOLD_``).
   ``--jobs`` always includes starting its worker processes.
2. Scoring: a VAE scores a synthetic file in shards of ``--score-rows`` rows, the same
   four ways.
3. Training: ``simkit detect train`` (VAE) under ``torchrun`` with 1 and 2 CPU processes
   (gloo), the same global batch; events/s from rank 0's training time, and wall time.

Goals (issue 16): Dask adds < 10 % over ``--jobs`` at equal workers; generation scales
≥ 1.8× from 1 to 2 workers on a free 2-core machine. The machine's load (``uptime``) is
recorded beside every number: on a busy machine the 2-worker numbers mean little.

    python benchmarks/scaling.py                 # the recorded run (~10 min on 2 cores)
    python benchmarks/scaling.py --quick         # a smoke run
    python benchmarks/scaling.py --workers 1 2 4 8 16   # a bigger machine
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# this folder holds benchmarks/detectors.py, which would shadow the detectors package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

QUICK = {"events": 400, "shard_size": 100, "score_events": 40_000, "score_rows": 10_000}
FULL = {"events": 6000, "shard_size": 250, "score_events": 1_000_000, "score_rows": 125_000}


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict:
    import torch

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def timed(fn) -> dict:
    before = load()
    t0 = time.perf_counter()
    fn()
    return {"seconds": time.perf_counter() - t0, "load_before": before, "load_after": load()}


RUNNERS = ("jobs", "dask", "warm")


def runners(workers: list[int], kinds=RUNNERS):
    """(name, n, kind): jobs N, Dask end to end (local:N), Dask on a running cluster."""
    names = {"jobs": "jobs {}", "dask": "dask local:{}", "warm": "dask warm {}"}
    for n in workers:
        for kind in kinds:
            yield names[kind].format(n), n, kind


def _warm_imports() -> None:
    """What a long-running worker has loaded after its first shard."""
    import detectors.score  # noqa: F401
    import simkit.generators.jets
    import simkit.generators.pythia  # noqa: F401


def run_all(
    label: str, work, workers: list[int], repeats: int, folder: Path, kinds=RUNNERS
) -> list[dict]:
    """Time ``work(output, **how)`` for every runner; the outputs must be equal bytes."""
    from distributed import Client

    from simkit.shards import local_cluster  # the cluster and workers local:N starts

    rows, reference = [], None
    for name, n, kind in runners(workers, kinds):
        best = None
        for repeat in range(repeats):
            out = folder / f"{label}-{kind}-{n}-{repeat}.h5"
            if kind == "jobs":
                result = timed(lambda: work(out, name, jobs=n))  # noqa: B023
            elif kind == "dask":
                result = timed(lambda: work(out, name, scheduler=f"local:{n}"))  # noqa: B023
            else:
                with local_cluster(n, silence_logs=50) as cluster, Client(cluster) as client:
                    client.run(_warm_imports)
                    result = timed(lambda: work(out, name, scheduler=client))  # noqa: B023
            data = out.read_bytes()
            reference = reference or data
            result["same_bytes"] = data == reference
            out.unlink()
            print(
                f"  {label:<8} {name:<16} {result['seconds']:7.2f} s  load {result['load_before']}"
            )
            if best is None or result["seconds"] < best["seconds"]:
                best = result
        rows.append({"what": label, "runner": name, "workers": n, "kind": kind, **best})
    return rows


def generation(
    sizes: dict, workers: list[int], repeats: int, folder: Path, kinds=RUNNERS
) -> list[dict]:
    """Wall time, and the CPU time the shards cost inside the workers (``cpu_seconds`` of
    each shard's provenance): on a busy machine the second says what a runner costs per
    shard, whatever the other jobs take."""
    from simkit.generators.pythia import generate
    from simkit.io import inspect

    cpu: dict[str, list[float]] = {}

    def work(out, runner, **how):
        generate(
            "qcd-dijet", sizes["events"], 1, shard_size=sizes["shard_size"], output=out,
            keep_shards=True, **how,
        )  # fmt: skip
        shards = sorted(Path(f"{out}.shards").glob("shard-*.h5"))
        total = sum(inspect(p).provenance["cpu_seconds"] for p in shards)
        cpu.setdefault(runner, []).append(total)
        shutil.rmtree(f"{out}.shards")

    rows = run_all("generate", work, workers, repeats, folder, kinds)
    for row in rows:
        row["events_per_second"] = sizes["events"] / row["seconds"]
    rows.append({"what": "generate cpu seconds in the shards", "by_runner": cpu})
    print("  shard CPU seconds:", {k: [round(v, 1) for v in vs] for k, vs in cpu.items()})
    return rows


def synthetic_sample(n: int, seed: int):
    """Jet-feature-shaped events for the scoring and training benchmarks."""
    from simkit.events import EventTable, Sample
    from simkit.generators.jets import COLUMNS, UNITS

    rng = np.random.default_rng(seed)
    features = rng.lognormal(0.0, 0.5, size=(n, len(COLUMNS))).astype(np.float32)
    table = EventTable(
        features=features, columns=COLUMNS, weights=np.ones(n), passed=np.ones(n, bool), units=UNITS
    )
    return Sample(reco=table, provenance={"generator": "benchmarks/scaling.py", "seed": seed})


def train_vae(training: Path, out: Path, epochs: int = 2) -> None:
    from simkit.cli import main

    argv = ["detect", "train", "--input", str(training), "--model", "vae", "--epochs",
            str(epochs), "--device", "cpu", "--threads", "1", "--quiet", "-o",
            str(out)]  # fmt: skip
    code = main(argv)
    if code:
        raise SystemExit(f"detect train failed ({code})")


def scoring(
    sizes: dict, workers: list[int], repeats: int, folder: Path, kinds=RUNNERS
) -> list[dict]:
    from detectors.score import score_files
    from simkit.io import write_sample

    data = folder / "score-input.h5"
    write_sample(data, synthetic_sample(sizes["score_events"], 2))
    write_sample(folder / "train.h5", synthetic_sample(20_000, 3))
    train_vae(folder / "train.h5", folder / "vae")

    def work(out, runner, **how):
        score_files(folder / "vae", [data], out, rows_per_shard=sizes["score_rows"],
                    device="cpu", **how)  # fmt: skip

    rows = run_all("score", work, workers, repeats, folder, kinds)
    for row in rows:
        row["events_per_second"] = sizes["score_events"] / row["seconds"]
    return rows


def torchrun(processes: list[int], events: int, epochs: int, folder: Path) -> list[dict]:
    from simkit.io import write_sample

    training = folder / "torchrun-train.h5"
    write_sample(training, synthetic_sample(events, 4))
    rows = []
    for n in processes:
        out = folder / f"torchrun-{n}"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc-per-node={n}", "-m", "simkit", "detect", "train", "--input",
                   str(training), "--model", "vae", "--epochs", str(epochs), "--patience", "0",
                   "--batch-size", "1024", "--device", "cpu", "--threads", "1", "--quiet",
                   "-o", str(out)]  # fmt: skip
        before = load()
        t0 = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env={
            **os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
        wall = time.perf_counter() - t0
        if done.returncode:
            raise SystemExit(done.stderr[-2000:])
        metrics = json.loads((out / "metrics.json").read_text())
        row = {
            "what": "torchrun detect train (vae)",
            "processes": n,
            "wall_seconds": wall,
            "train_seconds": metrics["train_seconds"],
            "train_events": metrics["train_train_events"],
            "epochs": metrics["train_epochs"],
            "events_per_second": metrics["train_train_events"]
            * metrics["train_epochs"]
            / metrics["train_seconds"],
            "final_val_loss": metrics["train_best_val_loss"],
            "load_before": before,
            "load_after": load(),
        }
        print(f"  torchrun {n} proc: {row['events_per_second']:,.0f} ev/s "
              f"(wall {wall:.1f} s) load {before}")  # fmt: skip
        rows.append(row)
        shutil.rmtree(out)
    return rows


def summary(rows: list[dict]) -> dict:
    """The goals: Dask's overhead over --jobs at equal workers (``dask`` = local:N end to
    end, ``warm`` = a running cluster), and the speed-up from 1 to 2 workers."""
    seconds = {(r["what"], r["kind"], r["workers"]): r["seconds"] for r in rows if "kind" in r}
    out = {}
    for (what, kind, n), value in seconds.items():
        jobs = seconds.get((what, "jobs", n))
        if kind != "jobs" and jobs:
            out[f"{what}_{kind}_{n}_over_jobs"] = value / jobs - 1
        one = seconds.get((what, kind, 1))
        if n == 2 and one:
            out[f"{what}_{kind}_speedup_1_to_2"] = one / value
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2, help="the best of this many runs")
    parser.add_argument("--skip", nargs="*", default=[], choices=("generate", "score", "torchrun"))
    parser.add_argument("--torchrun-events", type=int, default=500_000)
    parser.add_argument("--torchrun-epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="JSON results (default: print)")
    parser.add_argument("--events", type=int, help="Pythia events (default: 6000)")
    parser.add_argument(
        "--runners", nargs="+", default=list(RUNNERS), choices=RUNNERS,
        help="jobs (local processes), dask (local:N started inside), warm (a running cluster)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    if args.events:
        sizes["events"] = args.events
    os.environ.setdefault("SOURCE_DATE_EPOCH", "1767225600")  # same bytes, checked
    record = {
        "machine": machine(),
        "sizes": sizes,
        "workers": args.workers,
        "runners": args.runners,
        "rows": [],
    }

    def save() -> None:  # after every part: a run cut short keeps what it measured
        record["goals"] = summary(record["rows"])
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(record, indent=2) + "\n")

    folder = Path(tempfile.mkdtemp(prefix="simkit-scaling-"))
    try:
        if "generate" not in args.skip:
            print("generation")
            record["rows"] += generation(sizes, args.workers, args.repeats, folder, args.runners)
            save()
        if "score" not in args.skip:
            print("scoring")
            record["rows"] += scoring(sizes, args.workers, args.repeats, folder, args.runners)
            save()
        if "torchrun" not in args.skip:
            print("torchrun")
            events = 20_000 if args.quick else args.torchrun_events
            record["torchrun"] = torchrun(args.workers, events, args.torchrun_epochs, folder)
            save()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(record["goals"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
