"""Neural-network plumbing shared by every model in simkit: written once, used everywhere.

- :func:`resolve_device` — ``auto|cpu|cuda`` to a ``torch.device``;
- :func:`mlp` — the one MLP builder (OmniFold classifiers, flow conditioners, GANs, AEs);
- :class:`Standardizer` — weighted per-column standardization stored inside a model;
- :func:`train` — the one training loop: mini-batches, bf16 autocast on CUDA, early
  stopping on a validation split, a NaN/inf guard, gradient clipping, a checkpoint per
  epoch and exact resume, several objectives (e.g. a GAN's critic and generator);
- :func:`predict` — batched inference;
- :func:`save_model` / :func:`load_model` — a folder with ``config.json`` and
  ``model.safetensors``: loading never unpickles anything.

>>> import torch
>>> net = mlp(2, 1, hidden=(8,))
>>> x = torch.randn(256, 2); y = (x[:, :1] > 0).float()
>>> loss = lambda xb, yb: torch.nn.functional.binary_cross_entropy_with_logits(net(xb), yb)
>>> result = train(net, Objective(loss, net.parameters()), (x, y),
...                TrainConfig(epochs=2, batch_size=64, progress=False))
>>> len(result.history)
2
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from simkit.errors import FileFormatError, SimkitError, TrainingError, first_line
from simkit.interrupt import check as check_interrupt
from simkit.modelfiles import (
    MODEL_FORMAT,
    MODEL_VERSION,
    WEIGHTS_FILE,
    read_model_document,
    read_safetensors,
)

# --------------------------------------------------------------------------- device


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is a clear error."""
    if isinstance(spec, torch.device):
        return spec
    spec = str(spec).lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SimkitError("--device cuda asked for, but no CUDA device is available")
        return torch.device(spec)
    if spec == "cpu":
        return torch.device("cpu")
    raise SimkitError(f"unknown device {spec!r}; use auto, cpu or cuda")


def autocast(device: torch.device, precision: str = "auto"):
    """bf16 autocast on CUDA (``precision`` auto or bf16), a no-op context otherwise."""
    if precision not in ("auto", "bf16", "fp32"):
        raise SimkitError(f"unknown precision {precision!r}; use auto, bf16 or fp32")
    if device.type == "cuda" and precision in ("auto", "bf16"):
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and precision == "bf16":
        return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def cpu_threads(threads: int | None, device: str | torch.device = "cpu"):
    """Run the block with ``threads`` torch intra-op CPU threads, then restore the setting.

    A no-op for ``threads=None`` or a CUDA ``device``. Small networks gain little from
    several threads, and on a shared machine OpenMP threads spin-waiting for a
    descheduled partner can make training many times slower.
    """
    if threads is None or resolve_device(device).type != "cpu":
        yield
        return
    if threads < 1:
        raise SimkitError(f"threads must be at least 1, got {threads}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------- building blocks

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
}


def mlp(
    n_in: int,
    n_out: int,
    hidden: Sequence[int] = (128, 128, 128),
    activation: str = "silu",
    dropout: float = 0.0,
    layer_norm: bool = False,
) -> nn.Sequential:
    """A fully connected network ``n_in → hidden… → n_out`` (no output activation)."""
    if activation not in _ACTIVATIONS:
        raise SimkitError(f"unknown activation {activation!r}; use {', '.join(_ACTIVATIONS)}")
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers.append(nn.Linear(width, h))
        if layer_norm:
            layers.append(nn.LayerNorm(h))
        layers.append(_ACTIVATIONS[activation]())
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def weighted_mean_std(x: np.ndarray, weights: np.ndarray | None = None):
    """Per-column weighted mean and standard deviation (std floored to avoid /0)."""
    x = np.asarray(x, dtype=np.float64)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    total = w.sum()
    if not total > 0:
        raise SimkitError("weights sum to zero: nothing to standardize on")
    mean = (w[:, None] * x).sum(0) / total
    var = (w[:, None] * (x - mean) ** 2).sum(0) / total
    return mean, np.sqrt(np.maximum(var, 1e-12))


