"""Surrogates as tasks: fit a flow or GAN to an event file and report its fidelity;
sample events from a saved model into an event file (``simkit surrogate fit|sample``).

``fit(FitConfig(...), FitInputs(input=...), output)`` and
``sample(SampleConfig(...), SampleInputs(model=...), output)`` are the tasks; the
keyword functions :func:`fit_surrogate` and :func:`sample_surrogate` do the work.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simkit.errors import SimkitError
from simkit.surrogates import defaults
from simkit.tasks.base import Options, option

#: ``metrics.json`` of ``surrogate fit``: key → meaning (also in docs/howto/surrogates.md).
FIT_METRICS = {
    "kind": "flow or gan",
    "level": "event level the model learned (reco or gen)",
    "columns": "every modelled column, conditioning ones included, in file order",
    "condition": "conditioning columns (generated events take them as given)",
    "events_fit": "events given to fit (after the held-out split): train + validation",
    "events_train": "events the optimizer saw",
    "events_validation": "events used for early stopping",
    "events_test": "held-out events of the fidelity report (never seen in training)",
    "epochs": "epochs run",
    "best_epoch": "epoch whose weights were kept (lowest validation loss, 0-based)",
    "best_val_loss": "flow: weighted NLL per event; gan: MMD² to validation events",
    "stopped_early": "early stopping ended the training",
    "skipped_steps": "optimizer steps skipped for a non-finite loss",
    "train_seconds": "wall time of the training loop",
    "train_events_per_second": "training throughput (events × epochs / seconds)",
    "test_nll": "flow only: weighted mean −log p(x|c) of held-out events (physical units)",
    "two_sample_auc": "held-out ROC AUC of a classifier telling held-out from generated "
    "events (0.5 = indistinguishable)",
    "two_sample_auc_low": "95 % bootstrap interval, lower end",
    "two_sample_auc_high": "95 % bootstrap interval, upper end",
    "auc_null_sigma": "spread of the AUC expected for identical samples of these sizes",
    "sample_events_per_second": "generation rate of the fidelity sample (in memory)",
    "device": "where the model trained",
    "precision": "fp32, bf16 or auto (bf16 on CUDA)",
}


def architecture(kind: str, layers: int | None, hidden: int | None) -> dict:
    if kind == "flow":
        arch = {}
        if layers is not None:
            arch["n_layers"] = layers
        if hidden is not None:
            arch["hidden"] = hidden
        return arch
    width = hidden or 256
    depth = layers or 3
    return {"hidden": (width,) * depth, "critic_hidden": (width,) * depth}


def _read_table(path, level: str, columns: Sequence[str] | None, weights: str | None):
    from simkit.io import inspect, read_sample, read_weights

    info = inspect(path)
    sample = read_sample(path, levels=[level], columns=columns)
    table = sample.level(level)
    if weights:
        table = table.with_weights(table.weights * read_weights(weights, info.n_events))
    return table.passing(), info.provenance


def held_out_split(table, seed: int, test_fraction: float = 0.2, max_events: int | None = None):
    """``fit_surrogate``'s split of passing events into (held-out test, fit part): a
    permutation seeded by ``seed``, the first ``test_fraction`` of it (of the first
    ``max_events``) held out; benchmarks call it to redraw a fit's test events."""
    order = np.random.default_rng([seed, 3]).permutation(len(table))
    if max_events is not None:
        order = order[:max_events]
    n_test = round(len(order) * test_fraction)
    if n_test < 10 or len(order) - n_test < 10:
        raise SimkitError(
            f"{len(order)} passing events are too few to split off a test fraction of "
            f"{test_fraction}"
        )
    # keep file order inside each part: reproducible and cheap to slice
    return table.mask(np.sort(order[:n_test])), table.mask(np.sort(order[n_test:]))


