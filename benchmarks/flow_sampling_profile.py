"""Where the flow's sampling time goes: events/s of the network alone, per variant.

Times ``flow.forward(u, context)`` (base noise → events, what ``sample`` runs) for the
default architecture and variants, at large batches, with CUDA synchronisation, and
prints torch.profiler's top operators for the default. An untrained flow samples at
the speed of a trained one: the arithmetic does not depend on the weights.

    python benchmarks/flow_sampling_profile.py --device cuda
    python benchmarks/flow_sampling_profile.py --device cpu --batch 65536
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from simkit.surrogates.flow import build_spline_flow


def rate(flow, n_features, n_context, batch, device, repeats, precision):
    u = torch.randn(batch, n_features, device=device)
    c = torch.randn(batch, n_context, device=device) if n_context else None
    ctx = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        if precision == "bf16"
        else torch.autocast(device_type=device.type, enabled=False)
    )
    with torch.inference_mode(), ctx:
        flow.forward(u, context=c)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(repeats):
            flow.forward(u, context=c)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return batch * repeats / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--device", default="auto", help="auto: CUDA when present, else skip (a GPU benchmark)"
    )
    p.add_argument("--batch", type=int, default=1 << 20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--features", type=int, default=15)
    p.add_argument("--context", type=int, default=1)
    args = p.parse_args()
    if args.device == "auto":
        if not torch.cuda.is_available():
            print("no CUDA device: skipped (a GPU benchmark; --device cpu --batch 65536 forces it)")
            return
        args.device = "cuda"
    device = torch.device(args.device)
    results = {}
    variants = {
        "default (6 layers, 128 wide)": {},
        "4 layers": {"n_layers": 4},
        "64 wide": {"hidden": 64},
        "1 block": {"n_blocks": 1},
    }
    for name, options in variants.items():
        torch.manual_seed(0)
        flow = build_spline_flow(args.features, args.context, **options).to(device).eval()
        for precision in ("fp32", "bf16"):
            for batch in (args.batch, args.batch * 4):
                key = f"{name} | {precision} | batch {batch}"
                results[key] = rate(
                    flow, args.features, args.context, batch, device, args.repeats, precision
                )
                print(f"{key}: {results[key]:,.0f} events/s", flush=True)
    torch.manual_seed(0)
    flow = build_spline_flow(args.features, args.context).to(device).eval()
    u = torch.randn(args.batch, args.features, device=device)
    c = torch.randn(args.batch, args.context, device=device) if args.context else None
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.inference_mode(), torch.profiler.profile(activities=activities) as prof:
        flow.forward(u, context=c)
        if device.type == "cuda":
            torch.cuda.synchronize()
    sort = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=18, max_name_column_width=40))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
