"""The density-ratio classifier of OmniFold and of the two-sample test.

A classifier ``f(x)`` trained with weighted binary cross-entropy to tell a *target*
sample (label 1) from a *source* sample (label 0), each normalized to the same total
weight, converges to ``f = p_target / (p_target + p_source)``, so its logit is the log
density ratio ``log(p_target / p_source)`` (the likelihood-ratio trick; Andreassen et
al., PRL 124 (2020) 182001).

Every event carries a target weight ``a`` and a source weight ``b``, and contributes
``a·softplus(−z) + b·softplus(z)`` to the loss (``z`` the logit). An event of only one
sample has the other weight zero. OmniFold's step 2 compares the *same* generator-level
events under two weightings; with both weights on one row it trains on N rows instead of
the 2N of a stacked data set: the same loss, half the arithmetic.

Training goes through :func:`simkit.nn.train` (the one loop: large batches, early
stopping on a validation split, NaN guard, bf16 autocast on CUDA).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = np.r_[rng.normal(0, 1, 2000), rng.normal(1, 1, 2000)][:, None]
>>> a = np.r_[np.zeros(2000), np.ones(2000)]          # target: N(1, 1)
>>> config = ClassifierConfig(epochs=3, batch_size=512, device="cpu")
>>> model = build_classifier(1, config, seed=0)
>>> fit = fit_classifier(model, x, a, 1 - a, config, seed=0)
>>> fit.auc > 0.6
True
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from simkit import nn as sknn
from simkit.errors import SimkitError
from simkit.stats import roc_auc


@dataclass
class ClassifierConfig:
    """Network and training hyperparameters of a density-ratio classifier.

    The defaults are chosen for speed on a 2-core CPU at equal closure (see
    BENCHMARKS.md): a small ReLU network, batches of 4096 with a learning rate raised to
    match, and early stopping with a patience of 8 epochs (on the Gaussian reference
    problem a patience of 4 left twice the training noise in the unfolded mean).
    """

    hidden: tuple[int, ...] = (64, 64)
    activation: str = "relu"
    epochs: int = 40
    batch_size: int = 4096
    lr: float = 2e-3
    patience: int = 8
    val_fraction: float = 0.2
    weight_decay: float = 0.0
    device: str = "auto"
    precision: str = "auto"
    progress: bool = False
    # CPU threads while training/predicting (None: leave torch's setting). One thread:
    # these small networks gain little from intra-op threads, and on a shared 2-core
    # machine two OpenMP threads spin-waiting for each other made training up to 20×
    # slower, while one thread was as fast as two on a quiet moment (BENCHMARKS.md).
    threads: int | None = 1

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        if self.threads is not None and self.threads < 1:
            raise SimkitError(f"threads must be at least 1, got {self.threads}")
        if any(h < 1 for h in self.hidden):
            raise SimkitError(f"hidden layer widths must be positive, got {self.hidden}")
        if not 0.0 < self.val_fraction < 1.0:
            raise SimkitError(f"the validation fraction must be in (0, 1), got {self.val_fraction}")
        # the loop checks the rest (epochs, batch size, learning rate)
        self.train_config(seed=0)

    def to_dict(self) -> dict:
        return {**asdict(self), "hidden": list(self.hidden)}

    @classmethod
    def from_options(cls, options: dict | None) -> ClassifierConfig:
        """Build from keyword options; unknown names are a clear error."""
        options = dict(options or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise SimkitError(
                f"unknown classifier option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        return cls(**options)

    def train_config(self, *, seed: int, desc: str = "classifier") -> sknn.TrainConfig:
        return sknn.TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            val_fraction=0.0,  # the split is made here, so its rows are known (held-out AUC)
            patience=self.patience,
            device=self.device,
            precision=self.precision,
            seed=seed,
            progress=self.progress,
            desc=desc,
        )


def build_classifier(n_features: int, config: ClassifierConfig, *, seed: int) -> nn.Sequential:
    """``Standardizer`` followed by :func:`simkit.nn.mlp` with one logit out.

    The initial weights come from ``seed`` alone (the global torch state is untouched).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = sknn.mlp(n_features, 1, config.hidden, config.activation)
    return nn.Sequential(sknn.Standardizer(n_features), net)


@dataclass
class ClassifierFit:
    """What one training did: the loop's summary and the held-out AUC."""

    auc: float  # weighted ROC AUC on the validation rows (target = positive class)
    result: sknn.TrainResult = field(repr=False)
    val_rows: np.ndarray = field(repr=False)

    def summary(self) -> dict:
        return {"auc": self.auc, **self.result.summary()}


