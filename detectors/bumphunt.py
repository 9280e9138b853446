"""The bump hunt: the mjj spectrum fitted in the sidebands and the excess in the window.

:func:`bump_hunt` fits the mjj spectrum (after a cut) in the sidebands with the standard
dijet function f(x) = p0 (1−x)^p1 / x^(p2 + p3 ln x), x = mjj/√s (CDF, PRD 79 (2009)
112002; ATLAS/CMS dijet searches), by a binned Poisson likelihood, and interpolates it
into the signal region. The local significance of the excess there is the Poisson
likelihood ratio of n observed over b expected, with the fit's uncertainty σ_b on b
profiled (Cowan, Cranmer, Gross & Vitells, EPJC 71 (2011) 1554; Cowan, "Discovery
sensitivity for a counting experiment with background uncertainty" (2012)):

    Z = ±sqrt(2 [n ln(n(b+σ²)/(b²+nσ²)) − (b²/σ²) ln(1 + σ²(n−b)/(b(b+σ²)))]),

which becomes sqrt(2 [n ln(n/b) − (n−b)]) for σ → 0; the sign is that of n − b.

>>> round(poisson_significance(130.0, 100.0), 2)
2.87
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simkit.errors import SimkitError
from simkit.regions import SignalRegion

SQRT_S = 13000.0  # GeV, the LHC Olympics 2020 collision energy


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


def save_bump_hunt(bump, path):
    """The bump hunt's spectrum, fit and pulls (``BumpHunt.plot``) as one PNG at ``path``."""
    from simkit.plotting import pyplot, savefig

    fig, (ax, ax_pull) = pyplot().subplots(
        2, 1, figsize=(6, 6), sharex=True, gridspec_kw={"height_ratios": (3, 1)}
    )
    bump.plot(ax, ax_pull)
    return savefig(fig, path)
