"""Data against a background template inside a window: the weakly supervised classifier.

A classifier trained to tell the data in a signal-region window (label 1) from a
background template in the same window (label 0) converges to a monotonic function of
p_data/p_template = 1 + (S/B)·p_signal/p_background where the template is right: the
optimal anomaly score (Neyman–Pearson), learnt without a signal model. That is the idea
of CWoLa hunting (Collins, Howe & Nachman, PRL 121 (2018) 241803) and of CATHODE (Hallin
et al., PRD 106 (2022) 055006), whose template is a flow trained in the sidebands.

:class:`TemplateClassifier` does the training the way those results were obtained:

- the template is *oversampled* (default 4× the data events; CATHODE's choice), the two
  classes are *balanced* to equal total weight, and the template's own weights are
  honoured in the loss;
- *k-folding* over the data (default 5): the data and the template are split into k
  folds; the models of fold k train on the other folds and score only fold k, so every
  data event is scored by models that never saw it;
- an *ensemble* per fold (default 5 seeds), whose logits are averaged;
- two classifiers: ``mlp`` (3 × 64 ReLU, CATHODE's network, trained by the shared loop
  through :mod:`validation.classifier`) and ``hgb`` (scikit-learn's
  ``HistGradientBoostingClassifier``, which keeps the idealized detector near its
  noise-free reach with 10 Gaussian noise features where a network does not: Finke et
  al., arXiv:2309.13111).

Scores of different fold models are not on one scale. Each raw score is therefore turned
into its *data rank*: the fraction of that fold's data scoring lower. A cut ``rank >
1 − ε`` keeps a fraction ε of the data in every fold, and applies the same cut to
template events and to events outside the window (each assigned to one fold at random).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> data = rng.normal(0, 1, (600, 2)); template = rng.normal(0, 1, (2400, 2))
>>> config = TemplateClassifierConfig(classifier="hgb", folds=3, ensemble=1)
>>> fit = TemplateClassifier(config, seed=1).fit(data, template)
>>> fit.data_rank_.shape, bool(abs(fit.template_efficiency(0.1).value - 0.1) < 0.05)
((600,), True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from simkit.errors import NotFittedError, SimkitError
from simkit.params import HyperParameters
from simkit.stats import effective_sample_size

CLASSIFIERS = ("hgb", "mlp")


@dataclass(frozen=True)
class TemplateClassifierConfig:
    """Every setting of the template classifier, each default declared once here.

    ``oversample`` is the template-to-data event ratio used for training (the template
    is subsampled to it when it has more events; with fewer, all are used and the
    ratio reached is reported). MLP settings follow CATHODE (3 × 64 ReLU, Adam 1e-3,
    batches of 128, best validation epoch kept); HGB settings are scikit-learn's with
    early stopping on a 20 % split.
    """

    classifier: str = "hgb"
    folds: int = 5
    ensemble: int = 5
    oversample: float = 4.0
    # mlp
    hidden: tuple[int, ...] = (64, 64, 64)
    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    patience: int = 10
    # hgb
    max_iter: int = 200
    learning_rate: float = 0.1
    max_leaf_nodes: int = 31
    # both
    device: str = "auto"
    threads: int | None = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if self.classifier not in CLASSIFIERS:
            raise SimkitError(
                f"unknown classifier {self.classifier!r}; use {' or '.join(CLASSIFIERS)}"
            )
        if self.folds < 2:
            raise SimkitError(f"k-folding needs at least 2 folds, got {self.folds}")
        if self.ensemble < 1:
            raise SimkitError(f"the ensemble needs at least 1 model, got {self.ensemble}")
        if not (math.isfinite(self.oversample) and self.oversample > 0):
            raise SimkitError(f"oversample must be a positive number, got {self.oversample}")
        for name in ("epochs", "batch_size", "max_iter", "max_leaf_nodes"):
            if getattr(self, name) < 1:
                raise SimkitError(f"{name} must be at least 1, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return {**asdict(self), "hidden": list(self.hidden)}

    @classmethod
    def from_dict(cls, options: dict | None) -> TemplateClassifierConfig:
        options = dict(options or {})
        unknown = sorted(set(options) - set(cls.__dataclass_fields__))
        if unknown:
            raise SimkitError(
                f"unknown template classifier option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(cls.__dataclass_fields__))}"
            )
        return cls(**options)


def _features(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    x = x[:, None] if x.ndim == 1 else x
    if x.ndim != 2:
        raise SimkitError(f"the {name} must be an (events, features) array, got {x.shape}")
    if not np.isfinite(x).all():
        row = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
        raise SimkitError(f"the {name} has a non-finite feature at row {row}")
    return x


def _weights(w, n: int, name: str) -> np.ndarray:
    if w is None:
        return np.ones(n)
    w = np.asarray(w, dtype=np.float64).reshape(-1)
    if w.shape != (n,):
        raise SimkitError(f"{len(w)} {name} weights for {n} events")
    if not np.isfinite(w).all():
        raise SimkitError(
            f"the {name} weights are not finite (row {int(np.argmax(~np.isfinite(w)))})"
        )
    if (w < 0).any():
        raise SimkitError(f"the {name} weights must not be negative")
    if not w.sum() > 0:
        raise SimkitError(f"the {name} weights sum to zero")
    return w


@dataclass(frozen=True)
class TemplateEfficiency:
    """The template's efficiency for one cut (:meth:`TemplateClassifier.template_efficiency`)."""

    value: float
    stat: float  # binomial error (Jeffreys)
    fold_spread: float  # std over folds / √k
    model: float  # the part of the fold spread that statistics does not explain

    @property
    def error(self) -> float:
        return math.hypot(self.stat, self.model)


