"""Where CPU sampling time goes, stage by stage: normflows' path, the fast path's torch
evaluation and its compiled spline stage.

``simkit surrogate sample`` of a flow runs, per chunk: base noise, the contexts (drawn and
standardized), the flow (per coupling layer: the shared *unconditional* spline of the
conditioning half, the spline-parameter network with its context gates, the conditional
spline, the permutation), the inverse column transform back to physical units, the
finite check into an event table, and the HDF5 write. This times each stage in CPU
seconds on one thread (robust to other processes on the machine), for normflows' own
evaluation and for :class:`~simkit.surrogates.fast_flow.FastSplineFlow` with torch
operations and with its compiled spline stage (where built), and prints microseconds per
event. On the compiled path the shared and the conditional spline are its two compiled
calls, and the parameter networks exclude their first layer (in "the rest").

    python benchmarks/flow_sampling_stages.py                        # default flow, untrained
    python benchmarks/flow_sampling_stages.py --model runs/bench-surrogates/flow
    python benchmarks/flow_sampling_stages.py --hidden 64 --json out.json

Without ``--model`` it profiles an untrained flow of the default architecture on 15
generated columns conditioned on ``mjj``, with a column transform fitted to toy dijet-like
columns (the arithmetic does not depend on the weights); with ``--model`` the saved
surrogate itself.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch

from simkit.events import EventTable, Sample
from simkit.io import SampleWriter
from simkit.surrogates import FlowSurrogate, fast_flow, load_surrogate
from simkit.surrogates.fast_flow import FastSplineFlow, compiled_spline_available


def toy_surrogate(hidden: int, n_layers: int) -> FlowSurrogate:
    """An untrained default-architecture flow with transforms fitted to dijet-like columns."""
    r = np.random.default_rng(0)
    n = 5000
    columns = {"mjj": r.uniform(2500, 5000, n)}
    for j in (1, 2):
        columns |= {
            f"pt_j{j}": r.uniform(1200, 2500, n),
            f"eta_j{j}": r.normal(0, 1, n),
            f"phi_j{j}": r.uniform(-3.1, 3.1, n),
            f"m_j{j}": r.lognormal(4, 0.6, n),
            f"tau21_j{j}": r.uniform(0.1, 0.9, n),
            f"tau32_j{j}": r.uniform(0.2, 0.95, n),
            f"n_j{j}": r.integers(10, 80, n).astype(float),
        }
    columns["delta_mj"] = r.lognormal(3, 1, n)
    model = FlowSurrogate(
        condition=["mjj"], hidden=hidden, n_layers=n_layers, epochs=1, device="cpu"
    )
    return model.fit(EventTable.from_columns(columns))  # one epoch: transforms fitted


class StageClock:
    """CPU seconds accumulated per stage name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def wrap(self, obj, attribute: str, name: str) -> None:
        """Time every call of ``obj.attribute`` (an instance attribute shadows it)."""
        inner = getattr(obj, attribute)

        def timed(*args, **kwargs):
            t0 = time.process_time()
            out = inner(*args, **kwargs)
            self.add(name, time.process_time() - t0)
            return out

        object.__setattr__(obj, attribute, timed)