class Standardizer(nn.Module):
    """``(x − mean) / std`` per column, fitted with weights, saved in the model's state."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))

    def fit(self, x: np.ndarray, weights: np.ndarray | None = None) -> Standardizer:
        mean, std = weighted_mean_std(x, weights)
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(std, dtype=torch.float32))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.std + self.mean


# --------------------------------------------------------------------------- training


@dataclass
class TrainConfig:
    """Hyperparameters of :func:`train`; every field has a sane default."""

    epochs: int = 50
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 0.0
    val_fraction: float = 0.2  # held out for early stopping when no val_data is given
    patience: int = 5  # epochs without validation improvement; 0 = never stop
    min_delta: float = 0.0
    grad_clip: float | None = 5.0  # max gradient norm per objective; None = off
    max_bad_steps: int = 100  # non-finite losses skipped before training aborts
    lr_schedule: str | None = None  # None or "cosine" (over the epochs)
    device: str = "auto"
    precision: str = "auto"  # auto (bf16 on CUDA) | bf16 | fp32
    seed: int = 0
    progress: bool = True
    desc: str = "train"
    checkpoint: str | None = None  # file written after every epoch
    resume: bool = False  # continue from ``checkpoint`` when it exists
    restore_best: bool = True  # end with the weights of the best validation epoch

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise SimkitError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise SimkitError(f"batch size must be at least 1, got {self.batch_size}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise SimkitError(f"validation fraction must be in [0, 1), got {self.val_fraction}")
        if not self.lr > 0:
            raise SimkitError(f"learning rate must be positive, got {self.lr}")
        if self.lr_schedule not in (None, "cosine"):
            raise SimkitError(f"unknown lr schedule {self.lr_schedule!r}; use cosine or none")


@dataclass
class Objective:
    """One thing to minimise: ``loss(*batch)`` over ``parameters`` with its own Adam.

    Several objectives take turns on each batch (a GAN's critic every step, its
    generator ``every=5`` steps); a single model has one.
    """

    loss: Callable[..., torch.Tensor]
    parameters: Iterable[nn.Parameter]
    lr: float | None = None
    weight_decay: float | None = None
    betas: tuple[float, float] = (0.9, 0.999)
    every: int = 1
    name: str = "loss"
    #: called after each optimizer step of this objective (e.g. a weight average's update)
    after_step: Callable[[], None] | None = None


@dataclass
class TrainResult:
    """What happened: per-epoch history and the summary numbers reports need."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float = math.inf
    skipped_steps: int = 0
    seconds: float = 0.0
    stopped_early: bool = False
    device: str = "cpu"
    n_train: int = 0
    n_val: int = 0

    @property
    def epochs_run(self) -> int:
        return len(self.history)

    @property
    def events_per_second(self) -> float:
        return self.n_train * self.epochs_run / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict:
        return {
            "epochs": self.epochs_run,
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val_loss,
            "skipped_steps": self.skipped_steps,
            "seconds": self.seconds,
            "stopped_early": self.stopped_early,
            "device": self.device,
            "train_events": self.n_train,
            "val_events": self.n_val,
            "events_per_second": self.events_per_second,
        }


def _as_tensors(data: Sequence, device: torch.device) -> tuple[torch.Tensor, ...]:
    tensors = []
    for d in data:
        t = torch.as_tensor(d) if not isinstance(d, torch.Tensor) else d
        if t.dtype == torch.float64:
            t = t.float()
        tensors.append(t)
    n = tensors[0].shape[0]
    for t in tensors[1:]:
        if t.shape[0] != n:
            raise SimkitError(f"training arrays have different lengths ({n} and {t.shape[0]})")
    if device.type == "cuda":
        # the whole set on the GPU (an H200 holds ~140 GB); pinned host memory otherwise
        try:
            return tuple(t.to(device, non_blocking=True) for t in tensors)
        except torch.OutOfMemoryError:
            return tuple(t.pin_memory() for t in tensors)
    return tuple(tensors)


def _batches(data, size: int, generator: torch.Generator, device: torch.device, shuffle=True):
    n = data[0].shape[0]
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, size):
        idx = order[start : start + size]
        yield tuple(t[idx.to(t.device)].to(device, non_blocking=True) for t in data)