def fit_surrogate(
    input: str | os.PathLike,
    output: str | os.PathLike,
    *,
    kind: str = "flow",
    level: str = "reco",
    columns: Sequence[str] | None = None,
    condition: Sequence[str] = (),
    weights: str | None = None,
    test_fraction: float = 0.2,
    max_events: int | None = None,
    n_bootstrap: int = 100,
    seed: int = 0,
    device: str = "auto",
    progress: bool = False,
    resume: bool = False,
    **settings,
) -> dict:
    """Fit a surrogate to an event file, save it in ``output`` and report its fidelity.

    ``settings`` go to the model (``epochs``, ``batch_size``, ``lr``, ``transforms``,
    architecture, ...). Writes ``output``/{config.json, model.safetensors,
    checkpoint.pt, metrics.json, fidelity.png, training.png}; returns the metrics.
    """
    from simkit.io import write_json
    from simkit.surrogates import SURROGATES

    if kind not in SURROGATES:
        raise SimkitError(f"unknown surrogate kind {kind!r}; use {', '.join(SURROGATES)}")
    if not 0.0 < test_fraction < 1.0:
        raise SimkitError(f"the test fraction must be in (0, 1), got {test_fraction}")
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise SimkitError(f"{output}: exists and is not a folder")
    needed = None if columns is None else list(dict.fromkeys([*condition, *columns]))
    table, provenance = _read_table(input, level, needed, weights)
    test, fit_part = held_out_split(table, seed, test_fraction, max_events)

    output.mkdir(parents=True, exist_ok=True)
    model = SURROGATES[kind](
        condition=condition,
        columns=columns,
        seed=seed,
        device=device,
        progress=progress,
        checkpoint=output / "checkpoint.pt",
        resume=resume,
        **settings,
    )
    model.fit(fit_part)
    trained_on = {
        "file": str(input),
        "level": level,
        "weights": weights,
        "events": len(fit_part),
        "generator": provenance.get("generator"),
        "seed": provenance.get("seed"),
    }
    model.save(output, extra={"trained_on": trained_on})

    metrics = fidelity_report(model, test, output, n_bootstrap=n_bootstrap, seed=seed)
    summary = model.training_
    metrics = {
        "kind": kind,
        "level": level,
        "columns": list(model.columns_),
        "condition": list(model.condition_),
        "events_fit": len(fit_part),
        "events_train": summary["train_events"],
        "events_validation": summary["val_events"],
        "events_test": len(test),
        "epochs": summary["epochs"],
        "best_epoch": summary["best_epoch"],
        "best_val_loss": _finite(summary["best_val_loss"]),
        "stopped_early": summary["stopped_early"],
        "skipped_steps": summary["skipped_steps"],
        "train_seconds": summary["seconds"],
        "train_events_per_second": summary["events_per_second"],
        **metrics,
        "device": summary["device"],
        "precision": model.precision or model.default_precision,
    }
    write_json(output / "metrics.json", metrics)
    plot_training(model.train_result_.history, output / "training.png", kind)
    return metrics


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def fidelity_report(model, test, output: Path, *, n_bootstrap: int = 100, seed: int = 0) -> dict:
    """Generate as many events as ``test`` holds (with its contexts), compare, plot.

    Returns the fidelity metrics; writes ``fidelity.png`` (per-column histograms with
    ratio panels) into ``output``.
    """
    from simkit.plotting import savefig
    from validation.metrics import two_sample_auc
    from validation.plots import plot_columns

    reference = test.select(model.columns_)
    context = reference.select(model.condition_).features if model.condition_ else None
    t0 = time.perf_counter()
    generated = model.sample(len(reference), context, seed=seed + 1)
    seconds = time.perf_counter() - t0
    # a conditional model's events take the held-out contexts row by row, so they carry
    # the held-out weights; an unconditional model learned the weighted distribution
    candidate_weights = reference.weights if model.condition_ else None
    auc = two_sample_auc(
        reference.features,
        generated.features,
        reference_weights=reference.weights,
        candidate_weights=candidate_weights,
        n_bootstrap=n_bootstrap,
        seed=seed,
        device=model.device,
    )
    n_ref, n_cand = auc.n_reference / 2, auc.n_candidate / 2  # held-out halves
    metrics = {
        "test_nll": None,
        "two_sample_auc": auc.auc,
        "two_sample_auc_low": auc.low,
        "two_sample_auc_high": auc.high,
        "auc_null_sigma": math.sqrt((n_ref + n_cand + 1) / (12 * n_ref * n_cand)),
        "sample_events_per_second": len(reference) / seconds if seconds > 0 else None,
    }
    if model.kind == "flow":
        log_p = model.log_prob(reference)
        w = reference.weights
        metrics["test_nll"] = float(-(w * log_p).sum() / w.sum())
    fig = plot_columns(
        model.columns_,
        (reference.features, reference.weights),
        {f"{model.kind} (AUC {auc.auc:.3f})": (generated.features, candidate_weights)},
        reference_label="held-out simulation",
        units=model.units_,
    )
    savefig(fig, output / "fidelity.png")
    return metrics


