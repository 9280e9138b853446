"""OmniFold (MultiFold): unbinned, all-columns-at-once unfolding by iterative reweighting.

Andreassen, Komiske, Metodiev, Nachman, Thaler, PRL 124 (2020) 182001 (arXiv:1911.09107).
Each iteration *n* has two classifier steps (the likelihood-ratio trick, see
:mod:`validation.classifier`):

1. **pull** — classify simulated reco events (weights MC × push₍ₙ₋₁₎, passing reco)
   against data (passing reco); pullₙ = push₍ₙ₋₁₎ × f/(1−f). Simulated events failing
   reco get theirs from step 1b (``failed_reco="learn"``, the default) or keep
   push₍ₙ₋₁₎ (``"keep"``, the original rule).
2. **push** — classify simulated gen events with weights MC against the same events with
   MC × pullₙ (passing gen); pushₙ = f/(1−f), a smooth function of the generator-level
   features that carries the correction to events the detector missed. Events failing
   gen (fakes) get pushₙ = 1; fakes in the data are absorbed by step 1.

The unfolded generator-level distribution is the simulation weighted by MC × push_K.
The iterations stop when a stated convergence rule holds (see :class:`OmniFold`), after
at most ``iterations``.

With an efficiency below one that depends on the generator-level features, keeping
push₍ₙ₋₁₎ for events that fail reco dilutes each iteration's correction by the
efficiency: on the ``gaussian-hard`` toy the unfolded mean needs ~60 iterations to
converge (measured with ideal, binned classifiers). ``failed_reco="learn"`` adds a
step 1b: a generator-level classifier learns E[pullₙ/push₍ₙ₋₁₎ | gen] from the events
that pass both levels and gives the events failing reco pullₙ = push₍ₙ₋₁₎ × that ratio,
so each iteration corrects in full (the same toy then converges in ~10 iterations, as
iterative Bayesian unfolding does). Without such events step 1b does nothing. Measured
with the trained classifiers (BENCHMARKS.md, "OmniFold defaults"), ``learn`` with the
convergence rule closes better than ``keep`` with 3 iterations on every toy, most of all
where the efficiency is low; it is the default.

Classifier outputs are kept inside ``[clip, 1 − clip]`` before the ratio is taken
(default ``clip = 1e-4``: one step changes a weight by a factor between 1.0e-4 and
9999); outputs at the bound are counted in the diagnostics. A non-finite weight stops
the fit with an error naming the iteration, step and event.

>>> import numpy as np
>>> from simkit.generators.toy import gaussian
>>> rng = np.random.default_rng(0)
>>> sim, data = gaussian(5000, rng), gaussian(5000, rng, data=True)
>>> unfold = OmniFold(iterations=2, device="cpu", seed=1).fit(
...     sim.gen.features, sim.reco.features, data.reco.features)
>>> unfold.push_weights_.shape  # (iterations run, events)
(2, 5000)
>>> unfold.converged_, unfold.n_iter_
(False, 2)
>>> bool(abs(np.average(sim.gen.column("x"), weights=unfold.weights_) - 0.2) < 0.1)
True
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from torch import nn

from simkit.errors import SimkitError, TrainingError
from simkit.events import Sample, in_window
from simkit.params import HyperParameters
from simkit.stats import effective_sample_size
from validation.classifier import (
    ClassifierConfig,
    build_classifier,
    fit_classifier,
    logit_bound,
    logits,
)
from validation.gate import auc_null_sigma
from validation.metrics import check_weights

#: Default bound on the classifier output before the ratio f/(1−f) is taken.
DEFAULT_CLIP = 1e-4
#: Default most iterations, and the convergence rule's two thresholds (see
#: :class:`OmniFold`; chosen by ``benchmarks/omnifold_defaults.py``, BENCHMARKS.md).
DEFAULT_ITERATIONS = 10
DEFAULT_TOLERANCE = 2.0
DEFAULT_PUSH_TOLERANCE = 0.05
#: The push weights have reached the classifiers' noise floor when two iterations shrink
#: their change by less than this factor together (the toys converge at 0.25–0.5 per two).
NOISE_FLOOR_SHRINK = 0.8
#: Weight quantiles written into each iteration's diagnostics.
QUANTILES = (0.01, 0.5, 0.99)
BOOTSTRAP_CHOICES = (False, True, "data", "sim", "both")
STEP_NAMES = {1: "1", 2: "2", 3: "1b"}


def _classifier_config(classifier, device: str, progress: bool) -> ClassifierConfig:
    if classifier is None:
        config = ClassifierConfig()
    elif isinstance(classifier, ClassifierConfig):
        config = classifier
    elif isinstance(classifier, dict):
        config = ClassifierConfig.from_options(classifier)
    else:
        raise SimkitError("classifier must be a ClassifierConfig, a dict of its options or None")
    return replace(config, device=device, progress=progress)


def _features(x, name: str, n: int | None = None) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    x = x[:, None] if x.ndim == 1 else x
    if x.ndim != 2:
        raise SimkitError(f"{name} must be (events, features), got shape {x.shape}")
    if n is not None and len(x) != n:
        raise SimkitError(f"{name} has {len(x)} rows, simulation gen {n}: rows must be aligned")
    if len(x) == 0:
        raise SimkitError(f"{name} holds no events")
    return x


def _mask(mask, n: int, name: str) -> np.ndarray:
    if mask is None:
        return np.ones(n, bool)
    mask = np.asarray(mask)
    if mask.shape != (n,) or mask.dtype != bool:
        raise SimkitError(f"{name} must be a boolean array of {n} entries")
    return mask


def _finite_features(x: np.ndarray, rows: np.ndarray, name: str) -> None:
    """Features the classifiers see (passing rows) must be finite."""
    used = x[rows]
    if not np.isfinite(used).all():
        bad = int(np.flatnonzero(rows)[np.flatnonzero(~np.isfinite(used).all(axis=1))[0]])
        raise SimkitError(f"{name} has a non-finite feature at row {bad}")


class OmniFold(HyperParameters):
    """MultiFold unfolding of all columns at once, sklearn-style.

    **Convergence rule.** Iteration n is the last when both hold:

    1. its step-1 classifier cannot tell the simulation × push₍ₙ₋₁₎ from the data: the
       held-out AUC is less than ``tolerance`` standard deviations above 0.5,
       (AUC − 0.5)/σ₀ < ``tolerance``, with the Mann–Whitney null spread
       σ₀ = sqrt((n₁ + n₂ + 1)/(12 n₁ n₂)) for the Kish effective sizes n₁, n₂ of the
       held-out data and simulated events (:func:`validation.gate.auc_null_sigma`);
    2. (for n > 1) the push weights have stopped moving. With δₙ the MC-weighted RMS of
       log pushₙ − log push₍ₙ₋₁₎ over events passing gen (δ₁: of log push₁): either
       δₙ ≤ ``push_tolerance`` · δ₁ (converged), or δₙ ≥ 0.8 · δ₍ₙ₋₂₎
       (``NOISE_FLOOR_SHRINK``; n ≥ 3): the change no longer shrinks, it is the
       classifiers' own noise and further iterations would only add to it.

    Condition 1 is the statistical one: the data no longer ask for a change. It is not
    enough alone, because a reco-level test is nearly blind to what the detector hides:
    on ``gaussian-hard`` (10⁵ events) it passed at iteration 4–6, where the triangular
    discriminator of the inefficient region was 4.6 ×10³; it fell to 2.9 by iteration
    8–9, where condition 2 stopped the fit (mean of 3 seeds).
    Condition 2 follows that generator-level convergence. It is relative, because a
    classifier's training noise alone moves the weights by an RMS of 0.5–5/√N (measured
    with simulation = data): an absolute threshold would be met by chance at one size
    and never at another. On the toys the change shrinks geometrically (0.5–0.7 per
    iteration) and 5 % of the first move is reached after 5–10 iterations; with few
    events and many columns it levels off at the noise instead (the demo: 16 columns,
    12 000 data events, δₙ ≈ 0.26 δ₁ from iteration 3 on, while the ESS kept falling),
    which the second branch detects. When the simulation already describes the data,
    condition 1 holds at iteration 1 and the fit stops there (push ≈ 1); when no
    generator-level reweighting can reach the data (a mis-modelled detector), it runs
    to ``iterations`` and says it did not converge. The held-out rows of each step are
    the same in every iteration, so a warm-started classifier's AUC is still held out.
    Defaults 2σ and 0.05 were chosen on three toys (``benchmarks/omnifold_defaults.py``,
    BENCHMARKS.md). ``tolerance=None`` (or 0) switches the rule off: all ``iterations``
    run. Which iteration stopped and why is in ``n_iter_``, ``converged_``,
    ``stop_reason_`` and each iteration's diagnostics.

    Parameters
    ----------
    iterations:
        Most iterations K ≥ 1 (each one step 1 and one step 2); fewer when the
        convergence rule stops the fit.
    classifier:
        :class:`~validation.classifier.ClassifierConfig` (or a dict of its options):
        network width, batch size, epochs, learning rate, early-stopping patience.
    ensemble:
        Classifiers trained per step with different seeds; their weights are averaged.
    bootstrap:
        ``False``; ``True`` or ``"data"`` (Poisson(1) weights on the data events: one
        bootstrap replica of the data statistics); ``"sim"`` (on the simulated events);
        ``"both"``. Different ``seed`` → different replica; see :func:`bootstrap_weights`.
    clip:
        Classifier outputs are kept inside ``[clip, 1 − clip]`` before f/(1−f).
    failed_reco:
        ``"keep"`` (the original algorithm): simulated events failing reco keep
        push₍ₙ₋₁₎ as their pull; ``"learn"``: step 1b (see the module docstring)
        learns their pull from generator-level features; converges much faster when
        the efficiency depends on the generator-level features (the default).
    tolerance:
        Convergence condition 1, in standard deviations of the step-1 AUC's null
        distribution (default 2); ``None`` or 0: no convergence test.
    push_tolerance:
        Convergence condition 2: the RMS change of log push, relative to the first
        iteration's (default 0.05); the fit also stops at the classifiers' noise floor.
    warm_start:
        Start each iteration's classifiers from the previous iteration's (faster).
    seed, device, progress:
        Random seed of everything; ``auto|cpu|cuda``; progress bars.

    Attributes (after :meth:`fit`)
    ------------------------------
    pull_weights_, push_weights_ : (n_iter_, N_sim) float64 — per-iteration weights (not
        including the MC weights); the unfolded answer is ``weights_ = push_weights_[-1]``.
    n_iter_ : int — iterations run; converged_ : bool — the rule stopped the fit;
    stop_reason_ : str — which iteration stopped and why, in words.
    diagnostics_ : list of dicts per iteration — held-out classifier AUC, ESS/N,
        weight quantiles, clipped outputs, epochs and seconds of each step; the rule's
        inputs ``step1_auc_null_sigma`` (σ₀), ``step1_auc_z`` ((AUC − 0.5)/σ₀),
        ``push_change`` (δₙ), ``push_change_relative`` (δₙ/δ₁), ``push_change_shrink``
        (δₙ/δ₍ₙ₋₂₎, 0 before iteration 3); ``converged``.
    reweighter_ : :class:`Reweighter` — the last step-2 classifier(s), for new events.
    """

    def __init__(
        self,
        iterations: int = DEFAULT_ITERATIONS,
        classifier: ClassifierConfig | dict | None = None,
        ensemble: int = 1,
        bootstrap: bool | str = False,
        clip: float = DEFAULT_CLIP,
        failed_reco: str = "learn",
        tolerance: float | None = DEFAULT_TOLERANCE,
        push_tolerance: float = DEFAULT_PUSH_TOLERANCE,
        warm_start: bool = True,
        seed: int = 0,
        device: str = "auto",
        progress: bool = False,
    ) -> None:
        self.iterations = iterations
        self.classifier = classifier
        self.ensemble = ensemble
        self.bootstrap = bootstrap
        self.clip = clip
        self.failed_reco = failed_reco
        self.tolerance = tolerance
        self.push_tolerance = push_tolerance
        self.warm_start = warm_start
        self.seed = seed
        self.device = device
        self.progress = progress

    # ------------------------------------------------------------------ checks

    def _check_params(self) -> ClassifierConfig:
        if int(self.iterations) != self.iterations or self.iterations < 1:
            raise SimkitError(f"iterations must be a whole number ≥ 1, got {self.iterations}")
        if int(self.ensemble) != self.ensemble or self.ensemble < 1:
            raise SimkitError(f"ensemble must be a whole number ≥ 1, got {self.ensemble}")
        if self.bootstrap not in BOOTSTRAP_CHOICES:
            raise SimkitError(
                "bootstrap must be one of False, True, 'data', 'sim', 'both'; "
                f"got {self.bootstrap!r}"
            )
        if self.failed_reco not in ("keep", "learn"):
            raise SimkitError(f"failed_reco must be 'keep' or 'learn', got {self.failed_reco!r}")
        if self.tolerance is not None and not (np.isfinite(self.tolerance) and self.tolerance >= 0):
            raise SimkitError(f"tolerance must be ≥ 0 or None, got {self.tolerance}")
        if not (np.isfinite(self.push_tolerance) and self.push_tolerance >= 0):
            raise SimkitError(f"push_tolerance must be ≥ 0, got {self.push_tolerance}")
        logit_bound(self.clip)  # checks the range
        return _classifier_config(self.classifier, self.device, self.progress)

    # ------------------------------------------------------------------ fitting

    def fit(
        self,
        sim_gen: np.ndarray,
        sim_reco: np.ndarray,
        data_reco: np.ndarray,
        *,
        pass_gen: np.ndarray | None = None,
        pass_reco: np.ndarray | None = None,
        pass_data: np.ndarray | None = None,
        sim_weights: np.ndarray | None = None,
        data_weights: np.ndarray | None = None,
        gen_columns: Sequence[str] | None = None,
        blind_reco: np.ndarray | None = None,
        blind_data: np.ndarray | None = None,
    ) -> OmniFold:
        """Unfold ``data_reco`` with the paired simulation (``sim_gen``, ``sim_reco``).

        Rows of ``sim_gen``, ``sim_reco``, ``pass_gen``, ``pass_reco`` and
        ``sim_weights`` are the same simulated events. ``pass_data`` marks the data
        events that pass the reco selection (default: all). ``gen_columns`` only names
        the generator-level columns for the :class:`Reweighter`.

        ``blind_reco`` / ``blind_data`` mark simulated and data events (typically a
        signal region) that the step-1 classifier does not learn from: their pull is the
        classifier's interpolation from the rest, so a localized excess in the data (a
        signal) is not absorbed into the weights. Returns ``self``.
        """
        config = self._check_params()
        gen = _features(sim_gen, "simulation gen")
        n = len(gen)
        reco = _features(sim_reco, "simulation reco", n)
        data = _features(data_reco, "data reco")
        if data.shape[1] != reco.shape[1]:
            raise SimkitError(
                f"data has {data.shape[1]} reco columns, simulation {reco.shape[1]}: "
                "they must be the same observables"
            )
        pass_gen = _mask(pass_gen, n, "pass_gen")
        pass_reco = _mask(pass_reco, n, "pass_reco")
        pass_data = _mask(pass_data, len(data), "pass_data")
        blind_reco = np.zeros(n, bool) if blind_reco is None else _mask(blind_reco, n, "blind_reco")
        blind_data = (
            np.zeros(len(data), bool)
            if blind_data is None
            else _mask(blind_data, len(data), "blind_data")
        )
        mc = check_weights(sim_weights, n, "simulation", positive_total=False)
        data_w = check_weights(data_weights, len(data), "data", positive_total=False)
        if not (pass_reco & (mc > 0)).any():
            raise SimkitError("no simulated event passes the reco selection (with weight > 0)")
        if not (pass_gen & (mc > 0)).any():
            raise SimkitError("no simulated event passes the gen selection (with weight > 0)")
        if not (pass_data & (data_w > 0)).any():
            raise SimkitError("no data event passes the reco selection (with weight > 0)")
        if not (pass_reco & ~blind_reco & (mc > 0)).any():
            raise SimkitError("no passing simulated event is left outside the blinded region")
        if not (pass_data & ~blind_data & (data_w > 0)).any():
            raise SimkitError("no passing data event is left outside the blinded region")
        _finite_features(gen, pass_gen, "simulation gen")
        _finite_features(reco, pass_reco, "simulation reco")
        _finite_features(data, pass_data, "data reco")
        if gen_columns is not None and len(gen_columns) != gen.shape[1]:
            raise SimkitError(f"{len(gen_columns)} gen column names for {gen.shape[1]} columns")

        rng = np.random.default_rng([self.seed, 2020])
        if self.bootstrap in (True, "data", "both"):
            data_w = data_w * rng.poisson(1.0, len(data_w))
        if self.bootstrap in ("sim", "both"):
            mc = mc * rng.poisson(1.0, n)
        self.sim_weights_ = mc
        self.data_weights_ = data_w

        bound = logit_bound(self.clip)
        # step 1 rows: passing sim reco (source) then passing data (target)
        x1 = np.concatenate([reco[pass_reco], data[pass_data]])
        n1 = int(pass_reco.sum())
        target1 = np.r_[np.zeros(n1), (data_w * ~blind_data)[pass_data]]
        seen1 = ~blind_reco[pass_reco]  # sim rows step 1 learns from
        x2 = gen[pass_gen]
        # step 1b rows: events passing both levels teach the pull of those failing reco
        both = pass_gen & pass_reco
        missed = pass_gen & ~pass_reco
        learn_missed = self.failed_reco == "learn" and missed.any() and both.any()
        inputs = {1: x1, 2: x2, 3: gen[both]} if learn_missed else {1: x1, 2: x2}

        members = range(int(self.ensemble))
        models = {
            (step, m): build_classifier(x.shape[1], config, seed=self._seed(0, step, m))
            for step, x in inputs.items()
            for m in members
        }
        pulls = np.empty((self.iterations, n))
        pushes = np.empty((self.iterations, n))
        diagnostics: list[dict] = []
        push = np.ones(n)
        t_start = time.perf_counter()
        from simkit.progress import progress_bar

        bar = progress_bar(
            total=2 * self.iterations,
            desc="omnifold",
            enabled=self.progress,
            unit="step",
            leave=False,
        )
        for it in range(self.iterations):
            record: dict = {"iteration": it + 1}
            fresh = it == 0 or not self.warm_start
            if not self.warm_start and it > 0:
                for step, m in models:
                    models[step, m] = build_classifier(
                        inputs[step].shape[1], config, seed=self._seed(it, step, m)
                    )

            # step 1: sim reco (MC × push) vs data, at reco level
            source1 = np.r_[(mc * push)[pass_reco] * seen1, np.zeros(len(x1) - n1)]
            ratio1, info1 = self._step(
                models, 1, x1, target1, source1, x1[:n1], config, it, fresh, bound
            )
            pull = push.copy()
            pull[pass_reco] = push[pass_reco] * ratio1
            self._check_finite(pull, it, 1, info1)
            if learn_missed:
                # step 1b: E[pull / push | gen] among events passing both levels; the
                # classifier gives the ratio of normalized densities, so scale it back
                target, source = (mc * pull)[both], (mc * push)[both]
                ratio1b, info1b = self._step(
                    models, 3, inputs[3], target, source, gen[missed], config, it, fresh, bound
                )
                pull[missed] = push[missed] * ratio1b * (target.sum() / source.sum())
                self._check_finite(pull, it, "1b", info1b)
                record.update(
                    {f"step1b_{k}": info1b[k] for k in ("auc", "clipped", "epochs", "seconds")}
                )
            pulls[it] = pull
            record.update(_step_record("step1", info1, mc * pull, pull[pass_reco]))
            record["step1_auc_null_sigma"] = info1["null_sigma"]
            record["step1_auc_z"] = (info1["auc"] - 0.5) / info1["null_sigma"]
            bar.update(1)

            # step 2: gen (MC) vs gen (MC × pull), at generator level
            ratio2, info2 = self._step(
                models, 2, x2, (mc * pull)[pass_gen], mc[pass_gen], x2, config, it, fresh, bound
            )
            previous = push
            push = np.ones(n)
            push[pass_gen] = ratio2
            self._check_finite(push, it, 2, info2)
            pushes[it] = push
            record.update(_step_record("step2", info2, mc * push, push[pass_gen]))
            record["push_change"] = push_change(previous, push, mc, pass_gen)
            bar.update(1)
            change = record["push_change"]
            first = diagnostics[0]["push_change"] if diagnostics else change
            record["push_change_relative"] = _ratio(change, first)
            # against two iterations back: one-step ratios of a noisy change are too noisy
            record["push_change_shrink"] = (
                _ratio(change, diagnostics[-2]["push_change"]) if it >= 2 else 0.0
            )
            record["converged"] = self._converged(record)
            diagnostics.append(record)
            if record["converged"]:
                break
        bar.close()

        done = len(diagnostics)
        self.n_iter_ = done
        self.converged_ = diagnostics[-1]["converged"]
        self.stop_reason_ = self._stop_reason(diagnostics[-1])
        self.pull_weights_ = pulls[:done]
        self.push_weights_ = pushes[:done]
        self.diagnostics_ = diagnostics
        self.fit_seconds_ = time.perf_counter() - t_start
        self.n_features_gen_ = gen.shape[1]
        self.reweighter_ = Reweighter(
            [models[2, m] for m in members],
            config,
            clip=self.clip,
            columns=None if gen_columns is None else tuple(gen_columns),
        )
        return self

    def fit_samples(
        self,
        sim: Sample,
        data: Sample,
        *,
        columns: Sequence[str] | None = None,
        sim_weights: np.ndarray | None = None,
        data_weights: np.ndarray | None = None,
        blind: tuple[str, float, float] | None = None,
    ) -> OmniFold:
        """:meth:`fit` on event samples: sim needs gen and reco, data needs reco.

        ``columns`` (default: the data's reco columns) are used at both levels. The
        samples' own weights are used unless ``sim_weights`` / ``data_weights`` are
        given. ``blind = (column, low, high)``: step 1 does not learn from reco events
        with ``low ≤ column < high`` (the column must be one of ``columns``, so that the
        classifier can interpolate across the window). The data's hidden ``truth``
        level, if present, is never looked at.
        """
        if sim.gen is None:
            raise SimkitError(
                "the simulation has no gen level: unfolding needs paired gen and reco events"
            )
        if sim.reco is None:
            raise SimkitError("the simulation has no reco level")
        if data.reco is None:
            raise SimkitError("the data has no reco level")
        columns = tuple(columns) if columns is not None else data.reco.columns
        check_columns(columns, sim.gen.columns, "simulation gen")
        check_columns(columns, sim.reco.columns, "simulation reco")
        check_columns(columns, data.reco.columns, "data reco")
        gen, reco, obs = (
            sim.gen.select(columns),
            sim.reco.select(columns),
            data.reco.select(columns),
        )
        blind_reco = blind_data = None
        if blind is not None:
            column, low, high = blind
            if column not in columns:
                raise SimkitError(
                    f"blinding a window of {column!r} needs {column!r} among the unfolded "
                    "columns (the classifier interpolates across the window in it)"
                )
            blind_reco = in_window(reco.column(column), low, high)
            blind_data = in_window(obs.column(column), low, high)
        return self.fit(
            gen.features,
            reco.features,
            obs.features,
            pass_gen=gen.passed,
            pass_reco=reco.passed,
            pass_data=obs.passed,
            sim_weights=sim.weights if sim_weights is None else sim_weights,
            data_weights=data.weights if data_weights is None else data_weights,
            gen_columns=columns,
            blind_reco=blind_reco,
            blind_data=blind_data,
        )

    @property
    def weights_(self) -> np.ndarray:
        """The unfolded per-event weights: the last push (multiply by the MC weights)."""
        return self.push_weights_[-1]

    # ------------------------------------------------------------------ internals

    def _seed(self, iteration: int, step: int, member: int) -> int:
        return int(np.random.default_rng([self.seed, iteration, step, member]).integers(2**31))

    def _converged(self, record: dict) -> bool:
        return iteration_converged(record, self.tolerance, self.push_tolerance)

    def _stop_reason(self, record: dict) -> str:
        k = record["iteration"]
        auc = (
            f"step-1 AUC {record['step1_auc']:.4f}, {record['step1_auc_z']:.2f}σ above 0.5 "
            f"(σ₀ {record['step1_auc_null_sigma']:.4f})"
        )
        change = (
            f"push weights moved by {record['push_change_relative']:.3f} of the first "
            "iteration's move"
        )
        if record["converged"]:
            if k == 1:
                return f"converged at iteration 1: {auc} < {self.tolerance:g}σ"
            if record["push_change_relative"] <= self.push_tolerance:
                return (
                    f"converged at iteration {k}: {auc} < {self.tolerance:g}σ; {change} "
                    f"≤ {self.push_tolerance:g}"
                )
            return (
                f"converged at iteration {k} (classifier noise floor): {auc} < "
                f"{self.tolerance:g}σ; {change}, {record['push_change_shrink']:.2f} of its "
                f"size two iterations before (≥ {NOISE_FLOOR_SHRINK:g}: no longer shrinking)"
            )
        if not self.tolerance:
            return f"ran all {k} iterations (convergence test off)"
        return (
            f"not converged in the maximum of {k} iterations: {auc}, tolerance "
            f"{self.tolerance:g}σ; {change}, tolerance {self.push_tolerance:g}"
        )

    def _step(self, models, step, x, target, source, x_eval, config, it, fresh, bound):
        """Train the step's ensemble, return the averaged clipped ratio on ``x_eval``.

        ``info["null_sigma"]`` is the standard deviation of the held-out AUC were the two
        samples identical (Mann–Whitney, effective sizes), averaged over the members.
        """
        ratio = np.zeros(len(x_eval))
        info = {"auc": 0.0, "clipped": 0, "epochs": 0, "seconds": 0.0, "null_sigma": 0.0}
        for m in range(int(self.ensemble)):
            model = models[step, m]
            t0 = time.perf_counter()
            fit = fit_classifier(
                model,
                x,
                target,
                source,
                config,
                seed=self._seed(it, step, m),
                fit_standardizer=fresh,
                desc=f"iteration {it + 1} step {STEP_NAMES[step]}",
                # one split for all iterations: warm-started models never train on the
                # rows whose AUC is the convergence test (nor early-stop on seen rows)
                split_seed=self._seed(0, step, m),
            )
            z = logits(
                model,
                x_eval,
                device=config.device,
                threads=config.threads,
            )
            info["clipped"] += int(np.sum(np.abs(z) >= bound))
            ratio += np.exp(np.clip(z, -bound, bound))
            info["auc"] += fit.auc / self.ensemble
            info["null_sigma"] += (
                _null_sigma(
                    effective_sample_size(target[fit.val_rows]),
                    effective_sample_size(source[fit.val_rows]),
                )
                / self.ensemble
            )
            info["epochs"] += fit.result.epochs_run
            info["seconds"] += time.perf_counter() - t0
        return ratio / self.ensemble, info

    def _check_finite(self, weights, it, step, info) -> None:
        if np.isfinite(weights).all():
            return
        row = int(np.flatnonzero(~np.isfinite(weights))[0])
        raise TrainingError(
            f"OmniFold iteration {it + 1}, step {step}: the weight of simulated event "
            f"{row} is {weights[row]} (a classifier gave a non-finite output; "
            "check the inputs, or lower the learning rate)"
        )


def _step_record(prefix: str, info: dict, event_weights: np.ndarray, used: np.ndarray) -> dict:
    q = np.quantile(used, QUANTILES)
    return {
        f"{prefix}_auc": info["auc"],
        f"{prefix}_ess": effective_sample_size(event_weights) / len(event_weights),
        f"{prefix}_clipped": info["clipped"],
        f"{prefix}_epochs": info["epochs"],
        f"{prefix}_seconds": info["seconds"],
        **{
            f"{prefix}_weight_q{round(100 * p):02d}": float(v)
            for p, v in zip(QUANTILES, q, strict=True)
        },
    }


def iteration_converged(record: dict, tolerance: float | None, push_tolerance: float) -> bool:
    """The convergence rule of :class:`OmniFold` for one iteration's diagnostics record.

    >>> record = {"iteration": 3, "step1_auc_z": 0.4, "push_change_relative": 0.2,
    ...           "push_change_shrink": 0.5}
    >>> iteration_converged(record, 2.0, 0.05)
    False
    >>> iteration_converged({**record, "push_change_shrink": 0.95}, 2.0, 0.05)  # noise floor
    True
    >>> iteration_converged({"iteration": 1, "step1_auc_z": 0.4}, 2.0, 0.05)
    True
    """
    if not tolerance or not record["step1_auc_z"] < tolerance:
        return False
    if record["iteration"] == 1:  # the simulation already described the data
        return True
    return bool(
        record["push_change_relative"] <= push_tolerance
        or record["push_change_shrink"] >= NOISE_FLOOR_SHRINK
    )


def _ratio(change: float, reference: float) -> float:
    return change / reference if reference > 0 else float(change > 0)


def _null_sigma(n_target: float, n_source: float) -> float:
    """:func:`validation.gate.auc_null_sigma`; infinite when a held-out sample is empty."""
    return auc_null_sigma(n_target, n_source) if n_target > 0 and n_source > 0 else np.inf


def push_change(
    previous: np.ndarray, push: np.ndarray, mc_weights: np.ndarray, pass_gen: np.ndarray
) -> float:
    """MC-weighted RMS of log(pushₙ / push₍ₙ₋₁₎) over events passing gen (|MC weight|)."""
    rows = pass_gen & (mc_weights != 0)
    if not rows.any():
        return 0.0
    step = np.log(push[rows]) - np.log(previous[rows])
    return float(np.sqrt(np.average(step**2, weights=np.abs(mc_weights[rows]))))


def check_columns(wanted: Sequence[str], have: Sequence[str], where: str) -> None:
    """A clear error when ``have`` lacks some of ``wanted``."""
    missing = [c for c in wanted if c not in have]
    if missing:
        raise SimkitError(
            f"{where} has no column {', '.join(map(repr, missing))} (it has: {', '.join(have)}); "
            "simulation and data must have the same columns"
        )


def bootstrap_weights(
    estimator: OmniFold, n_replicas: int, *fit_args, mode: str = "data", **fit_kwargs
) -> np.ndarray:
    """Unfolded weights of ``n_replicas`` Poisson-bootstrap replicas, shape (R, N_sim).

    Each replica refits a copy of ``estimator`` with ``bootstrap=mode`` and its own seed;
    the spread of any weighted observable over the replicas is its statistical
    uncertainty (data statistics for ``mode="data"``).
    """
    if int(n_replicas) != n_replicas or n_replicas < 1:
        raise SimkitError(f"the number of bootstrap replicas must be ≥ 1, got {n_replicas}")
    params = {k: getattr(estimator, k) for k in _PARAMS}
    out = []
    for r in range(int(n_replicas)):
        replica = OmniFold(**{**params, "bootstrap": mode, "seed": params["seed"] + 1 + r})
        fit = (
            replica.fit_samples(*fit_args, **fit_kwargs)
            if fit_args and isinstance(fit_args[0], Sample)
            else replica.fit(*fit_args, **fit_kwargs)
        )
        out.append(fit.weights_)
    return np.stack(out)


_PARAMS = (
    "iterations",
    "classifier",
    "ensemble",
    "bootstrap",
    "clip",
    "failed_reco",
    "tolerance",
    "push_tolerance",
    "warm_start",
    "seed",
    "device",
    "progress",
)


class Reweighter:
    """The final step-2 classifier(s) with their preprocessing: push weights for new events.

    ``weights(gen_features)`` gives, for generator-level events of any origin (a
    surrogate's samples, most importantly), the weight that takes the simulation's
    generator-level distribution to the unfolded one: the ensemble mean of the clipped
    f/(1−f). Saved as a model folder (``config.json`` + ``model.safetensors``), loaded
    without unpickling.
    """

    KIND = "omnifold-reweighter"

    def __init__(
        self,
        models: Sequence[nn.Module],
        config: ClassifierConfig,
        *,
        clip: float = DEFAULT_CLIP,
        columns: Sequence[str] | None = None,
    ) -> None:
        if not models:
            raise SimkitError("a reweighter needs at least one classifier")
        self.models = list(models)
        self.config = config
        self.clip = clip
        self.columns = None if columns is None else tuple(columns)
        self.n_features = int(self.models[0][0].mean.shape[0])

    def weights(self, gen_features: np.ndarray, pass_gen: np.ndarray | None = None) -> np.ndarray:
        """Per-event weights (float64) for ``gen_features`` (N, F); 1 where ``pass_gen`` is False.

        >>> import numpy as np
        >>> from simkit.generators.toy import gaussian
        >>> sim = gaussian(2000, np.random.default_rng(0))
        >>> data = gaussian(2000, np.random.default_rng(1), data=True)
        >>> fit = OmniFold(iterations=1, device="cpu").fit_samples(sim, data)
        >>> fit.reweighter_.weights(np.array([[0.0], [0.2]])).shape
        (2,)
        """
        x = _features(gen_features, "generator-level features")
        if x.shape[1] != self.n_features:
            raise SimkitError(
                f"the reweighter takes {self.n_features} generator-level columns"
                f"{' (' + ', '.join(self.columns) + ')' if self.columns else ''}, got {x.shape[1]}"
            )
        passing = _mask(pass_gen, len(x), "pass_gen")
        _finite_features(x, passing, "generator-level features")
        bound = logit_bound(self.clip)
        out = np.ones(len(x))
        if passing.any():
            ratio = np.zeros(int(passing.sum()))
            for model in self.models:
                z = logits(
                    model,
                    x[passing],
                    device=self.config.device,
                    threads=self.config.threads,
                )
                ratio += np.exp(np.clip(z, -bound, bound))
            out[passing] = ratio / len(self.models)
        if not np.isfinite(out).all():
            row = int(np.flatnonzero(~np.isfinite(out))[0])
            raise TrainingError(f"the reweighter gave a non-finite weight for event {row}")
        return out

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the reweighter into ``folder`` (created if needed)."""
        from simkit.nn import save_model

        state = {
            f"member{m}.{k}": v
            for m, model in enumerate(self.models)
            for k, v in model.state_dict().items()
        }
        config = {
            "n_features": self.n_features,
            "columns": list(self.columns) if self.columns is not None else None,
            "members": len(self.models),
            "clip": self.clip,
            "classifier": self.config.to_dict(),
        }
        return save_model(folder, self.KIND, config, state)

    @classmethod
    def load(cls, folder: str | os.PathLike, *, device: str = "auto") -> Reweighter:
        """Read a folder written by :meth:`save` (never unpickles anything)."""
        from simkit.errors import FileFormatError
        from simkit.nn import load_model, load_state_strict

        document, state = load_model(folder, cls.KIND)
        cfg = document["config"]
        try:
            options = dict(cfg["classifier"])
            options["device"] = device
            options["progress"] = False
            config = ClassifierConfig.from_options(options)
            n_features, members = int(cfg["n_features"]), int(cfg["members"])
            clip = float(cfg["clip"])
        except (KeyError, TypeError, ValueError, SimkitError) as exc:
            raise FileFormatError(
                f"{folder}: config.json is not a valid reweighter ({exc})"
            ) from None
        models = []
        for m in range(members):
            prefix = f"member{m}."
            member_state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            model = build_classifier(n_features, config, seed=0)
            load_state_strict(model, member_state, f"{folder} (member {m})")
            model.eval()
            models.append(model)
        return cls(models, config, clip=clip, columns=cfg.get("columns"))
