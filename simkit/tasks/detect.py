"""Anomaly detectors as tasks: ``train``, ``score`` and ``evaluate`` (``simkit detect``).

Each default is declared once: the detector's hyperparameters by
:class:`detectors.train.Detector` (read from its signature), the evaluation's by
:func:`detectors.evaluate.evaluate`, the rest here.
"""

from __future__ import annotations

import inspect as _inspect
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detectors.evaluate import EPS_B_TARGETS, MIN_BACKGROUND, SQRT_S
from detectors.labels import DEFAULT_TAG, STRATEGIES
from detectors.train import Detector
from simkit.errors import SimkitError
from simkit.regions import SIGNAL_REGION, SR_COLUMN, SignalRegion, parse_range, region_text
from simkit.tasks.base import Options, option

LEVELS = ("reco", "gen")
MODELS = ("ae", "vae", "classifier")
_DETECTOR = {
    name: p.default
    for name, p in _inspect.signature(Detector.__init__).parameters.items()
    if p.default is not _inspect.Parameter.empty
}


@dataclass(frozen=True)
class RegionOptions(Options):
    """The signal region ``LOW:HIGH`` of ``sr_column`` and its optional outer bounds."""

    sr_column: str = SR_COLUMN
    signal_region: str = region_text(SIGNAL_REGION)
    sidebands: str | None = None

    def region(self) -> SignalRegion:
        return SignalRegion.parse(self.signal_region, self.sidebands, column=self.sr_column)


# --------------------------------------------------------------------------- train


@dataclass(frozen=True)
class TrainConfig(RegionOptions):
    """``simkit detect train``'s settings."""

    model: str = option(_DETECTOR["model"], choices=MODELS)
    labels: str = option("all", choices=STRATEGIES)
    features: tuple[str, ...] | None = None
    level: str = option("reco", choices=LEVELS)
    tag: str = DEFAULT_TAG
    combine: str = option(_DETECTOR["combine"], choices=("max", "mean", "min"))
    latent: int | None = _DETECTOR["latent"]
    hidden: tuple[int, ...] | None = option(_DETECTOR["hidden"], format="widths")
    activation: str = option(
        _DETECTOR["activation"], choices=("silu", "relu", "gelu", "tanh", "leaky_relu")
    )
    beta: float = _DETECTOR["beta"]
    score: str | None = _DETECTOR["score"]
    epochs: int = _DETECTOR["epochs"]
    batch_size: int | None = _DETECTOR["batch_size"]
    lr: float = _DETECTOR["lr"]
    patience: int = _DETECTOR["patience"]
    val_fraction: float = _DETECTOR["val_fraction"]
    resume: bool = False
    device: str = option(_DETECTOR["device"], choices=("auto", "cpu", "cuda"))
    threads: int = _DETECTOR["threads"]
    seed: int = _DETECTOR["seed"]
    progress: bool = option(True, cli=False)

    def __post_init__(self) -> None:
        if self.features is not None:
            names = [v.strip() for item in self.features for v in str(item).split(",")]
            object.__setattr__(self, "features", tuple(v for v in names if v) or None)
        if self.hidden is not None:
            object.__setattr__(self, "hidden", tuple(self.hidden))
        if self.patience < 0:
            raise SimkitError(f"--patience must be 0 or more, got {self.patience}")


@dataclass(frozen=True)
class TrainInputs(Options):
    """Event file(s) to train on (joined row after row) and optional extra weights."""

    input: tuple[str, ...]
    weights: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "input", tuple(str(p) for p in self.input))


@dataclass
class TrainResult:
    """A trained detector and its metrics; :meth:`save` writes the model folder."""

    config: TrainConfig
    inputs: TrainInputs
    detector: Detector = field(repr=False)
    metrics: dict

    def to_dict(self) -> dict:
        return dict(self.metrics)

    def plot(self, ax=None):
        """The training and validation loss per epoch; returns the axes."""
        from detectors.train import plot_history

        return plot_history(self.detector.result_.history, ax)

    def summary_line(self, output) -> str:
        s = self.detector.result_.summary()
        return (
            f"trained {self.config.model} on {s['device']} in {s['seconds']:.1f} s "
            f"({s['epochs']} epochs, best {s['best_epoch']}, "
            f"{s['events_per_second']:.3g} events/s); wrote {output}"
        )

    def save(self, folder) -> Path:
        from simkit.io import write_json
        from simkit.plotting import pyplot, savefig

        out = Path(folder)
        self.detector.save(
            out, extra={"input": list(self.inputs.input), "weights": self.inputs.weights}
        )
        fig, ax = pyplot().subplots(figsize=(6, 4))
        self.plot(ax)
        savefig(fig, out / "training.png")
        return write_json(out / "metrics.json", self.metrics)


