"""Surrogates: generative models that learn simulated events and make many more, fast.

- :class:`~simkit.surrogates.flow.FlowSurrogate` — conditional neural-spline flow
  (normflows): exact density, weighted maximum likelihood;
- :class:`~simkit.surrogates.gan.GANSurrogate` — conditional WGAN-GP with an MMD
  term on the mass columns;
- :class:`~simkit.surrogates.transforms.ColumnTransform` — the fitted, invertible
  preprocessing both share;
- :func:`load_surrogate` — read a model folder of either kind.

>>> import numpy as np
>>> from simkit.surrogates import FlowSurrogate
>>> x = np.random.default_rng(0).normal(size=(1000, 2))
>>> model = FlowSurrogate(epochs=1, n_layers=2, hidden=8, device="cpu").fit(x)
>>> model.sample(3, seed=0).columns
('x0', 'x1')
"""

from __future__ import annotations

import importlib
import os

#: Where each public name lives; imported on first use (PEP 562), so that the torch-free
#: parts (:mod:`~simkit.surrogates.contexts`, :mod:`~simkit.surrogates.sampler`, the
#: compiled spline stage) import without torch, as ``simkit surrogate sample`` does.
_EXPORTS = {
    "ColumnTransform": "simkit.surrogates.transforms",
    "FlowSurrogate": "simkit.surrogates.flow",
    "GANSurrogate": "simkit.surrogates.gan",
    "Surrogate": "simkit.surrogates.base",
    "contexts_from": "simkit.surrogates.contexts",
    "contexts_in_range": "simkit.surrogates.contexts",
}

__all__ = ["SURROGATES", *sorted(_EXPORTS), "load_surrogate"]


def __getattr__(name: str):
    if name == "SURROGATES":
        from simkit.surrogates.flow import FlowSurrogate
        from simkit.surrogates.gan import GANSurrogate

        return {cls.kind: cls for cls in (FlowSurrogate, GANSurrogate)}
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def load_surrogate(folder: str | os.PathLike, *, device: str = "auto"):
    """Read a surrogate folder of any kind (flow or GAN); another kind of model folder,
    or a damaged one, is a :class:`~simkit.errors.FileFormatError`."""
    from pathlib import Path

    from simkit.nn import load_model

    surrogates = __getattr__("SURROGATES")
    document, state = load_model(folder, tuple(f"surrogate-{k}" for k in surrogates))
    cls = surrogates[document["kind"].removeprefix("surrogate-")]
    return cls._from_document(Path(folder), document, state, device)
