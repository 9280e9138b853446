"""Training and scoring detectors, through the one shared loop :func:`simkit.nn.train`.

:class:`Detector` is a scikit-learn-style estimator: ``__init__`` stores the
hyperparameters, ``fit(training_set)`` trains and returns ``self`` (learned state ends
in ``_``), ``scores(table)`` gives per-event anomaly scores, ``save``/``load`` use
:func:`simkit.nn.save_model` (JSON config + safetensors, nothing unpickled).

GPU first: ``device="auto"`` takes CUDA when present, where training runs under bf16
autocast with large batches (the loop keeps the data on the GPU, or in pinned host
memory when it does not fit). Scoring always runs in float32: bf16 outputs carry
three significant digits, which would turn the far tail that ε_B = 1e-4 probes into
ties. Event weights enter every loss as a weighted mean, so OmniFold-validated
weights count.

>>> import numpy as np
>>> from simkit.events import EventTable
>>> from detectors.labels import choose
>>> rng = np.random.default_rng(0)
>>> table = EventTable.from_columns({"a": rng.normal(size=500), "b": rng.normal(size=500)})
>>> det = Detector("ae", latent=1, hidden=(8,), epochs=2, device="cpu")
>>> det.fit(choose(table, "all")).scores(table)["recon"].shape
(500,)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from detectors.labels import (
    COMBINE,
    JETS,
    SignalRegion,
    TagSelection,
    TrainingSet,
    choose,
    jet_columns,
)
from detectors.models import DEFAULT_SCORE, SCORES, NetworkConfig, build_network
from simkit.errors import NotFittedError, SimkitError
from simkit.events import EventTable
from simkit.nn import (
    Objective,
    TrainConfig,
    TrainResult,
    cpu_threads,
    load_model,
    load_state_strict,
    predict,
    resolve_device,
    save_model,
    train,
)
from simkit.params import HyperParameters

MODEL_KIND = "detector"
#: Training settings a saved detector keeps (with the network's): reloading loses none.
HYPERPARAMETERS = (
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "patience",
    "val_fraction",
    "precision",
    "seed",
    "threads",
)
#: Batch sizes when none is asked for: large on a GPU, where a step costs the same for
#: a few thousand events as for a few hundred; moderate on a CPU, where more steps per
#: epoch converge faster.
DEFAULT_BATCH = {"cuda": 8192, "cpu": 1024}


def _combine(per_jet: np.ndarray, how: str) -> np.ndarray:
    if how == "max":
        return per_jet.max(axis=1)
    if how == "min":
        return per_jet.min(axis=1)
    return per_jet.mean(axis=1)


class Detector(HyperParameters):
    """An anomaly detector (``model`` ae | vae) or a classifier (CWoLa, supervised).

    ``latent`` and ``hidden`` left at None take the model's
    :data:`~detectors.models.DEFAULT_ARCHITECTURE` (AE and VAE: latent 1, one hidden
    layer of 16; classifier: 64-64). ``score`` names the anomaly score used by default
    (:data:`~detectors.models.DEFAULT_SCORE`: ``recon`` for AE and VAE, ``logit`` for a
    classifier); ``combine`` (max | mean | min)
    turns the two jets' scores of a per-jet (tag-and-probe) detector into an event score.
    Classifiers train on class-balanced weights (each class sums to the same weight).
    ``threads`` sets torch's CPU threads while fitting and scoring (None: leave torch's
    setting): these networks are small, a second thread gains little, and on a loaded
    2-core machine it made training 250× slower (1.2·10³ against 2.9·10⁵ events/s for
    the default VAE: OpenMP threads waiting for a busy core).
    """

    def __init__(
        self,
        model: str = "vae",
        *,
        latent: int | None = None,
        hidden: Sequence[int] | None = None,
        activation: str = "silu",
        beta: float = 1.0,
        score: str | None = None,
        combine: str = "max",
        epochs: int = 200,
        batch_size: int | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        patience: int = 10,
        val_fraction: float = 0.2,
        device: str = "auto",
        precision: str = "auto",
        seed: int = 0,
        progress: bool = False,
        checkpoint: str | os.PathLike | None = None,
        resume: bool = False,
        threads: int | None = 1,
    ) -> None:
        self.model = model
        self.latent = latent
        self.hidden = None if hidden is None else tuple(hidden)
        self.activation = activation
        self.beta = beta
        self.score = score
        self.combine = combine
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.val_fraction = val_fraction
        self.device = device
        self.precision = precision
        self.seed = seed
        self.progress = progress
        self.checkpoint = checkpoint
        self.resume = resume
        self.threads = threads

    # ------------------------------------------------------------------ fitting

    def _check(self) -> str:
        if self.model not in SCORES:
            raise SimkitError(f"unknown model {self.model!r}; use {', '.join(SCORES)}")
        score = self.score or DEFAULT_SCORE[self.model]
        if score not in SCORES[self.model]:
            raise SimkitError(
                f"a {self.model} has no score {score!r}; use {', '.join(SCORES[self.model])}"
            )
        if self.combine not in COMBINE:
            raise SimkitError(f"unknown combination {self.combine!r}; use {', '.join(COMBINE)}")
        return score

    def fit(self, training: TrainingSet) -> Detector:
        """Train on the examples a label strategy chose; returns ``self``."""
        score = self._check()
        is_classifier = self.model == "classifier"
        if is_classifier and training.targets is None:
            raise SimkitError(
                f"a classifier needs two classes; --labels {training.strategy} chose one "
                "(use sideband for CWoLa or truth for the supervised reference)"
            )
        if len(training) < 2:
            raise SimkitError(f"{len(training)} training example(s): too few to train on")
        device = resolve_device(self.device)
        config = NetworkConfig(
            self.model,
            n_features=len(training.columns),
            latent=self.latent,
            hidden=self.hidden,
            activation=self.activation,
            beta=self.beta,
        )
        x = np.ascontiguousarray(training.features, dtype=np.float32)
        weights = np.asarray(training.weights, dtype=np.float64)
        if is_classifier:
            weights = _balance(weights, training.targets)
            data = (x, training.targets.astype(np.float32), weights.astype(np.float32))
        else:
            data = (x, weights.astype(np.float32))
        train_config = TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size or DEFAULT_BATCH[device.type],
            lr=self.lr,
            weight_decay=self.weight_decay,
            val_fraction=self.val_fraction,
            patience=self.patience,
            device=str(device),
            precision=self.precision,
            seed=self.seed,
            progress=self.progress,
            desc=f"train {self.model} ({training.strategy})",
            checkpoint=None if self.checkpoint is None else str(self.checkpoint),
            resume=self.resume,
        )
        cuda = [device.index or 0] if device.type == "cuda" else []
        # a private RNG stream: weights and VAE noise depend on the seed only, and the
        # caller's global torch state is left as it was
        with torch.random.fork_rng(devices=cuda), cpu_threads(self.threads, self.device):
            torch.manual_seed(self.seed)
            network = build_network(config)
            network.standardizer.fit(x, weights)
            result = train(
                network,
                Objective(network.loss, network.parameters(), name=f"{self.model}_loss"),
                data,
                train_config,
                val_loss=network.validation_loss,
            )
        network.to("cpu")
        self.network_ = network
        self.network_config_ = config
        self.columns_ = tuple(training.columns)
        self.per_jet_ = bool(training.per_jet)
        self.score_ = score
        self.strategy_ = training.strategy
        self.strategy_options_ = dict(training.options)
        self.label_report_ = dict(training.report)
        self.result_: TrainResult | None = result
        return self

    # ------------------------------------------------------------------ scoring

    def _fitted(self) -> None:
        if not hasattr(self, "network_"):
            raise NotFittedError("the detector is not trained yet: call fit() or Detector.load()")

    @property
    def score_names(self) -> tuple[str, ...]:
        return SCORES[self.model]

    def _network_scores(self, x: np.ndarray, device, batch_size: int) -> np.ndarray:
        names = self.score_names
        network = self.network_.to(device)
        network.eval()

        def fn(xb):
            scores = network.scores(xb)
            return torch.stack([scores[n] for n in names], dim=1)

        with cpu_threads(self.threads, self.device):
            out = predict(fn, x, batch_size=batch_size, device=device, precision="fp32")
        network.to("cpu")
        return out.reshape(len(x), len(names))

    def jet_scores(
        self, table: EventTable, *, device: str = "cpu", batch_size: int = 65536
    ) -> dict[str, np.ndarray]:
        """Per-jet detectors: ``{score: (N, 2)}``, column 0 for j1 and 1 for j2."""
        self._fitted()
        if not self.per_jet_:
            raise SimkitError("this detector scores whole events, not jets")
        device = resolve_device(device)
        blocks = [
            self._network_scores(
                table.select(jet_columns(self.columns_, jet)).features, device, batch_size
            )
            for jet in JETS
        ]
        stacked = np.stack(blocks, axis=2)  # (N, scores, jets)
        return {name: stacked[:, k, :] for k, name in enumerate(self.score_names)}

    def scores(
        self, table: EventTable, *, device: str = "cpu", batch_size: int = 65536
    ) -> dict[str, np.ndarray]:
        """Every score of the model for every row of ``table`` (float32, row order kept)."""
        self._fitted()
        if self.per_jet_:
            per_jet = self.jet_scores(table, device=device, batch_size=batch_size)
            return {n: _combine(v, self.combine).astype(np.float32) for n, v in per_jet.items()}
        x = table.select(self.columns_).features
        block = self._network_scores(x, resolve_device(device), batch_size)
        return {name: block[:, k] for k, name in enumerate(self.score_names)}

    def score_events(self, table: EventTable, **kwargs) -> np.ndarray:
        """The detector's own score (``score_``) for every row of ``table``."""
        return self.scores(table, **kwargs)[self.score_]

    # ------------------------------------------------------------------ files

    def describe(self) -> dict:
        """The JSON config that rebuilds this detector (and says how it was trained)."""
        self._fitted()
        return {
            "network": self.network_config_.to_dict(),
            "columns": list(self.columns_),
            "per_jet": self.per_jet_,
            "combine": self.combine,
            "score": self.score_,
            "scores": list(self.score_names),
            "strategy": self.strategy_,
            "strategy_options": self.strategy_options_,
            "hyperparameters": {name: getattr(self, name) for name in HYPERPARAMETERS},
        }

    def save(self, folder: str | os.PathLike, extra: Mapping | None = None) -> Path:
        """Write ``config.json`` + ``model.safetensors`` into ``folder``."""
        extra = dict(extra or {})
        extra.setdefault("labels", self.label_report_)
        if self.result_ is not None:
            extra.setdefault("training", self.result_.summary())
        return save_model(
            folder, MODEL_KIND, self.describe(), self.network_.state_dict(), extra=extra
        )

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Detector:
        """Rebuild a saved detector (never unpickles)."""
        document, state = load_model(folder, MODEL_KIND)
        cfg = document["config"]
        try:
            network_config = NetworkConfig.from_dict(cfg["network"])
            columns, per_jet, combine, score = (
                cfg["columns"],
                cfg["per_jet"],
                cfg["combine"],
                cfg["score"],
            )
        except (KeyError, TypeError) as exc:
            raise SimkitError(f"{folder}: detector config is incomplete ({exc})") from None
        hyper = cfg.get("hyperparameters", {})
        det = cls(
            network_config.kind,
            latent=network_config.latent,
            hidden=network_config.hidden,
            activation=network_config.activation,
            beta=network_config.beta,
            score=score,
            combine=combine,
            **{k: hyper[k] for k in HYPERPARAMETERS if k in hyper},
        )
        det._check()
        network = build_network(network_config)
        load_state_strict(network, state, str(folder))
        network.eval()
        det.network_ = network
        det.network_config_ = network_config
        det.columns_ = tuple(columns)
        det.per_jet_ = bool(per_jet)
        det.score_ = score
        det.strategy_ = cfg.get("strategy", "unknown")
        det.strategy_options_ = dict(cfg.get("strategy_options", {}))
        det.label_report_ = dict(document.get("labels", {}))
        det.result_ = None
        return det

    def check_columns(self, columns: Sequence[str], where: str) -> None:
        """A clear error when a sample lacks the columns this detector reads."""
        self._fitted()
        needed = (
            [c for jet in JETS for c in jet_columns(self.columns_, jet)]
            if self.per_jet_
            else list(self.columns_)
        )
        missing = [c for c in needed if c not in columns]
        if missing:
            raise SimkitError(
                f"{where}: lacks column(s) {', '.join(missing)} that the detector reads"
            )