def read_training_table(inputs: TrainInputs, level: str):
    from detectors.score import inspect_inputs
    from simkit.events import Sample
    from simkit.io import read_sample, read_weights

    inspect_inputs(inputs.input, level)
    parts = [read_sample(path, levels=[level]) for path in inputs.input]
    for part in parts:
        part.scores.clear()  # earlier detectors' scores play no part in training
    sample = Sample.concatenate(parts) if len(parts) > 1 else parts[0]
    if inputs.weights:
        extra = read_weights(inputs.weights, len(sample))
        sample = sample.with_weights(sample.weights * extra)
    return sample.level(level)


def train(config: TrainConfig, inputs: TrainInputs, output=None, *, log=None) -> TrainResult:
    """Choose training examples with the label strategy and train the detector; with
    ``output``, save it there (a checkpoint there is resumed only with ``resume``)."""
    from detectors.labels import choose

    log = log or (lambda line: None)
    out = None if output is None else Path(output)
    if out is not None and out.exists() and not out.is_dir():
        raise SimkitError(f"{out}: exists and is not a folder")
    table = read_training_table(inputs, config.level)
    training = choose(
        table,
        config.labels,
        features=None if config.features is None else list(config.features),
        classes=config.model == "classifier",
        signal_region=config.region(),
        tag=config.tag,
    )
    report = training.report
    fraction = report.get("signal_fraction")
    log(
        f"--labels {config.labels}: kept {report['kept_events']} of "
        f"{report['passing_events']} passing events ({len(training)} training examples)"
        + ("" if fraction is None else f", signal fraction {fraction:.4g}")
    )
    checkpoint = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        checkpoint = out / "checkpoint.pt"
        if checkpoint.exists() and not config.resume:
            checkpoint.unlink()  # a new training: an old checkpoint must not be resumed
    names = ("latent", "hidden", "activation", "beta", "score", "combine", "epochs", "lr")
    names += ("batch_size", "patience", "val_fraction", "device", "seed", "resume")
    options = {k: getattr(config, k) for k in (*names, "threads", "progress")}
    detector = Detector(config.model, checkpoint=checkpoint, **options).fit(training)
    report = detector.label_report_
    summary = detector.result_.summary()
    metrics = {
        "model": config.model,
        "labels": config.labels,
        "score": detector.score_,
        "features": list(detector.columns_),
        "per_jet": detector.per_jet_,
        **{f"labels_{k}": v for k, v in report.items() if k != "strategy"},
        **{f"train_{k}": v for k, v in summary.items()},
    }
    result = TrainResult(config, inputs, detector, metrics)
    if out is not None:
        result.save(out)
    return result


# --------------------------------------------------------------------------- score


@dataclass(frozen=True)
class ScoreConfig(Options):
    """``simkit detect score``'s settings."""

    name: str | None = None  # None: the model kind
    level: str = option("reco", choices=LEVELS)
    chunk: int = 131072
    device: str = option("auto", choices=("auto", "cpu", "cuda"))
    threads: int = _DETECTOR["threads"]
    jobs: int = 1  # local worker processes, each scoring whole shards of `chunk` rows
    scheduler: str | None = None  # a Dask scheduler for the shards (simkit.shards)
    resume: bool = False
    keep_shards: bool = False
    progress: bool = option(True, cli=False)


@dataclass(frozen=True)
class ScoreInputs(Options):
    """A trained detector's folder and the event files to score."""

    POSITIONAL = ("model",)
    model: str
    input: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "input", tuple(str(p) for p in self.input))


@dataclass
class ScoreResult:
    output: Path
    n_events: int
    seconds: float
    names: dict  # score → dataset name
    primary: str

    def to_dict(self) -> dict:
        return {
            "output": str(self.output),
            "n_events": self.n_events,
            "seconds": self.seconds,
            "scores": list(self.names.values()),
            "primary_score": self.primary,
        }

    def summary_line(self) -> str:
        return (
            f"scored {self.n_events} events in {self.seconds:.1f} s: "
            f"{', '.join(self.names.values())} (primary {self.primary}) → {self.output}"
        )


def score(config: ScoreConfig, inputs: ScoreInputs, output) -> ScoreResult:
    """Write ``output``: the inputs' events with ``/scores/<name>_<score>`` for every
    score of the detector (scores every input already has are carried over), scored in
    shards of ``chunk`` rows by this process, ``jobs`` processes or a Dask scheduler
    (:func:`detectors.score.score_files`): the same bytes whichever."""
    from detectors.score import score_files

    t0 = time.perf_counter()
    summary = score_files(
        inputs.model,
        inputs.input,
        output,
        name=config.name,
        level=config.level,
        rows_per_shard=config.chunk,
        device=config.device,
        threads=config.threads,
        jobs=config.jobs,
        scheduler=config.scheduler,
        resume=config.resume,
        keep_shards=config.keep_shards,
        progress=config.progress,
    )
    return ScoreResult(
        summary.output, summary.n_events, time.perf_counter() - t0, summary.names, summary.primary
    )


