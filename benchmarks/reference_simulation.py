"""Events per second of the reference simulation (Pythia 8 → detector → FastJet → features).

Stage by stage in one process (``simkit.generators.pythia.measure_rate``): Pythia
generation (initialization included), the parametric detector, clustering + features (both
levels); then end to end into an event file with ``generate(..., jobs=J)`` for J = 1, 2.
The overhead of the chain is (detector + clustering/features time) / generation time.

    python benchmarks/reference_simulation.py            # full: 4000 events per process
    python benchmarks/reference_simulation.py --quick    # smoke run: 300 events

Prints a Markdown table for BENCHMARKS.md; ``--json FILE`` also writes the numbers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import tempfile
import time
from pathlib import Path

from _machine import cpu  # this folder, on sys.path when run as a script

from simkit.generators.pythia import generate, measure_rate


def machine() -> str:
    return f"{cpu()}, Python {platform.python_version()}"


def bench(process: str, n_events: int, seed: int) -> dict:
    stages = measure_rate(n_events, seed=seed, process=process)
    generation = n_events / stages["generation_per_s"]
    chain = n_events / stages["detector_per_s"] + n_events / stages["clustering_features_per_s"]
    result = {
        "process": process,
        "events": n_events,
        **{k: stages[k] for k in stages if k.endswith("_per_s")},
        "ms_per_event_generation": 1e3 * generation / n_events,
        "ms_per_event_detector_and_jets": 1e3 * chain / n_events,
        "overhead_vs_generation": chain / generation,
    }
    with tempfile.TemporaryDirectory() as folder:
        for jobs in (1, 2):
            t0 = time.perf_counter()
            generate(process, n_events, seed, jobs=jobs, output=Path(folder) / f"{jobs}.h5")
            result[f"file_per_s_jobs{jobs}"] = n_events / (time.perf_counter() - t0)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 events per process")
    parser.add_argument("--events", type=int, default=None, help="events per process")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args()
    n_events = args.events or (300 if args.quick else 4000)
    results = [bench(p, n_events, args.seed) for p in ("qcd-dijet", "wprime-xy")]
    print(f"machine: {machine()}; {dt.date.today().isoformat()}; {n_events} events per process")
    print(
        "| process | generation ev/s | detector ev/s | clustering+features ev/s "
        "| end to end, 1 job ev/s | to file, 1 job ev/s | to file, 2 jobs ev/s "
        "| chain overhead vs Pythia |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['process']} | {r['generation_per_s']:.0f} | {r['detector_per_s']:.0f} "
            f"| {r['clustering_features_per_s']:.0f} | {r['end_to_end_per_s']:.0f} "
            f"| {r['file_per_s_jobs1']:.0f} | {r['file_per_s_jobs2']:.0f} "
            f"| {r['overhead_vs_generation']:.0%} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":  # worker processes import this file: run only when executed
    main()
