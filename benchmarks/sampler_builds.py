"""The torch-free sampler's CPU time per event and stage, for each build of the compiled
stage this CPU runs (plain x86-64, AVX2 + FMA, AVX-512), interleaved round by round.

``simkit/surrogates/_spline.c`` is compiled three times with the same arithmetic and
picks the best build the CPU runs at import; ``_spline.use(name)`` switches. This times
:meth:`FlowSampler.flow <simkit.surrogates.sampler.FlowSampler.flow>` (one thread, one
BLAS thread) of an untrained default-architecture conditional flow (the arithmetic does
not depend on the weights; ``benchmarks/flow_sampling_stages.py``'s toy flow) in CPU
microseconds per event: the compiled calls by name (the shared spline, the conditional
spline, the context gates, the other network epilogues) and the rest (numpy's matrix
products and the table's copies). The builds alternate within each round, so that the
2-core VM's drift hits them alike.

    python benchmarks/sampler_builds.py --rounds 4 --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu
from flow_sampling_stages import StageClock, toy_surrogate

from simkit.surrogates import _spline
from simkit.surrogates.sampler import GATES, FlowSampler


def timed_stage(clock: StageClock) -> types.SimpleNamespace:
    """A stand-in for the compiled module whose calls are timed by stage."""
    stand_in = types.SimpleNamespace(instruction_set="timed", max_bins=_spline.max_bins)
    stand_in.shared_inverse = _spline.shared_inverse
    stand_in.conditional_inverse = _spline.conditional_inverse
    clock.wrap(stand_in, "shared_inverse", "shared spline")
    clock.wrap(stand_in, "conditional_inverse", "conditional spline")

    def epilogue(op, *args):
        t0 = time.process_time()
        _spline.epilogue(op, *args)
        clock.add("context gates" if op == GATES else "other epilogues", time.process_time() - t0)

    stand_in.epilogue = epilogue
    return stand_in


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args(argv)
    sampler = FlowSampler.from_surrogate(toy_surrogate(args.hidden, args.layers))
    rng = np.random.default_rng(0)
    u = rng.standard_normal((args.events, sampler.n_features), dtype=np.float32)
    c = rng.standard_normal((args.events, sampler.n_context), dtype=np.float32)
    builds = list(_spline.instruction_sets)
    results: dict[str, list[dict[str, float]]] = {b: [] for b in builds}
    before = _spline.instruction_set
    try:
        with threadpool_limits(1, user_api="blas"):
            for _ in range(args.rounds):
                for build in builds:
                    _spline.use(build)
                    clock = StageClock()
                    sampler._spline = timed_stage(clock)
                    t0 = time.process_time()
                    sampler.flow(u, c)
                    total = time.process_time() - t0
                    stages = {k: v / args.events * 1e6 for k, v in clock.seconds.items()}
                    stages["rest (matrix products, copies)"] = total / args.events * 1e6 - sum(
                        stages.values()
                    )
                    stages["total"] = total / args.events * 1e6
                    results[build].append(stages)
    finally:
        _spline.use(before)
    print(f"{cpu()}: CPU µs per event, one thread, {args.events} events, rounds 1–{args.rounds}")
    print("| stage | " + " | ".join(builds) + " |\n|---|" + "---|" * len(builds))
    for name in results[builds[0]][0]:
        cells = [", ".join(f"{r[name]:.2f}" for r in results[b]) for b in builds]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.json:
        info = {"cpu": cpu(), "instruction_sets": builds, "events": args.events}
        info["hidden"] = args.hidden
        Path(args.json).write_text(json.dumps({**info, "rounds": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
