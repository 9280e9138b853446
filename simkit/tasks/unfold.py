"""Unfold a simulation to data by OmniFold: weights, reweighter, metrics, plots.

``run(UnfoldConfig(...), UnfoldInputs(sim=..., data=...), output)`` is ``simkit unfold``:

>>> config = UnfoldConfig(iterations=3, epochs=5)
>>> config.argv()
['--iterations', '3', '--epochs', '5']
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simkit.errors import SimkitError
from simkit.tasks.base import Options, option
from validation.gate import DEFAULT_ALPHA, DEFAULT_AUC_TOLERANCE, DEFAULT_CHI2_TOLERANCE


@dataclass(frozen=True)
class GateOptions(Options):
    """The validation gate's settings (:mod:`validation.gate`), for compare and unfold."""

    alpha: float = DEFAULT_ALPHA
    auc_tolerance: float = DEFAULT_AUC_TOLERANCE
    chi2_tolerance: float = DEFAULT_CHI2_TOLERANCE

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise SimkitError(f"alpha must be strictly between 0 and 1, got {self.alpha}")
        if not self.auc_tolerance >= 0.0:
            raise SimkitError(f"--auc-tolerance must be ≥ 0, got {self.auc_tolerance}")
        if self.auc_tolerance >= 0.5:
            raise SimkitError(f"--auc-tolerance must be below 0.5, got {self.auc_tolerance}")
        if not self.chi2_tolerance >= 0.0:
            raise SimkitError(f"--chi2-tolerance must be ≥ 0, got {self.chi2_tolerance}")


