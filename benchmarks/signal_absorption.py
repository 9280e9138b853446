"""How much of the injected signal OmniFold's weights absorb, in a finished run folder.

The data of a ``simkit run`` carry W' → X(500) Y(100) events in the signal region. If
step 1 of the unfolding learns from that region, it can reweight the simulated QCD
events that look like the signal upwards, and the "validated" background then contains
part of the signal. This script measures it on the run's own files: the mean push (and
pull) weight of simulated events in a W'-like box of jet masses (heavier jet
``--heavy`` GeV, lighter ``--light`` GeV) against the rest, inside the signal region
and in the sidebands. Without absorption the box and the rest agree within errors in
both; with it, the box is heavier inside the signal region only.

    python benchmarks/signal_absorption.py runs/medium
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detectors.labels import parse_range  # noqa: E402
from simkit.events import in_window  # noqa: E402
from simkit.io import read_sample, read_weights  # noqa: E402


def measure(run: Path, heavy: tuple[float, float], light: tuple[float, float]) -> dict:
    config = json.loads((run / "config.json").read_text())
    low, high = config["detect"]["signal_region"]
    sim = read_sample(run / "sim" / "sim.h5", levels=["reco"]).reco
    mjj = sim.column("mjj")
    m1, m2 = sim.column("m_j1"), sim.column("m_j2")
    heavier, lighter = np.maximum(m1, m2), np.minimum(m1, m2)
    box = (heavier >= heavy[0]) & (heavier < heavy[1]) & (lighter >= light[0])
    box &= lighter < light[1]
    inside = in_window(mjj, low, high)
    out: dict = {"run": str(run), "signal_region": [low, high]}
    out["blind"] = config["unfold"].get("blind", False)
    for name in ("push", "pull"):
        w = read_weights(f"{run / 'unfold' / 'weights.h5'}:omnifold/{name}", len(sim))
        for region, rows in (("sr", inside), ("sidebands", ~inside)):
            for part, select in (("box", box), ("rest", ~box)):
                chosen = sim.passed & rows & select
                values = w[chosen]
                key = f"{name}_{region}_{part}"
                out[f"{key}_events"] = int(chosen.sum())
                out[f"{key}_mean"] = float(values.mean())
                out[f"{key}_error"] = float(values.std(ddof=1) / np.sqrt(len(values)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished simkit run folder")
    parser.add_argument("--heavy", default="400:600", help="heavier jet mass window (GeV)")
    parser.add_argument("--light", default="70:130", help="lighter jet mass window (GeV)")
    args = parser.parse_args()
    result = measure(
        args.run, parse_range(args.heavy, "--heavy"), parse_range(args.light, "--light")
    )
    print(f"{args.run}: blind = {result['blind']}")
    for name in ("push", "pull"):
        for region in ("sr", "sidebands"):
            box, rest = f"{name}_{region}_box", f"{name}_{region}_rest"
            print(
                f"  {name:4s} {region:9s}: W'-like box {result[box + '_mean']:.3f} ± "
                f"{result[box + '_error']:.3f} ({result[box + '_events']} events), rest "
                f"{result[rest + '_mean']:.3f} ± {result[rest + '_error']:.3f}"
            )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