def _split(data, fraction: float, seed: int):
    n = data[0].shape[0]
    n_val = round(n * fraction)
    if n_val == 0:
        return data, None
    if n - n_val < 1:
        raise SimkitError(f"{n} events are too few for a validation split of {fraction}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7919))
    val, trn = order[:n_val], order[n_val:]
    return tuple(t[trn] for t in data), tuple(t[val] for t in data)


def _state(modules: Mapping[str, nn.Module]) -> dict:
    return {
        name: {k: v.detach().clone() for k, v in m.state_dict().items()}
        for name, m in modules.items()
    }


def _global_rng(device: torch.device) -> dict:
    """torch's global RNG states: stochastic losses (a VAE's reparametrization noise,
    dropout) draw from them, so an exact resume must restore them too."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_global_rng(state: Mapping | None, device: torch.device) -> None:
    if not state:  # checkpoints written before the RNG state was saved
        return
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def _atomic_torch_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(
    modules: nn.Module | Mapping[str, nn.Module],
    objectives: Objective | Sequence[Objective],
    data: Sequence,
    config: TrainConfig | None = None,
    *,
    val_data: Sequence | None = None,
    val_loss: Callable[..., torch.Tensor] | None = None,
    on_epoch_end: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train ``modules`` by minimising ``objectives`` over mini-batches of ``data``.

    ``data`` is a sequence of arrays with the events on axis 0 (e.g. features,
    targets, weights); each objective's ``loss`` is called with one batch of each.
    ``val_loss`` (default: the first objective's loss) is evaluated without
    gradients on ``val_data``, or on a ``config.val_fraction`` split of ``data``;
    early stopping watches it and the best epoch's weights are restored.

    A non-finite loss skips that step and is counted; more than
    ``config.max_bad_steps`` raise :class:`TrainingError`. With ``config.checkpoint``
    a checkpoint is written after every epoch; ``config.resume`` continues from it
    exactly (same batches, same optimizer state) as if never interrupted.

    Launched by ``torchrun`` (``WORLD_SIZE`` > 1), training is data-parallel with
    DistributedDataParallel: see :mod:`simkit.distributed`. Rank 0 alone writes the
    checkpoint and shows progress; every rank returns the same trained modules.
    """
    from simkit import distributed

    config = config or TrainConfig()
    if isinstance(modules, nn.Module):
        modules = {"model": modules}
    if isinstance(objectives, Objective):
        objectives = [objectives]
    ctx = distributed.context(resolve_device(config.device))
    device = ctx.device
    if not ctx.primary:
        config = replace(config, progress=False)
    if ctx.rank:  # stochastic losses (a VAE's noise) draw independent noise on each rank
        torch.manual_seed(torch.initial_seed() + ctx.rank)
    for m in modules.values():
        m.to(device)

    all_data = tuple(
        torch.as_tensor(np.asarray(d)) if not isinstance(d, torch.Tensor) else d for d in data
    )
    if val_data is None and config.val_fraction > 0:
        train_data, val_split = _split(all_data, config.val_fraction, config.seed)
    else:
        train_data, val_split = all_data, val_data
    if train_data[0].shape[0] == 0:
        raise SimkitError("no events to train on")
    train_data = _as_tensors(train_data, device)
    val_tensors = _as_tensors(val_split, device) if val_split is not None else None
    val_loss = val_loss or objectives[0].loss

    optimizers = []
    for obj in objectives:
        params = [p for p in obj.parameters if p.requires_grad]
        if not params:
            raise SimkitError(f"objective {obj.name!r} has no trainable parameters")
        obj.parameters = params
        optimizers.append(
            torch.optim.AdamW(
                params,
                lr=obj.lr or config.lr,
                betas=obj.betas,
                weight_decay=config.weight_decay if obj.weight_decay is None else obj.weight_decay,
            )
        )
    schedulers = (
        [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=config.epochs) for o in optimizers]
        if config.lr_schedule == "cosine"
        else []
    )

    generator = torch.Generator().manual_seed(config.seed)
    result = TrainResult(
        device=str(device),
        n_train=int(train_data[0].shape[0]),
        n_val=0 if val_tensors is None else int(val_tensors[0].shape[0]),
    )
    best_state = None
    bad_epochs = 0
    start_epoch = 0
    step = 0
    checkpoint = Path(config.checkpoint) if config.checkpoint else None
    if ctx.active:  # every rank resumes from rank 0's checkpoint (the one written)
        first = ctx.gather(None if checkpoint is None else str(checkpoint))[0]
        checkpoint = None if first is None else Path(first)
    if checkpoint is not None and config.resume and checkpoint.exists():
        state = load_checkpoint(checkpoint)
        for name, m in modules.items():
            m.load_state_dict(state["modules"][name])
        for opt, s in zip(optimizers, state["optimizers"], strict=False):
            opt.load_state_dict(s)
        for sch, s in zip(schedulers, state.get("schedulers", []), strict=False):
            sch.load_state_dict(s)
        generator.set_state(state["generator"])
        ranks = state.get("global_rng_ranks")
        if ctx.active and ranks and len(ranks) == ctx.world:
            _set_global_rng(ranks[ctx.rank], device)
        else:
            _set_global_rng(state.get("global_rng"), device)
        result.history = list(state["history"])
        result.best_epoch = int(state["best_epoch"])
        result.best_val_loss = float(state["best_val_loss"])
        result.skipped_steps = int(state["skipped_steps"])
        result.seconds = float(state["seconds"])
        best_state = state.get("best_state")
        bad_epochs = int(state["bad_epochs"])
        start_epoch = len(result.history)
        step = int(state["step"])
        if state.get("stopped_early"):
            start_epoch = config.epochs  # the run had finished: nothing more to do
    # rank 0's parameters broadcast to every rank; None outside torchrun
    ddp = ctx.wrap(modules, partial=len(objectives) > 1)

    from simkit.progress import progress_bar

    bar = progress_bar(
        total=config.epochs,
        initial=start_epoch,
        desc=config.desc,
        enabled=config.progress,
        unit="epoch",
        leave=False,
    )

    for epoch in range(start_epoch, config.epochs):
        check_interrupt()  # a SIGTERM whose exception was lost stops at the next epoch
        t0 = time.perf_counter()
        for m in modules.values():
            m.train()
        sums = [0.0] * len(objectives)
        counts = [0] * len(objectives)
        skipped_this_epoch = 0
        if ctx.active:  # this rank's part of the single-process batches
            order = torch.randperm(train_data[0].shape[0], generator=generator)
            batches = ctx.batches(train_data, order, config.batch_size)
        else:
            batches = ((b, 1.0) for b in _batches(train_data, config.batch_size, generator, device))
        for batch, scale in batches:
            for k, (obj, opt) in enumerate(zip(objectives, optimizers, strict=False)):
                if step % obj.every:
                    continue
                opt.zero_grad(set_to_none=True)
                with autocast(device, config.precision):
                    loss = obj.loss(*batch) if ddp is None else ddp(obj.loss, batch) * scale
                if not (torch.isfinite(loss) if ddp is None else ctx.all_finite(loss)):
                    result.skipped_steps += 1
                    skipped_this_epoch += 1
                    if result.skipped_steps > config.max_bad_steps:
                        raise TrainingError(
                            f"{config.desc}: {result.skipped_steps} steps gave a non-finite "
                            f"{obj.name} (limit {config.max_bad_steps}); the inputs or the "
                            "learning rate are likely bad"
                        )
                    continue
                loss.backward()
                if config.grad_clip:
                    norm = torch.nn.utils.clip_grad_norm_(obj.parameters, config.grad_clip)
                    if not torch.isfinite(norm):
                        opt.zero_grad(set_to_none=True)
                        result.skipped_steps += 1
                        skipped_this_epoch += 1
                        continue
                opt.step()
                if obj.after_step is not None:
                    obj.after_step()
                sums[k] += float(loss.detach())
                counts[k] += 1
            step += 1
        for sch in schedulers:
            sch.step()
        if ctx.active:  # the mean over ranks of scaled local means: the global batches'
            sums = [s / ctx.world for s in ctx.sum(*sums)]

        record = {"epoch": epoch}
        for obj, s, c in zip(objectives, sums, counts, strict=False):
            record[f"train_{obj.name}"] = s / c if c else math.nan
        record["train_loss"] = record[f"train_{objectives[0].name}"]
        if val_tensors is not None:
            val = evaluate_loss(modules, val_loss, val_tensors, config, device, ctx=ctx)
            record["val_loss"] = val
            if math.isfinite(val) and val < result.best_val_loss - config.min_delta:
                result.best_val_loss, result.best_epoch = val, epoch
                best_state = _state(modules)
                bad_epochs = 0
            else:
                bad_epochs += 1
        else:
            result.best_epoch = epoch
        record["skipped"] = skipped_this_epoch
        record["seconds"] = time.perf_counter() - t0
        result.seconds += record["seconds"]
        result.history.append(record)
        stop = bool(config.patience and bad_epochs >= config.patience)
        result.stopped_early = stop
        rngs = ctx.gather(_global_rng(device)) if checkpoint is not None else []
        if checkpoint is not None and ctx.primary:
            _atomic_torch_save(
                {
                    "modules": _state(modules),
                    "optimizers": [o.state_dict() for o in optimizers],
                    "schedulers": [s.state_dict() for s in schedulers],
                    "generator": generator.get_state(),
                    "global_rng": rngs[0],
                    **({"global_rng_ranks": rngs} if ctx.active else {}),
                    "history": result.history,
                    "best_epoch": result.best_epoch,
                    "best_val_loss": result.best_val_loss,
                    "best_state": best_state,
                    "bad_epochs": bad_epochs,
                    "skipped_steps": result.skipped_steps,
                    "seconds": result.seconds,
                    "step": step,
                    "stopped_early": stop,
                    "config": {k: v for k, v in asdict(config).items() if k != "checkpoint"},
                },
                checkpoint,
            )
        bar.update(1)
        post = {"loss": f"{record['train_loss']:.4g}"}
        if "val_loss" in record:
            post["val"] = f"{record['val_loss']:.4g}"
        bar.set_postfix(post)
        if on_epoch_end is not None:
            on_epoch_end(record)
        if stop:
            break
    bar.close()
    if config.restore_best and best_state is not None:
        for name, m in modules.items():
            m.load_state_dict(best_state[name])
    for m in modules.values():
        m.eval()
    return result