@dataclass(frozen=True)
class UnfoldConfig(GateOptions):
    """``simkit unfold``'s settings; each default declared here once."""

    bins: int = 40  # histogram bins per column (the gate's χ² and the plots)
    columns: tuple[str, ...] | None = None
    iterations: int = 10
    tolerance: float = 2.0
    push_tolerance: float = 0.05
    seed: int = 0
    ensemble: int = 1
    bootstrap: int = 0
    failed_reco: str = option("learn", choices=("keep", "learn"))
    hidden: tuple[int, ...] = option((64, 64), format="widths")
    batch_size: int = 4096
    epochs: int = 40
    lr: float = 2e-3
    patience: int = 8
    val_fraction: float = 0.2
    clip: float = 1e-4
    threads: int = 1
    warm_start: bool = option(True, flag="--no-warm-start")
    blind: str | None = None  # "LOW:HIGH"
    blind_column: str = "mjj"
    score_truth: bool = False
    device: str = option("auto", choices=("auto", "cpu", "cuda"))
    progress: bool = option(True, cli=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.columns is not None:
            object.__setattr__(self, "columns", tuple(self.columns))
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if self.bootstrap < 0:
            raise SimkitError(f"--bootstrap must be 0 or more, got {self.bootstrap}")
        if self.patience < 0:
            raise SimkitError(f"--patience must be 0 or more, got {self.patience}")
        if self.failed_reco not in ("keep", "learn"):
            raise SimkitError(f"failed_reco must be keep or learn, got {self.failed_reco!r}")

    def blind_window(self) -> tuple[str, float, float] | None:
        return blind_window(self.blind, self.blind_column)


def blind_window(text: str | None, column: str) -> tuple[str, float, float] | None:
    """``(column, low, high)`` of a ``LOW:HIGH`` window, or None; a bad one is an error."""
    if text is None:
        return None
    from simkit.regions import SignalRegion

    region = SignalRegion.parse(text, column=column, what="--blind")
    return region.column, region.low, region.high


@dataclass(frozen=True)
class UnfoldInputs(Options):
    """The files ``simkit unfold`` reads: a paired simulation and the data, with
    optional ``FILE.h5:DATASET`` weights instead of the files' own."""

    sim: str
    data: str
    sim_weights: str | None = None
    data_weights: str | None = None


@dataclass
class UnfoldResult:
    """What the unfolding found; :meth:`save` writes ``weights.h5``, ``reweighter/``,
    ``metrics.json`` and the plots."""

    config: UnfoldConfig
    inputs: UnfoldInputs
    metrics: dict
    estimator: object = field(repr=False)
    arrays: dict = field(repr=False)
    provenance: dict = field(repr=False)
    plot_data: dict = field(repr=False, default_factory=dict)

    def to_dict(self) -> dict:
        return dict(self.metrics)

    @property
    def validated(self) -> bool:
        return bool(self.metrics["validated"])

    def summary_lines(self) -> list[str]:
        """The per-iteration lines, the stop reason and the gate line."""
        m, lines = self.metrics, []
        for k in range(1, m["iterations"] + 1):
            lines.append(
                f"  iteration {k}: step 1 AUC {m[f'iter{k}_step1_auc']:.4f}, "
                f"step 2 AUC {m[f'iter{k}_step2_auc']:.4f}, "
                f"ESS/N {m[f'iter{k}_step2_ess']:.3f}, "
                f"{m[f'iter{k}_step1_seconds'] + m[f'iter{k}_step2_seconds']:.1f} s"
            )
        lines.append(f"  {m['stop_reason']}")
        return lines

    def gate_line(self) -> str:
        m = self.metrics
        where = ""
        if "blind" in m:
            column, low, high = m["blind"]
            where = f" outside {low:g} ≤ {column} < {high:g}"
        return (
            f"gate at reco level{where}: before {_word(m['before_validated'])} "
            f"(AUC {m['before_auc']:.4f}, max χ²/ndf {m['before_max_chi2_ndf']:.2f}, "
            f"min p {m['before_min_p_value']:.2g}); after {_word(m['validated'])} "
            f"(AUC {m['after_auc']:.4f}, max χ²/ndf {m['after_max_chi2_ndf']:.2f}, "
            f"min p {m['after_min_p_value']:.2g}; every p must be ≥ "
            f"{m['gate_alpha_per_test']:.2g})"
        )

    def plot(self, ax=None):
        """Display-style: the last pull and push weights (times the simulation's), on a
        log axis with ESS/N; returns the axes."""
        from validation.plots import plot_weights

        sim_w = self.plot_data["sim_weights"]
        return plot_weights(
            {
                "pull (last)": self.estimator.pull_weights_[-1] * sim_w,
                "push (last)": self.estimator.weights_ * sim_w,
            },
            ax,
        )

    def save(self, folder) -> Path:
        from simkit.io import write_arrays, write_json

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        write_arrays(out / "weights.h5", self.arrays, provenance=self.provenance)
        self.estimator.reweighter_.save(out / "reweighter")
        self.save_plots(out)
        return write_json(out / "metrics.json", self.metrics)

    def save_plots(self, folder) -> list[Path]:
        """``reco.png`` (what the unfolding was fitted to), ``gen.png`` (the answer),
        ``weights.png`` and ``iterations.png``."""
        from simkit.plotting import savefig
        from validation.plots import diagnostics_figure, plot_columns

        folder, d = Path(folder), self.plot_data
        columns, bins = self.metrics["columns"], self.config.bins
        written = [
            savefig(
                plot_columns(
                    columns,
                    d["reco_reference"],
                    d["reco_others"],
                    reference_label="data",
                    bins=bins,
                    units=d["reco_units"],
                ),
                folder / "reco.png",
            ),
            savefig(
                plot_columns(
                    columns,
                    d["gen_reference"],
                    d["gen_others"],
                    reference_label=d["gen_reference_label"],
                    bins=bins,
                    units=d["gen_units"],
                ),
                folder / "gen.png",
            ),
        ]
        written.append(savefig(self.plot().figure, folder / "weights.png"))
        written.append(
            savefig(diagnostics_figure(self.estimator.diagnostics_), folder / "iterations.png")
        )
        return written


def _word(validated: bool) -> str:
    return "VALIDATED" if validated else "NOT VALIDATED"


def load_inputs(config: UnfoldConfig, inputs: UnfoldInputs):
    """The simulation (gen + reco), the data (reco only: its truth is never read), the
    unfolded columns and both weight vectors; mismatched files are one clear error."""
    from simkit.io import inspect, read_sample, read_weights

    sim_info, data_info = inspect(inputs.sim), inspect(inputs.data)
    if "gen" not in sim_info.levels:
        raise SimkitError(
            f"{inputs.sim}: has no gen level; unfolding needs a simulation with paired "
            "gen and reco events"
        )
    if "reco" not in sim_info.levels:
        raise SimkitError(f"{inputs.sim}: has no reco level")
    if "reco" not in data_info.levels:
        raise SimkitError(f"{inputs.data}: has no reco level")
    if config.columns is None:
        data_cols = data_info.levels["reco"].columns
        for level in ("gen", "reco"):
            sim_cols = sim_info.levels[level].columns
            if set(sim_cols) != set(data_cols):
                raise SimkitError(
                    f"columns differ: {inputs.sim} {level} has {', '.join(sim_cols)}; "
                    f"{inputs.data} reco has {', '.join(data_cols)} (choose common ones "
                    "with --columns)"
                )
        columns = list(data_cols)
    else:
        columns = list(config.columns)
        for path, info, levels in (
            (inputs.sim, sim_info, ("gen", "reco")),
            (inputs.data, data_info, ("reco",)),
        ):
            for level in levels:
                missing = [c for c in columns if c not in info.levels[level].columns]
                if missing:
                    raise SimkitError(
                        f"columns differ: {path} {level} has no {', '.join(missing)} "
                        f"(it has: {', '.join(info.levels[level].columns)})"
                    )
    sim = read_sample(inputs.sim, levels=["gen", "reco"], columns=columns)
    data = read_sample(inputs.data, levels=["reco"], columns=columns)
    sim_w = (
        sim.weights if inputs.sim_weights is None else read_weights(inputs.sim_weights, len(sim))
    )
    data_w = (
        data.weights
        if inputs.data_weights is None
        else read_weights(inputs.data_weights, len(data))
    )
    return sim, data, columns, sim_w, data_w


def run(config: UnfoldConfig, inputs: UnfoldInputs, output=None, *, log=None) -> UnfoldResult:
    """Unfold ``inputs.sim`` to ``inputs.data``; with ``output``, save everything there.
    ``log`` (a callable taking a line) hears what is being done."""
    from simkit.io import make_provenance
    from validation.classifier import ClassifierConfig
    from validation.omnifold import OmniFold, bootstrap_weights

    log = log or (lambda line: None)
    out = None if output is None else Path(output)
    if out is not None and out.exists() and not out.is_dir():
        raise SimkitError(f"{out}: exists and is not a folder")
    t_start = time.perf_counter()
    blind = config.blind_window()
    sim, data, columns, sim_w, data_w = load_inputs(config, inputs)
    log(
        f"unfolding {', '.join(columns)}: {len(sim)} simulated events "
        f"({int(sim.reco.passed.sum())} pass reco), {int(data.reco.passed.sum())} data events; "
        f"at most {config.iterations} iterations"
    )
    classifier = ClassifierConfig(
        hidden=config.hidden,
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        patience=config.patience,
        val_fraction=config.val_fraction,
        threads=config.threads,
    )
    estimator = OmniFold(
        iterations=config.iterations,
        classifier=classifier,
        ensemble=config.ensemble,
        clip=config.clip,
        failed_reco=config.failed_reco,
        tolerance=config.tolerance,
        push_tolerance=config.push_tolerance,
        warm_start=config.warm_start,
        seed=config.seed,
        device=config.device,
        progress=config.progress,
    )
    fit_kwargs = {"sim_weights": sim_w, "data_weights": data_w, "blind": blind}
    estimator.fit_samples(sim, data, **fit_kwargs)
    arrays = {"omnifold/pull": estimator.pull_weights_, "omnifold/push": estimator.push_weights_}
    replicas = None
    if config.bootstrap:
        log(f"unfolding {config.bootstrap} bootstrap replicas of the data")
        replicas = bootstrap_weights(estimator, config.bootstrap, sim, data, **fit_kwargs)
        arrays["omnifold/bootstrap"] = replicas
    provenance = make_provenance(
        "validation.omnifold.OmniFold",
        seed=config.seed,
        sim=str(inputs.sim),
        data=str(inputs.data),
        columns=columns,
        iterations=config.iterations,
        iterations_run=estimator.n_iter_,
        tolerance=config.tolerance,
        push_tolerance=config.push_tolerance,
        ensemble=config.ensemble,
        failed_reco=config.failed_reco,
        blind=blind,
        classifier=classifier.to_dict(),
    )
    metrics, plot_data = _metrics(
        config, inputs, estimator, sim, data, columns, sim_w, data_w, replicas, blind
    )
    result = UnfoldResult(config, inputs, metrics, estimator, arrays, provenance, plot_data)
    metrics["seconds_total"] = time.perf_counter() - t_start
    if out is not None:
        result.save(out)
    return result


def _metrics(config, inputs, estimator, sim, data, columns, sim_w, data_w, replicas, blind):
    from simkit.events import in_window
    from simkit.io import read_sample
    from validation.compare import compare
    from validation.metrics import column_metrics

    push = estimator.weights_
    metrics: dict = {
        "sim": str(inputs.sim),
        "data": str(inputs.data),
        "columns": columns,
        "iterations": estimator.n_iter_,
        "iterations_max": config.iterations,
        "converged": estimator.converged_,
        "stop_reason": estimator.stop_reason_,
        "tolerance": config.tolerance,
        "push_tolerance": config.push_tolerance,
        "ensemble": config.ensemble,
        "failed_reco": config.failed_reco,
        "n_sim": len(sim),
        "n_sim_pass_reco": int(sim.reco.passed.sum()),
        "n_sim_pass_gen": int(sim.gen.passed.sum()),
        "n_data_pass_reco": int(data.reco.passed.sum()),
        "seconds_unfold": estimator.fit_seconds_,
        "clip": config.clip,
    }
    for record in estimator.diagnostics_:
        k = record["iteration"]
        for key, value in record.items():
            if key != "iteration":
                metrics[f"iter{k}_{key}"] = value
    metrics["ess_final"] = metrics[f"iter{estimator.n_iter_}_step2_ess"]

    gate_sim, gate_data = np.ones(len(sim), bool), np.ones(len(data), bool)
    if blind is not None:  # the gate looks where the unfolding did: outside the window
        metrics["blind"] = list(blind)
        column, low, high = blind
        gate_sim = ~in_window(sim.reco.column(column), low, high)
        gate_data = ~in_window(data.reco.column(column), low, high)
    gate = {
        "alpha": config.alpha,
        "auc_tolerance": config.auc_tolerance,
        "chi2_tolerance": config.chi2_tolerance,
        "bins": config.bins,
        "seed": config.seed,
        "device": config.device,
        "n_bootstrap": 100,
    }
    ref, ref_w = data.reco.mask(gate_data), data_w[gate_data]
    cand, cand_w = sim.reco.mask(gate_sim), sim_w[gate_sim]
    before = compare(ref, cand, reference_weights=ref_w, candidate_weights=cand_w, **gate)
    after = compare(
        ref, cand, reference_weights=ref_w, candidate_weights=cand_w * push[gate_sim], **gate
    )
    for name, result in (("before", before), ("after", after)):
        for key in (
            "auc",
            "auc_low",
            "auc_high",
            "auc_null_sigma",
            "auc_p_value",
            "max_chi2_ndf",
            "worst_column",
            "min_p_value",
        ):
            metrics[f"{name}_{key}"] = result[key]
        for c in columns:
            metrics[f"{name}_chi2_ndf_{c}"] = result[f"chi2_ndf_{c}"]
            metrics[f"{name}_chi2_p_value_{c}"] = result[f"chi2_p_value_{c}"]
        metrics[f"{name}_validated"] = result["validated"]
    for key in ("tests", "alpha", "alpha_per_test", "auc_tolerance", "chi2_tolerance"):
        metrics[f"gate_{key}"] = after[f"gate_{key}"]
    metrics["validated"] = after["validated"]

    gen_rows = sim.gen.passed & (sim_w > 0)
    gen_x = sim.gen.features[gen_rows]
    unfolded_w = (sim_w * push)[gen_rows]
    if replicas is not None:
        metrics["bootstrap_replicas"] = len(replicas)
        for j, c in enumerate(columns):
            means = [np.average(gen_x[:, j], weights=(sim_w * r)[gen_rows]) for r in replicas]
            metrics[f"unfolded_mean_{c}_bootstrap_std"] = float(np.std(means, ddof=1))
    for j, c in enumerate(columns):
        mean = np.average(gen_x[:, j], weights=unfolded_w)
        metrics[f"unfolded_mean_{c}"] = float(mean)
        metrics[f"unfolded_std_{c}"] = float(
            np.sqrt(np.average((gen_x[:, j] - mean) ** 2, weights=unfolded_w))
        )

    reco_rows = sim.reco.passed & (sim_w > 0)
    data_rows = data.reco.passed & (data_w > 0)
    plot_data = {
        "reco_reference": (data.reco.features[data_rows], data_w[data_rows]),
        "reco_others": {
            "sim": (sim.reco.features[reco_rows], sim_w[reco_rows]),
            "sim × push": (sim.reco.features[reco_rows], (sim_w * push)[reco_rows]),
        },
        "reco_units": sim.reco.units,
        "gen_units": sim.gen.units,
        "sim_weights": sim_w,
    }
    gen_others = {"sim gen × push (unfolded)": (gen_x, unfolded_w)}
    reference = (gen_x, sim_w[gen_rows])
    reference_label = "sim gen (prior)"
    if config.score_truth:
        truth = read_sample(inputs.data, levels=["truth"], columns=columns).truth
        truth_rows = truth.passed & (truth.weights > 0)
        truth_x, truth_w = truth.features[truth_rows], truth.weights[truth_rows]
        scored = column_metrics(
            truth_x,
            gen_x,
            columns,
            reference_weights=truth_w,
            candidate_weights=unfolded_w,
            bins=config.bins,
        )
        for c, values in scored.items():
            for key, value in values.items():
                metrics[f"truth_{key}_{c}"] = value
            j = columns.index(c)
            t_mean = np.average(truth_x[:, j], weights=truth_w)
            metrics[f"truth_mean_{c}"] = float(t_mean)
            metrics[f"truth_std_{c}"] = float(
                np.sqrt(np.average((truth_x[:, j] - t_mean) ** 2, weights=truth_w))
            )
        gen_others = {"sim gen (prior)": reference, **gen_others}
        reference, reference_label = (truth_x, truth_w), "data truth"
    plot_data |= {
        "gen_reference": reference,
        "gen_others": gen_others,
        "gen_reference_label": reference_label,
    }
    return metrics, plot_data
