"""Sampling a flow surrogate without torch: numpy's matrix products and the compiled
spline stage, from the numbers the flow saves beside its weights.

A process that samples through torch spends ~2 s importing it and ~0.5 s tearing it
down: for 1 M events on 2 cores that was a quarter of ``simkit surrogate sample``'s wall
time (BENCHMARKS.md, "`simkit surrogate sample` without torch"). Sampling needs none of
torch's machinery: the flow's parameter networks are a few matrix products and
elementwise steps per coupling, and the splines are the compiled stage's
(``simkit/surrogates/_spline.c``). So :meth:`FlowSurrogate.save
<simkit.surrogates.flow.FlowSurrogate.save>` also writes ``sampler.safetensors``: the
numbers of :class:`~simkit.surrogates.fast_flow.FastSplineFlow`'s compiled path
(:meth:`~simkit.surrogates.fast_flow.FastSplineFlow.sampler_arrays`: each coupling's
network with its first layer spread over the event table, the shared spline's bins, the
column order), with the SHA-256 of the ``model.safetensors`` they came from.
:class:`FlowSampler` reads that file, the folder's ``config.json`` and the column
transforms' numbers (:mod:`simkit.surrogates.columns`, the same functions the torch
path evaluates) and evaluates the same steps in numpy.

Equal numbers, not equal events: given the same noise and contexts it gives the torch
path's events to float32 rounding (``tests/simkit/test_sampler.py``), but it draws its
noise with numpy's generator, so the same seed gives other (equally distributed) events
than :meth:`FlowSurrogate.sample <simkit.surrogates.base.Surrogate.sample>`. The contexts
are drawn from the same stream as there. For a given seed, chunk size and sampler the
events are the same on any number of threads.

:meth:`FlowSampler.load` says (:class:`NoSampler`) why a folder cannot be sampled this
way: no compiled stage on this machine, a folder saved before this sampler existed or
changed since, a flow the fast path does not implement. ``simkit surrogate sample`` then
takes the torch path.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from simkit.errors import FileFormatError, SimkitError
from simkit.events import EventTable
from simkit.modelfiles import (
    WEIGHTS_FILE,
    read_model_arrays,
    read_model_document,
    read_safetensors,
    weights_digest,
)
from simkit.surrogates import columns
from simkit.surrogates.contexts import (
    ContextSource,
    chunk_rows,
    context_rng,
    context_source,
    gather_chunks,
    generated_table,
)

SAMPLER_FILE = "sampler.safetensors"
SAMPLER_FORMAT = "simkit-flow-sampler"
SAMPLER_VERSION = "1"
#: Rows per batch: a batch's network activations stay in the core's L2 cache (1024 rows:
#: 8 % less CPU per event than 4096 on the 2-core machine, interleaved; BENCHMARKS.md).
BATCH_ROWS = 1024
#: Events per chunk (one :class:`EventTable` of :meth:`FlowSampler.iter_sample`).
CHUNK_ROWS = 1 << 17


class NoSampler(SimkitError):
    """This folder, or this machine, cannot sample without torch; the message says why."""


def compiled_stage():
    """The compiled spline stage (``simkit.surrogates._spline``), or None where it was
    not built."""
    try:
        from simkit.surrogates import _spline
    except ImportError:
        return None
    return _spline


def write_sampler(folder: str | os.PathLike, arrays: dict[str, np.ndarray], settings: dict) -> Path:
    """Write ``sampler.safetensors`` into a saved model folder (atomically), tied to its
    current ``model.safetensors`` by digest."""
    from safetensors.numpy import save_file

    folder = Path(folder)
    tmp = folder / f".{SAMPLER_FILE}.tmp"
    metadata = {
        "format": SAMPLER_FORMAT,
        "version": SAMPLER_VERSION,
        "settings": json.dumps(settings, sort_keys=True),
        "model_sha256": weights_digest((folder / WEIGHTS_FILE).read_bytes()),
    }
    save_file(arrays, str(tmp), metadata=metadata)
    os.replace(tmp, folder / SAMPLER_FILE)
    return folder / SAMPLER_FILE


def remove_sampler(folder: str | os.PathLike) -> None:
    """Drop a folder's ``sampler.safetensors`` (its flow has no torch-free path)."""
    (Path(folder) / SAMPLER_FILE).unlink(missing_ok=True)


def gpu_visible() -> bool:
    """Whether this machine shows a GPU driver (NVIDIA or ROCm), where ``--device auto``
    may mean a GPU: torch alone can tell, so the torch path decides there."""
    return any(Path(p).exists() for p in ("/proc/driver/nvidia/version", "/dev/kfd"))


