"""Judge a detector the way the LHC Olympics did: ROC, AUC, SIC, ε_S at fixed ε_B, a bump hunt.

Numerical core (arrays in, numbers out); plots draw onto a given ``ax``.

- ROC and AUC come from :func:`simkit.stats.weighted_roc` / :func:`~simkit.stats.roc_auc`
  (one implementation for the whole project).
- SIC = ε_S/√ε_B (significance improvement of a cut). Its maximum is taken only over
  cuts that keep at least ``min_background`` background events (default 25): the
  relative uncertainty of √ε_B from n events is 1/(2√n), 10 % at 25, and below that the
  maximum chases fluctuations of a handful of events.
- ε_S at ε_B = 1e-2, 1e-3, 1e-4: the signal efficiency of the loosest cut whose
  background efficiency does not exceed the target (a cut one can really apply), with
  the binomial error √(ε(1−ε)/N_S) (N_S the Kish effective number of signal events).
  ``None`` when the background sample cannot resolve the target (N_B·ε_B < 1).
- :func:`calibrate_threshold` fixes a cut on a background-only sample for a target ε_B.
- :func:`bump_hunt` fits the mjj spectrum after the cut in the sidebands with the
  standard dijet function f(x) = p0 (1−x)^p1 / x^(p2 + p3 ln x), x = mjj/√s (CDF,
  PRD 79 (2009) 112002; ATLAS/CMS dijet searches), by a binned Poisson likelihood, and
  interpolates it into the signal region. The local significance of the excess there
  is the Poisson likelihood ratio of n observed over b expected, with the fit's
  uncertainty σ_b on b profiled (Cowan, Cranmer, Gross & Vitells, EPJC 71 (2011) 1554;
  Cowan, "Discovery sensitivity for a counting experiment with background
  uncertainty" (2012)):

      Z = ±sqrt(2 [n ln(n(b+σ²)/(b²+nσ²)) − (b²/σ²) ln(1 + σ²(n−b)/(b(b+σ²)))]),

  which becomes sqrt(2 [n ln(n/b) − (n−b)]) for σ → 0; the sign is that of n − b.

>>> import numpy as np
>>> perf = performance(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]), min_background=1)
>>> perf.auc, round(perf.max_sic, 3)
(0.75, 1.414)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from detectors.labels import SignalRegion
from simkit.errors import SimkitError
from simkit.stats import effective_sample_size, roc_auc, weighted_roc

MIN_BACKGROUND = 25
EPS_B_TARGETS = (1e-2, 1e-3, 1e-4)
SQRT_S = 13000.0  # GeV, the LHC Olympics 2020 collision energy


def target_key(target: float) -> str:
    """JSON key of an ε_B target: ``1e-02`` style, stable and sortable."""
    return f"{target:.0e}"


# --------------------------------------------------------------------------- ROC and SIC


@dataclass
class Performance:
    """The ROC of a score on labelled events, with SIC and ε_S at fixed ε_B.

    ``background_events`` is the (unweighted) number of background events passing each
    ROC point's cut, which decides whether the point is trusted.
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    background_events: np.ndarray
    auc: float
    n_signal: int
    n_background: int
    n_signal_eff: float
    n_background_eff: float
    min_background: int = MIN_BACKGROUND
    eps_b_targets: tuple[float, ...] = EPS_B_TARGETS
    eps_s_at_eps_b: dict = field(default_factory=dict)

    @property
    def trusted(self) -> np.ndarray:
        """ROC points with at least ``min_background`` background events passing."""
        return (self.background_events >= self.min_background) & (self.fpr > 0)

    @property
    def sic(self) -> np.ndarray:
        """ε_S/√ε_B at every ROC point (NaN where ε_B = 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.fpr > 0, self.tpr / np.sqrt(self.fpr), np.nan)

    def _max_index(self) -> int | None:
        trusted = np.flatnonzero(self.trusted)
        if len(trusted) == 0:
            return None
        return int(trusted[np.argmax(self.sic[trusted])])

    @property
    def max_sic(self) -> float | None:
        k = self._max_index()
        return None if k is None else float(self.sic[k])

    def max_sic_error(self) -> float | None:
        """Binomial error of the max SIC from ε_S and ε_B (not the look-elsewhere of the max)."""
        k = self._max_index()
        if k is None:
            return None
        eps_s, eps_b = self.tpr[k], self.fpr[k]
        rel_s = _binomial(eps_s, self.n_signal_eff) / eps_s if eps_s > 0 else 0.0
        rel_b = _binomial(eps_b, self.n_background_eff) / (2 * eps_b)
        return float(self.sic[k] * math.hypot(rel_s, rel_b))

    def metrics(self) -> dict:
        """Flat, JSON-ready numbers (``None`` where a number cannot be computed)."""
        k = self._max_index()
        out = {
            "auc": self.auc,
            "max_sic": self.max_sic,
            "max_sic_error": self.max_sic_error(),
            "max_sic_eps_s": None if k is None else float(self.tpr[k]),
            "max_sic_eps_b": None if k is None else float(self.fpr[k]),
            "max_sic_background_events": None if k is None else int(self.background_events[k]),
            "min_background_events": self.min_background,
            "signal_events": self.n_signal,
            "background_events": self.n_background,
            "eps_s_at_eps_b": {},
            "eps_s_at_eps_b_error": {},
            "background_events_at_eps_b": {},
        }
        for target, (eps_s, error, n_bkg) in self.eps_s_at_eps_b.items():
            key = target_key(target)
            out["eps_s_at_eps_b"][key] = eps_s
            out["eps_s_at_eps_b_error"][key] = error
            out["background_events_at_eps_b"][key] = n_bkg
        return out


def _binomial(eps: float, n_eff: float) -> float:
    return math.sqrt(max(eps * (1.0 - eps), 0.0) / n_eff) if n_eff > 0 else math.nan


def performance(
    scores: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    min_background: int = MIN_BACKGROUND,
    eps_b_targets: Sequence[float] = EPS_B_TARGETS,
) -> Performance:
    """ROC, AUC, SIC and ε_S at fixed ε_B of ``scores`` (higher = more signal-like)."""
    if min_background < 1:
        raise SimkitError(f"minimum background count must be at least 1, got {min_background}")
    labels = np.asarray(labels).reshape(-1)
    w = np.ones(len(labels)) if weights is None else np.asarray(weights, dtype=np.float64)
    fpr, tpr, thresholds = weighted_roc(scores, labels, w)
    # unweighted counts at the same thresholds (ties make the points depend on scores only)
    counts_fpr, _, _ = weighted_roc(scores, labels)
    is_signal = labels == 1
    n_background = int((~is_signal).sum())
    perf = Performance(
        fpr=fpr,
        tpr=tpr,
        thresholds=thresholds,
        background_events=np.rint(counts_fpr * n_background).astype(np.int64),
        auc=roc_auc(scores, labels, w),
        n_signal=int(is_signal.sum()),
        n_background=n_background,
        n_signal_eff=effective_sample_size(w[is_signal]),
        n_background_eff=effective_sample_size(w[~is_signal]),
        min_background=int(min_background),
        eps_b_targets=tuple(eps_b_targets),
    )
    for target in perf.eps_b_targets:
        if target * perf.n_background_eff < 1.0:
            perf.eps_s_at_eps_b[target] = (None, None, None)
            continue
        k = int(np.flatnonzero(fpr <= target)[-1])  # the loosest cut within the target
        eps_s = float(tpr[k])
        perf.eps_s_at_eps_b[target] = (
            eps_s,
            _binomial(eps_s, perf.n_signal_eff),
            int(perf.background_events[k]),
        )
    return perf


def plot_roc(perf: Performance, ax=None, label: str | None = None):
    """Background rejection 1/ε_B against ε_S (log scale), with the ε_B targets marked."""
    ax = _axes(ax)
    keep = perf.fpr > 0
    (line,) = ax.plot(perf.tpr[keep], 1.0 / perf.fpr[keep], label=label or f"AUC {perf.auc:.3f}")
    eps = np.linspace(1e-3, 1, 200)
    ax.plot(eps, 1.0 / eps, ls=":", color="grey", label="random")
    for target, (eps_s, _, _) in perf.eps_s_at_eps_b.items():
        if eps_s is not None and eps_s > 0:
            ax.plot([eps_s], [1.0 / target], "o", color=line.get_color())
    ax.set_yscale("log")
    ax.set_xlabel(r"signal efficiency $\epsilon_S$")
    ax.set_ylabel(r"background rejection $1/\epsilon_B$")
    ax.set_xlim(0, 1)
    ax.legend()
    return ax


def plot_sic(perf: Performance, ax=None, label: str | None = None):
    """SIC = ε_S/√ε_B against ε_S over the trusted ROC points, the maximum marked."""
    ax = _axes(ax)
    trusted = perf.trusted
    (line,) = ax.plot(perf.tpr[trusted], perf.sic[trusted], label=label or "SIC")
    if perf.max_sic is not None:
        k = perf._max_index()
        ax.plot([perf.tpr[k]], [perf.max_sic], "*", ms=12, color=line.get_color())
    ax.axhline(1.0, ls=":", color="grey")
    ax.set_xlabel(r"signal efficiency $\epsilon_S$")
    ax.set_ylabel("SIC  ε$_S$ / √ε$_B$")
    ax.set_title(f"points with ≥ {perf.min_background} background events")
    ax.set_xlim(0, 1)
    ax.legend()
    return ax


def plot_scores(scores, labels=None, weights=None, threshold=None, ax=None, name="score"):
    """Score distributions (signal and background when labelled), the cut marked."""
    ax = _axes(ax)
    scores = np.asarray(scores, dtype=np.float64)
    w = np.ones(len(scores)) if weights is None else np.asarray(weights)
    edges = np.histogram_bin_edges(scores, bins=60)
    if labels is None:
        ax.hist(scores, bins=edges, weights=w, histtype="step", density=True, label="events")
    else:
        for value, text in ((0, "background"), (1, "signal")):
            sel = labels == value
            if sel.any():
                ax.hist(
                    scores[sel], edges, weights=w[sel], histtype="step", density=True, label=text
                )
    if threshold is not None and np.isfinite(threshold):
        ax.axvline(threshold, color="k", ls="--", label="cut")
    ax.set_yscale("log")
    ax.set_xlabel(name)
    ax.set_ylabel("density")
    ax.legend()
    return ax


def _axes(ax):
    if ax is None:
        from simkit.plotting import pyplot

        _, ax = pyplot().subplots(figsize=(6, 4.5))
    return ax


# --------------------------------------------------------------------------- calibration


def calibrate_threshold(
    background_scores: np.ndarray, eps_b: float, weights: np.ndarray | None = None
) -> float:
    """The cut ``score > t`` that keeps at most a fraction ``eps_b`` of a background sample.

    ``t`` is the highest-scoring event that no longer passes; with ties, fewer may pass.

    >>> calibrate_threshold(np.arange(1000.0), 0.01)
    989.0
    """
    if not 0 < eps_b < 1:
        raise SimkitError(f"target ε_B must be between 0 and 1, got {eps_b}")
    scores = np.asarray(background_scores, dtype=np.float64).reshape(-1)
    if not np.isfinite(scores).all():
        raise SimkitError("calibration scores contain NaN or inf")
    w = np.ones(len(scores)) if weights is None else np.asarray(weights, dtype=np.float64)
    if eps_b * effective_sample_size(w) < 1:
        raise SimkitError(
            f"a calibration sample of {len(scores)} events cannot resolve ε_B = {eps_b:g} "
            f"(needs at least {math.ceil(1 / eps_b)} effective events)"
        )
    order = np.argsort(-scores, kind="mergesort")
    fraction = np.cumsum(w[order]) / w.sum()
    n_pass = int(np.searchsorted(fraction, eps_b, side="right"))
    return float(scores[order][n_pass])


# --------------------------------------------------------------------------- bump hunt


def dijet_function(x: np.ndarray, p0: float, p1: float, p2: float, p3: float = 0.0) -> np.ndarray:
    """f(x) = p0 (1−x)^p1 / x^(p2 + p3 ln x), x = mjj/√s: the standard dijet fit function."""
    return p0 * (1.0 - x) ** p1 / x ** (p2 + p3 * np.log(x))


def _log_dijet(x, theta):
    # log f with p0 = exp(theta[0]): positive by construction, and the fit is better scaled
    p3 = theta[3] if len(theta) > 3 else 0.0
    lx = np.log(x)
    return theta[0] + theta[1] * np.log1p(-x) - theta[2] * lx - p3 * lx * lx


_GAUSS_NODES, _GAUSS_WEIGHTS = np.polynomial.legendre.leggauss(4)


def _bin_integrals(edges: np.ndarray, theta: np.ndarray, sqrt_s: float) -> np.ndarray:
    """∫ f(m/√s) dm over each bin, by 4-point Gauss–Legendre (exact enough for a smooth f)."""
    half = 0.5 * np.diff(edges)
    centre = 0.5 * (edges[1:] + edges[:-1])
    m = centre[:, None] + half[:, None] * _GAUSS_NODES[None, :]
    with np.errstate(over="ignore", invalid="ignore"):
        density = np.exp(_log_dijet(m / sqrt_s, theta))
    return (density * _GAUSS_WEIGHTS[None, :]).sum(axis=1) * half


def _deviance_residuals(observed: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Signed Poisson deviance residuals: their squares sum to −2 ln λ of the binned fit."""
    with np.errstate(divide="ignore", invalid="ignore"):
        log_term = np.where(observed > 0, observed * np.log(observed / expected), 0.0)
    inside = np.maximum(2.0 * (expected - observed + log_term), 0.0)
    return np.sign(observed - expected) * np.sqrt(inside)


