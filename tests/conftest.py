"""Shared fixtures: every test is seeded; small helpers to make event files."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from simkit.events import EventTable, Sample


def pytest_configure(config):
    """Under ``pytest -n N`` (pytest-xdist, what ``make test`` runs) each of the N worker
    processes gets its share of the cores for torch's intra-op threads: N processes of
    all-core thread pools on the same cores spin against each other."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state (numpy legacy, random, torch)."""
    random.seed(1234)
    np.random.seed(1234)  # noqa: NPY002 - legacy global state, for libraries that use it
    torch.manual_seed(1234)
    yield


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261122)


def make_sample(
    n: int = 100,
    columns=("a", "b", "c"),
    *,
    seed: int = 0,
    gen: bool = True,
    weights: bool = True,
    labels: bool = True,
    scores: bool = False,
) -> Sample:
    """A small two-level sample with every optional dataset filled."""
    r = np.random.default_rng(seed)
    w = r.uniform(0.5, 2.0, n) if weights else np.ones(n)
    lab = r.integers(0, 2, n).astype(np.int8) if labels else None

    def table():
        return EventTable(
            features=r.normal(size=(n, len(columns))).astype(np.float32),
            columns=tuple(columns),
            weights=w,
            passed=r.random(n) < 0.8,
            labels=lab,
            units=tuple("GeV" if i == 0 else "" for i in range(len(columns))),
        )

    return Sample(
        gen=table() if gen else None,
        reco=table(),
        provenance={"generator": "test", "seed": seed},
        scores={"ae": r.normal(size=n).astype(np.float32)} if scores else {},
    )
