"""Score event files with a trained detector, in shards of rows.

The input files are cut into shards of ``rows_per_shard`` consecutive rows (never across
files); each shard loads the detector from its folder, scores its rows and writes them,
with every score of the detector, as an ordinary event file. The shards are merged in
order (:mod:`simkit.shards`), so the output is the same bytes whether they ran in this
process, in ``jobs`` local processes or on a Dask cluster, and ``resume=True`` continues
an interrupted run.

>>> summary = score_files("det/", ["data.h5"], "scores.h5", jobs=2)  # doctest: +SKIP
>>> summary.names  # doctest: +SKIP
{'total': 'vae_total', 'recon': 'vae_recon', 'kl': 'vae_kl'}
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from simkit.errors import SimkitError
from simkit.shards import ShardPlan, run_shards, shard_ranges

#: Rows per shard (and per scoring batch) unless asked otherwise.
ROWS_PER_SHARD = 131072

_LOADED: dict[tuple, object] = {}  # detectors loaded in this (worker) process


def _detector(model: str, threads: int | None):
    from detectors.train import Detector

    stat = os.stat(Path(model) / "model.safetensors")
    key = (str(Path(model).resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _LOADED:
        _LOADED.clear()  # one model at a time: a worker may serve many runs
        _LOADED[key] = Detector.load(model)
    detector = _LOADED[key]
    detector.threads = threads
    return detector


@dataclass(frozen=True)
class ScoreShard:
    """Score the rows of one shard and write them (picklable: sent to workers).

    ``ranges[i]`` is ``(input index, start, stop)``; ``names`` maps each of the
    detector's scores to its dataset name; ``kept`` are scores carried over.
    """

    model: str
    inputs: tuple[str, ...]
    ranges: tuple[tuple[int, int, int], ...]
    level: str
    levels: tuple[str, ...]
    names: tuple[tuple[str, str], ...]
    kept: tuple[str, ...]
    weights: bool
    labels: bool
    device: str
    threads: int | None

    def __call__(self, index: int, path: Path) -> None:
        from simkit.events import Sample
        from simkit.io import SampleWriter, inspect, read_sample
        from simkit.nn import resolve_device

        source, start, stop = self.ranges[index]
        info = inspect(self.inputs[source])
        writer = SampleWriter(
            path,
            levels={lv: info.levels[lv].columns for lv in self.levels},
            units={lv: info.levels[lv].units for lv in self.levels},
            weights=self.weights,
            labels=self.labels,
            scores=tuple(dict.fromkeys((*self.kept, *(n for _, n in self.names)))),
            provenance={"shard": index, "input": self.inputs[source], "rows": [start, stop]},
        )
        with writer:
            if stop == start:
                return
            chunk = read_sample(self.inputs[source], levels=self.levels, rows=slice(start, stop))
            detector = _detector(self.model, self.threads)
            scores = detector.scores(chunk.level(self.level), device=resolve_device(self.device))
            names = dict(self.names)
            writer.append(
                Sample(
                    **{lv: chunk.level(lv) for lv in self.levels},
                    provenance=chunk.provenance,
                    scores={
                        **{n: chunk.scores[n] for n in self.kept},
                        **{names[s]: v for s, v in scores.items()},
                    },
                )
            )


@dataclass
class ScoreSummary:
    """What :func:`score_files` wrote."""

    output: Path
    n_events: int
    names: dict[str, str]  # score → dataset name
    primary: str  # the dataset of the detector's own score


def inspect_inputs(paths: Sequence[str], level: str) -> list:
    """Validated headers of event files read together: each has ``level``, and all have
    the same columns there and all or none have labels."""
    from simkit.io import inspect

    infos = [inspect(path) for path in paths]
    for path, info in zip(paths, infos, strict=True):
        if level not in info.levels:
            have = ", ".join(info.levels) or "none"
            raise SimkitError(f"{path}: has no {level} level (levels: {have})")
        if info.levels[level].columns != infos[0].levels[level].columns:
            raise SimkitError(f"{path}: its {level} columns differ from those of {paths[0]}")
        if info.has_labels != infos[0].has_labels:
            raise SimkitError(f"{path} and {paths[0]}: one has /labels and the other not")
    return infos


def _file_identity(path: str | Path) -> dict:
    """What tells one version of a file from another, cheaply (for resuming)."""
    stat = os.stat(path)
    return {"path": str(path), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _model_digest(model: str | Path) -> str:
    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        digest.update((Path(model) / name).read_bytes())
    return digest.hexdigest()[:16]


def score_files(
    model: str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    name: str | None = None,
    level: str = "reco",
    rows_per_shard: int = ROWS_PER_SHARD,
    device: str = "auto",
    threads: int | None = 1,
    jobs: int = 1,
    scheduler=None,
    resume: bool = False,
    keep_shards: bool = False,
    progress: bool = False,
) -> ScoreSummary:
    """Write ``output``: the inputs' events, row after row, with ``/scores/<name>_<score>``
    for every score of the detector in ``model`` (scores every input already has are
    carried over). ``name`` defaults to the model kind; the detector's own score is
    recorded in the provenance as ``primary_score``.
    """
    from detectors.train import Detector
    from simkit.io import make_provenance

    model, inputs = str(model), tuple(str(p) for p in inputs)
    if not inputs:
        raise SimkitError("nothing to score: give at least one input file")
    if rows_per_shard < 1:
        raise SimkitError(f"rows per shard must be ≥ 1, got {rows_per_shard}")
    detector = Detector.load(model)
    infos = inspect_inputs(inputs, level)
    info = infos[0]
    detector.check_columns(info.levels[level].columns, inputs[0])
    prefix = name or detector.model
    names = {s: f"{prefix}_{s}" for s in detector.score_names}
    levels = tuple(lv for lv in info.levels if lv != "truth" and all(lv in i.levels for i in infos))
    kept = tuple(n for n in info.scores if all(n in i.scores for i in infos))
    provenance = make_provenance(
        "detectors.score",
        input=list(inputs),
        model=model,
        detector=detector.describe(),
        primary_score=names[detector.score_],
        level=level,
        input_provenance=[i.provenance for i in infos],
    )
    ranges = tuple(
        (k, start, stop)
        for k, i in enumerate(infos)
        for start, stop in shard_ranges(i.n_events, rows_per_shard)
    )
    task = ScoreShard(
        model=model,
        inputs=inputs,
        ranges=ranges,
        level=level,
        levels=levels,
        names=tuple(names.items()),
        kept=kept,
        weights=any(i.has_weights for i in infos),
        labels=info.has_labels,
        device=device,
        threads=threads,
    )
    plan = ShardPlan(
        Path(output),
        fingerprint={
            "model": model,
            "model_digest": _model_digest(model),
            "inputs": [_file_identity(p) for p in inputs],
            "level": level,
            "name": prefix,
            "rows_per_shard": rows_per_shard,
        },
        sizes=tuple(stop - start for _, start, stop in ranges),
        names=tuple(f"{inputs[k]} rows {a}–{b - 1}" for k, a, b in ranges),
    )
    path = run_shards(
        plan,
        task,
        provenance=provenance,
        jobs=jobs,
        scheduler=scheduler,
        resume=resume,
        keep=keep_shards,
        progress=progress,
        desc="score",
        preload=("torch", "detectors.train"),
    )
    return ScoreSummary(path, sum(plan.sizes), names, names[detector.score_])