def poisson_significance(n: float, b: float, sigma_b: float = 0.0) -> float:
    """Signed local significance of ``n`` observed over ``b ± sigma_b`` expected (see module)."""
    if not b > 0:
        raise SimkitError(f"expected background must be positive, got {b}")
    if n == b:
        return 0.0
    sign = 1.0 if n > b else -1.0
    if n == 0:
        q = 2.0 * b if sigma_b <= 0 else 2.0 * (b * b / sigma_b**2) * math.log1p(sigma_b**2 / b)
        return sign * math.sqrt(max(q, 0.0))
    if sigma_b <= 0:
        q = 2.0 * (n * math.log(n / b) - (n - b))
    else:
        s2 = sigma_b * sigma_b
        q = 2.0 * (
            n * math.log(n * (b + s2) / (b * b + n * s2))
            - (b * b / s2) * math.log1p(s2 * (n - b) / (b * (b + s2)))
        )
    return sign * math.sqrt(max(q, 0.0))


@dataclass
class BumpHunt:
    """The mjj spectrum after a cut, its sideband fit and the signal-region excess.

    Counts are in weighted events; with non-unit weights the fit runs on effective
    counts (weighted counts / ``scale``, scale = Σw²/Σw), the usual scaled-Poisson
    approximation.
    """

    edges: np.ndarray
    counts: np.ndarray
    in_signal_region: np.ndarray
    parameters: np.ndarray
    covariance: np.ndarray
    expected: np.ndarray
    observed_sr: float
    expected_sr: float
    expected_sr_error: float
    z_local: float
    z_local_stat_only: float
    chi2: float
    ndf: int
    fit_p_value: float
    scale: float
    signal_region: SignalRegion
    sqrt_s: float
    converged: bool
    message: str = ""

    def metrics(self) -> dict:
        p = list(self.parameters) + [0.0] * (4 - len(self.parameters))
        return {
            "bump_observed_sr": self.observed_sr,
            "bump_expected_sr": self.expected_sr,
            "bump_expected_sr_error": self.expected_sr_error,
            "bump_excess_sr": self.observed_sr - self.expected_sr,
            "bump_z_local": self.z_local,
            "bump_z_local_stat_only": self.z_local_stat_only,
            "bump_fit_chi2": self.chi2,
            "bump_fit_ndf": self.ndf,
            "bump_fit_p_value": self.fit_p_value,
            "bump_fit_converged": self.converged,
            "bump_fit_n_parameters": len(self.parameters),
            "bump_fit_parameters": {
                "ln_p0": float(p[0]),  # p0 itself overflows a float for steep spectra
                "p1": float(p[1]),
                "p2": float(p[2]),
                "p3": float(p[3]),
            },
            "bump_range_low": float(self.edges[0]),
            "bump_range_high": float(self.edges[-1]),
            "bump_bins": len(self.counts),
        }

    def plot(self, ax=None, ax_pull=None, title: str | None = None):
        """Spectrum with the sideband fit (dashed inside the signal region) and pulls."""
        if ax is None:
            from simkit.plotting import pyplot

            _, (ax, ax_pull) = pyplot().subplots(
                2, 1, figsize=(6, 6), sharex=True, gridspec_kw={"height_ratios": (3, 1)}
            )
        centre = 0.5 * (self.edges[1:] + self.edges[:-1])
        error = np.sqrt(np.maximum(self.counts * self.scale, 0.0))
        ax.errorbar(centre, self.counts, yerr=error, fmt="ok", ms=3, label="after cut")
        fine = np.linspace(self.edges[0], self.edges[-1], 400)
        width = np.diff(self.edges).mean()
        with np.errstate(over="ignore"):
            curve = np.exp(_log_dijet(fine / self.sqrt_s, self.parameters)) * width * self.scale
        ax.plot(fine, curve, color="C0", label="sideband fit")
        sr = self.signal_region
        ax.axvspan(sr.low, sr.high, color="C1", alpha=0.15, label="signal region")
        ax.set_yscale("log")
        ax.set_ylabel(f"events / {width:.0f} GeV")
        ax.set_title(
            title
            or f"SR: {self.observed_sr:.0f} obs, {self.expected_sr:.1f} ± "
            f"{self.expected_sr_error:.1f} exp, Z = {self.z_local:.2f}"
        )
        ax.legend()
        if ax_pull is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                pull = np.where(
                    self.expected > 0,
                    (self.counts - self.expected) / np.sqrt(self.expected * self.scale),
                    0.0,
                )
            ax_pull.bar(centre, pull, width=np.diff(self.edges), color="grey")
            ax_pull.axvspan(sr.low, sr.high, color="C1", alpha=0.15)
            ax_pull.axhline(0, color="k", lw=0.8)
            ax_pull.set_ylabel("pull")
            ax_pull.set_xlabel(r"$m_{jj}$ [GeV]")
        return ax


