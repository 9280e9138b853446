"""The column transform's bijection as array functions, for torch tensors and numpy
arrays alike.

:class:`~simkit.surrogates.transforms.ColumnTransform` (a torch module: fitted buffers,
saved with the model) evaluates its maps through these functions with :data:`TORCH`
operations; the torch-free sampler (:mod:`simkit.surrogates.sampler`) evaluates the same
functions with :data:`NUMPY` operations on the saved numbers. One implementation, two
array libraries: the operations are the same sequence of elementwise steps, so the two
agree to the last bit where the libraries' ``exp``/``log`` do (tested to float32
rounding in ``tests/simkit/test_sampler.py``).

The maps, in the order :meth:`forward` applies them: the azimuthal frame (relative
angles measured from the reference's back-to-back direction, modulo 2π), then per column
``log(x − LO)`` or ``logit((x − LO)/(HI − LO))`` or the identity, then the
standardization ``(y − mean)/std``. :func:`inverse` undoes them and floors the discrete
(dequantized) columns back to integers.

>>> import numpy as np
>>> config = {"columns": ["m", "tau"], "kinds": ["log", "logit"], "discrete": [0, 0]}
>>> numbers = {"mean": [0.0, 0.0], "std": [1.0, 1.0], "low": [0.0, 0.0], "high": [1.0, 1.0]}
>>> maps = ColumnMaps.from_config(config, numbers, np.asarray)
>>> z, _ = forward(np.array([[1.0, 0.5]]), maps, NUMPY)
>>> z.tolist(), inverse(z, maps, NUMPY).tolist()
([[0.0, 0.0]], [[1.0, 0.5]])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simkit.errors import SimkitError

#: The relative azimuth is measured from the reference's back-to-back direction (φ₁ + π):
#: a dijet's peak then sits at δφ = 0, far from the wrap at ±π.
AZIMUTH_OFFSET = math.pi


@dataclass(frozen=True)
class Ops:
    """The elementwise operations of one array library."""

    exp: Callable
    log: Callable
    log1p: Callable
    floor: Callable
    sigmoid: Callable
    remainder: Callable
    copy: Callable
    zeros_rows: Callable  # x → zeros of x's dtype (and device), one per row


def _np_sigmoid(x: np.ndarray) -> np.ndarray:
    # 1 / (1 + e^-x) without overflow warnings: e^-x is inf for x < -88 (float32), 1/inf = 0
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


NUMPY = Ops(
    exp=np.exp,
    log=np.log,
    log1p=np.log1p,
    floor=np.floor,
    sigmoid=_np_sigmoid,
    remainder=np.remainder,
    copy=np.copy,
    zeros_rows=lambda x: np.zeros(x.shape[0], dtype=x.dtype),
)


def torch_ops() -> Ops:
    """:class:`Ops` of torch (imported here: this module itself does not need torch)."""
    import torch

    return Ops(
        exp=torch.exp,
        log=torch.log,
        log1p=torch.log1p,
        floor=torch.floor,
        sigmoid=torch.sigmoid,
        remainder=torch.remainder,
        copy=torch.clone,
        zeros_rows=lambda x: torch.zeros(x.shape[0], dtype=x.dtype, device=x.device),
    )


@dataclass(frozen=True)
class ColumnMaps:
    """A fitted transform's numbers as arrays of one library, dtype and device, and the
    columns of each kind."""

    mean: Any
    std: Any
    low: Any
    high: Any
    log: list[int]
    logit: list[int]
    discrete: list[int]
    reference: int | None = None  # azimuthal frame: the reference angle's column
    relative: list[int] | None = None  # … and the columns measured from it
    offset: float = AZIMUTH_OFFSET

    @classmethod
    def from_config(cls, config: Mapping, numbers: Mapping, array: Callable) -> ColumnMaps:
        """From a transform's description (``ColumnTransform.config()``: columns, kinds,
        discrete, azimuth) and its fitted ``numbers`` (``mean``, ``std``, ``low``,
        ``high``); ``array`` turns each into an array of the wanted library, dtype and
        device."""
        names = list(config["columns"])
        kinds, frame = config["kinds"], config.get("azimuth")
        return cls(
            mean=array(numbers["mean"]),
            std=array(numbers["std"]),
            low=array(numbers["low"]),
            high=array(numbers["high"]),
            log=[j for j, k in enumerate(kinds) if k == "log"],
            logit=[j for j, k in enumerate(kinds) if k == "logit"],
            discrete=[j for j, d in enumerate(config["discrete"]) if d],
            reference=None if frame is None else names.index(frame["reference"]),
            relative=None if frame is None else [names.index(c) for c in frame["relative"]],
            offset=AZIMUTH_OFFSET if frame is None else float(frame["offset"]),
        )


def wrap(phi, ops: Ops):
    """An angle (radians) modulo 2π, in [−π, π)."""
    return ops.remainder(phi + math.pi, 2 * math.pi) - math.pi


def to_frame(x, maps: ColumnMaps, ops: Ops):
    """Physical values → the azimuthal frame (a copy when there is a frame)."""
    if maps.reference is None:
        return x
    x = ops.copy(x)
    shift = x[:, maps.reference : maps.reference + 1] + maps.offset
    x[:, maps.relative] = wrap(x[:, maps.relative] - shift, ops)
    return x


def from_frame(x, maps: ColumnMaps, ops: Ops):
    """The azimuthal frame → physical angles, in place."""
    if maps.reference is None:
        return x
    shift = x[:, maps.reference : maps.reference + 1] + maps.offset
    x[:, maps.relative] = wrap(x[:, maps.relative] + shift, ops)
    return x


def to_real_line(x, maps: ColumnMaps, ops: Ops, log_det: bool = True):
    """Framed values → the real line, and ``log |dy/dx|`` per event (``None`` without
    ``log_det``); the frame's own Jacobian is 1."""
    y = ops.copy(x)
    logdet = ops.zeros_rows(x) if log_det else None
    if maps.log:
        v = x[:, maps.log] - maps.low[maps.log]
        y[:, maps.log] = ops.log(v)
        if log_det:
            logdet = logdet - ops.log(v).sum(1)
    if maps.logit:
        lo = maps.low[maps.logit]
        width = maps.high[maps.logit] - lo
        t = (x[:, maps.logit] - lo) / width
        y[:, maps.logit] = ops.log(t) - ops.log1p(-t)
        if log_det:  # dy/dx = 1 / (width t (1 - t))
            logdet = logdet - (ops.log(width) + ops.log(t) + ops.log1p(-t)).sum(1)
    return y, logdet


