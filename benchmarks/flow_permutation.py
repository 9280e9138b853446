"""Throughput of the flow's permutation choices (and a few sizes), training and sampling.

Builds :func:`simkit.surrogates.flow.build_spline_flow` on 16 columns (the jet feature
set) with each permutation between the coupling layers — ``shuffle`` (fixed random
permutation), ``lu`` (normflows' ``LULinearPermute``), ``none`` (alternating masks only)
— and measures training steps and sampling in events per second.

Timing uses the process's CPU time on one thread (``--threads 1``, the default), so the
comparison holds on a machine shared with other work; ``--threads 2 --wall`` gives wall
clock on two threads instead. ``--quick`` runs fewer repetitions. ``--device cuda``
times on a GPU (wall clock, synchronized).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from simkit.nn import resolve_device
from simkit.surrogates.flow import build_spline_flow

VARIANTS = {
    "shuffle (default)": {"permutation": "shuffle"},
    "lu": {"permutation": "lu"},
    "none": {"permutation": "none"},
    "shuffle, 4 layers": {"permutation": "shuffle", "n_layers": 4},
    "shuffle, width 64": {"permutation": "shuffle", "hidden": 64},
}


def rate(fn, n_events: int, reps: int, wall: bool, device: torch.device) -> float:
    def clock():
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() if wall else time.process_time()

    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = clock()
        fn()
        best = min(best, clock() - t0)
    return n_events / best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--wall", action="store_true", help="wall clock instead of CPU time")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--features", type=int, default=16)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    wall = args.wall or device.type == "cuda"
    reps = 2 if args.quick else 5
    sample_batch = 1 << (14 if args.quick else 16)
    if device.type == "cuda":
        sample_batch = 1 << 20
    results = {}
    for name, options in VARIANTS.items():
        torch.manual_seed(0)
        flow = build_spline_flow(args.features, 0, **options).to(device)
        opt = torch.optim.Adam(flow.parameters(), 1e-3)
        row = {}
        for batch in (64, 256, 1024):
            x = torch.randn(batch, args.features, device=device)

            def steps(x=x, flow=flow, opt=opt):
                for _ in range(4):
                    loss = -flow.log_prob(x).mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()

            row[f"train@{batch}"] = rate(steps, 4 * batch, reps, wall, device)
        u = torch.randn(sample_batch, args.features, device=device)
        with torch.inference_mode():
            row[f"sample@{sample_batch}"] = rate(
                lambda u=u, flow=flow: flow.forward(u), sample_batch, reps, wall, device
            )
        results[name] = row
        print(f"{name:22s} " + " | ".join(f"{k} {v:>10,.0f}" for k, v in row.items()), flush=True)
    unit = "events/s wall" if wall else "events per CPU-second"
    print(json.dumps({"unit": unit, "threads": args.threads, "device": str(device), **results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
