"""OmniFold on the Gaussian reference problem: wall time and closure, beside the peer.

The job (DESIGN.md): simulation truth N(0, 1), data truth N(0.2, 0.8), Gaussian smearing
σ = 0.5, 10⁵ events each, 3 iterations. Closure is measured against the pseudo-data's
hidden truth: unfolded mean and width, and the triangular discriminator Δ on 50 bins in
[−4, 4] (×10³). For scale the table also gives Δ for the prior (no unfolding), for
exact weights N(0.2, 0.8)/N(0, 1) (the statistical floor of this sample) and for an
ideal 3-iteration unfolding (fine-binned IBU on 3·10⁶ events, the algorithm's own
regularization bias at 3 iterations, without classifier noise).

The peer is the PyPI ``omnifold`` package (TensorFlow) with its documented defaults;
``make bench-peer`` installs it into ``.venv-peer`` and it runs here when that exists
(or with ``--peer``). Both run in this one process's session, one after the other, so
they share whatever load the machine has.

    python benchmarks/omnifold_gaussian.py            # full: 1e5 events, 3 iterations
    python benchmarks/omnifold_gaussian.py --quick    # smoke run: 1e4 events
    python benchmarks/omnifold_gaussian.py --peer --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.stats

ROOT = Path(__file__).resolve().parent.parent
PEER_PYTHON = ROOT / ".venv-peer" / "bin" / "python"
PEER_SCRIPT = ROOT / "benchmarks" / "_peer" / "run_peer.py"
EDGES = np.linspace(-4.0, 4.0, 51)


def closure(gen_x: np.ndarray, weights: np.ndarray, truth_x: np.ndarray) -> dict:
    from validation.metrics import triangular_discriminator

    mean = float(np.average(gen_x, weights=weights))
    width = float(np.sqrt(np.average((gen_x - mean) ** 2, weights=weights)))
    td = triangular_discriminator(truth_x, gen_x, bins=EDGES, candidate_weights=weights)
    return {"mean": mean, "width": width, "triangular_e3": 1e3 * td}


def ideal_weights(gen_x: np.ndarray, iterations: int, seed: int) -> np.ndarray:
    """Weights of a fine-binned IBU on 3·10⁶ events: the algorithm without classifier noise."""
    from simkit.generators.toy import gaussian
    from validation.metrics import ibu

    rng = np.random.default_rng([seed, 99])
    sim, data = gaussian(3_000_000, rng), gaussian(3_000_000, rng, data=True)
    edges = np.linspace(-5.0, 5.0, 401)
    result = ibu(
        sim.gen.column("x"),
        sim.reco.column("x"),
        data.reco.column("x"),
        gen_edges=edges,
        reco_edges=edges,
        iterations=iterations,
    )
    return result.event_weights(gen_x)


def run_peer(sim, data, iterations: int) -> tuple[np.ndarray, float]:
    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "in.npz", Path(folder) / "out.npz"
        np.savez(
            source,
            sim_gen=sim.gen.features,
            sim_reco=sim.reco.features,
            pass_gen=sim.gen.passed,
            pass_reco=sim.reco.passed,
            data_reco=data.reco.features[data.reco.passed],
        )
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        done = subprocess.run(
            [str(PEER_PYTHON), str(PEER_SCRIPT), str(source), str(target), str(iterations)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if done.returncode:  # TensorFlow is chatty: show its log only when the peer failed
            sys.stderr.write(done.stderr[-5000:])
            raise RuntimeError(f"the peer failed with exit status {done.returncode}")
        result = np.load(target)
        return np.asarray(result["push"]), float(result["seconds"])


def _cell(row: dict, key: str, digits: int) -> str:
    spread = row.get("spread")
    text = f"{row[key]:.{digits}f}"
    return f"{text} ± {spread[key]:.{digits}f}" if spread else text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10⁴ events (a smoke run)")
    parser.add_argument("--events", type=int, default=None, help="events per sample")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1, help="our runs (different seeds)")
    parser.add_argument("--ensemble", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--peer", action="store_true", help="run the peer (needs .venv-peer)")
    parser.add_argument("--no-peer", action="store_true", help="skip the peer even if installed")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--device",
        default="cpu",
        choices=("cpu", "cuda", "auto"),
        help="where our classifiers train (the peer always runs on the CPU)",
    )
    args = parser.parse_args(argv)

    import torch

    from simkit.generators.toy import gaussian
    from validation.classifier import ClassifierConfig
    from validation.omnifold import OmniFold

    n = args.events or (10_000 if args.quick else 100_000)
    rng = np.random.default_rng(args.seed)
    sim, data = gaussian(n, rng), gaussian(n, rng, data=True)
    gen_x, truth_x = sim.gen.column("x"), data.truth.column("x")

    rows = {
        "prior (no unfolding)": closure(gen_x, np.ones(n), truth_x),
        "exact weights (floor)": closure(
            gen_x,
            scipy.stats.norm.pdf(gen_x, 0.2, 0.8) / scipy.stats.norm.pdf(gen_x, 0.0, 1.0),
            truth_x,
        ),
        f"ideal {args.iterations}-iteration unfolding": closure(
            gen_x, ideal_weights(gen_x, args.iterations, args.seed), truth_x
        ),
    }
    timings = {}
    ours = []
    for r in range(args.repeats):
        t0 = time.perf_counter()
        fit = OmniFold(
            iterations=args.iterations, ensemble=args.ensemble, seed=r, device=args.device
        ).fit_samples(sim, data)
        seconds = time.perf_counter() - t0
        ours.append({**closure(gen_x, fit.weights_, truth_x), "seconds": seconds})
    rows["simkit OmniFold"] = {
        key: float(np.mean([o[key] for o in ours])) for key in ("mean", "width", "triangular_e3")
    }
    timings["simkit OmniFold"] = [o["seconds"] for o in ours]
    if args.repeats > 1:
        rows["simkit OmniFold"]["spread"] = {
            key: float(np.std([o[key] for o in ours], ddof=1))
            for key in ("mean", "width", "triangular_e3")
        }

    want_peer = args.peer or (PEER_PYTHON.exists() and not args.no_peer)
    if want_peer:
        if not PEER_PYTHON.exists():
            print("the peer is not installed: run `make bench-peer`", file=sys.stderr)
            return 2
        weights, seconds = run_peer(sim, data, args.iterations)
        rows["peer omnifold (PyPI, TensorFlow)"] = closure(gen_x, weights, truth_x)
        timings["peer omnifold (PyPI, TensorFlow)"] = [seconds]

    cpu = platform.processor() or platform.machine()
    threads = ClassifierConfig().threads
    print(
        f"\nOmniFold Gaussian benchmark: {n} events each, {args.iterations} iterations, "
        f"{os.cpu_count()} CPU cores ({cpu}), torch {torch.__version__}, "
        f"classifiers on {threads} thread(s)\n"
    )
    print("| method | wall time [s] | unfolded mean | unfolded width | Δ vs truth ×10³ |")
    print("|---|---|---|---|---|")
    truth_row = {"mean": float(truth_x.mean()), "width": float(truth_x.std())}
    print(f"| data truth (sample) | – | {truth_row['mean']:.4f} | {truth_row['width']:.4f} | – |")
    for name, row in rows.items():
        t = timings.get(name)
        wall = "–" if t is None else " / ".join(f"{s:.1f}" for s in t)
        cells = [_cell(row, key, digits) for key, digits in (("mean", 4), ("width", 4))]
        td = _cell(row, "triangular_e3", 3)
        print(f"| {name} | {wall} | {cells[0]} | {cells[1]} | {td} |")
    if "peer omnifold (PyPI, TensorFlow)" in timings:
        ratio = timings["peer omnifold (PyPI, TensorFlow)"][0] / np.mean(timings["simkit OmniFold"])
        print(f"\nspeed-up over the peer: {ratio:.1f}×")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "timings": timings, "events": n}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