# --------------------------------------------------------------------------- evaluate


@dataclass(frozen=True)
class EvaluateConfig(RegionOptions):
    """``simkit detect evaluate``'s settings (defaults: :func:`detectors.evaluate.evaluate`)."""

    score: str | None = None  # None: the file's primary score
    level: str = option("reco", choices=LEVELS)
    roc_events: str = option("auto", choices=("auto", "all", "signal-region"))
    min_background: int = MIN_BACKGROUND
    eps_b_targets: tuple[float, ...] = EPS_B_TARGETS
    target_eps_b: float = 1e-2
    bin_width: float = 100.0
    mjj_range: str | None = None  # "LOW:HIGH"; None: from the spectrum's peak
    sqrt_s: float = SQRT_S

    def __post_init__(self) -> None:
        object.__setattr__(self, "eps_b_targets", tuple(float(e) for e in self.eps_b_targets))
        if not 0 < self.target_eps_b < 1:
            raise SimkitError(f"--target-eps-b must be between 0 and 1, got {self.target_eps_b}")


@dataclass(frozen=True)
class EvaluateInputs(Options):
    """A scored file; optionally a scored background-only file that fixes the cut, and a
    scored signal-only file whose events in the signal region join the ROC."""

    POSITIONAL = ("scores",)
    scores: str
    calibration: str | None = None
    signal: str | None = None


@dataclass
class EvaluateResult:
    """The evaluation (:class:`detectors.evaluate.Evaluation`) and its ``metrics.json``."""

    metrics: dict
    roc: object = field(repr=False)  # the Evaluation whose ROC is reported
    hunt: object = field(repr=False)  # the Evaluation whose bump hunt is reported

    def to_dict(self) -> dict:
        return dict(self.metrics)

    def plot(self, ax=None):
        """Display-style: the ROC where there are labels, else the bump hunt after the
        cut; returns the axes."""
        from detectors.performance import plot_roc

        if self.roc.performance is not None:
            return plot_roc(self.roc.performance, ax, label=self.metrics["score"])
        if self.hunt.bump is None:
            raise SimkitError("nothing to draw: no labels for a ROC and no mjj for a bump hunt")
        if ax is None:
            from simkit.plotting import pyplot

            _, ax = pyplot().subplots(figsize=(6, 4.5))
        self.hunt.bump.plot(ax)
        return ax

    def summary_lines(self, output) -> list[str]:
        m = self.metrics
        parts = [f"score {m['score']}"]
        if m.get("auc") is not None:
            sic = m["max_sic"]
            parts.append(f"AUC {m['auc']:.4f}")
            parts.append(f"max SIC {sic:.2f}" if sic is not None else "max SIC n/a")
        if self.hunt.bump is not None:
            parts.append(f"bump-hunt Z {self.hunt.bump.z_local:.2f}")
        return ["; ".join(parts) + f"; wrote {output}"] + [f"note: {n}" for n in m["notes"]]

    def save(self, folder) -> Path:
        from detectors.evaluate import save_bump_hunt
        from simkit.io import write_json

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        self.roc.save_plots(out)
        if self.hunt is not self.roc and self.hunt.bump is not None:
            save_bump_hunt(self.hunt.bump, out / "bump_hunt.png")
        return write_json(out / "metrics.json", self.metrics)


def choose_score(info, asked: str | None, path) -> str:
    """The score to evaluate: ``asked``, else the file's primary or only score."""
    if asked:
        if asked not in info.scores:
            have = ", ".join(info.scores) or "none"
            raise SimkitError(f"{path}: has no score {asked!r} (scores: {have})")
        return asked
    primary = info.provenance.get("settings", {}).get("primary_score")
    if primary in info.scores:
        return primary
    if len(info.scores) == 1:
        return info.scores[0]
    if not info.scores:
        raise SimkitError(f"{path}: holds no scores; run `simkit detect score` first")
    raise SimkitError(
        f"{path}: holds several scores ({', '.join(info.scores)}); pick one with --score"
    )


def read_scored(path, score: str, level: str, column: str):
    """Passing events: (score, weights, labels or None, mjj or None)."""
    from simkit.io import inspect, read_sample

    info = inspect(path)
    if level not in info.levels:
        raise SimkitError(f"{path}: has no {level} level")
    if score not in info.scores:
        raise SimkitError(f"{path}: has no score {score!r}")
    columns = info.levels[level].columns
    has_column = column in columns
    sample = read_sample(path, levels=[level], columns=[column] if has_column else columns[:1])
    table = sample.level(level)
    keep = table.passed
    return (
        sample.scores[score][keep],
        table.weights[keep],
        None if table.labels is None else table.labels[keep],
        table.column(column)[keep] if has_column else None,
    )


