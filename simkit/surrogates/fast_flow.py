"""The normflows spline flow, re-evaluated in a few batched tensor operations for inference.

:func:`~simkit.surrogates.flow.build_spline_flow` builds its flow from normflows'
``CoupledRationalQuadraticSpline`` (Durkan et al. 2019, "Neural Spline Flows",
arXiv:1906.04032) and fixed permutations. normflows evaluates it for training, with
autograd in mind; on a CPU its sampling spends most of its time in work that sampling
does not need (measured in BENCHMARKS.md, "Fast flow sampling"):

- boolean-mask indexing of the values inside the spline's interval (``nonzero`` and
  scatter copies per spline) instead of one ``where``;
- the *unconditional* spline of each coupling's conditioning half has the same knots for
  every event, yet normflows broadcasts its parameters to every row and recomputes the
  softmaxes and cumulative sums per event;
- softplus of every bin's derivative when only the two at each value's bin are used;
- ``torch.cat`` of the networks' inputs with the context, and of the gating values for
  the GLU of each residual block, where a split matrix product and a product with
  ``sigmoid`` do the same sums;
- the division of the width and height logits by √hidden after the network, which a
  scaled output layer does for free.

:class:`FastSplineFlow` reads the parameters of such a flow and evaluates the same
function without those costs: the same knots, bins and root of the rational-quadratic
equation, in float32, equal to normflows' own evaluation to float32 rounding (tested in
``tests/simkit/test_fast_flow.py``: samples and log-densities, both directions). It
holds plain tensors (no autograd), so it is for sampling and density evaluation, not for
training; a flow it cannot read (LU permutations, the one-column autoregressive spline,
non-default activations) is refused with :class:`UnsupportedFlow`, and callers keep
normflows' path.

On a CPU its sampling direction runs through a compiled spline stage
(``simkit/surrogates/_spline.c``, built at install time where a C compiler is found; see
:func:`compiled_spline_available`): a batch's events stay in one table whose coupling
halves the compiled code transforms in place, and only the networks' matrix products
remain torch operations. Without the build, or with ``compiled = False``, every step is
a torch operation; the two agree to float32 rounding (tested).

>>> import torch
>>> from simkit.surrogates.flow import build_spline_flow
>>> flow = build_spline_flow(4, 1, n_layers=2, hidden=16).eval()
>>> fast = FastSplineFlow.from_normflows(flow)
>>> u, c = torch.randn(5, 4), torch.randn(5, 1)
>>> with torch.inference_mode():
...     bool(torch.allclose(fast.forward(u, c), flow.forward(u, c), atol=1e-5))
True
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import normflows as nf
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

#: Largest |logit| for which the bin weights are ``exp(logit)`` without subtracting the
#: maximum first: eight of exp(80) ≈ 5.5e34 stay far below float32's 3.4e38, exp(−80) far
#: above its smallest normal number. Outside it the chunk takes ``torch.softmax``.
EXP_SAFE = 80.0


#: Rows per batch on a CPU: the spline's per-bin tensors of a batch (2 MB) stay in cache.
BATCH_ROWS = 4096

try:  # the compiled sampling direction (_spline.c), built at install time where it can be
    from simkit.surrogates import _spline as _compiled
except ImportError:  # no C compiler at install time: the torch path below
    _compiled = None

#: Largest bin count the compiled spline takes (its per-value scratch arrays).
COMPILED_MAX_BINS = 0 if _compiled is None else _compiled.max_bins


def compiled_spline_available() -> bool:
    """Whether the compiled spline stage (``simkit/surrogates/_spline.c``) was built.

    It is built by ``pip install`` where a C compiler is found; without it sampling
    takes the torch path of this module, which gives the same numbers to float32
    rounding at 1.7–2.1× the time (BENCHMARKS.md, "A compiled spline stage").
    """
    return _compiled is not None


def compiled_instruction_set() -> str | None:
    """The build of the compiled stage in use (``avx512``, ``avx2+fma`` or ``x86-64`` on
    x86-64, ``generic`` elsewhere; the best the CPU runs, chosen when it loads, each giving
    the same numbers); ``None`` where it was not built."""
    return None if _compiled is None else _compiled.instruction_set


class UnsupportedFlow(ValueError):
    """The flow has a layer :class:`FastSplineFlow` does not implement."""


# --------------------------------------------------------------------------- spline maths


def spline_knots(logits: torch.Tensor, tail_bound: float, min_size: float) -> torch.Tensor:
    """Knot positions ``(..., K + 1)`` on ``[-tail_bound, tail_bound]`` from bin logits
    ``(..., K)``: softmax, a floor of ``min_size`` per bin, cumulative sum, exact ends.

    normflows' ``rational_quadratic_spline`` steps for ``cumwidths`` / ``cumheights``, in
    the same order of operations; used for the knots every event shares.
    """
    k = logits.shape[-1]
    sizes = torch.softmax(logits, dim=-1)
    sizes = min_size + (1 - min_size * k) * sizes
    knots = F.pad(torch.cumsum(sizes, dim=-1), (1, 0))
    knots = 2 * tail_bound * knots - tail_bound
    knots[..., 0] = -tail_bound
    knots[..., -1] = tail_bound
    return knots


def boundary_logit(min_derivative: float) -> float:
    """The derivative logit that normflows pins at both ends (slope 1: linear tails)."""
    return float(np.log(np.exp(1 - min_derivative) - 1))


@dataclass(frozen=True)
class SplineBins:
    """The bin each value falls in, per value (all (B, D)): its lower edge and size on
    the input (``x``) and output (``y``) axes, and the derivatives at its two knots."""

    x_low: torch.Tensor
    x_size: torch.Tensor
    y_low: torch.Tensor
    y_size: torch.Tensor
    d_low: torch.Tensor
    d_high: torch.Tensor


def rq_transform(
    values: torch.Tensor,
    bins: SplineBins,
    *,
    tail_bound: float,
    inverse: bool,
    log_det: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A monotonic rational-quadratic spline with linear (identity) tails, or its inverse,
    evaluated in the bins already found for ``values`` (B, D).

    Returns the transformed values and ``log |d out / d in|`` per value (``None`` when
    ``log_det`` is false); outside ``[-tail_bound, tail_bound]`` the map is the identity.
    Gregory & Delbourgo (1982); the inverse solves the quadratic as in Durkan et al.
    (2019), eq. 6–8 and appendix A, with normflows' arithmetic.
    """
    inside = (values >= -tail_bound) & (values <= tail_bound)
    v = values.clamp(-tail_bound, tail_bound)
    width, height = bins.x_size, bins.y_size
    d_lo, d_hi = bins.d_low, bins.d_high
    delta = height / width
    slope_sum = d_lo + d_hi - 2 * delta
    if inverse:
        dy = v - bins.y_low
        a = dy * slope_sum + height * (delta - d_lo)
        b = height * d_lo - dy * slope_sum
        c = -delta * dy
        theta = (2 * c) / (-b - torch.sqrt(b.square() - 4 * a * c))
        out = theta * width + bins.x_low
    else:
        theta = (v - bins.x_low) / width
        t1mt = theta * (1 - theta)
        out = bins.y_low + height * (delta * theta.square() + d_lo * t1mt) / (
            delta + slope_sum * t1mt
        )
    out = torch.where(inside, out, values)
    if not log_det:
        return out, None
    t1mt = theta * (1 - theta)
    numerator = delta.square() * (
        d_hi * theta.square() + 2 * delta * t1mt + d_lo * (1 - theta).square()
    )
    logabsdet = torch.log(numerator) - 2 * torch.log(delta + slope_sum * t1mt)
    if inverse:
        logabsdet = -logabsdet
    return out, torch.where(inside, logabsdet, torch.zeros_like(logabsdet))