def bump_edges(
    signal_region: SignalRegion, mjj_range: tuple[float, float], bin_width: float
) -> np.ndarray:
    """Bin edges over ``mjj_range`` on which both signal-region edges fall; the width is
    adjusted (down) so the signal region holds a whole number of bins."""
    low, high = mjj_range
    if not (low < signal_region.low and high > signal_region.high):
        raise SimkitError(
            f"the bump-hunt range {low:g}:{high:g} must enclose the signal region "
            f"{signal_region.low:g}:{signal_region.high:g} with sidebands on both sides"
        )
    if not bin_width > 0:
        raise SimkitError(f"bin width must be positive, got {bin_width}")
    n_sr = max(1, math.ceil((signal_region.high - signal_region.low) / bin_width - 1e-9))
    width = (signal_region.high - signal_region.low) / n_sr
    below = math.floor((signal_region.low - low) / width + 1e-9)
    above = math.floor((high - signal_region.high) / width + 1e-9)
    if below < 1 or above < 1:
        raise SimkitError("the bump-hunt range leaves no full sideband bin on one side")
    return signal_region.low + width * np.arange(-below, n_sr + above + 1)


def default_mjj_range(
    mjj: np.ndarray, signal_region: SignalRegion, bin_width: float
) -> tuple[float, float]:
    """Fit range from the spectrum before the cut: from its peak (below it the trigger
    turn-on shapes the spectrum, which the dijet function does not describe) to its
    99.9 % quantile; the sideband bounds when they are set."""
    mjj = np.asarray(mjj, dtype=np.float64)
    low = signal_region.sideband_low
    high = signal_region.sideband_high
    if not math.isfinite(low):
        start = max(float(mjj.min()), signal_region.low - 40 * bin_width)
        edges = np.arange(start, signal_region.low + bin_width, bin_width)
        if len(edges) < 2:
            low = start
        else:
            counts, _ = np.histogram(mjj, edges)
            low = float(edges[int(np.argmax(counts)) + 1])  # one bin above the peak
    if not math.isfinite(high):
        high = float(np.quantile(mjj, 0.999))
    return low, high


