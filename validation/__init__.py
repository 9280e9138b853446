"""validation: check simulation against data and correct it with per-event weights.

- :mod:`validation.omnifold` — the OmniFold (MultiFold) reweighting loop and the
  :class:`~validation.omnifold.Reweighter` that carries its answer to new events;
- :mod:`validation.metrics` — weighted two-sample metrics (triangular discriminator,
  χ²/ndf, Wasserstein-1, Kolmogorov–Smirnov, classifier AUC) and an IBU baseline;
- :mod:`validation.compare` — the metrics of one sample against another and the
  validation gate behind ``simkit compare``;
- :mod:`validation.plots` — histograms with ratio panels, weights, iteration diagnostics;
- :mod:`validation.classifier` — the density-ratio classifier both of them train,
  through the one training loop of :mod:`simkit.nn`.
"""

from __future__ import annotations
