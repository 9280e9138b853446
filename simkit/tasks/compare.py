"""Compare a candidate sample with a reference: metrics, plots and the validation gate.

``run(CompareConfig(...), CompareInputs(reference=..., candidate=...), output)`` is
``simkit compare``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from simkit.errors import SimkitError
from simkit.tasks.base import Options, option
from simkit.tasks.unfold import GateOptions, blind_window


@dataclass(frozen=True)
class CompareConfig(GateOptions):
    """``simkit compare``'s settings; each default declared here once."""

    bins: int = 40  # histogram bins per column
    level: str = option("reco", choices=("reco", "gen"))
    columns: tuple[str, ...] | None = None
    bootstrap: int = 100
    blind: str | None = None  # "LOW:HIGH"
    blind_column: str = "mjj"
    seed: int = 0
    device: str = option("auto", choices=("auto", "cpu", "cuda"))
    progress: bool = option(True, cli=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.columns is not None:
            object.__setattr__(self, "columns", tuple(self.columns))
        if self.bootstrap < 0:
            raise SimkitError(f"--bootstrap must be 0 or more, got {self.bootstrap}")
        if self.level not in ("reco", "gen"):
            raise SimkitError(f"level must be reco or gen, got {self.level!r}")


@dataclass(frozen=True)
class CompareInputs(Options):
    """The two event files, with optional ``FILE.h5:DATASET`` weights."""

    reference: str
    candidate: str
    reference_weights: str | None = None
    candidate_weights: str | None = None


@dataclass
class CompareResult:
    """The comparison's metrics (``metrics.json``) and its verdict."""

    metrics: dict

    @property
    def validated(self) -> bool:
        return bool(self.metrics["validated"])

    def to_dict(self) -> dict:
        return dict(self.metrics)

    def verdict_line(self) -> str:
        from validation.compare import verdict_line

        return verdict_line(self.metrics)

    def save(self, folder) -> Path:
        from simkit.io import write_json

        return write_json(Path(folder) / "metrics.json", self.metrics)


def _read(path: str, level: str, columns, weights_spec, blind):
    """The level's table and weights, without the rows inside the ``blind`` window."""
    import numpy as np

    from simkit.events import in_window
    from simkit.io import read_sample, read_weights

    wanted = None if columns is None else list(columns)
    if blind is not None and columns is not None:  # the window's column, read once
        wanted = list(dict.fromkeys([*columns, blind[0]]))
    sample = read_sample(path, levels=[level], columns=wanted)
    table = sample.level(level)
    weights = None if weights_spec is None else read_weights(weights_spec, len(sample))
    if blind is None:
        return table, weights
    column, low, high = blind
    if column not in table.columns:
        have = ", ".join(table.columns)
        raise SimkitError(f"{path}: /{level} has no column {column!r} (columns: {have})")
    keep = ~in_window(table.column(column), low, high)
    if not np.any(keep & table.passed):
        raise SimkitError(f"{path}: no passing event outside the blinded window of {column}")
    table = table.mask(keep)
    return (
        table if columns is None else table.select(list(columns)),
        None if weights is None else weights[keep],
    )


def run(config: CompareConfig, inputs: CompareInputs, output=None) -> CompareResult:
    """Compare ``inputs.candidate`` with ``inputs.reference``; with ``output``, the plots
    and ``metrics.json`` go there."""
    from simkit.io import inspect
    from validation.compare import compare

    out = None if output is None else Path(output)
    if out is not None and out.exists() and not out.is_dir():
        raise SimkitError(f"{out}: exists and is not a folder")
    for path in (inputs.reference, inputs.candidate):
        info = inspect(path)
        if config.level not in info.levels:
            have = ", ".join(lv for lv in info.levels if lv != "truth") or "none"
            raise SimkitError(f"{path}: has no {config.level} level (it has: {have}); see --level")
    t0 = time.perf_counter()
    blind = blind_window(config.blind, config.blind_column)
    reference, ref_w = _read(
        inputs.reference, config.level, config.columns, inputs.reference_weights, blind
    )
    candidate, cand_w = _read(
        inputs.candidate, config.level, config.columns, inputs.candidate_weights, blind
    )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    metrics = compare(
        reference,
        candidate,
        reference_weights=ref_w,
        candidate_weights=cand_w,
        columns=None if config.columns is None else list(config.columns),
        alpha=config.alpha,
        auc_tolerance=config.auc_tolerance,
        chi2_tolerance=config.chi2_tolerance,
        bins=config.bins,
        n_bootstrap=config.bootstrap,
        seed=config.seed,
        device=config.device,
        progress=config.progress,
        output=out,
    )
    result = CompareResult(
        {
            "reference": str(inputs.reference),
            "candidate": str(inputs.candidate),
            "level": config.level,
            **({} if blind is None else {"blind": list(blind)}),
            **metrics,
            "seconds": time.perf_counter() - t0,
        }
    )
    if out is not None:
        result.save(out)
    return result