def balanced(target: np.ndarray, source: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale target and source weights to the same total, with mean (a + b) = 1 per row.

    Equal totals make the classifier's odds the ratio of *normalized* densities.
    """
    a = np.asarray(target, dtype=np.float64)
    b = np.asarray(source, dtype=np.float64)
    n = len(a)
    sa, sb = a.sum(), b.sum()
    if not (sa > 0 and sb > 0):
        which = "target" if not sa > 0 else "source"
        raise SimkitError(f"the {which} sample has no events with positive weight")
    return a * (0.5 * n / sa), b * (0.5 * n / sb)


def split_rows(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random (train, validation) partition of ``range(n)``."""
    order = np.random.default_rng([seed, 104729]).permutation(n)
    n_val = max(1, round(n * val_fraction))
    if n - n_val < 1:
        raise SimkitError(f"{n} events are too few to train a classifier")
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def weighted_auc(logits: np.ndarray, target: np.ndarray, source: np.ndarray) -> float:
    """ROC AUC of logits for rows that are target (weight a) and/or source (weight b)."""
    is_t, is_s = target > 0, source > 0
    scores = np.r_[logits[is_t], logits[is_s]]
    labels = np.r_[np.ones(is_t.sum(), np.int8), np.zeros(is_s.sum(), np.int8)]
    return roc_auc(scores, labels, np.r_[target[is_t], source[is_s]])


def fit_classifier(
    model: nn.Module,
    x: np.ndarray,
    target_weights: np.ndarray,
    source_weights: np.ndarray,
    config: ClassifierConfig,
    *,
    seed: int,
    fit_standardizer: bool = True,
    desc: str = "classifier",
    split_seed: int | None = None,
) -> ClassifierFit:
    """Train ``model`` (from :func:`build_classifier`) to tell target from source rows.

    Weights are balanced first (:func:`balanced`); a random ``config.val_fraction`` of
    rows is held out for early stopping and for the returned AUC. With
    ``fit_standardizer=False`` the model's input standardization is kept (a warm start).
    The held-out rows are drawn from ``split_seed`` (default ``seed``): a warm-started
    model must keep the same split as its earlier fits, or its "held-out" rows include
    rows it was trained on, which biases the early stopping and the AUC upwards.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise SimkitError(f"classifier inputs must be 2-D (events, features), got {x.shape}")
    a, b = balanced(target_weights, source_weights)
    if fit_standardizer:
        model[0].fit(x, a + b)
    train_rows, val_rows = split_rows(
        len(x), config.val_fraction, seed if split_seed is None else split_seed
    )

    def loss(xb, ab, bb):
        z = model(xb).squeeze(-1).float()
        return (ab * nn.functional.softplus(-z) + bb * nn.functional.softplus(z)).mean()

    def tensors(rows):
        return (
            torch.from_numpy(x[rows]),
            torch.from_numpy(a[rows].astype(np.float32)),
            torch.from_numpy(b[rows].astype(np.float32)),
        )

    train_config = config.train_config(seed=seed, desc=desc)
    with sknn.cpu_threads(config.threads, config.device):
        result = sknn.train(
            model,
            sknn.Objective(loss, model.parameters()),
            tensors(train_rows),
            train_config,
            val_data=tensors(val_rows),
        )
    val_logits = logits(model, x[val_rows], device=config.device, threads=config.threads)
    auc = weighted_auc(val_logits, a[val_rows], b[val_rows])
    return ClassifierFit(auc=auc, result=result, val_rows=val_rows)


def logits(
    model: nn.Module,
    x: np.ndarray,
    *,
    device: str = "auto",
    precision: str = "fp32",
    threads: int | None = 1,
) -> np.ndarray:
    """The model's logits ``log(f / (1 − f))`` for rows of ``x``, float64.

    Inference is in fp32 by default even on CUDA: a weight exp(z) from a bf16 logit
    carries only ~3 significant digits, too few for per-mille closure.
    """
    device_ = sknn.resolve_device(device)
    model.to(device_).eval()
    with sknn.cpu_threads(threads, device):
        out = sknn.predict(model, x, batch_size=65536, device=device_, precision=precision)
    return out.reshape(-1).astype(np.float64)


def logit_bound(clip: float) -> float:
    """The largest |logit| allowed when ``f`` is kept inside ``[clip, 1 − clip]``."""
    if not 0.0 < clip < 0.5:
        raise SimkitError(f"the classifier clip must be in (0, 0.5), got {clip}")
    return math.log((1.0 - clip) / clip)
