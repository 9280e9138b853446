"""Stages of a run: each writes into its own folder and is skipped when nothing changed.

A stage's *key* is a SHA-256 over its name, its settings, the simkit version and the
contents of every input file (folders: every file inside). When the stage finishes,
``stage.json`` with that key is written last; a later run with the same key finds it
and skips the stage. An interrupted stage has no ``stage.json`` (or a stale one), so
it runs again — a run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from simkit.errors import SimkitError
from simkit.io import write_json

MARKER = "stage.json"


def content_hash(path: Path, digest: hashlib._Hash | None = None) -> str:
    """SHA-256 of a file's bytes, or of every file in a folder (names and bytes, sorted)."""
    digest = digest or hashlib.sha256()
    path = Path(path)
    if path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            if child.name.startswith(".") or child.name == MARKER:
                continue  # temporaries and markers are not content
            digest.update(str(child.relative_to(path)).encode())
            content_hash(child, digest)
        return digest.hexdigest()
    if not path.exists():
        raise SimkitError(f"{path}: input of a stage is missing")
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Stage:
    """One step of the chain.

    ``action(folder)`` does the work into ``folder`` and returns a JSON-able summary
    (the numbers the report's summary table needs). ``outputs`` are paths relative to
    the folder that must exist for the stage to count as done.
    """

    name: str
    action: Callable[[Path], Mapping]
    settings: Mapping = field(default_factory=dict)
    inputs: Sequence[Path] = ()
    outputs: Sequence[str] = ()

    def key(self, root: str | os.PathLike | None = None) -> str:
        """The stage's content key; input paths enter relative to ``root`` (the run
        folder), so that a run keeps its keys when reached by another path or moved."""
        from simkit import __version__

        def name(path) -> str:
            return os.path.relpath(path, root) if root is not None else str(path)

        inputs = {name(p): content_hash(Path(p)) for p in self.inputs}
        document = {
            "stage": self.name,
            "settings": self.settings,
            "simkit": __version__,
            "inputs": inputs,
        }
        text = json.dumps(document, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class StageResult:
    name: str
    folder: Path
    summary: dict
    seconds: float
    skipped: bool


def run_stage(
    stage: Stage, run_dir: Path, *, force: bool = False, log: Callable[[str], None] = print
) -> StageResult:
    """Run ``stage`` into ``run_dir/<name>``, or skip it when its key is unchanged."""
    folder = Path(run_dir) / stage.name
    marker = folder / MARKER
    key = stage.key(run_dir)
    if not force and marker.exists():
        try:
            done = json.loads(marker.read_text())
        except (json.JSONDecodeError, OSError):
            done = {}
        complete = all((folder / out).exists() for out in stage.outputs)
        if done.get("key") == key and complete:
            log(f"[{stage.name}] unchanged since {done.get('completed', '?')}: skipped")
            return StageResult(
                stage.name,
                folder,
                done.get("summary", {}),
                float(done.get("seconds", 0.0)),
                skipped=True,
            )
    if marker.exists():
        marker.unlink()  # stale: the stage is redone
    folder.mkdir(parents=True, exist_ok=True)
    log(f"[{stage.name}] running")
    t0 = time.perf_counter()
    summary = dict(stage.action(folder) or {})
    seconds = time.perf_counter() - t0
    missing = [out for out in stage.outputs if not (folder / out).exists()]
    if missing:
        raise SimkitError(f"stage {stage.name} did not write {', '.join(missing)}")
    write_json(
        marker,
        {
            "key": key,
            "stage": stage.name,
            "seconds": seconds,
            "completed": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "settings": stage.settings,
            "summary": summary,
        },
    )
    log(f"[{stage.name}] done in {seconds:.1f} s")
    return StageResult(stage.name, folder, summary, seconds, skipped=False)