def plot_training(history: Sequence[Mapping], path: Path, kind: str) -> Path:
    """Training and validation loss per epoch (a GAN's critic and generator losses)."""
    from simkit.plotting import pyplot, savefig

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = [h["epoch"] for h in history]
    keys = (
        [k for k in history[0] if k.startswith("train_") and k != "train_loss"] if history else []
    )
    for key in keys:
        ax.plot(epochs, [h[key] for h in history], label=key.replace("_", " "))
    if history and "val_loss" in history[0]:
        target = ax.twinx() if kind == "gan" else ax
        target.plot(epochs, [h["val_loss"] for h in history], "k--", label="validation")
        target.set_ylabel("validation MMD²" if kind == "gan" else "")
        if kind == "gan":
            target.legend(loc="upper right", fontsize="small")
    ax.set_xlabel("epoch")
    ax.set_ylabel("weighted NLL per event" if kind == "flow" else "WGAN loss")
    ax.legend(loc="upper left" if kind == "gan" else "best", fontsize="small")
    return savefig(fig, path)


def parse_range(text: str) -> tuple[float, float]:
    lo, sep, hi = text.partition(":")
    try:
        low, high = float(lo), float(hi)
    except ValueError:
        raise SimkitError(f"--condition-range {text!r}: write LO:HI with numbers") from None
    if not sep or not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise SimkitError(f"--condition-range {text!r}: need finite LO < HI")
    return low, high


SAMPLERS = ("auto", "torch-free", "torch")


def open_model(model_dir: str | os.PathLike, device: str = "auto", sampler: str = "auto"):
    """The model of a folder, ready to sample: a torch-free
    :class:`~simkit.surrogates.sampler.FlowSampler` or the surrogate itself (see
    :func:`sample_surrogate`'s ``sampler``)."""
    from simkit.surrogates.sampler import FlowSampler, NoSampler, gpu_visible

    if sampler not in SAMPLERS:
        raise SimkitError(f"unknown sampler {sampler!r}; use {', '.join(SAMPLERS)}")
    on_cpu = device == "cpu" or (device == "auto" and not gpu_visible())
    if sampler == "torch-free" and not on_cpu:
        raise SimkitError("the torch-free sampler runs on the CPU: use --device cpu")
    if sampler != "torch" and on_cpu:
        try:
            return FlowSampler.load(model_dir)
        except NoSampler as exc:
            if sampler == "torch-free":
                raise SimkitError(f"{model_dir}: no torch-free sampler: {exc}") from None
    from simkit.surrogates import load_surrogate

    return load_surrogate(model_dir, device=device)