def forward(x, maps: ColumnMaps, ops: Ops, log_det: bool = True):
    """Physical (dequantized) values → model space ``z``, and ``log |det dz/dx|`` per
    event (``None`` without ``log_det``)."""
    y, logdet = to_real_line(to_frame(x, maps, ops), maps, ops, log_det)
    z = (y - maps.mean) / maps.std
    if log_det:
        logdet = logdet - ops.log(maps.std).sum()
    return z, logdet


def inverse(z, maps: ColumnMaps, ops: Ops):
    """Model space → physical values, discrete columns floored back to integers."""
    x = z * maps.std + maps.mean
    if maps.log:
        x[:, maps.log] = ops.exp(x[:, maps.log]) + maps.low[maps.log]
    if maps.logit:
        lo = maps.low[maps.logit]
        width = maps.high[maps.logit] - lo
        x[:, maps.logit] = lo + width * ops.sigmoid(x[:, maps.logit])
    if maps.discrete:
        x[:, maps.discrete] = ops.floor(x[:, maps.discrete])
    return from_frame(x, maps, ops)


def check_domain(x: np.ndarray, maps: ColumnMaps, names: Sequence[str]) -> None:
    """Refuse framed values (numpy) outside a column's domain: log needs x > LO, logit
    LO < x < HI; the message names the column, the value and its row."""
    for j in maps.log:
        lo = float(maps.low[j])
        bad = np.flatnonzero(~(x[:, j] > lo))
        if bad.size:
            raise SimkitError(
                f"column {names[j]!r} is {x[bad[0], j]} at row {bad[0]}: the log "
                f"transform needs values above {lo:g} (override it, e.g. "
                f"{names[j]}=identity)"
            )
    for j in maps.logit:
        lo, hi = float(maps.low[j]), float(maps.high[j])
        bad = np.flatnonzero(~((x[:, j] > lo) & (x[:, j] < hi)))
        if bad.size:
            raise SimkitError(
                f"column {names[j]!r} is {x[bad[0], j]} at row {bad[0]}: the logit "
                f"transform needs values in ({lo:g}, {hi:g})"
            )