def _shared_bins(values: torch.Tensor, table: torch.Tensor, knots: torch.Tensor) -> SplineBins:
    """Bins of a spline whose knots every row shares: ``knots`` (D, K − 1) the interior
    knots of the searched axis, ``table`` (6, D·K) the bins' numbers (SplineBins order)."""
    d, interior = knots.shape
    # normflows' searchsorted: the bin is the number of interior knots at or below the value
    bin_idx = (values[..., None] >= knots).sum(-1, dtype=torch.int32)
    at = torch.arange(d, device=values.device, dtype=torch.int32)
    flat = (bin_idx + at * (interior + 1)).view(-1)
    return SplineBins(*table.index_select(1, flat).view(6, *values.shape))


def _take(source: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``source.flatten()[index]`` (``index_select`` on a flat view: ~3× ``torch.take``)."""
    return source.reshape(-1).index_select(0, index.reshape(-1)).view(index.shape)


def conditional_bins(
    values: torch.Tensor,
    bin_logits: torch.Tensor,
    derivative_logits: torch.Tensor,
    *,
    n_bins: int,
    tail_bound: float,
    min_bin_width: float,
    min_bin_height: float,
    min_derivative: float,
    inverse: bool,
) -> SplineBins:
    """Bins of a spline with its own knots per value, from the network's output.

    ``bin_logits`` (B, 2, D, K): the width (``[:, 0]``) and height (``[:, 1]``) logits of
    each value's bins, already divided by √hidden; ``derivative_logits`` (B, D, K + 1):
    those of the knots' derivatives, the pinned outer ones included. normflows builds
    every knot of every value; only the bin that holds the value is needed, so the bins
    are kept as cumulative weights and turned into coordinates for that bin alone.
    """
    b, d = values.shape
    k = n_bins
    device = values.device
    two_t = 2 * tail_bound
    lowest, highest = torch.aminmax(bin_logits)
    if -EXP_SAFE <= float(lowest) and float(highest) <= EXP_SAFE:
        # softmax without its max-subtraction pass: exp cannot overflow, and the weights
        # are normalized only where they are used
        weights = torch.exp(bin_logits)
    else:
        weights = torch.softmax(bin_logits, dim=-1)
    upper = torch.cumsum(weights, dim=-1)  # each bin's upper edge, times the row's total
    side, other = (1, 0) if inverse else (0, 1)
    mins = (min_bin_width, min_bin_height)
    # the searched axis: its knots in coordinates, ends exact as in normflows; the bin
    # found and the edges used come from the same numbers
    scale = (1 - mins[side] * k) * two_t / upper[:, side, :, k - 1 :]
    steps = torch.arange(1, k, device=device, dtype=values.dtype) * (mins[side] * two_t)
    knots = torch.empty(b, d, k + 1, device=device, dtype=values.dtype)
    knots[..., 0] = -tail_bound
    torch.addcmul(steps - tail_bound, upper[:, side, :, : k - 1], scale, out=knots[..., 1:k])
    knots[..., k] = tail_bound
    # normflows' searchsorted: the bin is the number of interior knots at or below the value
    bin_idx = (values[..., None] >= knots[..., 1:k]).sum(-1, dtype=torch.int32)
    at = torch.arange(d, device=device, dtype=torch.int32)
    rows = torch.arange(b, device=device, dtype=torch.int32)[:, None]
    flat = rows * (d * (k + 1)) + at * (k + 1) + bin_idx
    low, high = _take(knots, torch.stack((flat, flat + 1)))
    # the other axis: only the bin's own edge and size, from the cumulative weights
    flat = rows * (2 * d * k) + (other * d + at) * k + bin_idx
    fraction = _take(weights, flat)
    scale = (1 - mins[other] * k) * two_t / upper[:, other, :, k - 1]
    other_low = (_take(upper, flat) - fraction) * scale
    other_low += (bin_idx * mins[other]) * two_t - tail_bound
    other_size = fraction * scale + mins[other] * two_t
    # derivatives at the bin's two knots; the outer knots are pinned to slope 1
    flat = rows * (d * (k + 1)) + at * (k + 1) + bin_idx
    ends = _take(derivative_logits, torch.stack((flat, flat + 1)))
    d_low, d_high = min_derivative + F.softplus(ends)
    if inverse:
        return SplineBins(other_low, other_size, low, high - low, d_low, d_high)
    return SplineBins(low, high - low, other_low, other_size, d_low, d_high)


def _float32_rows(tensor: torch.Tensor, rows: int, columns: int, what: str) -> int:
    """The address of ``tensor`` after checking that it is what the compiled code reads:
    contiguous float32 on the CPU, ``rows`` × ``columns``."""
    if (
        tensor.dtype != torch.float32
        or tensor.device.type != "cpu"
        or not tensor.is_contiguous()
        or tensor.numel() != rows * columns
    ):
        raise ValueError(
            f"compiled spline: {what} must be contiguous float32 on the CPU with {rows} × "
            f"{columns} values, got {tensor.dtype} {tuple(tensor.shape)} on {tensor.device}"
        )
    return tensor.data_ptr()


# --------------------------------------------------------------------------- layers


@dataclass(frozen=True)
class _Block:
    """One residual block: ``h + gate ⊙ L1(relu(L0(relu(h))))``, gate = σ(context layer)."""

    w0: torch.Tensor
    b0: torch.Tensor
    w1: torch.Tensor
    b1: torch.Tensor


@dataclass(frozen=True)
class _Coupling:
    """One coupling layer and the fixed permutation after it."""

    identity: torch.Tensor  # columns that condition (and get the shared spline)
    transform: torch.Tensor  # columns transformed by the conditional spline
    # cat(identity part, transformed part) → the layer's output, permutation included
    sample_order: torch.Tensor
    permutation: torch.Tensor  # the Permute after it: output column c = coupling's perm[c]
    # the same for the density direction: the permutation undone first
    density_identity: torch.Tensor
    density_transform: torch.Tensor
    density_order: torch.Tensor
    # the unconditional spline of the identity columns, the same for every event: its
    # bins (6, D·K) in SplineBins order and the interior knots (D, K − 1) of each axis
    free_bins: torch.Tensor
    free_knots_x: torch.Tensor
    free_knots_y: torch.Tensor
    # the parameter network
    w_in: torch.Tensor  # acts on cat(conditioner, context)
    b_in: torch.Tensor
    gate_w: torch.Tensor | None  # every block's context layer, stacked: the GLU gates
    gate_b: torch.Tensor | None
    blocks: tuple[_Block, ...]
    w_bins: torch.Tensor  # output rows of the width then the height logits (2·D·K)
    b_bins: torch.Tensor
    w_slopes: torch.Tensor  # output rows of the derivative logits, padded (D·(K + 1))
    b_slopes: torch.Tensor


def _linear(layer: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    return layer.weight.detach().float().clone(), layer.bias.detach().float().clone()


def _check_coupling(layer: nf.flows.CoupledRationalQuadraticSpline) -> None:
    prqct = layer.prqct
    net = prqct.transform_net
    if type(prqct) is not nf.flows.neural_spline.coupling.PiecewiseRationalQuadraticCoupling:
        raise UnsupportedFlow(f"coupling {type(prqct).__name__}")
    if prqct.tails != "linear" or torch.is_tensor(prqct.tail_bound):
        raise UnsupportedFlow("only linear tails with one tail bound are implemented")
    free = prqct.unconditional_transform
    if free is None or free.tails != "linear" or torch.is_tensor(free.tail_bound):
        raise UnsupportedFlow("expected normflows' unconditional spline with linear tails")
    if type(net) is not nf.nets.ResidualNet or net.preprocessing is not None:
        raise UnsupportedFlow(f"parameter network {type(net).__name__}")
    for block in net.blocks:
        if not isinstance(block.activation, nn.ReLU) or block.use_batch_norm:
            raise UnsupportedFlow("only ReLU residual blocks without batch norm")
        if block.dropout.p != 0 and block.training:
            raise UnsupportedFlow("dropout in training mode")


def _coupling(layer, permute: nf.flows.Permute | None) -> tuple[_Coupling, int]:
    """The tensors of one normflows coupling, and its number of bins."""
    _check_coupling(layer)
    prqct = layer.prqct
    net = prqct.transform_net
    k = prqct.num_bins
    n_transform = len(prqct.transform_features)
    tail = float(prqct.tail_bound)
    free = prqct.unconditional_transform
    with torch.no_grad():
        free_w = spline_knots(free.unnormalized_widths.float(), tail, free.min_bin_width)
        free_h = spline_knots(free.unnormalized_heights.float(), tail, free.min_bin_height)
        free_d = free.min_derivative + F.softplus(
            F.pad(
                free.unnormalized_derivatives.float(),
                (1, 1),
                value=boundary_logit(free.min_derivative),
            )
        )
        free_bins = torch.stack(
            [
                free_w[:, :-1],
                free_w[:, 1:] - free_w[:, :-1],
                free_h[:, :-1],
                free_h[:, 1:] - free_h[:, :-1],
                free_d[:, :-1],
                free_d[:, 1:],
            ]
        ).reshape(6, -1)
    w_in, b_in = _linear(net.initial_layer)  # on cat(conditioner, context), as normflows
    gate_w: list[torch.Tensor] = []
    gate_b: list[torch.Tensor] = []
    blocks = []
    for block in net.blocks:
        w0, b0 = _linear(block.linear_layers[0])
        w1, b1 = _linear(block.linear_layers[1])
        blocks.append(_Block(w0, b0, w1, b1))
        if net.context_features is not None:
            w, b = _linear(block.context_layer)
            gate_w.append(w)
            gate_b.append(b)
    # output rows regrouped from per-column (D, 3K−1) to [widths | heights | derivatives],
    # with normflows' division of the width and height logits by √hidden folded in
    w_out, b_out = _linear(net.final_layer)
    per = w_out.shape[0] // n_transform
    rows = torch.arange(w_out.shape[0]).view(n_transform, per)
    order = torch.cat(
        (rows[:, :k].reshape(-1), rows[:, k : 2 * k].reshape(-1), rows[:, 2 * k :].reshape(-1))
    )
    scale = torch.ones(w_out.shape[0])
    scale[: 2 * k * n_transform] = 1 / math.sqrt(net.hidden_features)
    w_out = w_out[order] * scale[:, None]
    b_out = b_out[order] * scale
    n_bin_rows = 2 * k * n_transform
    # the derivative rows with the two pinned outer knots of each column as rows of zero
    # weight and the boundary logit as bias: the layer's output is the padded logits
    w_slopes = w_out[n_bin_rows:].view(n_transform, k - 1, -1)
    w_slopes = F.pad(w_slopes, (0, 0, 1, 1)).reshape(n_transform * (k + 1), -1)
    b_slopes = b_out[n_bin_rows:].view(n_transform, k - 1)
    b_slopes = F.pad(b_slopes, (1, 1), value=boundary_logit(prqct.min_derivative)).reshape(-1)
    identity = prqct.identity_features.clone()
    transform = prqct.transform_features.clone()
    position = torch.argsort(torch.cat((identity, transform)))  # column → place in the cat
    if permute is not None:
        perm, inv = permute.perm.clone(), permute.inv_perm.clone()
    else:
        perm = inv = torch.arange(prqct.features)
    coupling = _Coupling(
        identity=identity,
        transform=transform,
        sample_order=position[perm],
        permutation=perm,
        density_identity=inv[identity],
        density_transform=inv[transform],
        density_order=position,
        free_bins=free_bins.contiguous(),
        free_knots_x=free_w[:, 1:k].contiguous(),
        free_knots_y=free_h[:, 1:k].contiguous(),
        w_in=w_in,
        b_in=b_in,
        gate_w=torch.cat(gate_w).contiguous() if gate_w else None,
        gate_b=torch.cat(gate_b) if gate_b else None,
        blocks=tuple(blocks),
        w_bins=w_out[:n_bin_rows].contiguous(),
        b_bins=b_out[:n_bin_rows].contiguous(),
        w_slopes=w_slopes.contiguous(),
        b_slopes=b_slopes.contiguous(),
    )
    return coupling, k


# --------------------------------------------------------------------------- the flow


@dataclass(frozen=True)
class _TableLayer:
    """One coupling in the compiled path's event table: the table columns of its
    conditioning and transformed halves (int32), its network's first layer spread over
    the table's columns (zero weight on the transformed half), and its shared spline's
    bin table and knots (checked once for the compiled code)."""

    identity: torch.Tensor
    transform: torch.Tensor
    w_in: torch.Tensor
    free_bins: torch.Tensor
    free_knots: torch.Tensor


class _Scratch(threading.local):
    """Per-thread buffers of the compiled sampling path, reused from batch to batch: a
    fresh multi-MB tensor per layer costs its page faults again on every batch (the bias
    copy into a fresh (4096, 128) output took as long as its matrix product)."""

    def __reduce__(self):
        # buffers are a cache: a copy (deepcopy, pickle) starts empty
        return (_Scratch, ())

    def take(self, name: str, rows: int, columns: int) -> torch.Tensor:
        """A contiguous (rows, columns) float32 buffer, its contents undefined."""
        buffer = self.__dict__.get(name)
        if buffer is None or buffer.shape[0] < rows or buffer.shape[1] != columns:
            buffer = self.__dict__[name] = torch.empty(rows, columns)
        return buffer[:rows]


class FastSplineFlow:
    """Inference-only evaluation of a spline flow from :func:`build_spline_flow`.

    ``forward(u, context)`` maps base noise to events (normflows'
    ``ConditionalNormalizingFlow.forward``, what sampling runs);
    ``forward_and_log_det`` adds ``log |det ∂x/∂u|``; ``log_prob(x, context)`` is the
    model density (normflows' ``log_prob``). Build it with :meth:`from_normflows`; it
    copies the parameters, so rebuild it after the flow changes.
    """

    def __init__(
        self,
        couplings: tuple[_Coupling, ...],
        *,
        n_features: int,
        n_context: int,
        n_bins: int,
        tail_bound: float,
        min_bin_width: float,
        min_bin_height: float,
        min_derivative: float,
        base_loc: torch.Tensor,
        base_log_scale: torch.Tensor,
    ) -> None:
        self.couplings = couplings
        self.n_features = n_features
        self.n_context = n_context
        self.n_bins = n_bins
        self.tail_bound = tail_bound
        self.min_bin_width = min_bin_width
        self.min_bin_height = min_bin_height
        self.min_derivative = min_derivative
        self.base_loc = base_loc
        self.base_log_scale = base_log_scale
        #: sample on a CPU through the compiled spline stage where it was built; set
        #: False for the torch path (the same numbers to float32 rounding)
        self.compiled = compiled_spline_available() and n_bins <= COMPILED_MAX_BINS
        self._scratch = _Scratch()

    @classmethod
    def from_normflows(cls, flow: nf.ConditionalNormalizingFlow) -> FastSplineFlow:
        """Read a flow of ``CoupledRationalQuadraticSpline`` layers, each optionally
        followed by a ``Permute(mode="shuffle")``, over a fixed ``DiagGaussian`` base.

        Raises :class:`UnsupportedFlow` for anything else.
        """
        layers = list(flow.flows)
        base = flow.q0
        if type(base) is not nf.distributions.DiagGaussian or base.temperature is not None:
            raise UnsupportedFlow(f"base distribution {type(base).__name__}")
        couplings: list[_Coupling] = []
        settings = None
        i = 0
        while i < len(layers):
            layer = layers[i]
            if type(layer) is not nf.flows.CoupledRationalQuadraticSpline:
                raise UnsupportedFlow(f"layer {type(layer).__name__}")
            permute = None
            if i + 1 < len(layers) and type(layers[i + 1]) is nf.flows.Permute:
                permute = layers[i + 1]
                if permute.mode != "shuffle":
                    raise UnsupportedFlow(f"Permute(mode={permute.mode!r})")
                i += 1
            coupling, k = _coupling(layer, permute)
            prqct = layer.prqct
            these = (
                k,
                float(prqct.tail_bound),
                prqct.min_bin_width,
                prqct.min_bin_height,
                prqct.min_derivative,
                prqct.features,
                prqct.transform_net.context_features or 0,
            )
            if settings is not None and these != settings:
                raise UnsupportedFlow("couplings with different spline settings")
            settings = these
            couplings.append(coupling)
            i += 1
        if settings is None:
            raise UnsupportedFlow("a flow without layers")
        k, tail, min_w, min_h, min_d, n_features, n_context = settings
        return cls(
            tuple(couplings),
            n_features=n_features,
            n_context=n_context,
            n_bins=k,
            tail_bound=tail,
            min_bin_width=min_w,
            min_bin_height=min_h,
            min_derivative=min_d,
            base_loc=base.loc.detach().float().reshape(-1).clone(),
            base_log_scale=base.log_scale.detach().float().reshape(-1).clone(),
        )

    # ------------------------------------------------------------------ pieces

    def _check_context(self, context: torch.Tensor | None) -> torch.Tensor | None:
        if not self.n_context:
            if context is not None:
                raise ValueError("this flow takes no context")
            return None
        if context is None:
            raise ValueError("this flow needs a context")
        return context.float()

    def _network(
        self, coupling: _Coupling, conditioner: torch.Tensor, context: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """normflows' ``ResidualNet`` (its GLU of a concatenation is a product with σ):
        the bin logits (B, 2·D·K) and the padded derivative logits (B, D·(K + 1))."""
        if context is None:
            hidden = torch.addmm(coupling.b_in, conditioner, coupling.w_in.t())
        else:
            hidden = torch.addmm(
                coupling.b_in, torch.cat((conditioner, context), dim=1), coupling.w_in.t()
            )
        return self._residual_blocks(coupling, hidden, context)

    def _residual_blocks(
        self,
        coupling: _Coupling,
        hidden: torch.Tensor,
        context: torch.Tensor | None,
        scratch: _Scratch | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The network after its first layer, from that layer's output ``hidden``; with
        ``scratch``, its outputs and temporaries are the thread's reused buffers."""
        b, width = hidden.shape
        take = (lambda name, n: scratch.take(name, b, n)) if scratch else (lambda name, n: None)
        if context is not None:
            gates = torch.addmm(coupling.gate_b, context, coupling.gate_w.t()).sigmoid_()
        for j, block in enumerate(coupling.blocks):
            t = torch.clamp_min(hidden, 0.0, out=take("relu", width))  # relu
            t = torch.addmm(block.b0, t, block.w0.t(), out=take("inner", width)).relu_()
            t = torch.addmm(block.b1, t, block.w1.t(), out=take("outer", width))
            if context is not None:
                t *= gates[:, j * width : (j + 1) * width]
            hidden += t
        bins = torch.addmm(
            coupling.b_bins, hidden, coupling.w_bins.t(), out=take("bins", len(coupling.b_bins))
        )
        slopes = torch.addmm(
            coupling.b_slopes,
            hidden,
            coupling.w_slopes.t(),
            out=take("slopes", len(coupling.b_slopes)),
        )
        return bins, slopes

    def _conditional_spline(self, values: torch.Tensor, params, *, inverse: bool, log_det: bool):
        b, d = values.shape
        bin_logits, slope_logits = params
        bins = conditional_bins(
            values,
            bin_logits.view(b, 2, d, self.n_bins),
            slope_logits.view(b, d, self.n_bins + 1),
            n_bins=self.n_bins,
            tail_bound=self.tail_bound,
            min_bin_width=self.min_bin_width,
            min_bin_height=self.min_bin_height,
            min_derivative=self.min_derivative,
            inverse=inverse,
        )
        return rq_transform(
            values, bins, tail_bound=self.tail_bound, inverse=inverse, log_det=log_det
        )

    def _free_spline(self, coupling: _Coupling, values, *, inverse: bool, log_det: bool):
        knots = coupling.free_knots_y if inverse else coupling.free_knots_x
        bins = _shared_bins(values, coupling.free_bins, knots)
        return rq_transform(
            values, bins, tail_bound=self.tail_bound, inverse=inverse, log_det=log_det
        )

    # ------------------------------------------------------------------ directions

    def _compiled_plan(self) -> tuple[list[_TableLayer], torch.Tensor]:
        """Where each coupling's halves sit in the event table of the compiled path, and
        the table column of each output column at the end.

        That path keeps a batch's events in one (B, F + C) table, the context in its last
        C columns, and transforms each coupling's halves in place; a permutation only
        relabels columns."""
        plan = getattr(self, "_plan", None)
        if plan is not None:
            return plan
        f, c, k = self.n_features, self.n_context, self.n_bins
        where = torch.arange(f)  # the table column of each of the flow's columns now
        layers = []
        for coupling in self.couplings:
            identity, transform = where[coupling.identity], where[coupling.transform]
            w_in = coupling.w_in.new_zeros(coupling.w_in.shape[0], f + c)
            w_in[:, identity] = coupling.w_in[:, : len(identity)]
            w_in[:, f:] = coupling.w_in[:, len(identity) :]
            d = len(identity)
            _float32_rows(coupling.free_bins, 6, d * k, "bin table")
            _float32_rows(coupling.free_knots_y, d, k - 1, "knots")
            layers.append(
                _TableLayer(
                    identity=identity.int(),
                    transform=transform.int(),
                    w_in=w_in,
                    free_bins=coupling.free_bins,
                    free_knots=coupling.free_knots_y,
                )
            )
            where = where[coupling.permutation]
        self._plan = (layers, where)
        return self._plan

    def sampler_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        """The compiled sampling path's numbers as numpy arrays (float32, int32 columns),
        and its settings: what the torch-free sampler (:mod:`simkit.surrogates.sampler`)
        evaluates. Keys: ``order`` (the table column of each output column) and, per
        coupling ``i``, ``c{i}.<name>`` with the names of :class:`_TableLayer` and
        :class:`_Coupling` (``c{i}.b{j}.w0`` … for residual block ``j``)."""
        fast = self.to("cpu")
        layers, order = fast._compiled_plan()
        arrays = {"order": order}
        for i, (coupling, layer) in enumerate(zip(fast.couplings, layers, strict=True)):
            named = {
                "identity": layer.identity,
                "transform": layer.transform,
                "w_in": layer.w_in,
                "b_in": coupling.b_in,
                "free_bins": layer.free_bins,
                "free_knots": layer.free_knots,
                "w_bins": coupling.w_bins,
                "b_bins": coupling.b_bins,
                "w_slopes": coupling.w_slopes,
                "b_slopes": coupling.b_slopes,
            }
            if coupling.gate_w is not None:
                named.update(gate_w=coupling.gate_w, gate_b=coupling.gate_b)
            for j, block in enumerate(coupling.blocks):
                named.update({f"b{j}.{k}": getattr(block, k) for k in ("w0", "b0", "w1", "b1")})
            arrays.update({f"c{i}.{k}": v for k, v in named.items()})
        arrays = {
            k: np.ascontiguousarray(v.numpy(), np.float32 if v.is_floating_point() else np.int32)
            for k, v in arrays.items()
        }
        settings = {
            "n_features": self.n_features,
            "n_context": self.n_context,
            "n_bins": self.n_bins,
            "tail_bound": self.tail_bound,
            "min_bin_width": self.min_bin_width,
            "min_bin_height": self.min_bin_height,
            "min_derivative": self.min_derivative,
            "couplings": len(self.couplings),
            "blocks": [len(c.blocks) for c in self.couplings],
        }
        return arrays, settings

    def _sample_compiled(self, u: torch.Tensor, context, log_det: bool):
        """``_sample_batch`` through the compiled spline stage (``_spline.c``)."""
        b, f = u.shape
        k = self.n_bins
        scratch = self._scratch
        table = scratch.take("table", b, f + self.n_context)
        table[:, :f] = u
        if context is not None:
            table[:, f:] = context
        stride = table.shape[1]
        total = torch.zeros(b) if log_det else None
        total_at = 0 if total is None else total.data_ptr()
        layers, order = self._compiled_plan()
        for coupling, layer in zip(self.couplings, layers, strict=True):
            d_free, d = len(layer.identity), len(layer.transform)
            _compiled.shared_inverse(
                table.data_ptr(), stride, layer.identity.data_ptr(), d_free,
                layer.free_bins.data_ptr(), layer.free_knots.data_ptr(),
                total_at, b, k, self.tail_bound,
            )  # fmt: skip
            hidden = torch.addmm(
                coupling.b_in,
                table,
                layer.w_in.t(),
                out=scratch.take("hidden", b, len(coupling.b_in)),
            )
            bin_logits, slope_logits = self._residual_blocks(coupling, hidden, context, scratch)
            _compiled.conditional_inverse(
                table.data_ptr(), stride, layer.transform.data_ptr(), d,
                _float32_rows(bin_logits, b, 2 * d * k, "bin logits"),
                _float32_rows(slope_logits, b, d * (k + 1), "derivative logits"),
                total_at, b, k, self.tail_bound,
                self.min_bin_width, self.min_bin_height, self.min_derivative,
            )  # fmt: skip
        z = table[:, order]
        return (z,) if total is None else (z, total)

    def compiled_for(self, device: torch.device | str) -> bool:
        """Whether sampling on ``device`` goes through the compiled spline stage."""
        return self.compiled and torch.device(device).type == "cpu"

    def _sample_batch(self, u: torch.Tensor, context, log_det: bool):
        z = u.float()
        if self.compiled_for(z.device):
            return self._sample_compiled(z, context, log_det)
        total = torch.zeros(z.shape[0], device=z.device) if log_det else None
        for coupling in self.couplings:
            # normflows' sampling direction of a coupling is its PiecewiseCoupling.inverse
            conditioner, ld_free = self._free_spline(
                coupling, z[:, coupling.identity], inverse=True, log_det=log_det
            )
            params = self._network(coupling, conditioner, context)
            moved, ld = self._conditional_spline(
                z[:, coupling.transform], params, inverse=True, log_det=log_det
            )
            z = torch.cat((conditioner, moved), dim=1)[:, coupling.sample_order]
            if log_det:
                total += ld_free.sum(1) + ld.sum(1)
        return (z,) if total is None else (z, total)

    def _density_batch(self, x: torch.Tensor, context):
        z = x.float()
        total = torch.zeros(z.shape[0], device=z.device)
        for coupling in reversed(self.couplings):
            conditioner = z[:, coupling.density_identity]
            params = self._network(coupling, conditioner, context)
            moved, ld = self._conditional_spline(
                z[:, coupling.density_transform], params, inverse=False, log_det=True
            )
            freed, ld_free = self._free_spline(coupling, conditioner, inverse=False, log_det=True)
            z = torch.cat((freed, moved), dim=1)[:, coupling.density_order]
            total += ld_free.sum(1) + ld.sum(1)
        return z, total

    def _map(self, kernel, x: torch.Tensor, context, batch_size: int | None, threads: int | None):
        """``kernel(x_batch, context_batch)`` over row batches of ``x``: cache-sized batches
        on a CPU, run on ``threads`` threads (default: torch's intra-op thread count) with
        one intra-op thread each, so that the result does not depend on the thread count."""
        context = self._check_context(context)
        n = x.shape[0]
        if x.device.type != "cpu" or n == 0:
            return kernel(x, context)
        rows = int(batch_size or BATCH_ROWS)
        starts = range(0, n, rows)
        threads = max(1, min(int(threads or torch.get_num_threads()), len(starts)))

        def run(start: int):
            stop = min(start + rows, n)
            return kernel(x[start:stop], None if context is None else context[start:stop])

        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            if threads == 1:
                parts = [run(start) for start in starts]
            else:
                with ThreadPoolExecutor(threads) as pool:
                    parts = list(pool.map(run, starts))
        finally:
            torch.set_num_threads(before)
        return tuple(torch.cat(pieces) for pieces in zip(*parts, strict=True))

    def forward(
        self,
        u: torch.Tensor,
        context: torch.Tensor | None = None,
        *,
        batch_size: int | None = None,
        threads: int | None = None,
    ) -> torch.Tensor:
        """Base noise ``u`` (B, F) → events (B, F) in the flow's space."""

        def kernel(ub, cb):
            return self._sample_batch(ub, cb, log_det=False)

        return self._map(kernel, u, context, batch_size, threads)[0]

    def forward_and_log_det(
        self,
        u: torch.Tensor,
        context: torch.Tensor | None = None,
        *,
        batch_size: int | None = None,
        threads: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Events and ``log |det ∂x/∂u|`` per event."""

        def kernel(ub, cb):
            return self._sample_batch(ub, cb, log_det=True)

        return self._map(kernel, u, context, batch_size, threads)

    def inverse_and_log_det(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        *,
        batch_size: int | None = None,
        threads: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Events → base noise and ``log |det ∂u/∂x|`` per event."""
        return self._map(self._density_batch, x, context, batch_size, threads)

    def base_log_prob(self, u: torch.Tensor) -> torch.Tensor:
        """log density of the diagonal Gaussian base at ``u``."""
        scale = torch.exp(self.base_log_scale)
        return -0.5 * self.n_features * math.log(2 * math.pi) - torch.sum(
            self.base_log_scale + 0.5 * ((u - self.base_loc) / scale).square(), dim=1
        )

    def log_prob(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        *,
        batch_size: int | None = None,
        threads: int | None = None,
    ) -> torch.Tensor:
        """log density of events ``x`` (B, F) in the flow's space."""
        u, log_det = self.inverse_and_log_det(x, context, batch_size=batch_size, threads=threads)
        return self.base_log_prob(u) + log_det

    def to(self, device: torch.device | str) -> FastSplineFlow:
        """A copy with every tensor on ``device``."""

        def move(value):
            if torch.is_tensor(value):
                return value.to(device)
            if isinstance(value, tuple):
                return tuple(move(v) for v in value)
            if isinstance(value, (_Block, _Coupling)):
                return type(value)(
                    **{f: move(getattr(value, f)) for f in value.__dataclass_fields__}
                )
            return value

        copy = object.__new__(FastSplineFlow)
        copy.__dict__.update(
            {k: move(v) for k, v in self.__dict__.items() if k not in ("_plan", "_scratch")}
        )
        copy._scratch = _Scratch()
        return copy
