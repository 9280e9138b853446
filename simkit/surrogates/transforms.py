"""Fitted, invertible, saved preprocessing of event columns for the surrogates.

Each column goes through up to three steps, chosen from the data (or overridden),
after an optional change of azimuthal frame (below):

1. **dequantization** of integer-valued columns (constituent counts): ``n → n + u`` with
   ``u ~ U(0, 1)`` when fitting, ``floor`` when generating, so that a continuous model
   describes a discrete variable exactly: ``P(n) = ∫_n^{n+1} p(y) dy`` (Uria et al. 2013,
   arXiv:1306.0186; Theis et al. 2016, arXiv:1511.01844);
2. a map to the real line: ``log`` for positive columns (masses, pT; ``log(x − LO)``,
   written ``log:LO``, for non-negative ones that touch 0, such as the mass of a
   one-particle jet), ``logit`` for bounded ones (τ ratios in (0, 1), azimuthal angles in
   (−π, π)), ``identity`` otherwise;
3. weighted standardization to zero mean and unit variance, because the splines of a
   neural-spline flow are the identity outside ``[-tail_bound, tail_bound]``.

**Azimuthal frame.** With two or more azimuthal angles (``phi_j1``, ``phi_j2``) the
first one is kept and every other one is replaced by its angle from the first one's
back-to-back direction, ``δφ = wrap(φ₂ − φ₁ − π)`` in [−π, π) (``wrap``: modulo 2π). The
event's rotation about the beam, uniform by symmetry, is then ``φ₁`` alone, and the
back-to-back peak of a dijet sits at ``δφ = 0``, one smooth bump in the middle of the
logit's range. In the absolute angles it is a band along ``φ₂ = φ₁ ± π`` that wraps
around the torus (two disjoint strips in the square (−π, π)²), which a GAN's continuous
generator cannot draw: GANs fitted to the absolute angles put half their dijets less
than 2 rad apart (BENCHMARKS.md). For fixed ``φ₁`` the map is a rotation of ``φ₂``, so
it is a bijection of the torus with ``|det J| = 1``: densities keep their meaning, and
the inverse brings the angles back to [−π, π).

The map is a bijection between the physical space and the model's space, and its
``log |det J|`` enters the flow's density: ``log p(x) = log q(z) + log|dz/dx|``.
Everything fitted is a buffer (saved in the model's safetensors file); the per-column
kinds are plain JSON (:meth:`ColumnTransform.config`).

>>> import numpy as np
>>> x = np.column_stack([np.exp(np.random.default_rng(0).normal(size=100)),
...                      np.random.default_rng(1).uniform(0.1, 0.9, 100)])
>>> t = ColumnTransform(("m_j1", "tau21_j1")).fit(x)
>>> t.kinds_
('log', 'logit')
>>> z, logdet = t.forward(torch.as_tensor(x))
>>> bool(torch.allclose(t.inverse(z), torch.as_tensor(x)))
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from simkit.errors import SimkitError
from simkit.nn import weighted_mean_std
from simkit.surrogates import columns
from simkit.surrogates.columns import AZIMUTH_OFFSET

#: The column maps' elementwise operations (:mod:`simkit.surrogates.columns`) in torch.
TORCH = columns.torch_ops()

#: The maps to the real line a column may get.
KINDS = ("identity", "log", "logit")


def parse_kind(spec: str) -> tuple[str, float, float]:
    """``identity``, ``log`` (of x − 0), ``log:LO`` (of x − LO), ``logit`` (bounds 0, 1) or
    ``logit:LO:HI`` → (kind, lo, hi)."""
    name, *bounds = str(spec).split(":")
    if name not in KINDS:
        raise SimkitError(
            f"unknown transform {spec!r}; use {', '.join(KINDS)}, log:LO or logit:LO:HI"
        )
    if name == "log" and len(bounds) == 1:
        try:
            lo = float(bounds[0])
        except ValueError:
            raise SimkitError(f"transform {spec!r}: the shift must be a number") from None
        if not math.isfinite(lo):
            raise SimkitError(f"transform {spec!r}: need a finite shift")
        return name, lo, 1.0
    if name != "logit":
        if bounds:
            raise SimkitError(
                f"transform {spec!r}: only logit takes bounds (and log one shift: log:LO)"
            )
        return name, 0.0, 1.0
    if not bounds:
        return name, 0.0, 1.0
    if len(bounds) != 2:
        raise SimkitError(f"transform {spec!r}: write logit:LO:HI")
    try:
        lo, hi = float(bounds[0]), float(bounds[1])
    except ValueError:
        raise SimkitError(f"transform {spec!r}: bounds must be numbers") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise SimkitError(f"transform {spec!r}: need finite bounds with LO < HI")
    return name, lo, hi


def parse_overrides(items: Sequence[str]) -> dict[str, str]:
    """CLI ``COLUMN=KIND`` items (e.g. ``eta_j1=logit:-2.5:2.5``) → ``{column: kind}``."""
    overrides: dict[str, str] = {}
    for item in items:
        column, sep, kind = item.partition("=")
        if not sep or not column or not kind:
            raise SimkitError(f"--transform {item!r}: write COLUMN=KIND (e.g. m_j1=log)")
        parse_kind(kind)
        overrides[column] = kind
    return overrides


def _is_integer_valued(values: np.ndarray) -> bool:
    # a count has at least two distinct values; a constant column is not worth a model
    return bool(np.all(values == np.round(values))) and np.unique(values[:1000]).size > 1


#: How far a logit's bounds reach beyond [0, 1] for a ratio that touches 0 or 1 (τ21 = 0
#: for a two-constituent jet): enough for the edge values, invisible in any histogram.
EDGE_MARGIN = 1e-3


#: Bounds of the logit of an azimuthal angle: π rounded up past float32's π (3.1415927).
PHI_BOUND = 3.1416


def wrap_angle(phi: torch.Tensor) -> torch.Tensor:
    """An angle (radians) modulo 2π, in [−π, π); the derivative is 1 (a rotation).

    >>> wrap_angle(torch.tensor([3.5, -4.0, 0.25])).tolist()  # doctest: +ELLIPSIS
    [-2.78..., 2.28..., 0.25]
    """
    return columns.wrap(phi, TORCH)


def is_azimuth(name: str, values: np.ndarray) -> bool:
    """An azimuthal angle: a column named ``phi…`` with every value in (−π, π) (to float32's
    π; :data:`PHI_BOUND`)."""
    return bool(
        name.startswith("phi") and -PHI_BOUND < float(values.min()) and values.max() < PHI_BOUND
    )


#: A non-negative column that touches 0 gets log(x + s), s this fraction of its median:
#: small against the bulk (0.1 GeV for a jet mass around 100 GeV). Generated values then
#: stay above −s, where ``identity`` (the choice before) let a flow generate jet masses
#: of −200 GeV.
LOG_SHIFT_FRACTION = 1e-3


def choose_kind(values: np.ndarray, dequantize: bool = False, name: str = "") -> str:
    """The map a column gets from its values: ``logit`` inside (0, 1) (``logit:-0.001:1.001``
    when some values sit on 0 or 1), ``log`` when positive, ``log:-s`` (s = 10⁻³ × the
    median) when non-negative with zeros or negative only by rounding (above −s/100),
    ``identity`` otherwise; an
    azimuthal angle (a column named ``phi…`` with values in [−π, π]) gets
    ``logit:-3.1416:3.1416``, so that its flat distribution with hard edges becomes a
    smooth one on the real line and generated angles stay in range."""
    lowest = float(values.min())
    if is_azimuth(name, values):
        return f"logit:{-PHI_BOUND}:{PHI_BOUND}"
    highest = float(values.max()) + (1.0 if dequantize else 0.0)
    if lowest > 0 and highest < 1:
        return "logit"
    if lowest >= 0 and highest <= 1:
        return f"logit:{-EDGE_MARGIN}:{1 + EDGE_MARGIN}"
    if lowest > 0:
        return "log"
    median = float(np.median(values))
    shift = LOG_SHIFT_FRACTION * median
    # non-negative, or negative only by rounding (|x| far below the shift): log(x + s)
    if median > 0 and lowest > -0.01 * shift:
        return f"log:{-shift:.6g}"
    return "identity"


class ColumnTransform(nn.Module):
    """Per-column bijection physical ↔ standardized model space, with its log|det|.

    ``fit`` chooses each column's kind (``overrides`` name some by hand: ``{"m_j1":
    "log", "eta_j1": "logit:-2.5:2.5"}``), whether it is dequantized (integer-valued
    columns when ``dequantize=True``) and the azimuthal frame (``azimuth_frame=True``:
    the angles after the first one relative to it, see the module), then fits the
    weighted standardization. ``forward(x)`` gives ``(z, log|dz/dx|)``, ``inverse(z)``
    gives ``x``. ``azimuth`` (fitted, or given when rebuilding a saved transform):
    ``{"reference": "phi_j1", "relative": ["phi_j2"], "offset": π}`` or None.
    """

    def __init__(
        self,
        columns: Sequence[str],
        kinds: Sequence[str] | None = None,
        discrete: Sequence[bool] | None = None,
        azimuth: Mapping | None = None,
    ) -> None:
        super().__init__()
        self.columns = tuple(columns)
        self.azimuth_: dict | None = None
        if azimuth is not None:
            self._set_azimuth(azimuth["reference"], azimuth["relative"], azimuth["offset"])
        width = len(self.columns)
        self.kinds_: tuple[str, ...] = tuple(kinds) if kinds is not None else ("identity",) * width
        self.discrete_: tuple[bool, ...] = (
            tuple(bool(d) for d in discrete) if discrete is not None else (False,) * width
        )
        if len(self.kinds_) != width or len(self.discrete_) != width:
            raise SimkitError(f"transform: {width} columns but {len(self.kinds_)} kinds")
        for kind in self.kinds_:
            if kind not in KINDS:
                raise SimkitError(f"unknown transform {kind!r}; use {', '.join(KINDS)}")
        self.register_buffer("mean", torch.zeros(width, dtype=torch.float64))
        self.register_buffer("std", torch.ones(width, dtype=torch.float64))
        self.register_buffer("low", torch.zeros(width, dtype=torch.float64))
        self.register_buffer("high", torch.ones(width, dtype=torch.float64))

    def _set_azimuth(self, reference: str, relative: Sequence[str], offset: float) -> None:
        names = [reference, *relative]
        unknown = [c for c in names if c not in self.columns]
        if unknown or len(set(names)) != len(names) or not relative:
            raise SimkitError(
                f"azimuthal frame {reference!r} ← {list(relative)}: need distinct columns "
                f"of {', '.join(self.columns)}"
            )
        self.azimuth_ = {
            "reference": str(reference),
            "relative": [str(c) for c in relative],
            "offset": float(offset),
        }

    def to_frame(self, x: np.ndarray) -> np.ndarray:
        """Physical values with the relative angles in the azimuthal frame (a float64 copy)."""
        x = np.array(x, dtype=np.float64)
        if self.azimuth_ is not None:
            x = self._to_frame(torch.as_tensor(x)).numpy()
        return x

    def _to_frame(self, x: torch.Tensor) -> torch.Tensor:
        return columns.to_frame(x, self.maps(x), TORCH)

    def maps(self, like) -> columns.ColumnMaps:
        """The fitted numbers as :class:`~simkit.surrogates.columns.ColumnMaps` in the
        dtype and on the device of the tensor ``like``, or in numpy's float32 / float64
        when ``like`` is that numpy dtype (the torch-free sampler's)."""
        if isinstance(like, torch.Tensor):
            dtype, device = like.dtype, like.device

            def array(values: torch.Tensor):
                return values.to(dtype=dtype, device=device)
        else:

            def array(values: torch.Tensor):
                return values.detach().cpu().numpy().astype(like)

        numbers = {"mean": self.mean, "std": self.std, "low": self.low, "high": self.high}
        return columns.ColumnMaps.from_config(self.config(), numbers, array)

    # ------------------------------------------------------------------ fitting

    def fit(
        self,
        x: np.ndarray,
        weights: np.ndarray | None = None,
        *,
        overrides: Mapping[str, str] | None = None,
        dequantize: bool = True,
        azimuth_frame: bool = False,
        rng: np.random.Generator | None = None,
    ) -> ColumnTransform:
        """Choose each column's kind from ``x`` (N, F), then fit the standardization.

        With ``dequantize`` integer-valued columns are marked discrete; the
        standardization is fitted on their dequantized values drawn with ``rng``. With
        ``azimuth_frame`` and two or more azimuthal columns (:func:`is_azimuth`, none
        overridden) the first is the reference of the others (the module's frame); the
        kinds are chosen on the angles in that frame.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.columns):
            raise SimkitError(
                f"transform: expected (events, {len(self.columns)}) values, got {x.shape}"
            )
        if x.shape[0] < 2:
            raise SimkitError("transform: need at least two events to fit")
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(self.columns))
        if unknown:
            raise SimkitError(
                f"transform given for unknown column(s) {', '.join(unknown)}; "
                f"columns are {', '.join(self.columns)}"
            )
        self.azimuth_ = None
        angles = [
            name
            for j, name in enumerate(self.columns)
            if name not in overrides and is_azimuth(name, x[:, j])
        ]
        if azimuth_frame and len(angles) >= 2:
            self._set_azimuth(angles[0], angles[1:], AZIMUTH_OFFSET)
            x = self.to_frame(x)
        kinds, discrete = [], []
        low = np.zeros(len(self.columns))
        high = np.ones(len(self.columns))
        for j, name in enumerate(self.columns):
            is_discrete = dequantize and _is_integer_valued(x[:, j])
            spec = overrides.get(name) or choose_kind(x[:, j], is_discrete, name)
            kind, low[j], high[j] = parse_kind(spec)
            kinds.append(kind)
            discrete.append(is_discrete)
        self.kinds_ = tuple(kinds)
        self.discrete_ = tuple(discrete)
        self.low.copy_(torch.as_tensor(low))
        self.high.copy_(torch.as_tensor(high))
        if any(self.discrete_):
            x = self.dequantize(x, rng or np.random.default_rng(0))
        self._check_framed(x)
        y = self._to_real_line(torch.as_tensor(x))[0].numpy()
        mean, std = weighted_mean_std(y, weights)
        self.mean.copy_(torch.as_tensor(mean))
        self.std.copy_(torch.as_tensor(std))
        return self

    def dequantize(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``n + u``, ``u ~ U(0, 1)``, in the discrete columns (a copy; float64)."""
        x = np.array(x, dtype=np.float64)
        discrete = [j for j, d in enumerate(self.discrete_) if d]
        if discrete:
            x[:, discrete] += rng.random((x.shape[0], len(discrete)))
        return x

    def check(self, x: np.ndarray) -> None:
        """Refuse values outside a column's domain (log: x > LO, 0 unless shifted;
        logit: LO < x < HI; a relative angle is checked in the azimuthal frame, where
        any value is in range)."""
        self._check_framed(self.to_frame(x) if self.azimuth_ is not None else np.asarray(x))

    def _check_framed(self, x: np.ndarray) -> None:
        columns.check_domain(np.asarray(x), self.maps(np.float64), self.columns)

    # ------------------------------------------------------------------ the bijection

    def _to_real_line(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x in the azimuthal frame (unit Jacobian: nothing to add to log|det|)
        return columns.to_real_line(x, self.maps(x), TORCH)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Physical (dequantized) values → model space ``z`` and ``log|det dz/dx|`` per event."""
        return columns.forward(x, self.maps(x), TORCH)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """Model space → physical values (discrete columns floored back to integers)."""
        return columns.inverse(z, self.maps(z), TORCH)

    # ------------------------------------------------------------------ saving

    def config(self) -> dict:
        """What rebuilds this transform (JSON); the fitted numbers live in its buffers."""
        return {
            "columns": list(self.columns),
            "kinds": list(self.kinds_),
            "discrete": list(self.discrete_),
            "azimuth": None if self.azimuth_ is None else dict(self.azimuth_),
        }

    @classmethod
    def from_config(cls, config: Mapping) -> ColumnTransform:
        """An unfitted transform with the saved kinds; load its buffers from the state.

        A description without ``azimuth`` (written before the azimuthal frame existed)
        rebuilds a transform of absolute angles, as it was fitted."""
        try:
            return cls(
                config["columns"], config["kinds"], config["discrete"], config.get("azimuth")
            )
        except (KeyError, TypeError):
            raise SimkitError("transform description is incomplete or damaged") from None

    def describe(self) -> dict[str, str]:
        """``{column: "log" | "logit(0,1)" | "identity", + " dequantized"}`` for reports."""
        out = {}
        for j, name in enumerate(self.columns):
            kind = self.kinds_[j]
            if kind == "logit":
                kind = f"logit({float(self.low[j]):g},{float(self.high[j]):g})"
            elif kind == "log" and float(self.low[j]) != 0.0:
                kind = f"log(x{-float(self.low[j]):+g})"
            if self.azimuth_ is not None and name in self.azimuth_["relative"]:
                kind += f" of {name} − {self.azimuth_['reference']} − π (mod 2π)"
            out[name] = kind + (" dequantized" if self.discrete_[j] else "")
        return out