def evaluate(config: EvaluateConfig, inputs: EvaluateInputs, output=None) -> EvaluateResult:
    """ROC, SIC and ε_S at ε_B (with labels), the cut fixed for ``target_eps_b``, and the
    bump hunt after it (see :func:`detectors.evaluate.evaluate`).

    With ``inputs.signal`` the ROC takes the evaluated file's background events in the
    signal region against every signal event there — its own *and* the signal-only
    file's — so that ε_S rests on more than a few injected events, while ε_B and the
    bump hunt are the evaluated file's alone.
    """
    from detectors.evaluate import evaluate as evaluate_scores
    from simkit.io import inspect

    out = None if output is None else Path(output)
    if out is not None and out.exists() and not out.is_dir():
        raise SimkitError(f"{out}: exists and is not a folder")
    region = config.region()
    score_name = choose_score(inspect(inputs.scores), config.score, inputs.scores)
    scores, weights, labels, mjj = read_scored(
        inputs.scores, score_name, config.level, region.column
    )
    calibration = calibration_weights = None
    if inputs.calibration:
        calibration, calibration_weights, _, _ = read_scored(
            inputs.calibration, score_name, config.level, region.column
        )
    common = {
        "min_background": config.min_background,
        "eps_b_targets": config.eps_b_targets,
        "target_eps_b": config.target_eps_b,
        "calibration_scores": calibration,
        "calibration_weights": calibration_weights,
        "score_name": score_name,
    }
    hunt = evaluate_scores(
        scores,
        labels=labels,
        weights=weights,
        mjj=mjj,
        signal_region=region,
        roc_events=config.roc_events,
        bin_width=config.bin_width,
        mjj_range=parse_range(config.mjj_range, "--mjj-range") if config.mjj_range else None,
        sqrt_s=config.sqrt_s,
        **common,
    )
    metrics = {"input": str(inputs.scores), **hunt.metrics()}
    roc = hunt
    if inputs.signal:
        roc, extra = _with_signal(
            inputs.signal, config, region, common, scores, weights, labels, mjj
        )
        metrics["auc_injected_only"] = metrics.pop("auc")
        metrics["max_sic_injected_only"] = metrics.pop("max_sic")
        for key in ("eps_s_at_eps_b", "eps_s_at_eps_b_error", "background_events_at_eps_b"):
            metrics.pop(key, None)
        if roc.performance is not None:
            metrics.update(roc.performance.metrics())
        else:
            metrics.update(auc=None, max_sic=None, eps_s_at_eps_b=None)
        # the ROC's evaluation has no mjj on purpose (the bump hunt is the data's): drop
        # its "no bump hunt" note, keep every other
        roc_notes = [n for n in roc.notes if "bump hunt" not in n]
        metrics["notes"] = list(dict.fromkeys([*roc_notes, *hunt.notes]))
        metrics.update(extra)
    result = EvaluateResult(metrics, roc, hunt)
    if out is not None:
        result.save(out)
    return result


def _with_signal(path, config, region, common, scores, weights, labels, mjj):
    """The ROC over the signal region with a signal-only file's events added."""
    from detectors.evaluate import evaluate as evaluate_scores

    if labels is None or mjj is None:
        raise SimkitError(
            f"{path}: a signal-only file joins the ROC only when the evaluated file has "
            f"labels and the {region.column} column"
        )
    sig_scores, sig_weights, _, sig_mjj = read_scored(
        path, common["score_name"], config.level, region.column
    )
    if sig_mjj is None:
        raise SimkitError(f"{path}: has no {region.column} column")
    in_sr, sig_in_sr = region.inside(mjj), region.inside(sig_mjj)
    if common["calibration_scores"] is None:  # the cut is the evaluated file's
        common = {**common, "calibration_scores": scores, "calibration_weights": weights}
    roc = evaluate_scores(
        np.concatenate([scores[in_sr], sig_scores[sig_in_sr]]),
        labels=np.concatenate([labels[in_sr], np.ones(int(sig_in_sr.sum()), np.int8)]),
        weights=np.concatenate([weights[in_sr], sig_weights[sig_in_sr]]),
        roc_events="all",
        **common,
    )
    extra = {
        "roc_events": "background in the signal region + every signal event there (the "
        "evaluated file's and the signal-only file's)",
        "roc_background_events": int((labels[in_sr] == 0).sum()),
        "roc_signal_injected": int((labels[in_sr] == 1).sum()),
        "roc_signal_test": int(sig_in_sr.sum()),
        "data_events": len(scores),
    }
    return roc, extra
