"""One sample against another: every metric, the plots, and the validation gate.

The **validation gate** (:mod:`validation.gate`) passes a candidate sample
(simulation, a surrogate, a reweighted sample) against a reference (data) when no
test rejects agreement within stated tolerances at significance ``alpha`` (default
0.01, Bonferroni over the tests): the held-out two-sample AUC against its Mann–Whitney
null, AUC ≤ 0.5 + ``auc_tolerance`` (default 0.01), and every column's χ² with a
relative mis-modelling ``chi2_tolerance`` (default 0.05) per bin added in quadrature.
An independent sample of the reference's own distribution passes with probability
≥ 1 − α at any sample size. χ²/ndf (without the tolerance) and the AUC's bootstrap
interval are reported beside the p-values.

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
from validation.gate import (
    DEFAULT_ALPHA,
    DEFAULT_AUC_TOLERANCE,
    DEFAULT_CHI2_TOLERANCE,
    calibrated_gate,
    check_gate_options,
)
from validation.metrics import binned, column_metrics, two_sample_auc

__all__ = ["calibrated_gate", "compare", "verdict_line", "write_plots"]


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
    alpha: float = DEFAULT_ALPHA,
    auc_tolerance: float = DEFAULT_AUC_TOLERANCE,
    chi2_tolerance: float = DEFAULT_CHI2_TOLERANCE,
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
    ``max_chi2_ndf``, ``ess_candidate``, and the gate's keys
    (:func:`~validation.gate.calibrated_gate`: ``auc_null_sigma``, ``auc_p_value``,
    ``chi2_p_value_<col>``, ``min_p_value``, ``gate_alpha``, ``gate_auc_tolerance``,
    ``gate_chi2_tolerance``, ..., ``validated``). With ``output`` the plots
    ``<prefix>columns.png`` (and ``<prefix>weights.png`` when the candidate is weighted)
    are written there.
    """
    check_gate_options(alpha, auc_tolerance, chi2_tolerance)  # before any training
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
    histograms = {  # the edges of column_metrics: the reference's quantiles
        name: binned(
            ref[:, k], cand[:, k], bins=bins, reference_weights=ref_w, candidate_weights=cand_w
        )
        for k, name in enumerate(columns)
    }
    gate = calibrated_gate(
        auc.auc,
        auc.ess_reference_test,
        auc.ess_candidate_test,
        histograms,
        alpha=alpha,
        auc_tolerance=auc_tolerance,
        chi2_tolerance=chi2_tolerance,
    )
    metrics: dict = {
        "n_reference": len(ref),
        "n_candidate": len(cand),
        "ess_reference": effective_sample_size(ref_w),
        "ess_candidate": effective_sample_size(cand_w),
        "auc": auc.auc,
        "auc_low": auc.low,
        "auc_high": auc.high,
        "auc_ess_reference": auc.ess_reference_test,
        "auc_ess_candidate": auc.ess_candidate_test,
        "max_chi2_ndf": max(chi2.values()),
        "worst_column": max(chi2, key=chi2.get),
    }
    for name, values in per_column.items():
        for key in ("chi2_ndf", "triangular", "wasserstein", "ks"):
            metrics[f"{key}_{name}"] = values[key]
    metrics.update(gate)  # the p-values, the gate's settings and its verdict
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
    """One line for stdout: VALIDATED / NOT VALIDATED and why.

    >>> print(verdict_line({"validated": True, "auc": 0.503, "auc_low": None,
    ...     "auc_null_sigma": 0.0129, "auc_p_value": 0.77, "max_chi2_ndf": 1.1,
    ...     "worst_column": "x", "chi2_p_value_x": 0.3, "min_p_value": 0.3,
    ...     "gate_alpha_per_test": 0.005, "gate_alpha": 0.01, "gate_tests": 2,
    ...     "gate_auc_tolerance": 0.01, "gate_chi2_tolerance": 0.05, "failing_columns": []}
    ...     ).replace("; ", "\\n"))
    VALIDATED: AUC 0.5030 (null σ 0.0129, p 0.77)
    max χ²/ndf 1.10 in x (p 0.3)
    min p 0.3 ≥ 0.005 = α 0.01 / 2 tests (tolerances: AUC 0.5 + 0.01, 5 % per bin)
    """
    auc = f"AUC {metrics['auc']:.4f}"
    if metrics.get("auc_low") is not None:
        auc += f" [{metrics['auc_low']:.4f}, {metrics['auc_high']:.4f}]"
    auc += f" (null σ {metrics['auc_null_sigma']:.4f}, p {metrics['auc_p_value']:.2g})"
    worst = metrics["worst_column"]
    chi2 = (
        f"max χ²/ndf {metrics['max_chi2_ndf']:.2f} in {worst} "
        f"(p {metrics[f'chi2_p_value_{worst}']:.2g})"
    )
    validated = metrics["validated"]
    gate = (
        f"min p {metrics['min_p_value']:.2g} {'≥' if validated else '<'} "
        f"{metrics['gate_alpha_per_test']:.2g} = α {metrics['gate_alpha']:g} / "
        f"{metrics['gate_tests']} tests (tolerances: AUC 0.5 + {metrics['gate_auc_tolerance']:g}, "
        f"{100 * metrics['gate_chi2_tolerance']:g} % per bin)"
    )
    failing = ([] if metrics.get("auc_ok", True) else ["AUC"]) + list(metrics["failing_columns"])
    if failing:
        gate += f"; failing: {', '.join(failing)}"
    word = "VALIDATED" if validated else "NOT VALIDATED"
    return f"{word}: {auc}; {chi2}; {gate}"
