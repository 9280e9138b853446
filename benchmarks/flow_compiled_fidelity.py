"""The compiled spline stage leaves fidelity where it was: saved flows re-scored both ways.

For each fitted model folder (from ``benchmarks/surrogate_speed.py --phase fit``), the
held-out split of its fit is drawn again (``fit_surrogate``'s rule: the same seed, 20 %
held out) and the two-sample AUC of ``fidelity_report`` is computed twice, with the
samples of the torch path (``sampler="torch"``, the path of the fits) and with those of
the compiled stage (``sampler="auto"``). On 100k events of the same noise it also
compares the paths' events: the largest difference in units of each column's spread,
and the rows that differ by more than 10⁻³ of a spread, with normflows' own evaluation
against the torch path as the yardstick (integer columns such as constituent counts
flip by one where float32 rounding crosses an integer).

The torch-free sampler of ``simkit surrogate sample`` (``simkit.surrogates.sampler``) is
scored a third way: the same flow to float32 rounding, but its own noise, so its AUC is a
fresh draw of the same quantity, not a copy of the torch path's.

    python benchmarks/flow_compiled_fidelity.py --sim runs/bench-surrogates-17/qcd.h5 \
        runs/bench-surrogates-17-w64/flow-64:1 runs/bench-17-seeds/w64-s2/flow-64:2 ... \
        -o benchmarks/results/cpu-2026-12-03/flow_compiled_fidelity.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from simkit.io import read_sample, write_json
from simkit.surrogates import load_surrogate
from simkit.surrogates.fast_flow import compiled_instruction_set, compiled_spline_available
from simkit.surrogates.sampler import FlowSampler
from simkit.tasks.surrogate import fidelity_report, held_out_split


def held_out(sim: Path, seed: int):
    """The test events of ``fit_surrogate(sim, ..., seed=seed)``: its split, redrawn."""
    return held_out_split(read_sample(sim, levels=["reco"]).reco.passing(), seed)[0]


def fits(specs: list[str], sim: Path):
    """``(folder, seed, held-out events, model)`` per ``FOLDER:SEED`` (the seed of its fit)."""
    for spec in specs:
        folder, seed = spec.rsplit(":", 1)
        seed = int(seed)
        yield folder, seed, held_out(sim, seed), load_surrogate(folder, device="cpu")


class TorchFree:
    """A fitted flow whose ``sample`` is the torch-free sampler's (everything else, e.g.
    ``log_prob`` for the report's NLL, is the model's own)."""

    def __init__(self, model) -> None:
        self.model = model
        self.sampler = FlowSampler.from_surrogate(model)

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def sample(self, *args, **kwargs):
        return self.sampler.sample(*args, **kwargs)

    def sampling_path(self, device=None) -> str:
        return self.sampler.sampling_path()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="FOLDER:SEED, the seed of its fit")
    parser.add_argument("--sim", type=Path, required=True, help="the fits' event file")
    parser.add_argument("-o", type=Path, help="results JSON")
    args = parser.parse_args(argv)
    if not compiled_spline_available():
        raise SystemExit(
            "the compiled spline stage is not built (pip install -e . with a C compiler)"
        )
    torch.set_num_threads(1)
    rows = []
    for folder, seed, test, model in fits(args.models, args.sim):
        row = {"model": folder, "seed": seed, "events_test": len(test)}
        samples = {}
        for sampler in ("torch", "auto", "torch-free", "normflows"):
            model.sampler = "auto" if sampler == "torch-free" else sampler
            scored = TorchFree(model) if sampler == "torch-free" else model
            if sampler == "normflows":
                samples[sampler] = model.sample(100_000, seed=seed + 1).features.astype(float)
                continue
            with tempfile.TemporaryDirectory() as scratch:
                t0 = time.perf_counter()
                metrics = fidelity_report(scored, test, Path(scratch), n_bootstrap=100, seed=seed)
            row[sampler] = {
                "path": scored.sampling_path(),
                "auc": metrics["two_sample_auc"],
                "low": metrics["two_sample_auc_low"],
                "high": metrics["two_sample_auc_high"],
                "seconds": time.perf_counter() - t0,
            }
            samples[sampler] = scored.sample(100_000, seed=seed + 1).features.astype(np.float64)
        spread = samples["torch"].std(axis=0)
        for name in ("auto", "normflows"):
            difference = np.abs(samples[name] - samples["torch"]) / spread
            row[f"{name}_vs_torch"] = {
                "max_over_column_std": float(difference.max()),
                "rows_over_1e-3_std": int((difference > 1e-3).any(axis=1).sum()),
            }
        rows.append(row)
        print(
            f"seed {seed}: AUC torch path {row['torch']['auc']:.4f}, compiled "
            f"{row['auto']['auc']:.4f}, torch-free {row['torch-free']['auc']:.4f}; rows "
            "differing by > 1e-3 σ from the torch path's: "
            f"compiled {row['auto_vs_torch']['rows_over_1e-3_std']}, normflows "
            f"{row['normflows_vs_torch']['rows_over_1e-3_std']} of 100000",
            flush=True,
        )
    result = {"instruction_set": compiled_instruction_set(), "sim": str(args.sim), "rows": rows}
    if args.o:
        write_json(args.o, result)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
