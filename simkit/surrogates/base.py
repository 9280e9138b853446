"""What every surrogate shares: data preparation, training settings, sampling, saving.

A surrogate learns the distribution of some columns of an event table, optionally
conditioned on others (``condition=["mjj"]``), and then generates new events fast.
:class:`Surrogate` holds everything that does not depend on the network: the fitted
:class:`~simkit.surrogates.transforms.ColumnTransform` of the generated and of the
conditioning columns, the call into the one training loop (:func:`simkit.nn.train`),
chunked sampling in inference mode, and the model folder (:func:`simkit.nn.save_model`).
Subclasses (:class:`~simkit.surrogates.flow.FlowSurrogate`,
:class:`~simkit.surrogates.gan.GANSurrogate`) build their network, say what to
minimise, and turn base noise into events.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from simkit.errors import FileFormatError, NotFittedError, SimkitError
from simkit.events import EventTable
from simkit.nn import (
    Objective,
    TrainConfig,
    TrainResult,
    autocast,
    load_checkpoint,
    load_model,
    load_state_strict,
    resolve_device,
    save_model,
    train,
)
from simkit.params import HyperParameters
from simkit.surrogates import defaults
from simkit.surrogates.contexts import (
    ContextSource,
    chunk_rows,
    context_rng,
    context_source,
    gather_chunks,
    generated_table,
)
from simkit.surrogates.transforms import ColumnTransform

#: Settings that change how a fit runs, not what it learns: never saved with the model.
RUNTIME_SETTINGS = ("device", "progress", "checkpoint", "resume", "sampler")


@contextlib.contextmanager
def seeded_torch(seed: int, device: torch.device):
    """torch's global RNG seeded for a block and restored after it (no side effects)."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class Surrogate(HyperParameters):
    """Base class: ``fit(table)`` → ``sample(n, context)`` → ``save(folder)`` / ``load``.

    Hyperparameters shared by every surrogate (sklearn style: stored, not checked,
    until ``fit``):

    - ``condition``: columns to condition on (generated events take them as given);
    - ``columns``: columns to generate (default: every other column of the table);
    - ``transforms``: per-column overrides of the preprocessing, ``{"m_j1": "log"}``;
    - ``azimuth_frame``: generate the azimuthal angles after the first one relative to
      it, ``δφ = wrap(φ₂ − φ₁ − π)`` (:mod:`~simkit.surrogates.transforms`; unit
      Jacobian); False: absolute angles (models saved before it existed load as False);
    - training: ``epochs``, ``batch_size``, ``lr`` (``None``: the model's default),
      ``weight_decay``, ``lr_schedule`` (``"cosine"`` decay over ``epochs``, or
      None), ``patience`` (early stopping), ``val_fraction``, ``grad_clip``,
      ``max_bad_steps`` (non-finite steps skipped before giving up), ``precision``
      (``None``: the model's default; ``fp32``, ``bf16`` or ``auto`` = bf16 on CUDA),
      ``seed``;
    - running: ``device`` (auto|cpu|cuda), ``progress``, ``checkpoint`` (file written
      each epoch) and ``resume`` (continue from it).
    """

    kind: ClassVar[str] = ""
    default_lr: ClassVar[float] = 1e-3
    default_precision: ClassVar[str] = "fp32"

    def __init__(
        self,
        *,
        condition: Sequence[str] = (),
        columns: Sequence[str] | None = None,
        transforms: Mapping[str, str] | None = None,
        azimuth_frame: bool = defaults.AZIMUTH_FRAME,
        epochs: int = 50,
        batch_size: int = defaults.BATCH_SIZE,
        lr: float | None = None,
        weight_decay: float = 0.0,
        lr_schedule: str | None = "cosine",
        patience: int = 8,
        val_fraction: float = 0.2,
        grad_clip: float | None = 5.0,
        max_bad_steps: int = 100,
        precision: str | None = None,
        seed: int = 0,
        device: str = "auto",
        progress: bool = False,
        checkpoint: str | os.PathLike | None = None,
        resume: bool = False,
    ) -> None:
        self.condition = tuple(condition)
        self.columns = None if columns is None else tuple(columns)
        self.transforms = dict(transforms or {})
        self.azimuth_frame = azimuth_frame
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.patience = patience
        self.val_fraction = val_fraction
        self.grad_clip = grad_clip
        self.max_bad_steps = max_bad_steps
        self.precision = precision
        self.seed = seed
        self.device = device
        self.progress = progress
        self.checkpoint = checkpoint
        self.resume = resume

    # ------------------------------------------------------------------ parameters

    def __repr__(self) -> str:
        return f"{type(self).__name__}(condition={list(self.condition)}, seed={self.seed})"

    # ------------------------------------------------------------------ subclass hooks

    def _build(self, n_features: int, n_context: int) -> nn.Module:
        """The network (one module; a GAN's holds generator and critic)."""
        raise NotImplementedError

    def _objectives(self) -> tuple[Mapping[str, nn.Module], list[Objective], Callable]:
        """``(modules, objectives, val_loss)``; losses take ``(z, context, weight, logdet)``."""
        raise NotImplementedError

    def _generate(
        self, m: int, context: torch.Tensor | None, generator: torch.Generator
    ) -> torch.Tensor:
        """``m`` events in model space, given standardized contexts (inference mode)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ fitting

    def _table(self, data, weights, names) -> EventTable:
        if isinstance(data, EventTable):
            table = data.passing()  # failing rows hold placeholders, not events
            if weights is not None:
                raise SimkitError("give weights through the table (table.with_weights(w))")
            return table
        x = np.asarray(data, dtype=np.float32)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2:
            raise SimkitError(f"data must be (events, columns), got shape {x.shape}")
        names = tuple(names) if names is not None else tuple(f"x{i}" for i in range(x.shape[1]))
        n = x.shape[0]
        return EventTable(
            features=x,
            columns=names,
            weights=np.ones(n) if weights is None else np.asarray(weights, np.float64),
            passed=np.ones(n, bool),
        )

    def _train_config(self) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr or self.default_lr,
            weight_decay=self.weight_decay,
            lr_schedule=self.lr_schedule,
            val_fraction=self.val_fraction,
            patience=self.patience,
            grad_clip=self.grad_clip,
            max_bad_steps=self.max_bad_steps,
            device=self.device,
            precision=self.precision or self.default_precision,
            seed=self.seed,
            progress=self.progress,
            desc=f"fit {self.kind}",
            checkpoint=None if self.checkpoint is None else os.fspath(self.checkpoint),
            resume=self.resume,
        )

    def fit(
        self,
        data: EventTable | np.ndarray,
        sample_weight: np.ndarray | None = None,
        *,
        names: Sequence[str] | None = None,
    ) -> Surrogate:
        """Learn the events of ``data`` (an :class:`EventTable`: its passing rows and
        weights; or an (N, F) array with column ``names`` and optional
        ``sample_weight``, as scikit-learn names it).

        Event weights enter the loss, so the model learns the weighted distribution
        (e.g. simulation × OmniFold push weights). Returns ``self``.
        """
        table = self._table(data, sample_weight, names)
        condition = tuple(self.condition)
        features = (
            tuple(self.columns)
            if self.columns is not None
            else tuple(c for c in table.columns if c not in condition)
        )
        for name in (*features, *condition):
            table.index(name)  # a clear error naming a missing column
        both = sorted(set(features) & set(condition))
        if both:
            raise SimkitError(f"column(s) {', '.join(both)} cannot be generated and conditioned on")
        if not features:
            raise SimkitError("nothing to generate: every column is a condition")
        if len(set(features)) != len(features) or len(set(condition)) != len(condition):
            raise SimkitError("a column is named twice")
        bad = table.select((*features, *condition)).first_nonfinite()
        if bad is not None:
            raise SimkitError(f"column {bad[0]!r} is not finite at row {bad[1]}")
        w = table.weights
        if not np.isfinite(w).all() or (w < 0).any() or not w.sum() > 0:
            raise SimkitError("event weights must be finite, non-negative and not all zero")
        if len(table) < 10:
            raise SimkitError(f"{len(table)} events are too few to learn a distribution from")

        chosen = set(features) | set(condition)
        self.columns_ = tuple(c for c in table.columns if c in chosen)  # the table's order
        self.feature_columns_ = features
        self.condition_ = condition
        self.units_ = tuple(table.units[table.index(c)] for c in self.columns_)
        overrides = dict(self.transforms)
        unknown = sorted(set(overrides) - chosen)
        if unknown:
            raise SimkitError(f"transform given for column(s) not modelled: {', '.join(unknown)}")

        rng = np.random.default_rng(self.seed)
        x = table.select(features).features.astype(np.float64)
        self.transform_ = ColumnTransform(features).fit(
            x,
            w,
            overrides={k: v for k, v in overrides.items() if k in features},
            azimuth_frame=bool(self.azimuth_frame),
            rng=rng,
        )
        z, logdet = self.transform_.forward(torch.as_tensor(self.transform_.dequantize(x, rng)))
        if condition:
            c = table.select(condition).features.astype(np.float64)
            self.context_transform_ = ColumnTransform(condition).fit(
                c,
                w,
                overrides={k: v for k, v in overrides.items() if k in condition},
                dequantize=False,
            )
            zc = self.context_transform_.forward(torch.as_tensor(c))[0]
        else:
            self.context_transform_ = None
            zc = torch.zeros(len(table), 0, dtype=torch.float64)
        # weights of mean one: the loss keeps its scale whatever the sample's normalization
        w_train = torch.as_tensor(w / w.mean(), dtype=torch.float32)
        data = (z.float(), zc.float(), w_train, logdet.float())

        config = self._train_config()
        device = resolve_device(config.device)
        with seeded_torch(self.seed, device):
            self.net_ = self._build(len(features), len(condition))
            modules, objectives, val_loss = self._objectives()
            if config.checkpoint and config.resume and Path(config.checkpoint).exists():
                self._check_checkpoint(Path(config.checkpoint), modules)
            self.train_result_: TrainResult = train(
                modules, objectives, data, config, val_loss=val_loss
            )
        self.net_.eval()
        self.training_ = self.train_result_.summary()
        return self

    @staticmethod
    def _check_checkpoint(path: Path, modules: Mapping[str, nn.Module]) -> None:
        state = load_checkpoint(path)
        saved = state.get("modules") if isinstance(state, dict) else None
        if not isinstance(saved, dict) or set(saved) != set(modules):
            raise FileFormatError(f"{path}: not a checkpoint of this kind of surrogate")
        for name, module in modules.items():
            current = module.state_dict()
            theirs = saved[name]
            if set(current) != set(theirs) or any(
                current[k].shape != theirs[k].shape for k in current
            ):
                raise FileFormatError(
                    f"{path}: the checkpoint's {name} has another architecture than the "
                    "surrogate asked for (resume with the same settings, or start afresh)"
                )

    # ------------------------------------------------------------------ using the model

    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit() first")

    def _context_source(self, n: int | None, context) -> tuple[int, ContextSource | None]:
        return context_source(self.condition_, n, context)

    def _context_tensor(self, values: np.ndarray, device: torch.device) -> torch.Tensor:
        values = np.asarray(values, dtype=np.float64)
        self.context_transform_.check(values)
        z = self.context_transform_.forward(torch.as_tensor(values))[0]
        return z.to(device=device, dtype=torch.float32)

    def sampling_path(self, device: str | None = None) -> str:
        """How sampling evaluates the model on ``device`` (default: the model's), in
        words: what ``simkit surrogate sample`` reports."""
        return f"{self.kind} network on {resolve_device(device or self.device).type}"

    def iter_sample(
        self,
        n: int | None = None,
        context: np.ndarray | ContextSource | None = None,
        *,
        seed: int = 0,
        chunk_size: int | None = None,
        device: str | None = None,
    ) -> Iterator[EventTable]:
        """Generate events in chunks (memory bounded by one chunk), in inference mode.

        ``context`` is an (n, C) array of physical values of the conditioning columns,
        or a :data:`ContextSource` such as :func:`contexts_in_range` /
        :func:`contexts_from`; ``None`` for an unconditional model. The same seed,
        model, chunk size and device give the same events. Each chunk is an
        :class:`EventTable` with every modelled column, conditioning ones included.
        """
        self._check_fitted()
        n, source = self._context_source(n, context)
        dev = resolve_device(device or self.device)
        chunk = chunk_rows(chunk_size, 1 << 20 if dev.type == "cuda" else 1 << 17)
        self.net_.to(dev).eval()
        self.transform_.to(dev)
        generator = torch.Generator(device=dev).manual_seed(int(seed))
        rng = context_rng(seed)
        feature_at = [self.columns_.index(c) for c in self.feature_columns_]
        context_at = [self.columns_.index(c) for c in self.condition_]
        precision = self.precision or self.default_precision
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            context_phys = context_z = None
            if source is not None:
                context_phys = np.asarray(source(start, m, rng), dtype=np.float64)
                context_z = self._context_tensor(context_phys, dev)
            with torch.inference_mode(), autocast(dev, precision):
                z = self._generate(m, context_z, generator)
            with torch.inference_mode():
                x = self.transform_.inverse(z.float()).cpu().numpy()
            events = np.empty((m, len(self.columns_)), dtype=np.float32)
            events[:, feature_at] = x
            if context_phys is not None:
                events[:, context_at] = context_phys
            yield generated_table(events, self.columns_, self.units_, self.kind)

    def sample(
        self,
        n: int | None = None,
        context: np.ndarray | ContextSource | None = None,
        *,
        seed: int = 0,
        chunk_size: int | None = None,
        device: str | None = None,
    ) -> EventTable:
        """``n`` new events as one :class:`EventTable` (see :meth:`iter_sample`)."""
        self._check_fitted()
        chunks = self.iter_sample(n, context, seed=seed, chunk_size=chunk_size, device=device)
        return gather_chunks(chunks, self.columns_, self.units_)

    # ------------------------------------------------------------------ saving

    def save(self, folder: str | os.PathLike, *, extra: Mapping | None = None) -> Path:
        """A model folder: ``config.json`` (hyperparameters, columns, transforms) and
        ``model.safetensors`` (network and fitted transforms); never pickled."""
        self._check_fitted()
        params = {k: v for k, v in self.get_params().items() if k not in RUNTIME_SETTINGS}
        config = {
            "params": params,
            "columns": list(self.columns_),
            "features": list(self.feature_columns_),
            "condition": list(self.condition_),
            "units": list(self.units_),
            "transform": self.transform_.config(),
            "context_transform": None
            if self.context_transform_ is None
            else self.context_transform_.config(),
        }
        state = {f"net.{k}": v for k, v in self.net_.state_dict().items()}
        state.update({f"transform.{k}": v for k, v in self.transform_.state_dict().items()})
        if self.context_transform_ is not None:
            state.update(
                {f"context.{k}": v for k, v in self.context_transform_.state_dict().items()}
            )
        document_extra = {"training": getattr(self, "training_", None), **dict(extra or {})}
        return save_model(folder, f"surrogate-{self.kind}", config, state, extra=document_extra)

    @classmethod
    def _from_document(cls, folder: Path, document: dict, state: dict, device: str) -> Surrogate:
        try:
            config = document["config"]
            params = dict(config["params"])
            params.setdefault("azimuth_frame", False)  # saved before the frame existed
            model = cls(**params, device=device)
            model.columns_ = tuple(config["columns"])
            model.feature_columns_ = tuple(config["features"])
            model.condition_ = tuple(config["condition"])
            model.units_ = tuple(config["units"])
            transform = ColumnTransform.from_config(config["transform"])
            context = config["context_transform"]
        except (KeyError, TypeError) as exc:
            raise FileFormatError(f"{folder}: config.json is incomplete ({exc})") from None

        def part(prefix: str) -> dict:
            return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}

        load_state_strict(transform, part("transform."), f"{folder} (transform)")
        model.transform_ = transform
        model.context_transform_ = None
        if context is not None:
            model.context_transform_ = ColumnTransform.from_config(context)
            load_state_strict(model.context_transform_, part("context."), f"{folder} (context)")
        with seeded_torch(model.seed, torch.device("cpu")):
            model.net_ = model._build(len(model.feature_columns_), len(model.condition_))
        load_state_strict(model.net_, part("net."), str(folder))
        model.net_.eval()
        model.training_ = document.get("training")
        return model

    @classmethod
    def load(cls, folder: str | os.PathLike, *, device: str = "auto") -> Surrogate:
        """Read a folder written by :meth:`save` (refuses another kind of model)."""
        document, state = load_model(folder, f"surrogate-{cls.kind}")
        return cls._from_document(Path(folder), document, state, device)