def bump_hunt(
    mjj: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    signal_region: SignalRegion | None = None,
    mjj_range: tuple[float, float] | None = None,
    bin_width: float = 100.0,
    sqrt_s: float = SQRT_S,
    n_parameters: int | str = "auto",
) -> BumpHunt:
    """Fit the sidebands of an mjj spectrum with the dijet function; Z of the SR excess.

    ``n_parameters`` is 3 (p3 = 0), 4, or ``auto``: 4 only when the fourth parameter
    improves −2 ln L by more than the 95 % quantile of χ²₁ (Wilks), as dijet searches
    choose their fit function; sparse spectra after a tight cut then keep 3.

    >>> rng = np.random.default_rng(1)
    >>> mjj = 2600 + rng.exponential(400, 20000)
    >>> hunt = bump_hunt(mjj, mjj_range=(2700, 5000))
    >>> abs(hunt.z_local) < 3
    True
    """
    from scipy import optimize, stats

    signal_region = signal_region or SignalRegion()
    if n_parameters not in (3, 4, "auto"):
        raise SimkitError(f"the dijet function has 3 or 4 parameters (or auto): {n_parameters}")
    mjj = np.asarray(mjj, dtype=np.float64).reshape(-1)
    if not np.isfinite(mjj).all():
        raise SimkitError("mjj contains NaN or inf")
    w = np.ones(len(mjj)) if weights is None else np.asarray(weights, dtype=np.float64)
    if mjj_range is None:
        mjj_range = default_mjj_range(mjj, signal_region, bin_width)
    if not mjj_range[1] < sqrt_s:
        raise SimkitError(f"the bump-hunt range must stay below √s = {sqrt_s:g} GeV")
    edges = bump_edges(signal_region, mjj_range, bin_width)
    counts, _ = np.histogram(mjj, edges, weights=w)
    sum_w2, _ = np.histogram(mjj, edges, weights=w * w)
    total = counts.sum()
    if not total > 0:
        raise SimkitError("no events in the bump-hunt range after the cut")
    scale = float(sum_w2.sum() / total)
    observed = counts / scale  # effective counts (the counts themselves for unit weights)
    centre = 0.5 * (edges[1:] + edges[:-1])
    in_sr = (centre > signal_region.low) & (centre < signal_region.high)
    fit_bins = ~in_sr
    n_fit = int(fit_bins.sum())
    if n_fit <= 3:
        raise SimkitError(
            f"{n_fit} sideband bins cannot constrain the dijet fit; "
            "widen the range or use narrower bins"
        )

    x = centre / sqrt_s
    nonzero = fit_bins & (observed > 0)
    density = observed / np.diff(edges)
    sqrt_w = np.sqrt(observed[nonzero])
    design = np.column_stack([np.ones_like(x), np.log1p(-x), -np.log(x), -(np.log(x) ** 2)])

    def deviance(theta):
        expected = _bin_integrals(edges, theta, sqrt_s)[fit_bins]
        if not np.all(np.isfinite(expected) & (expected > 0)):
            return np.full(n_fit, 1e6)
        return _deviance_residuals(observed[fit_bins], expected)

    def fit_with(k: int):
        if nonzero.sum() <= k:
            raise SimkitError(f"too few non-empty sideband bins to fit {k} dijet parameters")
        # start from a weighted linear fit of log(density): linear in the parameters
        start, *_ = np.linalg.lstsq(
            design[nonzero, :k] * sqrt_w[:, None], np.log(density[nonzero]) * sqrt_w, rcond=None
        )
        return optimize.least_squares(deviance, start, method="lm", x_scale="jac")

    if n_parameters == "auto":
        # p3 only when the data ask for it: Wilks' theorem, Δ(−2 ln L) over χ²₁ at 95 %
        fit = fit_with(3)
        if nonzero.sum() > 4:
            fit4 = fit_with(4)
            if np.sum(fit.fun**2) - np.sum(fit4.fun**2) > stats.chi2.ppf(0.95, 1):
                fit = fit4
    else:
        fit = fit_with(n_parameters)
    theta = fit.x
    jac = fit.jac
    try:
        covariance = np.linalg.inv(jac.T @ jac)
    except np.linalg.LinAlgError:
        covariance = np.linalg.pinv(jac.T @ jac)
    expected_all = _bin_integrals(edges, theta, sqrt_s)
    b = float(expected_all[in_sr].sum())

    # uncertainty of the SR prediction from the fit covariance (numerical gradient)
    grad = np.empty(len(theta))
    for i in range(len(theta)):
        step = 1e-6 * max(1.0, abs(theta[i]))
        up, down = theta.copy(), theta.copy()
        up[i] += step
        down[i] -= step
        grad[i] = (
            _bin_integrals(edges, up, sqrt_s)[in_sr].sum()
            - _bin_integrals(edges, down, sqrt_s)[in_sr].sum()
        ) / (2 * step)
    sigma_b = float(math.sqrt(max(grad @ covariance @ grad, 0.0)))
    n = float(observed[in_sr].sum())
    chi2 = float(np.sum(fit.fun**2))
    ndf = n_fit - len(theta)
    return BumpHunt(
        edges=edges,
        counts=counts,
        in_signal_region=in_sr,
        parameters=theta,
        covariance=covariance,
        expected=expected_all * scale,
        observed_sr=n * scale,
        expected_sr=b * scale,
        expected_sr_error=sigma_b * scale,
        z_local=poisson_significance(n, b, sigma_b),
        z_local_stat_only=poisson_significance(n, b),
        chi2=chi2,
        ndf=ndf,
        fit_p_value=float(stats.chi2.sf(chi2, ndf)),
        scale=scale,
        signal_region=signal_region,
        sqrt_s=sqrt_s,
        converged=bool(fit.success),
        message=str(fit.message),
    )