def _balance(weights: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Rescale so both classes carry the same total weight (the mean weight stays 1)."""
    positive = targets == 1
    out = weights.astype(np.float64).copy()
    for side in (positive, ~positive):
        total = out[side].sum()
        if not total > 0:
            raise SimkitError("a classifier needs positive weight in both classes")
        out[side] *= 0.5 * len(out) / total
    return out


def train_detector(
    table: EventTable,
    *,
    model: str = "vae",
    labels: str = "all",
    features: Sequence[str] | None = None,
    signal_region: SignalRegion | None = None,
    tag: TagSelection | str | None = None,
    **options,
) -> Detector:
    """Choose training examples with a label strategy, then fit a :class:`Detector`.

    ``model="classifier"`` with ``labels="sideband"`` is CWoLa; with ``labels="truth"``
    the supervised reference. ``options`` go to :class:`Detector`.
    """
    training = choose(
        table,
        labels,
        features=features,
        classes=model == "classifier",
        signal_region=signal_region,
        tag=tag,
    )
    return Detector(model, **options).fit(training)


def plot_history(history: Sequence[Mapping], ax=None):
    """Training and validation loss per epoch."""
    from simkit.plotting import pyplot

    if ax is None:
        _, ax = pyplot().subplots(figsize=(6, 4))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], label="training")
    if history and "val_loss" in history[0]:
        ax.plot(epochs, [h["val_loss"] for h in history], label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend()
    return ax