def evaluate_loss(modules, loss_fn, data, config: TrainConfig, device, *, ctx=None) -> float:
    """Mean of ``loss_fn`` over batches of ``data`` (weighted by batch size), no gradients.

    Under torchrun (``ctx`` active) each rank evaluates its share of the events and the
    sums are all-reduced: every rank gets the same number.
    """
    if isinstance(modules, nn.Module):
        modules = {"model": modules}
    for m in modules.values():
        m.eval()
    if ctx is not None and ctx.active:
        n = data[0].shape[0]
        mine = slice(n * ctx.rank // ctx.world, n * (ctx.rank + 1) // ctx.world)
        data = tuple(t[mine] for t in data)
    total, count = 0.0, 0
    size = max(config.batch_size, 8192)
    with torch.no_grad():
        for batch in _batches(data, size, None, device, shuffle=False):
            with autocast(device, config.precision):
                loss = float(loss_fn(*batch))
            n = batch[0].shape[0]
            total += loss * n
            count += n
    if ctx is not None and ctx.active:
        total, count = ctx.sum(total, count)
    return total / count if count else math.nan


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a training checkpoint without unpickling arbitrary objects."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # damaged or foreign file
        raise FileFormatError(f"{path}: not a readable simkit checkpoint ({exc})") from None


@torch.inference_mode()
def predict(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: np.ndarray | torch.Tensor,
    *,
    batch_size: int = 65536,
    device: str | torch.device = "cpu",
    precision: str = "auto",
) -> np.ndarray:
    """Apply ``fn`` to ``x`` in batches on ``device``; float32 numpy out, rows kept in order."""
    device = resolve_device(device)
    x = torch.as_tensor(np.asarray(x, dtype=np.float32) if not isinstance(x, torch.Tensor) else x)
    out = []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size].to(device, non_blocking=True)
        with autocast(device, precision):
            yb = fn(xb)
        out.append(yb.float().cpu())
    if not out:
        return np.zeros((0,), np.float32)
    return torch.cat(out).numpy()