def sample_surrogate(
    model_dir: str | os.PathLike,
    output: str | os.PathLike,
    n_events: int,
    *,
    condition_from: str | os.PathLike | None = None,
    condition_range: Sequence[tuple[float, float]] | None = None,
    seed: int = 0,
    chunk_size: int | None = None,
    compression: str = "gzip",
    device: str = "auto",
    sampler: str = "auto",
    progress: bool = False,
) -> dict:
    """Stream ``n_events`` from a model folder into an event file; returns timings.

    Seconds generating, writing (in a second thread, overlapping the next chunk's
    generation) and waiting for the writes; ``events_per_second`` is over the whole loop.

    ``sampler``: ``torch-free`` samples a flow on the CPU without importing torch
    (:mod:`simkit.surrogates.sampler`; an error where the folder or machine cannot),
    ``torch`` through the model's own ``iter_sample``, ``auto`` the first where it can
    (on the CPU: ``--device cpu``, or ``auto`` on a machine that shows no GPU driver).
    The two draw different noise for the same seed; the file's provenance names the one
    used.
    """
    from concurrent.futures import ThreadPoolExecutor

    from simkit.events import Sample
    from simkit.io import SampleWriter, make_provenance, read_sample
    from simkit.modelfiles import read_model_document
    from simkit.progress import progress_bar
    from simkit.surrogates.contexts import contexts_from, contexts_in_range

    model = open_model(model_dir, device, sampler)
    document = read_model_document(model_dir, f"surrogate-{model.kind}")
    trained_on = document.get("trained_on") or {}
    level = trained_on.get("level", "reco")
    context = None
    if model.condition_:
        if condition_from is not None:
            source = read_sample(condition_from, levels=[level], columns=model.condition_)
            table = source.level(level).passing()
            context = contexts_from(table.features, table.weights)
        elif condition_range is not None:
            if len(condition_range) != len(model.condition_):
                raise SimkitError(
                    f"the model is conditioned on {', '.join(model.condition_)}: give "
                    f"{len(model.condition_)} --condition-range value(s), got "
                    f"{len(condition_range)}"
                )
            context = contexts_in_range(condition_range)
        else:
            raise SimkitError(
                f"the model is conditioned on {', '.join(model.condition_)}: give "
                "--condition-from FILE.h5 or --condition-range LO:HI"
            )
    elif condition_from is not None or condition_range is not None:
        raise SimkitError("the model is not conditioned on anything: drop --condition-*")

    provenance = make_provenance(
        f"simkit.surrogates.{model.kind}",
        seed=seed,
        model=str(Path(model_dir).resolve()),
        model_kind=document["kind"],
        trained_on=trained_on,
        events=n_events,
        condition=list(model.condition_),
        condition_from=None if condition_from is None else str(condition_from),
        condition_range=None if condition_range is None else [list(r) for r in condition_range],
        sampler=model.sampling_path(),
    )
    if compression not in ("gzip", "none"):
        raise SimkitError(f"unknown compression {compression!r}; use gzip or none")
    compression_opts = None if compression == "gzip" else {}
    clock = {"generate": 0.0, "write": 0.0, "wait": 0.0}

    def write(out, table) -> int:
        t0 = time.perf_counter()
        out.append(Sample(**{level: table}))
        clock["write"] += time.perf_counter() - t0
        return len(table)

    bar = progress_bar(total=n_events, unit="event", unit_scale=True, enabled=progress, leave=False)
    # one chunk is written (and compressed: HDF5 releases the GIL) in a second thread
    # while the next is generated; the writer exits first, so the file closes after it
    with (
        SampleWriter(
            output,
            levels={level: model.columns_},
            units={level: model.units_},
            provenance=provenance,
            compression=compression_opts,
        ) as out,
        ThreadPoolExecutor(1, thread_name_prefix="simkit-write") as writer,
    ):
        chunks = model.iter_sample(n_events, context, seed=seed, chunk_size=chunk_size)
        pending = None
        start = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            table = next(chunks, None)
            t1 = time.perf_counter()
            clock["generate"] += t1 - t0
            if pending is not None:
                # the previous chunk is in the file (or its error raises here)
                bar.update(pending.result())
            clock["wait"] += time.perf_counter() - t1
            if table is None:
                break
            pending = writer.submit(write, out, table)
        wall = time.perf_counter() - start
        out.update_provenance(generate_seconds=clock["generate"], write_seconds=clock["write"])
    bar.close()
    generate_s = clock["generate"]
    return {
        "events": n_events,
        "seconds": wall,
        "generate_seconds": generate_s,
        "write_seconds": clock["write"],
        "write_wait_seconds": clock["wait"],
        "events_per_second": n_events / wall if wall > 0 else None,
        "generate_events_per_second": n_events / generate_s if generate_s > 0 else None,
        "sampler": model.sampling_path(),
        "output": str(output),
    }


