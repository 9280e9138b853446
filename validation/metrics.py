"""Weighted two-sample metrics, and an iterative Bayesian unfolding baseline.

Every metric compares a *reference* sample (usually data) with a *candidate* sample
(usually simulation, possibly reweighted), each with optional per-event weights:

=============================  ===============  ===========================================
metric                         null value       meaning
=============================  ===============  ===========================================
:func:`triangular_discriminator`  0             ½ Σ (p−q)²/(p+q) of unit-normalized
                                                histograms (Topsøe; as in the OmniFold paper)
:func:`chi2_ndf`               ≈ 1 (0 if same)  shape χ² with Σw² errors per bin / (bins − 1)
:func:`wasserstein`            0                earth mover's distance (column units)
:func:`ks_distance`            0                largest gap between the weighted CDFs
:func:`two_sample_auc`         0.5              held-out ROC AUC of a classifier
:func:`effective_sample_size`  N (weights = 1)  Kish's (Σw)²/Σw²
=============================  ===============  ===========================================

Binned metrics use the same edges for both samples and count the events outside them
in an underflow and an overflow bin, so nothing is silently dropped.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> a, b = rng.normal(0, 1, 20000), rng.normal(0.5, 1, 20000)
>>> round(wasserstein(a, b), 1)
0.5
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.stats

from simkit.errors import SimkitError
from simkit.stats import effective_sample_size, roc_auc, weighted_quantile
from validation.gate import auc_null_sigma, chi2_p_value, shape_chi2

__all__ = [
    "AUCNull",
    "IBUResult",
    "TwoSampleAUC",
    "TwoSampleClassifier",
    "auc_null_distribution",
    "binned",
    "bootstrap_auc_interval",
    "check_weights",
    "chi2_ndf",
    "column_edges",
    "column_metrics",
    "effective_sample_size",
    "histogram",
    "ibu",
    "ibu_iterate",
    "ks_distance",
    "train_two_sample_classifier",
    "triangular_discriminator",
    "two_sample_auc",
    "wasserstein",
]

#: Default range of automatic bins: the reference's 0.1 % and 99.9 % weighted quantiles.
RANGE_QUANTILES = (0.001, 0.999)


# --------------------------------------------------------------------------- inputs


def _values(values, name: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        raise SimkitError(f"the {name} sample is empty")
    if not np.isfinite(v).all():
        row = int(np.flatnonzero(~np.isfinite(v))[0])
        raise SimkitError(f"the {name} sample has a non-finite value at row {row}")
    return v


def check_weights(weights, n: int, name: str, *, positive_total: bool = True) -> np.ndarray:
    """Per-event weights as float64 (ones when None): n finite, non-negative values.

    Every problem is one clear error naming ``name`` and the first bad row.
    """
    if weights is None:
        return np.ones(n)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape != (n,):
        raise SimkitError(f"{w.shape[0]} {name} weights for {n} events")
    if not np.isfinite(w).all():
        row = int(np.flatnonzero(~np.isfinite(w))[0])
        raise SimkitError(f"the {name} weights are not finite (NaN or inf) at row {row}")
    if (w < 0).any():
        raise SimkitError(f"the {name} weights are negative at row {int(np.argmax(w < 0))}")
    if positive_total and not w.sum() > 0:
        raise SimkitError(f"the {name} weights sum to zero")
    return w


_weights = check_weights


def _named(reference_weights, candidate_weights) -> dict:
    return {"reference_weights": reference_weights, "candidate_weights": candidate_weights}


def _samples(reference, candidate, reference_weights, candidate_weights):
    """Both 1-D samples and their weights, checked."""
    ref = _values(reference, "reference")
    cand = _values(candidate, "candidate")
    return (
        ref,
        cand,
        check_weights(reference_weights, len(ref), "reference"),
        check_weights(candidate_weights, len(cand), "candidate"),
    )


# --------------------------------------------------------------------------- histograms


def column_edges(
    values: np.ndarray,
    weights: np.ndarray | None = None,
    bins: int = 40,
    quantiles: tuple[float, float] = RANGE_QUANTILES,
) -> np.ndarray:
    """Bin edges for one column: ``bins`` equal bins between two weighted quantiles.

    Integer-valued columns (e.g. constituent counts) get edges on half-integers, so
    each bin holds whole values.
    """
    if bins < 1:
        raise SimkitError(f"the number of bins must be at least 1, got {bins}")
    v = _values(values, "reference")
    lo, hi = weighted_quantile(v, quantiles, _weights(weights, len(v), "reference"))
    if np.all(v == np.round(v)):
        lo, hi = np.floor(lo), np.ceil(hi)
        width = max(1.0, np.ceil((hi - lo + 1) / bins))
        return np.arange(lo - 0.5, hi + 0.5 + width, width)
    if not hi > lo:  # a (nearly) constant column: one bin around the value
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


def histogram(
    values: np.ndarray, edges: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted counts and Σw² per bin, with underflow first and overflow last.

    Bins are half-open ``[lo, hi)``; a value equal to the last edge is overflow.
    Returns arrays of length ``len(edges) + 1``.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    w = np.ones(len(v)) if weights is None else np.asarray(weights, dtype=np.float64)
    index = np.searchsorted(edges, v, side="right")
    size = len(edges) + 1
    return (
        np.bincount(index, weights=w, minlength=size),
        np.bincount(index, weights=w * w, minlength=size),
    )


@dataclass
class Binned:
    """Two samples histogrammed on common edges (under/overflow at both ends)."""

    edges: np.ndarray
    reference: np.ndarray
    reference_w2: np.ndarray
    candidate: np.ndarray
    candidate_w2: np.ndarray


def binned(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    bins: int | np.ndarray = 40,
    reference_weights: np.ndarray | None = None,
    candidate_weights: np.ndarray | None = None,
) -> Binned:
    """Histogram both samples on the same edges (given, or from the reference)."""
    ref, cand, w_ref, w_cand = _samples(reference, candidate, reference_weights, candidate_weights)
    edges = (
        column_edges(ref, w_ref, int(bins))
        if np.ndim(bins) == 0
        else np.asarray(bins, dtype=np.float64)
    )
    if edges.ndim != 1 or len(edges) < 2 or not np.all(np.diff(edges) > 0):
        raise SimkitError("bin edges must be an increasing sequence of at least two values")
    r, r2 = histogram(ref, edges, w_ref)
    c, c2 = histogram(cand, edges, w_cand)
    return Binned(edges, r, r2, c, c2)


# --------------------------------------------------------------------------- metrics


def triangular_discriminator(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    bins: int | np.ndarray = 40,
    reference_weights: np.ndarray | None = None,
    candidate_weights: np.ndarray | None = None,
) -> float:
    """Triangular discriminator Δ = ½ Σᵢ (pᵢ − qᵢ)² / (pᵢ + qᵢ) of unit-area histograms.

    0 for identical histograms, 1 for disjoint ones. The OmniFold paper (Andreassen et
    al., PRL 124 (2020) 182001) quotes it ×10³. Two independent samples of one
    distribution give about ½·(bins)·(1/N_ref + 1/N_cand)/2 on average, not 0.
    """
    h = binned(reference, candidate, bins=bins, **_named(reference_weights, candidate_weights))
    p = h.reference / h.reference.sum()
    q = h.candidate / h.candidate.sum()
    total = p + q
    used = total > 0
    return float(0.5 * np.sum((p[used] - q[used]) ** 2 / total[used]))


@dataclass
class Chi2:
    chi2: float
    ndf: int

    @property
    def per_ndf(self) -> float:
        return self.chi2 / self.ndf if self.ndf > 0 else 0.0

    @property
    def p_value(self) -> float:
        """P(χ²_ndf ≥ χ²): :func:`validation.gate.chi2_p_value`."""
        return chi2_p_value(self.chi2, self.ndf)


def chi2_ndf(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    bins: int | np.ndarray = 40,
    reference_weights: np.ndarray | None = None,
    candidate_weights: np.ndarray | None = None,
    tolerance: float = 0.0,
) -> Chi2:
    """Shape χ² of two weighted histograms, with Σw² as each bin's variance.

    The candidate is scaled to the reference's total weight s; then
    χ² = Σᵢ (Rᵢ − s·Cᵢ)² / (σ²_Rᵢ + s²·σ²_Cᵢ) over bins where either is filled
    (under/overflow included), and ndf = (filled bins) − 1 for the normalization.
    Same-distribution samples give χ²/ndf ≈ 1; it is a shape test, not a rate test.
    ``tolerance`` τ > 0 adds (τ·s·Cᵢ)² to each bin's variance: the gate's allowance
    for a relative mis-modelling (:func:`validation.gate.shape_chi2`).
    """
    h = binned(reference, candidate, bins=bins, **_named(reference_weights, candidate_weights))
    chi2, ndf = shape_chi2(
        h.reference, h.reference_w2, h.candidate, h.candidate_w2, tolerance=tolerance
    )
    return Chi2(chi2, ndf)


def wasserstein(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    reference_weights: np.ndarray | None = None,
    candidate_weights: np.ndarray | None = None,
) -> float:
    """Wasserstein-1 (earth mover's) distance between the weighted distributions.

    In the column's units: a pure shift by δ gives δ. Uses
    :func:`scipy.stats.wasserstein_distance`.
    """
    ref, cand, w_ref, w_cand = _samples(reference, candidate, reference_weights, candidate_weights)
    return float(scipy.stats.wasserstein_distance(ref, cand, w_ref, w_cand))


def _weighted_cdf(sorted_values, sorted_weights, at):
    cumulative = np.r_[0.0, np.cumsum(sorted_weights)]
    return cumulative[np.searchsorted(sorted_values, at, side="right")] / cumulative[-1]


def ks_distance(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    reference_weights: np.ndarray | None = None,
    candidate_weights: np.ndarray | None = None,
) -> float:
    """Kolmogorov–Smirnov distance sup |F_ref − F_cand| of the weighted empirical CDFs.

    Unweighted, it equals ``scipy.stats.ks_2samp(...).statistic`` (scipy has no
    weighted version). A shift by δ of a unit Gaussian gives 2Φ(δ/2) − 1.
    """
    ref, cand, w_ref, w_cand = _samples(reference, candidate, reference_weights, candidate_weights)
    o_ref, o_cand = np.argsort(ref), np.argsort(cand)
    ref, w_ref, cand, w_cand = ref[o_ref], w_ref[o_ref], cand[o_cand], w_cand[o_cand]
    at = np.union1d(ref, cand)  # the CDFs only jump at sample values
    gap = _weighted_cdf(ref, w_ref, at) - _weighted_cdf(cand, w_cand, at)
    return float(np.max(np.abs(gap)))


def column_metrics(
    reference: np.ndarray,
    candidate: np.ndarray,
    columns: Sequence[str],
    *,
    reference_weights: np.ndarray | None = None,
    candidate_weights: np.ndarray | None = None,
    bins: int = 40,
) -> dict[str, dict[str, float]]:
    """Every 1-D metric for every column of two (N, F) samples, on common bins."""
    reference = np.asarray(reference)
    candidate = np.asarray(candidate)
    reference = reference[:, None] if reference.ndim == 1 else reference
    candidate = candidate[:, None] if candidate.ndim == 1 else candidate
    if reference.shape[1] != len(columns) or candidate.shape[1] != len(columns):
        raise SimkitError(
            f"{len(columns)} column names for samples with {reference.shape[1]} and "
            f"{candidate.shape[1]} columns"
        )
    w_ref = _weights(reference_weights, len(reference), "reference")
    w_cand = _weights(candidate_weights, len(candidate), "candidate")
    out: dict[str, dict[str, float]] = {}
    for k, name in enumerate(columns):
        ref, cand = reference[:, k], candidate[:, k]
        edges = column_edges(ref, w_ref, bins)
        weights = {"reference_weights": w_ref, "candidate_weights": w_cand}
        chi2 = chi2_ndf(ref, cand, bins=edges, **weights)
        out[name] = {
            "chi2": chi2.chi2,
            "ndf": chi2.ndf,
            "chi2_ndf": chi2.per_ndf,
            "triangular": triangular_discriminator(ref, cand, bins=edges, **weights),
            "wasserstein": wasserstein(ref, cand, **weights),
            "ks": ks_distance(ref, cand, **weights),
        }
    return out


# --------------------------------------------------------------------------- classifier test


@dataclass
class TwoSampleAUC:
    """Result of :func:`two_sample_auc`."""

    auc: float  # held-out ROC AUC of a classifier separating the samples (0.5 = indistinguishable)
    low: float | None  # bootstrap interval (None when n_bootstrap == 0)
    high: float | None
    n_reference: int
    n_candidate: int
    # Kish effective sizes of the held-out events the AUC was computed on
    ess_reference_test: float | None = None
    ess_candidate_test: float | None = None

    @property
    def null_sigma(self) -> float:
        """The AUC's spread when both samples agree (:func:`validation.gate.auc_null_sigma`)."""
        return auc_null_sigma(self.ess_reference_test, self.ess_candidate_test)


def _features(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    x = x[:, None] if x.ndim == 1 else x
    if x.ndim != 2 or len(x) == 0:
        raise SimkitError(f"the {name} sample must be a non-empty (events, features) array")
    if not np.isfinite(x).all():
        row = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
        raise SimkitError(f"the {name} sample has a non-finite feature at row {row}")
    return x


@dataclass
class TwoSampleClassifier:
    """The trained classifier of a two-sample test and the events it was not trained on."""

    model: object  # torch module: Standardizer + MLP, logit out
    config: object  # validation.classifier.ClassifierConfig
    test_features: np.ndarray
    test_labels: np.ndarray  # 1 = candidate, 0 = reference
    test_weights: np.ndarray
    n_reference: int
    n_candidate: int

    def test_scores(self) -> np.ndarray:
        from validation.classifier import logits

        return logits(
            self.model,
            self.test_features,
            device=self.config.device,
            threads=self.config.threads,
        )


def train_two_sample_classifier(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    reference_weights: np.ndarray | None = None,
    candidate_weights: np.ndarray | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: bool = False,
    **classifier_options,
) -> TwoSampleClassifier:
    """Split each sample into train and test parts and train the classifier on the former.

    The part of :func:`two_sample_auc` before the scoring; options as there.
    """
    from validation.classifier import ClassifierConfig, build_classifier, fit_classifier

    ref = _features(reference, "reference")
    cand = _features(candidate, "candidate")
    if ref.shape[1] != cand.shape[1]:
        raise SimkitError(
            f"the samples have {ref.shape[1]} and {cand.shape[1]} columns: they must match"
        )
    w_ref = _weights(reference_weights, len(ref), "reference")
    w_cand = _weights(candidate_weights, len(cand), "candidate")
    options = dict(classifier_options)
    test_fraction = float(options.pop("test_fraction", 0.5))
    if not 0.0 < test_fraction < 1.0:
        raise SimkitError(f"test_fraction must be in (0, 1), got {test_fraction}")
    options.setdefault("device", device)
    options.setdefault("progress", progress)
    config = ClassifierConfig.from_options(options)

    x = np.concatenate([ref, cand])
    is_candidate = np.r_[np.zeros(len(ref), bool), np.ones(len(cand), bool)]
    w = np.r_[w_ref, w_cand]
    rng = np.random.default_rng([seed, 7])
    # split each sample separately so both are represented on both sides
    test = np.zeros(len(x), bool)
    for rows in (np.flatnonzero(~is_candidate), np.flatnonzero(is_candidate)):
        n_test = round(len(rows) * test_fraction)
        if n_test < 1 or n_test >= len(rows):
            raise SimkitError(
                f"{len(rows)} events are too few to split for a two-sample test "
                f"(test fraction {test_fraction})"
            )
        test[rng.choice(rows, n_test, replace=False)] = True
    train = ~test
    model = build_classifier(x.shape[1], config, seed=seed)
    fit_classifier(
        model,
        x[train],
        np.where(is_candidate[train], w[train], 0.0),
        np.where(is_candidate[train], 0.0, w[train]),
        config,
        seed=seed,
        desc="two-sample classifier",
    )
    return TwoSampleClassifier(
        model=model,
        config=config,
        test_features=x[test],
        test_labels=is_candidate[test].astype(np.int8),
        test_weights=w[test],
        n_reference=len(ref),
        n_candidate=len(cand),
    )


def bootstrap_auc_interval(
    scores: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    n_bootstrap: int,
    rng: np.random.Generator,
    progress: bool = False,
    level: float = 0.95,
) -> tuple[float, float]:
    """Central ``level`` percentile interval of the AUC over Poisson(1) bootstrap replicas."""
    from simkit.progress import progress_bar

    replicas = np.empty(n_bootstrap)
    for k in progress_bar(range(n_bootstrap), desc="bootstrap", enabled=progress, leave=False):
        replicas[k] = roc_auc(scores, labels, weights * rng.poisson(1.0, len(weights)))
    low, high = np.quantile(replicas, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def two_sample_auc(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    reference_weights: np.ndarray | None = None,
    candidate_weights: np.ndarray | None = None,
    n_bootstrap: int = 0,
    seed: int = 0,
    device: str = "auto",
    progress: bool = False,
    **classifier_options,
) -> TwoSampleAUC:
    """Classifier two-sample test: can a network tell ``candidate`` from ``reference``?

    Half the events of each sample (``test_fraction=0.5``, a classifier option) are
    held out; the classifier (:mod:`validation.classifier`, trained on the other half
    with the samples balanced to equal total weight) scores them and the weighted ROC
    AUC (:func:`simkit.stats.roc_auc`, candidate = positive class) is returned. 0.5
    means indistinguishable; under that null its spread is ``result.null_sigma`` =
    sqrt((n₁ + n₂ + 1) / (12 n₁ n₂)) for n₁, n₂ held-out events (Kish effective sizes,
    ``ess_reference_test`` and ``ess_candidate_test``); :func:`auc_null_distribution`
    measures it.

    ``n_bootstrap > 0`` adds a 95 % percentile interval from Poisson(1) bootstrap
    replicas of the held-out events: it covers the statistical error of the
    evaluation for this trained classifier (not the spread between trainings).
    Other keyword options go to :class:`~validation.classifier.ClassifierConfig`
    (``hidden``, ``epochs``, ``batch_size``, ``lr``, ``patience``, ...).

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> result = two_sample_auc(rng.normal(0, 1, (4000, 2)), rng.normal(1, 1, (4000, 2)),
    ...                         device="cpu", epochs=5, batch_size=1024)
    >>> result.auc > 0.7
    True
    """
    if n_bootstrap < 0:
        raise SimkitError(f"n_bootstrap must be non-negative, got {n_bootstrap}")
    trained = train_two_sample_classifier(
        reference,
        candidate,
        reference_weights=reference_weights,
        candidate_weights=candidate_weights,
        seed=seed,
        device=device,
        progress=progress,
        **classifier_options,
    )
    scores = trained.test_scores()
    labels, w_test = trained.test_labels, trained.test_weights
    auc = roc_auc(scores, labels, w_test)
    low = high = None
    if n_bootstrap:
        low, high = bootstrap_auc_interval(
            scores, labels, w_test, n_bootstrap, np.random.default_rng([seed, 11]), progress
        )
    return TwoSampleAUC(
        auc=float(auc),
        low=low,
        high=high,
        n_reference=trained.n_reference,
        n_candidate=trained.n_candidate,
        ess_reference_test=effective_sample_size(w_test[labels == 0]),
        ess_candidate_test=effective_sample_size(w_test[labels == 1]),
    )


@dataclass
class AUCNull:
    """Result of :func:`auc_null_distribution`."""

    aucs: np.ndarray  # one held-out AUC per trial
    null_sigmas: np.ndarray  # the analytic σ₀ of each trial's held-out events

    @property
    def spread(self) -> float:
        """The measured standard deviation of the null AUCs."""
        return float(np.std(self.aucs, ddof=1))


def auc_null_distribution(
    sample: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    trials: int = 20,
    seed: int = 0,
    device: str = "auto",
    progress: bool = False,
    **classifier_options,
) -> AUCNull:
    """The two-sample AUC's null distribution, measured on ``sample`` itself.

    Each trial splits ``sample`` (with its ``weights``) into two random halves and runs
    :func:`two_sample_auc` of one against the other: a classifier trained and
    evaluated on two samples of one distribution. The spread of the AUCs is the null
    spread, training noise included, that :func:`validation.gate.auc_null_sigma` gives
    analytically (``null_sigmas``, one per trial); the gate relies on the latter, and
    this function is how to check it on a sample of your own. Options as
    :func:`two_sample_auc`.

    >>> import numpy as np
    >>> null = auc_null_distribution(np.random.default_rng(0).normal(size=(2000, 2)),
    ...                              trials=3, device="cpu", epochs=2, batch_size=512)
    >>> null.aucs.shape, bool(0.01 < null.null_sigmas[0] < 0.03)
    ((3,), True)
    """
    from simkit.progress import progress_bar

    if trials < 2:
        raise SimkitError(f"the AUC null distribution needs at least 2 trials, got {trials}")
    x = _features(sample, "candidate")
    w = _weights(weights, len(x), "candidate")
    aucs, sigmas = np.empty(trials), np.empty(trials)
    for k in progress_bar(range(trials), desc="AUC null", enabled=progress, leave=False):
        first = np.random.default_rng([seed, 13, k]).permutation(len(x)) < len(x) // 2
        result = two_sample_auc(
            x[first],
            x[~first],
            reference_weights=w[first],
            candidate_weights=w[~first],
            seed=seed + k,
            device=device,
            **classifier_options,
        )
        aucs[k], sigmas[k] = result.auc, result.null_sigma
    return AUCNull(aucs=aucs, null_sigmas=sigmas)


# --------------------------------------------------------------------------- IBU baseline


def ibu_iterate(
    data: np.ndarray,
    response: np.ndarray,
    prior: np.ndarray,
    iterations: int,
) -> np.ndarray:
    """D'Agostini's iterative Bayesian unfolding (NIM A362 (1995) 487) on histograms.

    ``response[j, i]`` is P(reco bin j, passing | gen bin i) — its column sums are the
    efficiencies; ``data`` holds fake-subtracted reco counts; ``prior`` the starting
    truth histogram. Returns the truth histogram after each iteration, shape
    (iterations, n_gen). Gen bins with zero efficiency keep their prior.
    """
    if iterations < 1:
        raise SimkitError(f"iterations must be at least 1, got {iterations}")
    response = np.asarray(response, dtype=np.float64)
    efficiency = response.sum(axis=0)
    truth = np.asarray(prior, dtype=np.float64).copy()
    out = np.empty((iterations, len(truth)))
    seen = efficiency > 0
    for k in range(iterations):
        folded = response @ truth
        ratio = np.divide(data, folded, out=np.zeros_like(folded), where=folded > 0)
        updated = truth * (response.T @ ratio)
        truth = np.where(seen, np.divide(updated, efficiency, where=seen, out=updated), truth)
        out[k] = truth
    return out


@dataclass
class IBUResult:
    """Binned unfolding: truth histograms per iteration (under/overflow included)."""

    gen_edges: np.ndarray
    unfolded: np.ndarray  # (iterations, len(gen_edges) + 1)
    prior: np.ndarray
    response: np.ndarray  # (n_reco_bins, n_gen_bins)
    fake_fraction: np.ndarray  # per reco bin, from simulation

    def event_weights(self, gen_values: np.ndarray, iteration: int = -1) -> np.ndarray:
        """IBU's answer as a weight per simulated event: unfolded / prior in its gen bin."""
        ratio = np.divide(
            self.unfolded[iteration],
            self.prior,
            out=np.ones_like(self.prior),
            where=self.prior > 0,
        )
        return ratio[np.searchsorted(self.gen_edges, gen_values, side="right")]


def ibu(
    sim_gen: np.ndarray,
    sim_reco: np.ndarray,
    data_reco: np.ndarray,
    *,
    gen_edges: np.ndarray,
    reco_edges: np.ndarray,
    iterations: int = 3,
    pass_gen: np.ndarray | None = None,
    pass_reco: np.ndarray | None = None,
    sim_weights: np.ndarray | None = None,
    data_weights: np.ndarray | None = None,
) -> IBUResult:
    """Unfold one observable by IBU with a response built from paired simulation.

    Simulated events passing both levels fill the migration matrix; those passing gen
    only lower the efficiency; those passing reco only are fakes, subtracted from the
    data as the simulated fake fraction of each reco bin. ``data_reco`` holds passing
    data events only. The prior is the simulated truth histogram, scaled to the data.
    """
    sim_gen = _values(sim_gen, "simulation gen")
    sim_reco = _values(sim_reco, "simulation reco")
    data = _values(data_reco, "data")
    n = len(sim_gen)
    if len(sim_reco) != n:
        raise SimkitError(f"simulation gen has {n} rows, reco {len(sim_reco)}")
    gen_ok = np.ones(n, bool) if pass_gen is None else np.asarray(pass_gen, bool)
    reco_ok = np.ones(n, bool) if pass_reco is None else np.asarray(pass_reco, bool)
    w = _weights(sim_weights, n, "simulation")
    w_data = _weights(data_weights, len(data), "data")
    gen_edges = np.asarray(gen_edges, np.float64)
    reco_edges = np.asarray(reco_edges, np.float64)
    n_gen, n_reco = len(gen_edges) + 1, len(reco_edges) + 1
    gen_bin = np.searchsorted(gen_edges, sim_gen, side="right")
    reco_bin = np.searchsorted(reco_edges, sim_reco, side="right")

    both = gen_ok & reco_ok
    migration = np.zeros((n_reco, n_gen))
    np.add.at(migration, (reco_bin[both], gen_bin[both]), w[both])
    generated = np.bincount(gen_bin[gen_ok], weights=w[gen_ok], minlength=n_gen)
    response = np.divide(
        migration, generated[None, :], out=np.zeros_like(migration), where=generated > 0
    )
    fakes = np.bincount(reco_bin[reco_ok & ~gen_ok], weights=w[reco_ok & ~gen_ok], minlength=n_reco)
    reco_total = migration.sum(axis=1) + fakes
    fake_fraction = np.divide(fakes, reco_total, out=np.zeros(n_reco), where=reco_total > 0)
    data_counts, _ = histogram(data, reco_edges, w_data)
    signal = data_counts * (1.0 - fake_fraction)
    # the prior: the simulated truth, normalized to what the data imply after efficiency
    expected = (response @ generated).sum()
    prior = generated * (signal.sum() / expected if expected > 0 else 1.0)
    unfolded = ibu_iterate(signal, response, prior, iterations)
    return IBUResult(gen_edges, unfolded, prior, response, fake_fraction)
