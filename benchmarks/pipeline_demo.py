"""Wall time of the whole chain (``simkit demo``), stage by stage, and its headline numbers.

Runs the built-in demo config (full mode) or a tiny version of it (``--quick``) into a
fresh folder, from a cold start (nothing cached), and prints a Markdown table of each
stage's time plus the headline: the surrogate's speed-up over the Pythia chain, the gate's
verdicts, the detectors' AUC and max SIC.

    python benchmarks/pipeline_demo.py            # the demo config: a few minutes
    python benchmarks/pipeline_demo.py --quick    # tiny sizes: ~20 s

The issue's target: ``simkit demo`` within 10 minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

# benchmarks/detectors.py has the name of the `detectors` package, which the chain
# imports: keep this folder off the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from simkit.pipeline import demo_config_path, load_config, run_pipeline  # noqa: E402

QUICK = {
    "run": {"jobs": 1, "device": "cpu"},
    "generate": {"sim_events": 500, "data_events": 500, "signal_events": 250, "s_over_b": 0.05},
    "surrogate": {"events": 1500, "sr_events": 800, "bootstrap": 0, "flow": {"epochs": 2}},
    "unfold": {"iterations": 1, "epochs": 5},
    "compare": {"bootstrap": 0},
    "detect": {"epochs": 3},
    "evaluate": {"target_eps_b": 0.1, "min_background": 5, "bin_width": 200.0},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    parser.add_argument("--keep", metavar="DIR", help="run into DIR and keep it")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    args = parser.parse_args()

    config = QUICK if args.quick else load_config(demo_config_path())[0]
    with tempfile.TemporaryDirectory() as scratch:
        run_dir = Path(args.keep or Path(scratch) / "demo")
        t0 = time.perf_counter()
        summary = run_pipeline(config, run_dir, force=["all"], quiet=True)
        wall = time.perf_counter() - t0
    print(f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"mode: {'quick' if args.quick else 'demo config'}; wall time {wall:.0f} s\n")
    print("| stage | seconds |\n|---|---|")
    for name, stage in summary["stages"].items():
        print(f"| {name} | {stage['seconds']:.1f} |")
    print(f"| **total** | **{wall:.1f}** |\n")
    for key, value in summary["headline"].items():
        if key.endswith(("_speed_up", "_validated", "_auc", "_max_sic")) or "per_second" in key:
            print(f"{key}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps({"wall_seconds": wall, **summary}, indent=2))


if __name__ == "__main__":
    main()
