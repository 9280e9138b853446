"""Surrogates: generative models that learn simulated events and make many more, fast.

- :class:`~simkit.surrogates.flow.FlowSurrogate` — conditional neural-spline flow
  (normflows): exact density, weighted maximum likelihood;
- :class:`~simkit.surrogates.gan.GANSurrogate` — conditional WGAN-GP with an MMD
  term on the mass columns;
- :class:`~simkit.surrogates.transforms.ColumnTransform` — the fitted, invertible
  preprocessing both share;
- :func:`load_surrogate` — read a model folder of either kind.

>>> import numpy as np
>>> x = np.random.default_rng(0).normal(size=(1000, 2))
>>> model = FlowSurrogate(epochs=1, n_layers=2, hidden=8, device="cpu").fit(x)
>>> model.sample(3, seed=0).columns
('x0', 'x1')
"""

from __future__ import annotations

import os
from pathlib import Path

from simkit.nn import load_model
from simkit.surrogates.base import Surrogate, contexts_from, contexts_in_range
from simkit.surrogates.flow import FlowSurrogate
from simkit.surrogates.gan import GANSurrogate
from simkit.surrogates.transforms import ColumnTransform

SURROGATES = {cls.kind: cls for cls in (FlowSurrogate, GANSurrogate)}

__all__ = [
    "SURROGATES",
    "ColumnTransform",
    "FlowSurrogate",
    "GANSurrogate",
    "Surrogate",
    "contexts_from",
    "contexts_in_range",
    "load_surrogate",
]


def load_surrogate(folder: str | os.PathLike, *, device: str = "auto") -> Surrogate:
    """Read a surrogate folder of any kind (flow or GAN); another kind of model folder,
    or a damaged one, is a :class:`~simkit.errors.FileFormatError`."""
    document, state = load_model(folder, tuple(f"surrogate-{k}" for k in SURROGATES))
    cls = SURROGATES[document["kind"].removeprefix("surrogate-")]
    return cls._from_document(Path(folder), document, state, device)
