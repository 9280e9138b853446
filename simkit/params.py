"""Hyperparameters the scikit-learn way, for every simkit estimator.

``__init__`` stores each argument under its own name; learned state ends in ``_``;
:meth:`HyperParameters.get_params` reads the arguments back from the signature (through
the class hierarchy, so a subclass's ``**settings`` reach its base's), and
:meth:`HyperParameters.set_params` changes them. Surrogates, detectors and OmniFold
share it.

>>> class Model(HyperParameters):
...     def __init__(self, depth: int = 2, *, width: int = 8) -> None:
...         self.depth, self.width = depth, width
>>> Model(width=4).get_params()
{'depth': 2, 'width': 4}
>>> Model().set_params(depth=3).depth
3
"""

from __future__ import annotations

import inspect
import os

from simkit.errors import SimkitError


class HyperParameters:
    """``get_params`` / ``set_params`` from ``__init__``'s signature (see the module)."""

    @classmethod
    def _param_names(cls) -> list[str]:
        names: list[str] = []
        for klass in cls.__mro__:
            if "__init__" not in vars(klass) or klass is object:
                continue
            for name, p in inspect.signature(klass.__init__).parameters.items():
                if name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                    continue
                if name not in names:
                    names.append(name)
        return names

    def get_params(self) -> dict:
        """The hyperparameters, as given to ``__init__`` (JSON-friendly: tuples become
        lists, paths strings)."""
        params = {}
        for name in self._param_names():
            value = getattr(self, name)
            if isinstance(value, tuple):
                value = list(value)
            if isinstance(value, os.PathLike):
                value = os.fspath(value)
            params[name] = value
        return params

    def set_params(self, **params):
        """Change hyperparameters; an unknown name is an error. Returns ``self``."""
        known = self._param_names()
        for name, value in params.items():
            if name not in known:
                raise SimkitError(
                    f"{type(self).__name__} has no parameter {name!r} (it has: {', '.join(known)})"
                )
            setattr(self, name, value)
        return self
