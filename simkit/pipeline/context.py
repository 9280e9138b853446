"""What every stage of a run shares: the resolved config, the run folder, the seeds."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simkit.pipeline.stages import StageResult


@dataclass
class RunContext:
    """What every stage needs: the resolved config, where to write, how to talk."""

    config: dict
    run_dir: Path
    device: str
    quiet: bool
    log: Callable[[str], None]
    results: dict[str, StageResult] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def path(self, *parts: str) -> Path:
        return self.run_dir.joinpath(*parts)

    def seed(self, name: str) -> int:
        """The seed of one stage: derived from the run's seed and the stage's name, so
        that stages never share a random stream and a new stage changes no other."""
        sequence = np.random.SeedSequence([self.config["run"]["seed"], zlib.crc32(name.encode())])
        return int(sequence.generate_state(1, np.uint32)[0] % (2**31 - 1))