def jeffreys_efficiency(passing: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """The weighted fraction passing, with Jeffreys' prior on Kish effective counts:
    ((k + ½)/(N + 1), its binomial error). A cut nothing passes estimates ½/(N + 1)."""
    n_eff = effective_sample_size(weights)
    k_eff = n_eff * weights[passing].sum() / weights.sum()
    eps = float((k_eff + 0.5) / (n_eff + 1.0))
    return eps, math.sqrt(eps * (1.0 - eps) / (n_eff + 1.0))


def assign_folds(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """A fold index 0…k−1 per event, folds as equal as possible, in random order."""
    return rng.permutation(np.arange(n) % k)


class _Fitted:
    """One classifier of the ensemble, behind one ``logit(x)`` call."""

    def __init__(self, model, kind: str, config: TemplateClassifierConfig) -> None:
        self.model, self.kind, self.config = model, kind, config

    def logit(self, x: np.ndarray) -> np.ndarray:
        """log(p / (1 − p)): averaged over an ensemble without the saturation of p near 1,
        which would tie the most signal-like events."""
        if len(x) == 0:
            return np.zeros(0)
        if self.kind == "hgb":
            from threadpoolctl import threadpool_limits

            with threadpool_limits(self.config.threads):
                return self.model.decision_function(x).astype(np.float64)
        from validation.classifier import logits

        return logits(self.model, x, device=self.config.device, threads=self.config.threads)


def _fit_one(
    x: np.ndarray, target: np.ndarray, data_w: np.ndarray, template_w: np.ndarray,
    config: TemplateClassifierConfig, seed: int,
) -> _Fitted:  # fmt: skip
    """One classifier of data (``target``) against template rows, classes balanced."""
    from validation.classifier import balanced

    a, b = balanced(np.where(target, data_w, 0.0), np.where(target, 0.0, template_w))
    if config.classifier == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        model = HistGradientBoostingClassifier(
            max_iter=config.max_iter,
            learning_rate=config.learning_rate,
            max_leaf_nodes=config.max_leaf_nodes,
            early_stopping=True,
            validation_fraction=0.2,
            n_iter_no_change=10,
            random_state=seed % (2**32),
        )
        from threadpoolctl import threadpool_limits

        with threadpool_limits(config.threads):
            model.fit(x, target.astype(np.int8), sample_weight=a + b)
        return _Fitted(model, "hgb", config)
    from validation.classifier import ClassifierConfig, build_classifier, fit_classifier

    cc = ClassifierConfig(
        hidden=config.hidden,
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        patience=config.patience,
        device=config.device,
        threads=config.threads,
    )
    model = build_classifier(x.shape[1], cc, seed=seed)
    fit_classifier(model, x, a, b, cc, seed=seed, desc="template classifier")
    return _Fitted(model, "mlp", config)


def _rank_table(scores: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(scores, kind="stable")
    cum = np.cumsum(weights[order])
    return scores[order], cum / cum[-1]


def _rank(table: tuple[np.ndarray, np.ndarray], scores: np.ndarray) -> np.ndarray:
    """Weighted fraction of the fold's data scoring at or below each score."""
    sorted_scores, cdf = table
    index = np.searchsorted(sorted_scores, scores, side="right")
    return np.where(index > 0, cdf[np.maximum(index - 1, 0)], 0.0)


@dataclass
class TemplateClassifier(HyperParameters):
    """k-folded, ensembled classifier of data against a template (see the module).

    ``fit(data, template, data_weights=None, template_weights=None)`` returns self with:

    - ``data_score_``, ``data_rank_``, ``data_fold_``: each data event's averaged
      logit from the ensemble of the one fold whose models did not train on it,
      its data rank, and that fold;
    - the same for the template events used (``template_rows_`` into the template
      passed in), with their weights ``template_weights_``;
    - ``rank(x)`` for any other events (assigned to folds at random).
    """

    config: TemplateClassifierConfig = field(default_factory=TemplateClassifierConfig)
    seed: int = 0
    progress: bool = False

    def fit(
        self,
        data: np.ndarray,
        template: np.ndarray,
        data_weights: np.ndarray | None = None,
        template_weights: np.ndarray | None = None,
    ) -> TemplateClassifier:
        from simkit.progress import progress_bar

        config = self.config
        x_data = _features(data, "data")
        x_template = _features(template, "template")
        if x_data.shape[1] != x_template.shape[1]:
            raise SimkitError(
                f"the data have {x_data.shape[1]} features and the template "
                f"{x_template.shape[1]}: they must match"
            )
        w_data = _weights(data_weights, len(x_data), "data")
        w_template = _weights(template_weights, len(x_template), "template")
        k = config.folds
        if len(x_data) < 2 * k:
            raise SimkitError(f"{len(x_data)} data events are too few for {k} folds")
        rng = np.random.default_rng([self.seed, 17])
        wanted = round(config.oversample * len(x_data))
        rows = np.arange(len(x_template))
        if len(rows) > wanted:
            rows = np.sort(rng.choice(rows, wanted, replace=False))
        if len(rows) < 2 * k:
            raise SimkitError(f"{len(rows)} template events are too few for {k} folds")
        x_template, w_template = x_template[rows], w_template[rows]
        self.template_rows_ = rows
        self.oversample_reached_ = len(rows) / len(x_data)
        self.data_fold_ = assign_folds(len(x_data), k, rng)
        self.template_fold_ = assign_folds(len(x_template), k, rng)

        self._tie_rng = np.random.default_rng([self.seed, 23])
        self.models_: list[list[_Fitted]] = []
        self.data_score_ = np.zeros(len(x_data))
        self.template_score_ = np.zeros(len(x_template))
        bar = progress_bar(
            total=k * config.ensemble, desc="template classifier", enabled=self.progress
        )
        for fold in range(k):
            train_d = self.data_fold_ != fold
            train_t = self.template_fold_ != fold
            x = np.concatenate([x_data[train_d], x_template[train_t]])
            target = np.r_[np.ones(train_d.sum(), bool), np.zeros(train_t.sum(), bool)]
            wd = np.r_[w_data[train_d], np.zeros(train_t.sum())]
            wt = np.r_[np.zeros(train_d.sum()), w_template[train_t]]
            members = []
            for member in range(config.ensemble):
                seed = int(np.random.SeedSequence([self.seed, fold, member]).generate_state(1)[0])
                members.append(_fit_one(x, target, wd, wt, config, seed))
                bar.update()
            self.models_.append(members)
            self.data_score_[~train_d] = self._logit(fold, x_data[~train_d])
            self.template_score_[~train_t] = self._logit(fold, x_template[~train_t])
        bar.close()
        self.data_weights_ = w_data
        self.template_weights_ = w_template
        self._tables = [
            _rank_table(self.data_score_[self.data_fold_ == f], w_data[self.data_fold_ == f])
            for f in range(k)
        ]
        self.data_rank_ = self._ranks(self.data_score_, self.data_fold_)
        self.template_rank_ = self._ranks(self.template_score_, self.template_fold_)
        return self

    def _logit(self, fold: int, x: np.ndarray) -> np.ndarray:
        members = self.models_[fold]
        mean = sum(m.logit(x) for m in members) / len(members)
        # Trees give many events the very same score, and a cut through a tie could not
        # keep exactly the fraction asked for. A random shift far below any real score
        # difference orders tied events at random (a randomized cut) and nothing else.
        jitter = self._tie_rng.random(len(mean))
        return mean + 1e-9 * (1.0 + np.abs(mean)) * jitter

    def _ranks(self, scores: np.ndarray, folds: np.ndarray) -> np.ndarray:
        out = np.zeros(len(scores))
        for f, table in enumerate(self._tables):
            rows = folds == f
            out[rows] = _rank(table, scores[rows])
        return out

    def _check_fitted(self) -> None:
        if not hasattr(self, "models_"):
            raise NotFittedError("the template classifier is not fitted yet: call fit first")

    def rank(self, x: np.ndarray, seed: int = 0) -> np.ndarray:
        """Data ranks of events never used in training (each judged by one random fold)."""
        self._check_fitted()
        x = _features(x, "events to score")
        folds = assign_folds(len(x), len(self.models_), np.random.default_rng([self.seed, seed, 5]))
        scores = np.zeros(len(x))
        for f in range(len(self.models_)):
            rows = folds == f
            scores[rows] = self._logit(f, x[rows])
        return self._ranks(scores, folds)

    def template_efficiency(self, efficiency: float) -> TemplateEfficiency:
        """The template's efficiency for the cut that keeps ``efficiency`` of the data.

        The passing fraction uses Jeffreys' prior, ε_T = (k + ½)/(N + 1) for k of N
        effective template events passing (a cut that no template event passes
        estimates ½/(N + 1), not a background-free zero), with its binomial error.
        The spread of ε_T between the folds, std_k/√k, holds that binomial part, the
        fluctuation of each fold's data quantile (ε(1−ε)/N_data, part of the observed
        count's own Poisson error) and, beyond both, the variance between the folds'
        models: only that excess is added to the error.
        """
        self._check_fitted()
        if not 0.0 < efficiency < 1.0:
            raise SimkitError(f"a cut efficiency must lie in (0, 1), got {efficiency}")
        passing = self.template_rank_ > 1.0 - efficiency
        w = self.template_weights_
        eps, stat = jeffreys_efficiency(passing, w)
        per_fold = []
        for f in range(len(self.models_)):
            rows = self.template_fold_ == f
            per_fold.append(w[rows & passing].sum() / w[rows].sum())
        spread = float(np.std(per_fold, ddof=1) / math.sqrt(len(per_fold)))
        quantile = eps * (1.0 - eps) / effective_sample_size(self.data_weights_)
        model = math.sqrt(max(spread**2 - stat**2 - quantile, 0.0))
        return TemplateEfficiency(eps, stat, spread, model)

    def data_passing(self, efficiency: float) -> np.ndarray:
        """Which data events pass the cut keeping ``efficiency`` of the data."""
        self._check_fitted()
        return self.data_rank_ > 1.0 - efficiency

    def describe(self) -> dict:
        return {
            **self.config.to_dict(),
            "seed": self.seed,
            "n_data": len(self.data_rank_) if hasattr(self, "data_rank_") else None,
            "n_template": len(self.template_rank_) if hasattr(self, "template_rank_") else None,
            "oversample_reached": getattr(self, "oversample_reached_", None),
        }


def out_of_fold_auc(fit: TemplateClassifier) -> float:
    """ROC AUC of data against template from the out-of-fold scores (0.5: alike)."""
    from simkit.stats import roc_auc

    fit._check_fitted()
    scores = np.r_[fit.data_rank_, fit.template_rank_]  # ranks: one scale for all folds
    labels = np.r_[
        np.ones(len(fit.data_score_), np.int8), np.zeros(len(fit.template_score_), np.int8)
    ]
    return roc_auc(scores, labels, np.r_[fit.data_weights_, fit.template_weights_])


__all__: Sequence[str] = (
    "CLASSIFIERS",
    "TemplateClassifier",
    "TemplateClassifierConfig",
    "TemplateEfficiency",
    "assign_folds",
    "jeffreys_efficiency",
    "out_of_fold_auc",
)