#: The compiled epilogues (``_spline.c``): after a product, add the bias; … then relu;
#: hidden += (out + bias) · gate; the context gates σ(c·w + b) of a one-column context.
BIAS, BIAS_RELU, RESIDUAL, GATES = range(4)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


class _Scratch(threading.local):
    """Per-thread buffers, reused from batch to batch (fresh ones page-fault again)."""

    def take(self, name: str, rows: int, width: int) -> tuple[np.ndarray, int]:
        """The first ``rows`` rows of buffer ``name`` and their address."""
        held = self.__dict__.get(name)
        if held is None or held[0].shape[0] < rows or held[0].shape[1] != width:
            buffer = np.empty((max(rows, BATCH_ROWS), width), np.float32)
            held = self.__dict__[name] = (buffer, _address(buffer))
        return held[0][:rows], held[1]


def _address(array: np.ndarray) -> int:
    return array.__array_interface__["data"][0]


class _Coupling:
    """One coupling's arrays, with the addresses the compiled calls take (looked up once:
    ``__array_interface__`` builds a dict per call, ~4 % of a sampling process)."""

    def __init__(self, a: dict[str, np.ndarray], blocks: int) -> None:
        self.arrays = a = {k: np.ascontiguousarray(v) for k, v in a.items()}
        self.at = {k: _address(v) for k, v in a.items()}
        self.identity, self.transform = len(a["identity"]), len(a["transform"])
        self.width = len(a["b_in"])
        self.w_in = a["w_in"].T
        # (w0, b0 address, w1, b1 address) per residual block, the products' right sides
        self.blocks = tuple(
            (a[f"b{j}.w0"].T, self.at[f"b{j}.b0"], a[f"b{j}.w1"].T, self.at[f"b{j}.b1"])
            for j in range(blocks)
        )
        self.gate_w = a["gate_w"].T if "gate_w" in a else None  # conditional flows only
        self.out = tuple(
            (name, a[f"w_{name}"].T, len(a[f"b_{name}"])) for name in ("bins", "slopes")
        )