# --------------------------------------------------------------------------- saving models


def save_model(
    folder: str | os.PathLike,
    kind: str,
    config: Mapping,
    state: Mapping[str, torch.Tensor],
    *,
    extra: Mapping | None = None,
) -> Path:
    """Write ``config.json`` (with ``kind``) and ``model.safetensors`` into ``folder``.

    ``config`` must be JSON-serializable and hold everything needed to rebuild the
    model; ``state`` is a flat tensor dict (a ``state_dict``). Each file is written
    atomically.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SimkitError(f"{folder}: exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    tmp = folder / ".model.safetensors.tmp"
    save_file(tensors, str(tmp), metadata={"format": MODEL_FORMAT, "kind": kind})
    document = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_VERSION,
        "kind": kind,
        "config": dict(config),
        **(dict(extra) if extra else {}),
    }
    tmp_json = folder / ".config.json.tmp"
    tmp_json.write_text(json.dumps(document, indent=2, sort_keys=True))
    os.replace(tmp, folder / "model.safetensors")
    os.replace(tmp_json, folder / "config.json")
    return folder


def load_model(folder: str | os.PathLike, kind: str | Sequence[str]) -> tuple[dict, dict]:
    """Read a folder written by :func:`save_model`; returns ``(document, state)``.

    ``kind`` names the model kinds accepted; a folder of another kind, a missing
    or damaged file is a clear :class:`FileFormatError`
    (:func:`simkit.modelfiles.read_model_document`).
    """
    from safetensors.torch import load_file

    document = read_model_document(folder, kind)
    state = read_safetensors(Path(folder) / WEIGHTS_FILE, lambda p: load_file(p, device="cpu"))
    return document, state


def load_state_strict(module: nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    """``load_state_dict`` whose mismatch is one clear line naming ``where``."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise FileFormatError(
            f"{where}: weights do not fit the model ({first_line(exc)})"
        ) from None


def clone_state(module: nn.Module) -> dict:
    """A detached copy of a module's state (for warm starts)."""
    return copy.deepcopy({k: v.detach() for k, v in module.state_dict().items()})
