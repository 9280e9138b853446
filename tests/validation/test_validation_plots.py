"""Plots draw on the axes they are given, return them, and save as PNG."""

import numpy as np
import pytest

from simkit.errors import SimkitError
from simkit.plotting import pyplot, savefig
from validation.metrics import column_edges
from validation.plots import (
    diagnostics_figure,
    draw_column,
    plot_columns,
    plot_iterations,
    plot_weights,
)


def test_plot_columns_layout_and_save(tmp_path, rng):
    data = rng.normal(0.2, 0.8, (3000, 5))
    sim = rng.normal(0.0, 1.0, (4000, 5))
    fig = plot_columns(
        list("abcde"),
        (data, None),
        {"sim": (sim, None), "sim reweighted": (sim, rng.uniform(0.5, 1.5, 4000))},
        units=["GeV", "", "", "", ""],
    )
    assert len(fig.axes) == 10  # a main and a ratio panel per column
    main = fig.axes[0]
    labels = [t.get_text() for t in main.get_legend().get_texts()]
    assert any("outside" in label for label in labels)  # overflow is stated
    assert fig.axes[1].get_xlabel() == "a [GeV]"
    path = savefig(fig, tmp_path / "columns.png")
    assert path.stat().st_size > 1000


def test_draw_functions_use_the_given_axes(rng):
    plt = pyplot()
    fig, (ax, ratio_ax, w_ax, it_ax) = plt.subplots(4)
    values = rng.normal(size=1000)
    edges = column_edges(values, bins=20)
    out = draw_column(ax, ratio_ax, (values, None), {"sim": (values + 0.1, None)}, edges=edges)
    assert out == (ax, ratio_ax)
    assert plot_weights({"push": rng.lognormal(size=500)}, w_ax) is w_ax
    diagnostics = [
        {"iteration": k, "step1_auc": 0.6 - 0.05 * k, "step2_auc": 0.55} for k in (1, 2, 3)
    ]
    assert plot_iterations(diagnostics, it_ax) is it_ax
    plt.close(fig)


def test_diagnostics_figure_and_bad_input(rng):
    diagnostics = [
        {
            "iteration": k,
            **{f"step{s}_{q}": 0.5 for s in (1, 2) for q in ("auc", "ess", "clipped")},
        }
        for k in (1, 2)
    ]
    fig = diagnostics_figure(diagnostics)
    assert len(fig.axes) == 3
    pyplot().close(fig)
    with pytest.raises(SimkitError, match="column names"):
        plot_columns(["a"], (rng.normal(size=(10, 2)), None), {})
    with pytest.raises(SimkitError, match="unknown quantity"):
        plot_iterations(diagnostics, quantity="loss")
    with pytest.raises(SimkitError, match="no positive weights"):
        plot_weights({"w": np.zeros(5)})
