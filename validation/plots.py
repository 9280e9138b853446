"""Plots of a validation: per-column histograms with ratio panels, weights, iterations.

Each drawing function takes the ``ax`` (or axes) to draw on and returns it; the
figure-making helpers (:func:`plot_columns`, :func:`diagnostics_figure`) lay out axes
and call them. Histograms are unit-area *shapes* with weighted (√Σw²) error bars, on
the bins of :func:`validation.metrics.column_edges`; the fraction of each sample outside
the drawn range is written in the legend rather than silently dropped.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> data = rng.normal(0.2, 1.0, (2000, 1))
>>> fig = plot_columns(["x"], (data, None), {"sim": (rng.normal(0, 1, (2000, 1)), None)})
>>> len(fig.axes)
2
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from simkit.errors import SimkitError
from simkit.plotting import pyplot
from simkit.stats import effective_sample_size
from validation.metrics import column_edges, histogram

#: Colours of the candidate samples, in order (the reference is drawn in black).
COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")

Weighted = tuple[np.ndarray, "np.ndarray | None"]


def _shape(values, weights, edges):
    """Unit-area density, its error, and the fraction of weight outside the edges."""
    counts, w2 = histogram(values, edges, weights)
    total = counts.sum()
    if not total > 0:
        raise SimkitError("cannot draw a sample whose weights sum to zero")
    width = np.diff(edges)
    density = counts[1:-1] / (total * width)
    error = np.sqrt(w2[1:-1]) / (total * width)
    outside = (counts[0] + counts[-1]) / total
    return density, error, outside


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.2g} %"


def draw_column(
    ax,
    ratio_ax,
    reference: Weighted,
    others: Mapping[str, Weighted],
    *,
    edges: np.ndarray,
    reference_label: str = "data",
    xlabel: str = "",
    colors: Sequence[str] = COLORS,
):
    """One column: shapes on ``ax``, each candidate / reference on ``ratio_ax``.

    ``reference`` and each of ``others`` are ``(values, weights)`` of one column.
    Returns ``(ax, ratio_ax)``.
    """
    centers = 0.5 * (edges[1:] + edges[:-1])
    ref_density, ref_error, ref_outside = _shape(*reference, edges)
    top = ref_density.max()
    ax.errorbar(
        centers,
        ref_density,
        yerr=ref_error,
        fmt="o",
        color="black",
        markersize=3,
        label=f"{reference_label} ({_percent(ref_outside)} outside)",
        zorder=5,
    )
    ratio_ax.axhline(1.0, color="black", lw=0.8)
    with np.errstate(divide="ignore", invalid="ignore"):
        ref_rel = np.where(ref_density > 0, ref_error / ref_density, np.nan)
        ratio_ax.fill_between(
            edges,
            np.r_[1 - ref_rel, 1 - ref_rel[-1]],
            np.r_[1 + ref_rel, 1 + ref_rel[-1]],
            step="post",
            color="black",
            alpha=0.15,
            lw=0,
        )
        for (label, (values, weights)), color in zip(others.items(), colors, strict=False):
            density, error, out = _shape(values, weights, edges)
            top = max(top, density.max())
            ax.stairs(
                density, edges, color=color, label=f"{label} ({_percent(out)} outside)", lw=1.5
            )
            ax.fill_between(
                edges,
                np.r_[density - error, density[-1] - error[-1]],
                np.r_[density + error, density[-1] + error[-1]],
                step="post",
                color=color,
                alpha=0.25,
                lw=0,
            )
            ratio = np.where(ref_density > 0, density / ref_density, np.nan)
            ratio_error = np.where(ref_density > 0, error / ref_density, np.nan)
            ratio_ax.errorbar(
                centers, ratio, yerr=ratio_error, fmt="_", color=color, markersize=6, lw=1
            )
    ax.set_ylabel("normalized")
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(0, 1.45 * top)  # room for the legend
    ax.tick_params(labelbottom=False)
    ax.legend(fontsize="x-small", loc="upper right", frameon=False)
    ratio_ax.set_xlim(edges[0], edges[-1])
    ratio_ax.set_ylim(0.5, 1.5)
    ratio_ax.set_ylabel(f"/ {reference_label}", fontsize="small")
    ratio_ax.set_xlabel(xlabel)
    return ax, ratio_ax


def _as_2d(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    x = x[:, None] if x.ndim == 1 else x
    if x.ndim != 2:
        raise SimkitError(f"{name}: features must be (events, columns), got shape {x.shape}")
    return x


def plot_columns(
    columns: Sequence[str],
    reference: tuple[np.ndarray, np.ndarray | None],
    others: Mapping[str, tuple[np.ndarray, np.ndarray | None]],
    *,
    reference_label: str = "data",
    bins: int = 40,
    units: Sequence[str] | None = None,
):
    """A figure with one histogram + ratio panel per column (up to 4 per row).

    ``reference`` is ``(features (N, F), weights or None)``; ``others`` maps a label
    to the same for each sample drawn against it (e.g. "sim", "sim reweighted").
    Bins come from the reference (:func:`validation.metrics.column_edges`).
    """
    columns = list(columns)
    ref_x = _as_2d(reference[0], reference_label)
    if ref_x.shape[1] != len(columns):
        raise SimkitError(f"{len(columns)} column names for {ref_x.shape[1]} reference columns")
    other_x = {label: (_as_2d(x, label), w) for label, (x, w) in others.items()}
    for label, (x, _) in other_x.items():
        if x.shape[1] != len(columns):
            raise SimkitError(f"{label}: {x.shape[1]} columns, expected {len(columns)}")
    units = list(units) if units is not None else [""] * len(columns)
    plt = pyplot()
    n_cols = min(len(columns), 4)
    n_rows = math.ceil(len(columns) / n_cols)
    fig = plt.figure(figsize=(4.4 * n_cols, 4.6 * n_rows))
    # one cell per column (room between rows for the x labels), split into the histogram
    # and its ratio panel with no room between them
    outer = fig.add_gridspec(n_rows, n_cols, hspace=0.32, wspace=0.38)
    for k, name in enumerate(columns):
        row, col = divmod(k, n_cols)
        cell = outer[row, col].subgridspec(2, 1, height_ratios=[3, 1], hspace=0.06)
        ax = fig.add_subplot(cell[0])
        ratio_ax = fig.add_subplot(cell[1], sharex=ax)
        edges = column_edges(ref_x[:, k], reference[1], bins)
        draw_column(
            ax,
            ratio_ax,
            (ref_x[:, k], reference[1]),
            {label: (x[:, k], w) for label, (x, w) in other_x.items()},
            edges=edges,
            reference_label=reference_label,
            xlabel=f"{name} [{units[k]}]" if units[k] else name,
        )
    return fig


def plot_weights(weights: Mapping[str, np.ndarray], ax=None, *, bins: int = 60):
    """Distributions of per-event weights on a log axis, ESS/N in the legend.

    Zero weights (events a step did not touch can have them) are counted in the
    legend, since a log axis cannot show them.
    """
    if ax is None:
        ax = pyplot().subplots(figsize=(5.5, 4))[1]
    positive = [np.asarray(w)[np.asarray(w) > 0] for w in weights.values()]
    if not any(len(p) for p in positive):
        raise SimkitError("no positive weights to draw")
    everything = np.concatenate(positive)
    lo, hi = everything.min(), everything.max()
    if hi <= lo:
        lo, hi = lo / 1.5, hi * 1.5
    edges = np.geomspace(lo, hi, bins + 1)
    for (label, w), p, color in zip(weights.items(), positive, COLORS, strict=False):
        w = np.asarray(w)
        ess = effective_sample_size(w) / len(w)
        zeros = len(w) - len(p)
        extra = f", {zeros} zero" if zeros else ""
        ax.hist(
            p,
            bins=edges,
            histtype="step",
            color=color,
            lw=1.5,
            label=f"{label} (ESS/N = {ess:.3f}{extra})",
        )
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # a narrow log range crowds minor labels
    ax.set_ylim(top=ax.get_ylim()[1] * 5)  # room for the legend
    ax.set_xlabel("event weight")
    ax.set_ylabel("events")
    ax.legend(fontsize="small", frameon=False, loc="upper right")
    return ax


def plot_iterations(diagnostics: Sequence[Mapping], ax=None, *, quantity: str = "auc"):
    """Per-iteration diagnostics of OmniFold: ``auc``, ``ess`` or ``clipped`` per step.

    ``diagnostics`` is :attr:`validation.omnifold.OmniFold.diagnostics_` (one mapping per
    iteration with ``step1_<quantity>`` and ``step2_<quantity>``). A step-1 AUC that
    falls to 0.5 means the reweighted simulation can no longer be told from the data.
    """
    labels = {
        "auc": "classifier AUC (held out)",
        "ess": "ESS / N",
        "clipped": "classifier outputs clipped",
    }
    if quantity not in labels:
        raise SimkitError(f"unknown quantity {quantity!r}; use {', '.join(labels)}")
    if ax is None:
        ax = pyplot().subplots(figsize=(5.5, 4))[1]
    iterations = [d["iteration"] for d in diagnostics]
    for step, marker, color in (("step1", "o", COLORS[0]), ("step2", "s", COLORS[1])):
        values = [d[f"{step}_{quantity}"] for d in diagnostics]
        ax.plot(
            iterations,
            values,
            marker=marker,
            color=color,
            label=f"{step} (reco)" if step == "step1" else f"{step} (gen)",
        )
    if quantity == "auc":
        ax.axhline(0.5, color="gray", ls="--", lw=0.8)
    if quantity == "clipped":
        ax.set_ylim(-0.5, max(1.0, ax.get_ylim()[1]))  # counts: no negative axis
    ax.set_xlabel("iteration")
    ax.set_ylabel(labels[quantity])
    ax.set_xticks(iterations)
    ax.legend(fontsize="small", frameon=False)
    return ax


def diagnostics_figure(diagnostics: Sequence[Mapping]):
    """AUC, ESS and clipped counts per iteration side by side."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, quantity in zip(axes, ("auc", "ess", "clipped"), strict=True):
        plot_iterations(diagnostics, ax, quantity=quantity)
    fig.tight_layout()
    return fig
