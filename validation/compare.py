"""One sample against another: every metric, the plots, and the validation gate.

The **validation gate** passes a candidate sample (simulation, a surrogate, a
reweighted sample) against a reference (data) when a classifier cannot tell them
apart — two-sample AUC ≤ ``max_auc`` (default 0.55) — *and* every column's shape agrees
— χ²/ndf ≤ ``max_chi2_ndf`` (default 2). Both tests are on the point estimates; the
AUC's bootstrap interval is reported beside it.

>>> import numpy as np
>>> from simkit.events import EventTable
>>> rng = np.random.default_rng(0)
>>> data = EventTable.from_columns({"x": rng.normal(size=4000)})
>>> sim = EventTable.from_columns({"x": rng.normal(size=4000)})
>>> metrics = compare(data, sim, device="cpu", n_bootstrap=0, seed=1)
>>> metrics["validated"]
True
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from simkit.errors import SimkitError
from simkit.events import EventTable
from simkit.stats import effective_sample_size
from validation.metrics import column_metrics, two_sample_auc

DEFAULT_MAX_AUC = 0.55
DEFAULT_MAX_CHI2_NDF = 2.0


def validation_gate(
    auc: float,
    chi2_ndf: Mapping[str, float],
    *,
    max_auc: float = DEFAULT_MAX_AUC,
    max_chi2_ndf: float = DEFAULT_MAX_CHI2_NDF,
) -> dict:
    """The gate's verdict from a two-sample AUC and per-column χ²/ndf values.

    Returns ``{"validated": bool, "auc_ok": bool, "chi2_ok": bool, "failing_columns": [...]}``.
    """
    if not 0.5 <= max_auc <= 1.0:
        raise SimkitError(f"the AUC threshold must be in [0.5, 1], got {max_auc}")
    if not max_chi2_ndf > 0:
        raise SimkitError(f"the χ²/ndf threshold must be positive, got {max_chi2_ndf}")
    failing = [name for name, value in chi2_ndf.items() if value > max_chi2_ndf]
    auc_ok = bool(auc <= max_auc)
    return {
        "validated": auc_ok and not failing,
        "auc_ok": auc_ok,
        "chi2_ok": not failing,
        "failing_columns": failing,
    }


def _common_columns(reference: EventTable, candidate: EventTable, columns) -> tuple[str, ...]:
    if columns is None:
        if set(reference.columns) != set(candidate.columns):
            only_ref = sorted(set(reference.columns) - set(candidate.columns))
            only_cand = sorted(set(candidate.columns) - set(reference.columns))
            raise SimkitError(
                "the samples have different columns "
                f"(only in reference: {', '.join(only_ref) or '-'}; "
                f"only in candidate: {', '.join(only_cand) or '-'}); choose common ones"
            )
        return reference.columns
    for table, name in ((reference, "reference"), (candidate, "candidate")):
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise SimkitError(
                f"the {name} has no column {', '.join(map(repr, missing))} "
                f"(it has: {', '.join(table.columns)})"
            )
    return tuple(columns)


def compare(
    reference: EventTable,
    candidate: EventTable,
    *,
    reference_weights: np.ndarray | None = None,
    candidate_weights: np.ndarray | None = None,
    columns: Sequence[str] | None = None,
    max_auc: float = DEFAULT_MAX_AUC,
    max_chi2_ndf: float = DEFAULT_MAX_CHI2_NDF,
    bins: int = 40,
    n_bootstrap: int = 100,
    seed: int = 0,
    device: str = "auto",
    progress: bool = False,
    classifier: Mapping | None = None,
    output: str | os.PathLike | None = None,
    prefix: str = "",
) -> dict:
    """Metrics of ``candidate`` against ``reference`` (passing events only) and the gate.

    Weights default to the tables' own. Returns a flat dict (the ``metrics.json`` of
    ``simkit compare``): ``auc``, ``auc_low``, ``auc_high``, per column
    ``chi2_ndf_<col>``, ``triangular_<col>``, ``wasserstein_<col>``, ``ks_<col>``,
    ``max_chi2_ndf``, ``ess_candidate``, the thresholds and ``validated``. With
    ``output`` the plots ``<prefix>columns.png`` (and ``<prefix>weights.png`` when the
    candidate is weighted) are written there.
    """
    columns = _common_columns(reference, candidate, columns)
    ref_w = reference.weights if reference_weights is None else np.asarray(reference_weights)
    cand_w = candidate.weights if candidate_weights is None else np.asarray(candidate_weights)
    for w, table, name in ((ref_w, reference, "reference"), (cand_w, candidate, "candidate")):
        if w.shape != (len(table),):
            raise SimkitError(f"{w.shape[0]} {name} weights for {len(table)} events")
    ref_rows = reference.passed & (ref_w > 0)
    cand_rows = candidate.passed & (cand_w > 0)
    if not ref_rows.any():
        raise SimkitError("no reference event passes the selection (with weight > 0)")
    if not cand_rows.any():
        raise SimkitError("no candidate event passes the selection (with weight > 0)")
    ref = reference.select(columns).features[ref_rows]
    cand = candidate.select(columns).features[cand_rows]
    ref_w, cand_w = ref_w[ref_rows], cand_w[cand_rows]

    per_column = column_metrics(
        ref, cand, columns, reference_weights=ref_w, candidate_weights=cand_w, bins=bins
    )
    auc = two_sample_auc(
        ref,
        cand,
        reference_weights=ref_w,
        candidate_weights=cand_w,
        n_bootstrap=n_bootstrap,
        seed=seed,
        device=device,
        progress=progress,
        **dict(classifier or {}),
    )
    chi2 = {name: values["chi2_ndf"] for name, values in per_column.items()}
    gate = validation_gate(auc.auc, chi2, max_auc=max_auc, max_chi2_ndf=max_chi2_ndf)
    metrics: dict = {
        "n_reference": len(ref),
        "n_candidate": len(cand),
        "ess_reference": effective_sample_size(ref_w),
        "ess_candidate": effective_sample_size(cand_w),
        "auc": auc.auc,
        "auc_low": auc.low,
        "auc_high": auc.high,
        "max_chi2_ndf": max(chi2.values()),
        "worst_column": max(chi2, key=chi2.get),
    }
    for name, values in per_column.items():
        for key in ("chi2_ndf", "triangular", "wasserstein", "ks"):
            metrics[f"{key}_{name}"] = values[key]
    metrics.update(
        {
            "gate_max_auc": max_auc,
            "gate_max_chi2_ndf": max_chi2_ndf,
            "auc_ok": gate["auc_ok"],
            "chi2_ok": gate["chi2_ok"],
            "failing_columns": gate["failing_columns"],
            "validated": gate["validated"],
        }
    )
    if output is not None:
        write_plots(
            Path(output),
            columns,
            (ref, ref_w),
            (cand, cand_w),
            units=reference.select(columns).units,
            bins=bins,
            prefix=prefix,
        )
    return metrics


def write_plots(folder: Path, columns, reference, candidate, *, units, bins, prefix="") -> None:
    """``columns.png`` (reference vs candidate, and unweighted when weights matter)."""
    from simkit.plotting import savefig
    from validation.plots import plot_columns, plot_weights

    cand_x, cand_w = candidate
    weighted = not np.all(cand_w == cand_w[0])
    others = {"candidate": (cand_x, cand_w)}
    if weighted:
        others = {
            "candidate (unweighted)": (cand_x, None),
            "candidate (weighted)": (cand_x, cand_w),
        }
    fig = plot_columns(
        columns, reference, others, reference_label="reference", bins=bins, units=units
    )
    savefig(fig, folder / f"{prefix}columns.png")
    if weighted:
        ax = plot_weights({"candidate": cand_w})
        savefig(ax.figure, folder / f"{prefix}weights.png")


def verdict_line(metrics: Mapping) -> str:
    """One line for stdout: VALIDATED / NOT VALIDATED and why."""
    auc = f"AUC {metrics['auc']:.4f}"
    if metrics.get("auc_low") is not None:
        auc += f" [{metrics['auc_low']:.4f}, {metrics['auc_high']:.4f}]"
    auc += f" (≤ {metrics['gate_max_auc']})"
    chi2 = (
        f"max χ²/ndf {metrics['max_chi2_ndf']:.2f} in {metrics['worst_column']} "
        f"(≤ {metrics['gate_max_chi2_ndf']})"
    )
    word = "VALIDATED" if metrics["validated"] else "NOT VALIDATED"
    return f"{word}: {auc}; {chi2}"
