"""Generate Pythia events through the reference chain (``simkit generate PROCESS``).

``run(GenerateConfig("qcd-dijet", events=...), output)`` calls
:func:`simkit.generators.pythia.generate`, whose process options default to the
process's own (:data:`simkit.generators.pythia.PROCESSES`: ``pthat_min``, ``mwprime``,
``mx``, ``my``), left None here.

>>> GenerateConfig("qcd-dijet", events=500, seed=3).argv()
['qcd-dijet', '--events', '500', '--seed', '3']
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from simkit.errors import SimkitError
from simkit.tasks.base import Options, option

#: The process options each process takes (their defaults are the process's own).
PROCESS_OPTIONS = {"qcd-dijet": ("pthat_min",), "wprime-xy": ("mwprime", "mx", "my")}


def _default_tune() -> str:
    from simkit.generators.pythia import DEFAULT_TUNE

    return DEFAULT_TUNE


def _shard_size() -> int:
    from simkit.generators.pythia import SHARD_SIZE

    return SHARD_SIZE


@dataclass(frozen=True)
class GenerateConfig(Options):
    """``simkit generate PROCESS``'s settings."""

    POSITIONAL = ("process",)
    process: str = option("qcd-dijet", choices=tuple(PROCESS_OPTIONS))
    events: int = 10_000
    seed: int = 0
    tune: str = _default_tune()
    # None: the process's own default (the CLI shows it)
    pthat_min: float | None = option(None, parser_default=True)
    mwprime: float | None = option(None, parser_default=True)
    mx: float | None = option(None, parser_default=True)
    my: float | None = option(None, parser_default=True)
    mpi: bool = False
    jes: float = 1.0
    jer: float | None = None
    min_pt: float | None = None
    shard_size: int = _shard_size()
    jobs: int = 1
    scheduler: str | None = None
    resume: bool = False
    keep_shards: bool = False
    #: with resume, a shard folder of other settings is replaced instead of refused (the
    #: pipeline: a stage reruns because what it depends on changed)
    replace_other_shards: bool = option(False, cli=False)
    progress: bool = option(True, cli=False)

    def __post_init__(self) -> None:
        if self.process not in PROCESS_OPTIONS:
            raise SimkitError(f"unknown process {self.process!r}; use {', '.join(PROCESS_OPTIONS)}")
        other = [
            name
            for p, names in PROCESS_OPTIONS.items()
            if p != self.process
            for name in names
            if getattr(self, name) is not None
        ]
        if other:
            raise SimkitError(f"{self.process} takes no {', '.join(other)}")

    def process_options(self) -> dict:
        options = {"mpi": self.mpi}
        for name in PROCESS_OPTIONS[self.process]:
            if getattr(self, name) is not None:
                options[name] = getattr(self, name)
        return options


@dataclass
class GenerateResult:
    """Where the events went and how fast."""

    output: Path
    config: GenerateConfig
    seconds: float

    def to_dict(self) -> dict:
        return {
            "output": str(self.output),
            "process": self.config.process,
            "events": self.config.events,
            "seconds": self.seconds,
            "events_per_second": self.config.events / self.seconds if self.seconds else None,
        }


def run(config: GenerateConfig, output) -> GenerateResult:
    """Generate ``config.events`` events into the event file ``output``."""
    from simkit.generators.pythia import generate

    t0 = time.perf_counter()
    path = generate(
        config.process,
        config.events,
        config.seed,
        tune=config.tune,
        jobs=config.jobs,
        output=output,
        progress=config.progress,
        jes=config.jes,
        jer=config.jer,
        min_pt=config.min_pt,
        shard_size=config.shard_size,
        scheduler=config.scheduler,
        resume=config.resume,
        keep_shards=config.keep_shards,
        replace_other_shards=config.replace_other_shards,
        **config.process_options(),
    )
    return GenerateResult(Path(path), config, time.perf_counter() - t0)
