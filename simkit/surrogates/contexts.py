"""What a surrogate's sampling needs besides the model, shared by the torch path
(:meth:`Surrogate.iter_sample <simkit.surrogates.base.Surrogate.iter_sample>`) and the
torch-free sampler (:mod:`simkit.surrogates.sampler`), without importing torch: where a
conditional model's contexts come from (given values, a box, or rows of a sample drawn
by weight), and the checked tables of generated events."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from simkit.errors import SimkitError
from simkit.events import EventTable

#: ``f(start, m, rng) -> (m, C)`` physical context values for events ``start … start+m``.
ContextSource = Callable[[int, int, np.random.Generator], np.ndarray]


def contexts_in_range(ranges: Sequence[tuple[float, float]]) -> ContextSource:
    """Contexts drawn uniformly in a box: one ``(low, high)`` per conditioning column.

    >>> draw = contexts_in_range([(3000.0, 4000.0)])
    >>> draw(0, 5, np.random.default_rng(0)).shape
    (5, 1)
    """
    bounds = np.asarray(ranges, dtype=np.float64).reshape(-1, 2)
    if not (np.isfinite(bounds).all() and (bounds[:, 0] < bounds[:, 1]).all()):
        raise SimkitError(f"context ranges must be finite with LO < HI, got {bounds.tolist()}")

    def draw(start: int, m: int, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(bounds[:, 0], bounds[:, 1], size=(m, len(bounds)))

    return draw


def contexts_from(values: np.ndarray, weights: np.ndarray | None = None) -> ContextSource:
    """Contexts resampled (with replacement) from observed rows, with probability ∝ weight.

    Drawing by weight makes the generated, unweighted events follow the weighted
    context distribution of the source (e.g. the mjj spectrum of a weighted sample).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.shape[0] == 0:
        raise SimkitError("no events to draw contexts from")
    if not np.isfinite(values).all():
        raise SimkitError("context values must be finite")
    p = None
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (values.shape[0],) or not np.isfinite(w).all() or (w < 0).any():
            raise SimkitError("context weights must be finite, non-negative, one per event")
        if not w.sum() > 0:
            raise SimkitError("context weights sum to zero")
        p = w / w.sum()

    def draw(start: int, m: int, rng: np.random.Generator) -> np.ndarray:
        return values[rng.choice(values.shape[0], size=m, p=p)]

    return draw


def fixed_contexts(values: np.ndarray) -> ContextSource:
    """The given contexts, one per event, in order."""

    def draw(start: int, m: int, rng: np.random.Generator) -> np.ndarray:
        return values[start : start + m]

    return draw


def _count(n: int | None) -> int:
    if n is None:
        raise SimkitError("say how many events to sample")
    if n < 0:
        raise SimkitError(f"cannot sample {n} events")
    return int(n)


def context_source(
    condition: Sequence[str], n: int | None, context
) -> tuple[int, ContextSource | None]:
    """The number of events and the context source of a sampling call of a model
    conditioned on ``condition`` (no columns: unconditional), checked.

    ``context``: None, a :data:`ContextSource`, or an (n, C) array of physical values.
    """
    if not condition:
        if context is not None:
            raise SimkitError("this surrogate is not conditioned on anything: no context")
        return _count(n), None
    if context is None:
        raise SimkitError(f"this surrogate is conditioned on {', '.join(condition)}: give contexts")
    if callable(context):
        return _count(n), context
    values = np.asarray(context, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.shape[1] != len(condition):
        raise SimkitError(
            f"context must be (events, {len(condition)}) values of "
            f"{', '.join(condition)}, got shape {values.shape}"
        )
    if n is not None and n != values.shape[0]:
        raise SimkitError(f"asked for {n} events but gave {values.shape[0]} contexts")
    if not np.isfinite(values).all():
        raise SimkitError("context values must be finite")
    return values.shape[0], fixed_contexts(values)


def generated_table(events: np.ndarray, columns, units, kind: str) -> EventTable:
    """A chunk of generated events, float32 (m, columns), as an :class:`EventTable`
    (weights 1, every event passing); a non-finite value is refused, naming the model."""
    m = events.shape[0]
    if not np.isfinite(events).all():
        bad = int((~np.isfinite(events).all(axis=1)).sum())
        raise SimkitError(
            f"the {kind} produced non-finite values in {bad} of {m} events (a model "
            "diverged far outside its training data?)"
        )
    return EventTable(
        features=events, columns=columns, weights=np.ones(m), passed=np.ones(m, bool), units=units
    )


def gather_chunks(chunks, columns, units) -> EventTable:
    """The generated chunks as one table (an empty one for no chunks)."""
    chunks = list(chunks)
    if not chunks:
        return EventTable(
            features=np.zeros((0, len(columns)), np.float32),
            columns=columns,
            weights=np.zeros(0),
            passed=np.zeros(0, bool),
            units=units,
        )
    return EventTable.concatenate(chunks)


def chunk_rows(chunk_size: int | None, default: int) -> int:
    """Events per generated chunk: ``chunk_size``, or ``default`` when it is None."""
    chunk = int(chunk_size or default)
    if chunk < 1:
        raise SimkitError(f"chunk size must be positive, got {chunk}")
    return chunk


def context_rng(seed: int) -> np.random.Generator:
    """The stream a sampling call with ``seed`` draws its contexts from (both sampling
    paths: the same seed draws the same contexts)."""
    return np.random.default_rng([int(seed), 17])
