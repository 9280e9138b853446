"""How much a flow's two-sample AUC moves when only the sampling noise is redrawn, for the
torch path and for the torch-free sampler of ``simkit surrogate sample``.

The two evaluate the same flow to float32 rounding (``tests/simkit/test_sampler.py``) but
draw different noise, so one AUC of each cannot tell a difference from the AUC's own
spread. Here, for each fitted folder, the held-out split of its fit is drawn again
(``fit_surrogate``'s rule) and ``fidelity_report``'s AUC is computed for ``--redraws``
noise seeds per path, with the classifier's seed fixed (the fit's): the spread within a
path is the null for the difference between the paths.

    python benchmarks/sampler_auc_redraws.py --sim runs/bench-surrogates-17/qcd.h5 \\
        runs/bench-surrogates-17-w64/flow-64:1 runs/bench-17-seeds/w64-s2/flow-64:2 ... \\
        -o benchmarks/results/cpu-2026-12-03/sampler_auc_redraws.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from flow_compiled_fidelity import TorchFree, fits  # this folder, on sys.path

from simkit.io import write_json
from simkit.tasks.surrogate import fidelity_report


class Reseeded:
    """A model whose ``sample`` draws with ``seed + offset``; everything else is its own."""

    def __init__(self, model, offset: int) -> None:
        self.model = model
        self.offset = offset

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def sample(self, *args, seed: int = 0, **kwargs):
        return self.model.sample(*args, seed=seed + self.offset, **kwargs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="FOLDER:SEED, the seed of its fit")
    parser.add_argument("--sim", type=Path, required=True, help="the fits' event file")
    parser.add_argument("--redraws", type=int, default=5, help="noise seeds per path")
    parser.add_argument("-o", type=Path, help="results JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for folder, seed, test, model in fits(args.models, args.sim):
        row: dict = {"model": folder, "seed": seed}
        for name, scored in (("torch", model), ("torch-free", TorchFree(model))):
            aucs = []
            for offset in range(args.redraws):
                with tempfile.TemporaryDirectory() as scratch:
                    metrics = fidelity_report(
                        Reseeded(scored, 1000 * offset), test, Path(scratch), n_bootstrap=0,
                        seed=seed,
                    )  # fmt: skip
                aucs.append(metrics["two_sample_auc"])
            row[name] = aucs
        rows.append(row)
        print(
            f"seed {seed}: torch {np.round(row['torch'], 4).tolist()}, "
            f"torch-free {np.round(row['torch-free'], 4).tolist()}",
            flush=True,
        )
    every = {name: [a for r in rows for a in r[name]] for name in ("torch", "torch-free")}
    summary = {
        name: {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)), "max": max(v)}
        for name, v in every.items()
    }
    result = {"redraws": args.redraws, "rows": rows, "summary": summary}
    if args.o:
        write_json(args.o, result)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
