"""A conditional neural-spline flow surrogate built from normflows.

The flow maps a standard normal ``u`` to events in the standardized model space of
:class:`~simkit.surrogates.transforms.ColumnTransform`, through layers of coupling
rational-quadratic splines (Durkan et al. 2019, "Neural Spline Flows",
arXiv:1906.04032; ``normflows.flows.CoupledRationalQuadraticSpline``) whose
parameter networks also see the standardized conditioning columns. Coupling layers
evaluate the density and sample in one pass each way; autoregressive layers loop over
the dimensions when sampling, so they are used only for a single generated column
(where that loop has one step and a coupling split has nothing to condition on).

Between couplings the columns are mixed by a fixed random permutation
(``permutation="shuffle"``): a gather, no parameters, nothing to solve when sampling.
normflows' learned ``LULinearPermute`` (``"lu"``) was measured no better on CPU for 16
columns (30 % slower training at batch 64, equal within noise at 256–1024 and when
sampling; ``benchmarks/flow_permutation.py``), and DESIGN.md reports it ~4× slower at
small batches; it adds parameters and a triangular solve per layer for no measured
gain. ``"none"`` only alternates the coupling masks, so the same two halves of the
columns always condition each other (weaker mixing).

Sampling and densities run, by default on a CPU, through
:class:`~simkit.surrogates.fast_flow.FastSplineFlow`: the same function as normflows'
evaluation (equal to float32 rounding, tested), without its training-oriented overheads
(per-row copies of the shared spline's knots, boolean-mask indexing, concatenations):
3.6× fewer CPU-seconds per event for the default architecture (BENCHMARKS.md, "Fast flow
sampling on a CPU"). What remains is the networks' matrix products (~70 % of it, at the
CPU's sgemm speed) and the spline arithmetic; ``hidden`` and ``n_layers`` trade fidelity
for speed almost linearly.

Training maximises the weighted likelihood ``Σ w log p(x | c) / Σ w`` through
:func:`simkit.nn.train`; the density includes the preprocessing's ``log |det J|``, so
:meth:`FlowSurrogate.log_prob` is a density in the physical units of the columns.

>>> import numpy as np
>>> x = np.random.default_rng(0).normal(size=(2000, 2))
>>> flow = FlowSurrogate(epochs=2, n_layers=2, hidden=16, device="cpu").fit(x, names=["a", "b"])
>>> flow.sample(5, seed=1).features.shape
(5, 2)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import normflows as nf
import numpy as np
import torch
from torch import nn

from simkit.errors import SimkitError
from simkit.events import EventTable
from simkit.nn import Objective, resolve_device
from simkit.surrogates.base import Surrogate
from simkit.surrogates.fast_flow import (
    FastSplineFlow,
    UnsupportedFlow,
    compiled_instruction_set,
)
from simkit.surrogates.sampler import remove_sampler, write_sampler

PERMUTATIONS = ("shuffle", "lu", "none")

#: ``sampler`` values: ``auto`` = the fast path on a CPU, normflows' own on CUDA (where
#: the fast path is untested); ``fast`` = the fast path on any device; ``torch`` = the
#: fast path without its compiled spline stage (``_spline.c``); ``normflows``. On a CPU
#: the fast path samples through the compiled stage where it was built
#: (:func:`~simkit.surrogates.fast_flow.compiled_spline_available`).
SAMPLERS = ("auto", "fast", "torch", "normflows")

#: Longest last dimension for which :func:`small_cumsum` replaces ``torch.cumsum``.
SMALL_CUMSUM_MAX = 64


def small_cumsum(x: torch.Tensor) -> torch.Tensor:
    """Cumulative sum over a short last dimension as a product with a triangular matrix.

    On CUDA, ``torch.cumsum`` over the spline's 8 bins of a million rows ran at ~1.6 GB/s
    on an H200 (torch 2.11: 45 ms per call, 86 % of the flow's sampling time, measured
    with ``benchmarks/flow_sampling_profile.py``); the same sums as one small matrix
    product take a fraction of that. Computed in fp32 with autocast off, so bf16 sampling
    does not coarsen the bin edges.
    """
    k = x.shape[-1]
    upper = torch.ones(k, k, device=x.device, dtype=torch.float32).triu_()
    with torch.autocast(device_type=x.device.type, enabled=False):
        return (x.float() @ upper).to(x.dtype)


class _SplineTorch:
    """``torch`` as normflows' spline module sees it, with a fast small-dim CUDA cumsum.

    normflows computes bin edges with ``torch.cumsum(widths, dim=-1)``; everything else
    is forwarded to torch unchanged.
    """

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def cumsum(x, dim, *args, **kwargs):
        if (
            x.is_cuda
            and not args
            and not kwargs
            and dim in (-1, x.ndim - 1)
            and x.shape[-1] <= SMALL_CUMSUM_MAX
            and x.is_floating_point()
        ):
            return small_cumsum(x)
        return torch.cumsum(x, dim, *args, **kwargs)


nf.utils.splines.torch = _SplineTorch()


def build_spline_flow(
    n_features: int,
    n_context: int,
    *,
    n_layers: int = 6,
    hidden: int = 128,
    n_blocks: int = 2,
    n_bins: int = 8,
    tail_bound: float = 4.0,
    permutation: str = "shuffle",
) -> nf.ConditionalNormalizingFlow:
    """A conditional rational-quadratic spline flow on ``n_features`` columns.

    ``n_context`` = 0 gives an unconditional flow. Splines act on
    ``[-tail_bound, tail_bound]`` and are linear (identity) outside, so feed it
    standardized inputs.
    """
    if permutation not in PERMUTATIONS:
        raise SimkitError(f"unknown permutation {permutation!r}; use {', '.join(PERMUTATIONS)}")
    if n_layers < 1 or hidden < 1 or n_blocks < 1 or n_bins < 2 or not tail_bound > 0:
        raise SimkitError("flow: need n_layers, hidden, n_blocks ≥ 1, n_bins ≥ 2, tail_bound > 0")
    context = n_context or None
    layers: list[nn.Module] = []
    for i in range(n_layers):
        if n_features == 1:
            layers.append(
                nf.flows.AutoregressiveRationalQuadraticSpline(
                    1,
                    n_blocks,
                    hidden,
                    num_context_channels=context,
                    num_bins=n_bins,
                    tail_bound=tail_bound,
                )
            )
            continue
        layers.append(
            nf.flows.CoupledRationalQuadraticSpline(
                n_features,
                n_blocks,
                hidden,
                num_context_channels=context,
                num_bins=n_bins,
                tail_bound=tail_bound,
                reverse_mask=bool(i % 2),
            )
        )
        if permutation == "shuffle":
            layers.append(nf.flows.Permute(n_features, mode="shuffle"))
        elif permutation == "lu":
            layers.append(nf.flows.LULinearPermute(n_features))
    base = nf.distributions.DiagGaussian(n_features, trainable=False)
    return nf.ConditionalNormalizingFlow(base, layers)


class FlowSurrogate(Surrogate):
    """Conditional neural-spline flow: exact density, one-pass sampling.

    Architecture: ``n_layers`` coupling splines with ``n_bins`` bins on
    ``[-tail_bound, tail_bound]``, each parameterized by a residual network of
    ``n_blocks`` blocks of width ``hidden``; ``permutation`` between them. The defaults
    (6 layers of width 64, 80 epochs) were chosen over five seeds against width 128 with
    40 epochs: held-out AUC 0.509 ± 0.009 against 0.514 ± 0.012, at 1.6–1.9× the sampling
    rate (BENCHMARKS.md, "Width 64 against 128 over five seeds"). Precision
    defaults to fp32 (spline bin search in bf16 is not trusted without a measurement).
    ``sampler`` chooses how sampling and :meth:`log_prob` evaluate the trained flow
    (:data:`SAMPLERS`; a runtime setting, not saved): the fast path falls back to
    normflows for the architectures it does not implement (``permutation="lu"``, one
    generated column). Other settings: see :class:`~simkit.surrogates.base.Surrogate`.

    >>> import numpy as np
    >>> r = np.random.default_rng(0)
    >>> mjj = r.uniform(2000, 4000, 3000); m = mjj / 20 + r.normal(0, 5, 3000)
    >>> flow = FlowSurrogate(condition=["mjj"], epochs=2, n_layers=2, hidden=16, device="cpu")
    >>> _ = flow.fit(np.column_stack([mjj, m]), names=["mjj", "m_j1"])
    >>> flow.sample(3, context=[[3000.0]] * 3, seed=0).columns
    ('mjj', 'm_j1')
    """

    kind = "flow"
    default_lr = 1e-3
    default_precision = "fp32"

    def __init__(
        self,
        *,
        n_layers: int = 6,
        hidden: int = 64,
        n_blocks: int = 2,
        n_bins: int = 8,
        tail_bound: float = 4.0,
        permutation: str = "shuffle",
        sampler: str = "auto",
        epochs: int = 80,
        **settings,
    ) -> None:
        super().__init__(epochs=epochs, **settings)
        self.sampler = sampler
        self.n_layers = n_layers
        self.hidden = hidden
        self.n_blocks = n_blocks
        self.n_bins = n_bins
        self.tail_bound = tail_bound
        self.permutation = permutation

    def _build(self, n_features: int, n_context: int) -> nn.Module:
        return build_spline_flow(
            n_features,
            n_context,
            n_layers=self.n_layers,
            hidden=self.hidden,
            n_blocks=self.n_blocks,
            n_bins=self.n_bins,
            tail_bound=self.tail_bound,
            permutation=self.permutation,
        )

    def _objectives(self) -> tuple[Mapping[str, nn.Module], list[Objective], Callable]:
        flow = self.net_
        conditional = bool(self.condition_)

        def weighted_nll(z, context, weight, logdet):
            # log p(x|c) = log q(z|c) + log|dz/dx|: the NLL in the physical units
            log_p = flow.log_prob(z, context if conditional else None) + logdet
            return -(weight * log_p).sum() / weight.sum()

        return {"flow": flow}, [Objective(weighted_nll, flow.parameters(), name="nll")], None

    def _fast_flow(self, device: torch.device) -> FastSplineFlow | None:
        """The fast evaluation of ``net_`` on ``device`` when ``sampler`` asks for it and
        the architecture allows it; rebuilt whenever the network's parameters change."""
        if self.sampler not in SAMPLERS:
            raise SimkitError(f"unknown sampler {self.sampler!r}; use {', '.join(SAMPLERS)}")
        if self.sampler == "normflows" or (self.sampler == "auto" and device.type != "cpu"):
            return None
        params = tuple(p._version for p in self.net_.parameters())
        key = (id(self.net_), str(device), params, self.sampler)
        cached = getattr(self, "_fast_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            fast = FastSplineFlow.from_normflows(self.net_).to(device)
        except UnsupportedFlow:
            fast = None
        if fast is not None and self.sampler == "torch":
            fast.compiled = False
        self._fast_cache = (key, fast)
        return fast

    def save(self, folder: str | os.PathLike, *, extra: Mapping | None = None) -> Path:
        """The model folder (:meth:`Surrogate.save`), with ``sampler.safetensors`` where
        the fast path implements this flow: what ``simkit surrogate sample`` samples
        without torch (:mod:`simkit.surrogates.sampler`)."""
        folder = super().save(folder, extra=extra)
        try:
            arrays, settings = FastSplineFlow.from_normflows(self.net_).sampler_arrays()
        except UnsupportedFlow:
            remove_sampler(folder)
        else:
            write_sampler(folder, arrays, settings)
        return folder

    def sampling_path(self, device: str | None = None) -> str:
        dev = resolve_device(device or self.device)
        fast = self._fast_flow(dev)
        if fast is None:
            return f"normflows on {dev.type}"
        if fast.compiled_for(dev):
            return f"fast path, compiled spline stage ({compiled_instruction_set()})"
        return f"fast path (torch) on {dev.type}"

    def _generate(
        self, m: int, context: torch.Tensor | None, generator: torch.Generator
    ) -> torch.Tensor:
        device = generator.device
        u = torch.randn(m, len(self.feature_columns_), generator=generator, device=device)
        fast = self._fast_flow(device)
        if fast is None:
            return self.net_.forward(u, context=context)
        with torch.autocast(device_type=device.type, enabled=False):
            return fast.forward(u, context)

    def log_prob(
        self,
        data: EventTable | np.ndarray,
        context: np.ndarray | None = None,
        *,
        batch_size: int = 65536,
    ) -> np.ndarray:
        """log density of events, in the physical units of the generated columns.

        ``data``: an :class:`EventTable` holding the model's columns (contexts are
        read from it), or an (N, F) array of the generated columns with ``context``
        (N, C). For a dequantized (integer) column this is the density of the
        dequantized variable ``n + u`` at the value given.
        """
        self._check_fitted()
        if isinstance(data, EventTable):
            if context is not None:
                raise SimkitError("the table holds the contexts: do not give them twice")
            x = data.select(self.feature_columns_).features.astype(np.float64)
            c = data.select(self.condition_).features if self.condition_ else None
        else:
            x = np.asarray(data, dtype=np.float64)
            x = x[:, None] if x.ndim == 1 else x
            c = context
        if x.ndim != 2 or x.shape[1] != len(self.feature_columns_):
            raise SimkitError(
                f"expected (events, {len(self.feature_columns_)}) values of "
                f"{', '.join(self.feature_columns_)}, got shape {x.shape}"
            )
        if self.condition_:
            if c is None:
                raise SimkitError(f"give the contexts ({', '.join(self.condition_)})")
            c = np.asarray(c, dtype=np.float64).reshape(x.shape[0], -1)
        self.transform_.check(x)
        device = next(self.net_.parameters()).device
        self.transform_.to(device)
        fast = self._fast_flow(device)
        density = self.net_.log_prob if fast is None else fast.log_prob
        out = []
        with torch.inference_mode():
            for start in range(0, x.shape[0], batch_size):
                xb = torch.as_tensor(x[start : start + batch_size], device=device)
                z, logdet = self.transform_.forward(xb)
                cb = None
                if self.condition_:
                    cb = self._context_tensor(c[start : start + batch_size], device)
                log_q = density(z.float(), cb)
                out.append((log_q.double() + logdet).cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)
