"""Toy shard tasks for the tests of simkit.shards: importable by worker processes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simkit.events import EventTable, Sample
from simkit.io import SampleWriter


@dataclass(frozen=True)
class NoiseShard:
    """Shard i: ``sizes[i]`` rows of Gaussian noise seeded by (seed, i), labels and weights.

    ``fail_at`` makes that shard raise; with ``fail_once`` set to a folder it raises only
    on its first attempt (a marker file remembers the attempt), as a flaky worker would.
    """

    seed: int
    sizes: tuple[int, ...] = (20, 20, 20, 7)
    fail_at: int = -1
    fail_once: str | None = None

    def __call__(self, index: int, path: Path) -> None:
        if index == self.fail_at:
            marker = Path(self.fail_once or "") / f"attempted-{index}"
            if self.fail_once is None or not marker.exists():
                if self.fail_once is not None:
                    marker.touch()
                raise RuntimeError(f"flaky disk in worker {os.getpid()}")
        rng = np.random.default_rng([self.seed, index])
        size = self.sizes[index]
        table = EventTable(
            features=rng.normal(size=(size, 2)).astype(np.float32),
            columns=("x", "y"),
            weights=rng.uniform(0.5, 2.0, size),
            passed=rng.random(size) < 0.9,
            labels=rng.integers(0, 2, size).astype(np.int8),
        )
        with SampleWriter(
            path,
            levels={"reco": ("x", "y")},
            weights=True,
            labels=True,
            provenance={"shard": index, "mean_x": float(table.features[:, 0].mean())},
        ) as out:
            out.append(Sample(reco=table))


def mean_of_means(shards: list[dict]) -> dict:
    """A ``finish`` hook: something computed from every shard's provenance."""
    return {"mean_x": float(np.mean([s["mean_x"] for s in shards]))}


@dataclass(frozen=True)
class BarShard(NoiseShard):
    """A NoiseShard that also makes a (disabled) progress bar, as the scan's windows do:
    tqdm holds a multiprocessing lock, a semaphore the worker must release on exit."""

    def __call__(self, index: int, path: Path) -> None:
        from simkit.progress import progress_bar

        with progress_bar(total=1, enabled=False):
            super().__call__(index, path)
