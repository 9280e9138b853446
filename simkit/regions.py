"""Windows of one column: the signal region and its sidebands (core: every layer uses it).

>>> sr = SignalRegion.parse("3300:3700", sidebands="2800:4500")
>>> sr.inside(np.array([3300.0, 3700.0])), sr.in_sidebands(np.array([2799.0, 4000.0]))
(array([ True, False]), array([False,  True]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simkit.errors import SimkitError
from simkit.events import in_window

#: The column the signal region is a window of, and the LHC Olympics 2020 R&D window (GeV).
SR_COLUMN = "mjj"
SIGNAL_REGION = (3300.0, 3700.0)


def region_text(window) -> str:
    """``(3300, 3700)`` → ``"3300:3700"``, what :func:`parse_range` reads."""
    return f"{window[0]:g}:{window[1]:g}"


def parse_range(text: str, what: str) -> tuple[float, float]:
    """``"3300:3700"`` → (3300, 3700); an empty side is unbounded (``":4500"``)."""
    low, sep, high = str(text).partition(":")
    if not sep:
        raise SimkitError(f"{what} must be LOW:HIGH, got {text!r}")
    try:
        lo = float(low) if low.strip() else -math.inf
        hi = float(high) if high.strip() else math.inf
    except ValueError:
        raise SimkitError(f"{what} must be LOW:HIGH with numbers, got {text!r}") from None
    if math.isnan(lo) or math.isnan(hi) or not lo < hi:
        raise SimkitError(f"{what} needs LOW < HIGH, got {text!r}")
    return lo, hi


@dataclass(frozen=True)
class SignalRegion:
    """A window ``low ≤ column < high`` and its sidebands, optionally bounded outside."""

    column: str = SR_COLUMN
    low: float = SIGNAL_REGION[0]
    high: float = SIGNAL_REGION[1]
    sideband_low: float = -math.inf
    sideband_high: float = math.inf

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise SimkitError(f"signal region needs low < high, got {self.low}:{self.high}")
        if not (self.sideband_low <= self.low and self.sideband_high >= self.high):
            raise SimkitError(
                f"sidebands {self.sideband_low}:{self.sideband_high} must enclose the signal "
                f"region {self.low}:{self.high}"
            )

    @classmethod
    def parse(
        cls,
        window: str,
        sidebands: str | None = None,
        column: str = SR_COLUMN,
        what: str = "--signal-region",
    ) -> SignalRegion:
        low, high = parse_range(window, what)
        if not (math.isfinite(low) and math.isfinite(high)):
            raise SimkitError(f"{what} must be bounded on both sides, got {window!r}")
        sb = parse_range(sidebands, "--sidebands") if sidebands else (-math.inf, math.inf)
        return cls(column, low, high, *sb)

    def inside(self, values: np.ndarray) -> np.ndarray:
        return in_window(values, self.low, self.high)

    def in_sidebands(self, values: np.ndarray) -> np.ndarray:
        lower = (values >= self.sideband_low) & (values < self.low)
        upper = (values >= self.high) & (values < self.sideband_high)
        return lower | upper

    def to_dict(self) -> dict:
        def finite(v):
            return v if math.isfinite(v) else None

        return {
            "column": self.column,
            "low": self.low,
            "high": self.high,
            "sideband_low": finite(self.sideband_low),
            "sideband_high": finite(self.sideband_high),
        }

    @classmethod
    def from_dict(cls, data: dict) -> SignalRegion:
        lo, hi = data.get("sideband_low"), data.get("sideband_high")
        return cls(
            data["column"],
            float(data["low"]),
            float(data["high"]),
            -math.inf if lo is None else float(lo),
            math.inf if hi is None else float(hi),
        )