# --------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class FitConfig(Options):
    """``simkit surrogate fit``'s settings; model settings left None take the model's
    own defaults (:mod:`simkit.surrogates`)."""

    kind: str = option("flow", choices=("flow", "gan"))
    level: str = option("reco", choices=("reco", "gen"))
    columns: tuple[str, ...] | None = None
    condition: tuple[str, ...] = ()
    epochs: int | None = None
    batch_size: int = defaults.BATCH_SIZE
    lr: float | None = None
    patience: int | None = None
    test_fraction: float = 0.2
    max_events: int | None = None
    transform: tuple[str, ...] = ()
    azimuth_frame: bool = option(defaults.AZIMUTH_FRAME, flag="--no-azimuth-frame")
    layers: int | None = None
    hidden: int | None = None
    precision: str | None = option(None, choices=("fp32", "bf16", "auto"))
    bootstrap: int = 100
    resume: bool = False
    device: str = option("auto", choices=("auto", "cpu", "cuda"))
    seed: int = 0
    progress: bool = option(True, cli=False)

    def __post_init__(self) -> None:
        for name in ("columns", "condition", "transform"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))
        if self.bootstrap < 0:
            raise SimkitError(f"--bootstrap must be non-negative, got {self.bootstrap}")

    def settings(self) -> dict:
        """The model's keyword settings."""
        from simkit.surrogates.transforms import parse_overrides

        out: dict = {
            "batch_size": self.batch_size,
            "transforms": parse_overrides(list(self.transform)),
            "azimuth_frame": self.azimuth_frame,
            **architecture(self.kind, self.layers, self.hidden),
        }
        for name in ("epochs", "lr", "patience", "precision"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


@dataclass(frozen=True)
class FitInputs(Options):
    """The event file to learn, and optional extra ``FILE.h5:DATASET`` weights."""

    input: str
    weights: str | None = None


@dataclass
class FitResult:
    """The fit's ``metrics.json`` (:data:`FIT_METRICS`); the model is in the folder."""

    metrics: dict

    def to_dict(self) -> dict:
        return dict(self.metrics)

    def summary_line(self, output) -> str:
        m = self.metrics
        interval = ""
        if m["two_sample_auc_low"] is not None:
            interval = f" [{m['two_sample_auc_low']:.3f}, {m['two_sample_auc_high']:.3f}]"
        return (
            f"{m['kind']} surrogate of {len(m['columns'])} columns trained on "
            f"{m['events_train']} events in {m['train_seconds']:.1f} s "
            f"({m['epochs']} epochs, best {m['best_epoch']}); held-out two-sample "
            f"AUC {m['two_sample_auc']:.3f}{interval} on {m['events_test']} events; "
            f"model, metrics.json and fidelity.png in {output}"
        )


def fit(config: FitConfig, inputs: FitInputs, output) -> FitResult:
    """Fit the surrogate, save it with its fidelity report in ``output``."""
    metrics = fit_surrogate(
        inputs.input,
        output,
        kind=config.kind,
        level=config.level,
        columns=None if config.columns is None else list(config.columns),
        condition=list(config.condition),
        weights=inputs.weights,
        test_fraction=config.test_fraction,
        max_events=config.max_events,
        n_bootstrap=config.bootstrap,
        seed=config.seed,
        device=config.device,
        progress=config.progress,
        resume=config.resume,
        **config.settings(),
    )
    return FitResult(metrics)


@dataclass(frozen=True)
class SampleConfig(Options):
    """``simkit surrogate sample``'s settings."""

    events: int
    condition_range: tuple[str, ...] | None = None  # "LO:HI" per conditioning column
    chunk_size: int | None = None
    compression: str = option("gzip", choices=("gzip", "none"))
    device: str = option("auto", choices=("auto", "cpu", "cuda"))
    sampler: str = option("auto", choices=SAMPLERS)
    seed: int = 0
    progress: bool = option(True, cli=False)

    def __post_init__(self) -> None:
        if self.condition_range is not None:
            object.__setattr__(self, "condition_range", tuple(self.condition_range))


@dataclass(frozen=True)
class SampleInputs(Options):
    """A model folder, and optionally an event file to draw the contexts from."""

    POSITIONAL = ("model",)
    model: str
    condition_from: str | None = None


@dataclass
class SampleResult:
    """Timings of a sampling run."""

    metrics: dict

    def to_dict(self) -> dict:
        return dict(self.metrics)

    def summary_line(self) -> str:
        r = self.metrics
        return (
            f"wrote {r['events']} events to {r['output']} in "
            f"{r['seconds']:.2f} s "
            f"({r['events_per_second']:,.0f} events/s; generating "
            f"{r['generate_seconds']:.2f} s, writing {r['write_seconds']:.2f} s beside it; "
            f"{r['sampler']})"
        )


def sample(config: SampleConfig, inputs: SampleInputs, output) -> SampleResult:
    """Stream ``config.events`` events of the model into the event file ``output``."""
    ranges = None
    if config.condition_range is not None:
        ranges = [parse_range(text) for text in config.condition_range]
    return SampleResult(
        sample_surrogate(
            inputs.model,
            output,
            config.events,
            condition_from=inputs.condition_from,
            condition_range=ranges,
            seed=config.seed,
            chunk_size=config.chunk_size,
            compression=config.compression,
            device=config.device,
            sampler=config.sampler,
            progress=config.progress,
        )
    )