# --------------------------------------------------------------------------- everything at once


@dataclass
class Evaluation:
    """ROC/SIC on labelled events, a calibrated cut and the bump hunt after it."""

    score_name: str
    scores: np.ndarray
    labels: np.ndarray | None
    weights: np.ndarray
    roc_events: str
    roc_mask: np.ndarray
    performance: Performance | None
    threshold: float | None
    threshold_source: str
    target_eps_b: float
    bump: BumpHunt | None = None
    bump_before_cut: BumpHunt | None = None
    notes: list[str] = field(default_factory=list)

    def metrics(self) -> dict:
        """Flat, documented keys (see the README's "detect evaluate" section)."""
        out: dict = {"score": self.score_name, "events": len(self.scores)}
        out["roc_events"] = self.roc_events
        out["roc_events_used"] = int(self.roc_mask.sum())
        if self.performance is not None:
            out.update(self.performance.metrics())
        else:
            out.update(auc=None, max_sic=None, eps_s_at_eps_b=None)
        out["threshold"] = self.threshold
        out["threshold_source"] = self.threshold_source
        out["target_eps_b"] = self.target_eps_b
        if self.threshold is not None:
            cut = self.scores > self.threshold
            out["cut_pass_fraction"] = float(self.weights[cut].sum() / self.weights.sum())
            if self.labels is not None:
                for name, value in (("eps_b", 0), ("eps_s", 1)):
                    sel = self.labels == value
                    w = self.weights[sel]
                    out[f"cut_{name}"] = float(w[cut[sel]].sum() / w.sum()) if sel.any() else None
        if self.bump is not None:
            out.update(self.bump.metrics())
        if self.bump_before_cut is not None:
            out["bump_z_local_before_cut"] = self.bump_before_cut.z_local
        out["notes"] = list(self.notes)
        return out

    def save_plots(self, folder) -> list:
        """roc.png, sic.png, scores.png, bump_hunt.png (those that apply) into ``folder``."""
        from pathlib import Path

        from simkit.plotting import pyplot, savefig

        plt = pyplot()
        folder = Path(folder)
        written = []
        if self.performance is not None:
            for name, draw in (("roc", plot_roc), ("sic", plot_sic)):
                fig, ax = plt.subplots(figsize=(6, 4.5))
                draw(self.performance, ax, label=self.score_name)
                written.append(savefig(fig, folder / f"{name}.png"))
        fig, ax = plt.subplots(figsize=(6, 4.5))
        plot_scores(self.scores, self.labels, self.weights, self.threshold, ax, self.score_name)
        written.append(savefig(fig, folder / "scores.png"))
        if self.bump is not None:
            written.append(save_bump_hunt(self.bump, folder / "bump_hunt.png"))
        return written