class FlowSampler:
    """A saved flow surrogate, sampled with numpy and the compiled spline stage.

    Build it with :meth:`load` (a model folder) or :meth:`from_surrogate` (a fitted
    :class:`~simkit.surrogates.flow.FlowSurrogate` in memory). :meth:`iter_sample` and
    :meth:`sample` take the arguments of the surrogate's own methods.
    """

    kind = "flow"

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        settings: dict,
        *,
        columns: tuple[str, ...],
        features: tuple[str, ...],
        condition: tuple[str, ...],
        units: tuple[str, ...],
        maps: columns.ColumnMaps,
        context_maps: columns.ColumnMaps | None,
    ) -> None:
        spline = compiled_stage()
        if spline is None:
            raise NoSampler("the compiled spline stage was not built on this machine")
        self._spline = spline
        self.settings = dict(settings)
        self.n_bins = int(settings["n_bins"])
        if not 2 <= self.n_bins <= spline.max_bins:
            raise NoSampler(
                f"{self.n_bins} spline bins (the compiled stage takes 2–{spline.max_bins})"
            )
        self.n_features = int(settings["n_features"])
        self.n_context = int(settings["n_context"])
        if self.n_features != len(features) or self.n_context != len(condition):
            raise NoSampler("the sampler's numbers do not match the model's columns")
        self.columns_ = tuple(columns)
        self.feature_columns_ = tuple(features)
        self.condition_ = tuple(condition)
        self.units_ = tuple(units)
        self.maps = maps
        self.context_maps = context_maps
        self.order = arrays["order"]
        self.layers = [
            _Coupling(
                {k.removeprefix(f"c{i}."): v for k, v in arrays.items() if k.startswith(f"c{i}.")},
                int(settings["blocks"][i]),
            )
            for i in range(int(settings["couplings"]))
        ]
        self._scratch = _Scratch()

    # ------------------------------------------------------------------ building

    @classmethod
    def load(cls, folder: str | os.PathLike) -> FlowSampler:
        """Read a model folder written by ``FlowSurrogate.save``; :class:`NoSampler` when
        it has no current ``sampler.safetensors`` or this machine lacks the compiled stage
        (a damaged folder is a :class:`~simkit.errors.FileFormatError`)."""
        from safetensors import safe_open

        folder = Path(folder)
        document = read_model_document(folder, ("surrogate-flow", "surrogate-gan"))
        if document["kind"] != "surrogate-flow":
            raise NoSampler("a GAN: its generator samples through torch")
        path = folder / SAMPLER_FILE
        if not path.exists():
            raise NoSampler(f"no {SAMPLER_FILE} in the folder (saved before it existed?)")

        def read(name: str):
            with safe_open(name, "np") as stored:
                return stored.metadata() or {}, {k: stored.get_tensor(k) for k in stored.keys()}

        try:  # a damaged sampler file leaves the torch path, which does not read it
            metadata, arrays = read_safetensors(path, read)
        except FileFormatError as exc:
            raise NoSampler(str(exc)) from None
        if (metadata.get("format"), metadata.get("version")) != (SAMPLER_FORMAT, SAMPLER_VERSION):
            raise NoSampler(f"{SAMPLER_FILE} is of another format or version")
        weights, digest = read_model_arrays(folder)
        if metadata.get("model_sha256") != digest:
            raise NoSampler(f"{SAMPLER_FILE} was written for other weights than {WEIGHTS_FILE}")
        try:
            config = document["config"]
            settings = json.loads(metadata["settings"])
            maps = _maps(config["transform"], weights, "transform.", np.float32)
            context = config["context_transform"]
            context_maps = (
                None if context is None else _maps(context, weights, "context.", np.float64)
            )
            return cls(
                arrays,
                settings,
                columns=tuple(config["columns"]),
                features=tuple(config["features"]),
                condition=tuple(config["condition"]),
                units=tuple(config["units"]),
                maps=maps,
                context_maps=context_maps,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise NoSampler(f"{SAMPLER_FILE} or config.json is incomplete ({exc})") from None

    @classmethod
    def from_surrogate(cls, model) -> FlowSampler:
        """The sampler of a fitted ``FlowSurrogate`` in memory (imports torch)."""
        from simkit.surrogates.fast_flow import FastSplineFlow

        arrays, settings = FastSplineFlow.from_normflows(model.net_).sampler_arrays()
        context = model.context_transform_
        return cls(
            arrays,
            settings,
            columns=model.columns_,
            features=model.feature_columns_,
            condition=model.condition_,
            units=model.units_,
            maps=model.transform_.maps(np.float32),
            context_maps=None if context is None else context.maps(np.float64),
        )

    def sampling_path(self, device: str | None = None) -> str:
        """How this sampler evaluates the flow, in words (``surrogate sample`` says it)."""
        return f"torch-free sampler, compiled spline stage ({self._spline.instruction_set})"

    # ------------------------------------------------------------------ the flow

    def _batch(self, u: np.ndarray, context: np.ndarray | None) -> np.ndarray:
        """Base noise (B, F) → the flow's output (B, F), model space, float32."""
        b, f = u.shape
        k = self.n_bins
        s = self.settings
        take = self._scratch.take
        table, table_at = take("table", b, f + self.n_context)
        table[:, :f] = u
        if context is not None:
            table[:, f:] = context
        stride = table.shape[1]
        spline = self._spline
        epilogue = spline.epilogue
        for layer in self.layers:
            at, width = layer.at, layer.width
            spline.shared_inverse(
                table_at, stride, at["identity"], layer.identity,
                at["free_bins"], at["free_knots"], 0, b, k, s["tail_bound"],
            )  # fmt: skip
            (hidden, hidden_at), (t, t_at), (inner, inner_at), (outer, outer_at) = (
                take(name, b, width) for name in ("hidden", "relu", "inner", "outer")
            )
            np.matmul(table, layer.w_in, out=hidden)
            # hidden += bias; t = relu(hidden), the first block's input
            epilogue(BIAS, hidden_at, 0, at["b_in"], 0, 0, t_at, b, width)
            gate_at = 0
            if layer.gate_w is not None:
                n_gates = layer.gate_w.shape[1]
                gate, gate_at = take("gates", b, n_gates)
                if self.n_context == 1:  # σ(c·w + b) in one pass
                    epilogue(
                        GATES, gate_at, at["gate_w"], at["gate_b"],
                        table_at + 4 * f, stride, 0, b, n_gates,
                    )  # fmt: skip
                else:
                    np.matmul(table[:, f:], layer.gate_w, out=gate)
                    gate += layer.arrays["gate_b"]
                    np.negative(gate, out=gate)
                    np.exp(gate, out=gate)
                    gate += 1.0
                    np.reciprocal(gate, out=gate)
            for j, (w0, b0_at, w1, b1_at) in enumerate(layer.blocks):
                np.matmul(t, w0, out=inner)
                epilogue(BIAS_RELU, inner_at, 0, b0_at, 0, 0, 0, b, width)
                np.matmul(inner, w1, out=outer)
                # hidden += (outer + b1) · gate; t = relu(hidden) for the next block
                last = j == len(layer.blocks) - 1
                epilogue(
                    RESIDUAL, outer_at, hidden_at, b1_at,
                    gate_at and gate_at + 4 * j * width, 2 * width if gate_at else 0,
                    0 if last else t_at, b, width,
                )  # fmt: skip
            params = []
            for name, w, n_out in layer.out:
                out, out_at = take(name, b, n_out)
                np.matmul(hidden, w, out=out)
                epilogue(BIAS, out_at, 0, at[f"b_{name}"], 0, 0, 0, b, n_out)
                params.append(out_at)
            spline.conditional_inverse(
                table_at, stride, at["transform"], layer.transform, *params, 0, b, k,
                s["tail_bound"], s["min_bin_width"], s["min_bin_height"], s["min_derivative"],
            )  # fmt: skip
        return table[:, self.order]

    def flow(self, u: np.ndarray, context: np.ndarray | None = None) -> np.ndarray:
        """Base noise (N, F) and standardized contexts (N, C) → the flow's output in model
        space (one thread; :meth:`iter_sample` runs batches on several)."""
        u = np.ascontiguousarray(u, dtype=np.float32)
        c = None if context is None else np.ascontiguousarray(context, dtype=np.float32)
        parts = [
            self._batch(u[i : i + BATCH_ROWS], None if c is None else c[i : i + BATCH_ROWS])
            for i in range(0, len(u), BATCH_ROWS)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, self.n_features), np.float32)

    # ------------------------------------------------------------------ sampling

    def context_z(self, values: np.ndarray) -> np.ndarray:
        """Physical context values (N, C) → the flow's standardized contexts (float32),
        refusing values outside a column's domain."""
        framed = columns.to_frame(values, self.context_maps, columns.NUMPY)
        columns.check_domain(framed, self.context_maps, self.condition_)
        z, _ = columns.forward(values, self.context_maps, columns.NUMPY, log_det=False)
        return z.astype(np.float32)

    def iter_sample(
        self,
        n: int | None = None,
        context: np.ndarray | ContextSource | None = None,
        *,
        seed: int = 0,
        chunk_size: int | None = None,
        threads: int | None = None,
    ) -> Iterator[EventTable]:
        """Generate events in chunks, like ``Surrogate.iter_sample`` (the same contexts for
        the same seed; the noise from numpy's generator, per batch of rows)."""
        from threadpoolctl import threadpool_limits

        n, source = context_source(self.condition_, n, context)
        chunk = chunk_rows(chunk_size, CHUNK_ROWS)
        threads = int(threads or usable_cores())
        rng = context_rng(seed)
        feature_at = [self.columns_.index(c) for c in self.feature_columns_]
        context_at = [self.columns_.index(c) for c in self.condition_]

        def run(first: int, m: int, start: int, events: np.ndarray, context_z) -> None:
            last = min(first + BATCH_ROWS, m)
            noise = np.random.default_rng([int(seed), 1, start + first])
            u = noise.standard_normal((last - first, self.n_features), dtype=np.float32)
            c = None if context_z is None else context_z[first:last]
            z = self._batch(u, c)
            events[first:last, feature_at] = columns.inverse(z, self.maps, columns.NUMPY)

        def submit(start: int):
            """A chunk's contexts (drawn here, in order) and its batches, queued."""
            m = min(chunk, n - start)
            context_phys = context_z = None
            if source is not None:
                context_phys = np.asarray(source(start, m, rng), dtype=np.float64)
                context_z = self.context_z(context_phys)
            events = np.empty((m, len(self.columns_)), dtype=np.float32)
            batches = [
                pool.submit(run, first, m, start, events, context_z)
                for first in range(0, m, BATCH_ROWS)
            ]
            return context_phys, events, batches

        # the batches run on `threads` threads, each product on one BLAS thread; the next
        # chunk is queued before this one is finished and handed out, so that the
        # threads never wait for the contexts, the checks or the caller
        with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(max(threads, 1)) as pool:
            pending = submit(0) if n > 0 else None
            for start in range(0, n, chunk):
                context_phys, events, batches = pending
                pending = submit(start + chunk) if start + chunk < n else None
                for batch in batches:
                    batch.result()
                if context_phys is not None:
                    events[:, context_at] = context_phys
                yield generated_table(events, self.columns_, self.units_, self.kind)

    def sample(self, n: int | None = None, context=None, **options) -> EventTable:
        """``n`` events as one :class:`EventTable` (see :meth:`iter_sample`)."""
        return gather_chunks(self.iter_sample(n, context, **options), self.columns_, self.units_)


def _maps(config: dict, weights: dict[str, np.ndarray], prefix: str, dtype) -> columns.ColumnMaps:
    """A saved column transform's maps (its ``config()`` and buffers) in numpy ``dtype``."""
    numbers = {k: weights[prefix + k] for k in ("mean", "std", "low", "high")}
    return columns.ColumnMaps.from_config(config, numbers, lambda v: np.asarray(v, dtype))