def profile(model: FlowSurrogate, n_events: int, chunk: int, sampler: str) -> dict[str, float]:
    """µs of CPU per event, per stage, sampling ``n_events`` in chunks into an HDF5 file."""
    clock = StageClock()
    device = torch.device("cpu")
    net = model.net_
    if sampler == "normflows":
        for layer in net.flows:
            if hasattr(layer, "prqct"):
                prqct = layer.prqct
                clock.wrap(prqct.transform_net, "forward", "flow: parameter networks")
                clock.wrap(prqct.unconditional_transform, "inverse", "flow: shared spline")
                clock.wrap(prqct, "_coupling_transform_inverse", "flow: conditional spline")

        def flow(u, c):
            return net.forward(u, context=c)
    elif sampler == "torch":
        fast = FastSplineFlow.from_normflows(net)
        fast.compiled = False
        clock.wrap(fast, "_network", "flow: parameter networks")
        clock.wrap(fast, "_free_spline", "flow: shared spline")
        clock.wrap(fast, "_conditional_spline", "flow: conditional spline")

        def flow(u, c):
            return fast.forward(u, c, threads=1)
    else:  # the compiled spline stage: its two entry points timed through a stand-in
        fast = FastSplineFlow.from_normflows(net)
        # the network after its first layer (that one product is in "the rest")
        clock.wrap(fast, "_residual_blocks", "flow: parameter networks")
        kernels = fast_flow._compiled
        stand_in = types.SimpleNamespace(instruction_set=kernels.instruction_set)
        stand_in.shared_inverse = kernels.shared_inverse
        stand_in.conditional_inverse = kernels.conditional_inverse
        clock.wrap(stand_in, "shared_inverse", "flow: shared spline")
        clock.wrap(stand_in, "conditional_inverse", "flow: conditional spline")

        def flow(u, c):
            fast_flow._compiled = stand_in
            try:
                return fast.forward(u, c, threads=1)
            finally:
                fast_flow._compiled = kernels

    generator = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    columns = model.columns_
    features = [columns.index(c) for c in model.feature_columns_]
    contexts = [columns.index(c) for c in model.condition_]
    n_features = len(model.feature_columns_)
    with (
        tempfile.TemporaryDirectory() as tmp,
        SampleWriter(Path(tmp) / "raw.h5", levels={"reco": columns}, compression={}) as raw,
        SampleWriter(Path(tmp) / "gzip.h5", levels={"reco": columns}) as gzip,
        torch.inference_mode(),
    ):
        for start in range(0, n_events, chunk):
            m = min(chunk, n_events - start)
            t0 = time.process_time()
            u = torch.randn(m, n_features, generator=generator)
            t1 = time.process_time()
            c = phys = None
            if contexts:
                phys = rng.uniform(2500, 5000, (m, len(contexts)))
                c = model._context_tensor(phys, device)
            t2 = time.process_time()
            z = flow(u, c)
            t3 = time.process_time()
            x = model.transform_.inverse(z.float()).numpy()
            t4 = time.process_time()
            events = np.empty((m, len(columns)), dtype=np.float32)
            events[:, features] = x
            if contexts:
                events[:, contexts] = phys
            if not np.isfinite(events).all():
                raise RuntimeError("non-finite events")
            table = EventTable(
                features=events, columns=columns, weights=np.ones(m), passed=np.ones(m, bool)
            )
            t5 = time.process_time()
            raw.append(Sample(reco=table))
            t6 = time.process_time()
            gzip.append(Sample(reco=table))
            t7 = time.process_time()
            for name, seconds in (
                ("noise", t1 - t0),
                ("contexts: draw + standardize", t2 - t1),
                ("flow: total", t3 - t2),
                ("column transform (inverse)", t4 - t3),
                ("finite check + event table", t5 - t4),
                ("write: no compression", t6 - t5),
                ("write: gzip", t7 - t6),
            ):
                clock.add(name, seconds)
    parts = sum(
        v for k, v in clock.seconds.items() if k.startswith("flow: ") and k != "flow: total"
    )
    clock.add("flow: permutations and the rest", clock.seconds["flow: total"] - parts)
    return {k: 1e6 * v / n_events for k, v in clock.seconds.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a saved flow surrogate folder (default: untrained)")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--events", type=int, default=131072)
    parser.add_argument("--chunk", type=int, default=1 << 17, help="rows per sampling chunk")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = (
        load_surrogate(args.model, device="cpu")
        if args.model
        else toy_surrogate(args.hidden, args.layers)
    )
    samplers = ["normflows", "torch"]
    if compiled_spline_available():
        samplers.append("compiled")
    results = {}
    for sampler in samplers:
        results[sampler] = profile(model, args.events, args.chunk, sampler)
    names = list(dict.fromkeys(k for sampler in samplers for k in results[sampler]))
    print(f"µs of CPU per event, one thread, {args.events} events in chunks of {args.chunk}")
    print("| stage | " + " | ".join(samplers) + " |\n|---|" + "---|" * len(samplers))
    for name in names:
        row = [f"{results[s].get(name, 0.0):.2f}" for s in samplers]
        print(f"| {name} | " + " | ".join(row) + " |")
    for sampler in samplers:
        r = results[sampler]
        total = sum(v for k, v in r.items() if not k.startswith("flow: ") or k == "flow: total")
        r["sample, no compression (sum)"] = total - r["write: gzip"]
        r["sample, gzip (sum)"] = total - r["write: no compression"]
        print(
            f"{sampler}: {1e6 / r['sample, no compression (sum)']:,.0f} events per CPU-second "
            f"in memory + uncompressed file, {1e6 / r['sample, gzip (sum)']:,.0f} with gzip"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