def save_bump_hunt(bump, path):
    """The bump hunt's spectrum, fit and pulls (``BumpHunt.plot``) as one PNG at ``path``."""
    from simkit.plotting import pyplot, savefig

    fig, (ax, ax_pull) = pyplot().subplots(
        2, 1, figsize=(6, 6), sharex=True, gridspec_kw={"height_ratios": (3, 1)}
    )
    bump.plot(ax, ax_pull)
    return savefig(fig, path)


def evaluate(
    scores: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    mjj: np.ndarray | None = None,
    signal_region: SignalRegion | None = None,
    roc_events: str = "auto",
    min_background: int = MIN_BACKGROUND,
    eps_b_targets: Sequence[float] = EPS_B_TARGETS,
    target_eps_b: float = 1e-2,
    calibration_scores: np.ndarray | None = None,
    calibration_weights: np.ndarray | None = None,
    bin_width: float = 100.0,
    mjj_range: tuple[float, float] | None = None,
    sqrt_s: float = SQRT_S,
    score_name: str = "score",
) -> Evaluation:
    """Evaluate anomaly scores of (passing) events: ROC/SIC when labelled, then a cut
    fixed for ``target_eps_b`` and the bump hunt after it when ``mjj`` is given.

    ``roc_events``: ``signal-region`` restricts the ROC to events in the signal region
    (the LHC Olympics convention), ``all`` uses every event, ``auto`` takes the signal
    region when ``mjj`` is given. The cut is calibrated on ``calibration_scores`` (a
    background-only sample) when given, else on the evaluated events themselves — a
    fair proxy for background when the signal is a small admixture; labels never enter.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    n = len(scores)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    region = signal_region or SignalRegion()
    notes: list[str] = []
    if roc_events not in ("auto", "all", "signal-region"):
        raise SimkitError(f"unknown ROC events {roc_events!r}; use auto, all or signal-region")
    if roc_events == "auto":
        roc_events = "signal-region" if mjj is not None else "all"
    if roc_events == "signal-region":
        if mjj is None:
            raise SimkitError(f"ROC in the signal region needs the {region.column} column")
        roc_mask = region.inside(np.asarray(mjj))
    else:
        roc_mask = np.ones(n, bool)

    perf = None
    if labels is None:
        notes.append("no labels: ROC, AUC and SIC need a labelled (simulated) sample")
    else:
        labels = np.asarray(labels).reshape(-1)
        sel_labels = labels[roc_mask]
        if (sel_labels == 1).any() and (sel_labels == 0).any():
            perf = performance(
                scores[roc_mask],
                sel_labels,
                w[roc_mask],
                min_background=min_background,
                eps_b_targets=eps_b_targets,
            )
            if perf.max_sic is None:
                notes.append(
                    f"no cut keeps {min_background} background events: max SIC not computed"
                )
        else:
            notes.append(f"the {roc_events} events lack signal or background: no ROC")

    if calibration_scores is not None:
        threshold = calibrate_threshold(calibration_scores, target_eps_b, calibration_weights)
        source = "calibration sample"
    else:
        threshold = calibrate_threshold(scores, target_eps_b, w)
        source = "evaluated sample (background-dominated)"

    hunts: dict[str, BumpHunt | None] = {"after": None, "before": None}
    if mjj is not None:
        mjj = np.asarray(mjj, dtype=np.float64)
        fit_range = mjj_range or default_mjj_range(mjj, region, bin_width)
        options = {"signal_region": region, "mjj_range": fit_range, "bin_width": bin_width}
        for when, rows in (("after", scores > threshold), ("before", slice(None))):
            try:
                hunts[when] = bump_hunt(mjj[rows], w[rows], sqrt_s=sqrt_s, **options)
            except SimkitError as exc:  # e.g. too few events left: say so, go on
                notes.append(f"bump hunt {when} the cut not done: {exc}")
    else:
        notes.append(f"no {region.column} column: no bump hunt")
    return Evaluation(
        score_name=score_name,
        scores=scores,
        labels=labels,
        weights=w,
        roc_events=roc_events,
        roc_mask=roc_mask,
        performance=perf,
        threshold=threshold,
        threshold_source=source,
        target_eps_b=target_eps_b,
        bump=hunts["after"],
        bump_before_cut=hunts["before"],
        notes=notes,
    )
