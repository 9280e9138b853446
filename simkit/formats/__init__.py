"""Other people's event files in and out: the LHC Olympics 2020 files, ROOT trees, Parquet.

One module per concept:

- :mod:`simkit.formats.dijet` — the reference dijet columns from two jets' kinematics and
  N-subjettiness (the kernel both the LHC Olympics feature file and ROOT trees go through);
- :mod:`simkit.formats.lhco` — the two LHC Olympics 2020 layouts (high-level features,
  raw hadrons clustered with FastJet), detected from the file;
- :mod:`simkit.formats.root` — ROOT trees through ``uproot`` with a TOML mapping of
  branches to columns (built-in: NanoAOD ``FatJet``, Delphes ``FatJet``, simkit's export);
- :mod:`simkit.formats.export` — any event file as a ROOT TTree or a Parquet table.

Each importer writes an ordinary simkit event file (reco level), streamed in chunks and
renamed into place only when complete, with the source files' SHA-256 in its provenance.
The optional libraries (pandas + tables, uproot + pyarrow) are imported inside the
functions that need them; when one is missing the error says which extra installs it.
"""

from __future__ import annotations

import glob
import hashlib
import importlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from simkit.errors import SimkitError


class MissingDependencyError(SimkitError):
    """An optional library is not installed; the message says how to install it."""


def require(module: str, purpose: str, extra: str):
    """Import an optional library, or fail with one line naming the extra that installs it.

    >>> require("numpy", "the tests", "dev").__name__
    'numpy'
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        hint = f"pip install 'simkit[{extra}]'"
        raise MissingDependencyError(
            f"{purpose} needs the optional package {module!r}, which is not installed: {hint}"
        ) from None


def sha256(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in blocks (a source file may exceed memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()


def source_record(path: str | os.PathLike) -> dict:
    """What provenance keeps of a source file: its path, size and SHA-256."""
    path = Path(path)
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": sha256(path)}


def expand_paths(patterns: Iterable[str | os.PathLike]) -> list[Path]:
    """Files named by paths or glob patterns, in order, each once; none found is an error."""
    paths: list[Path] = []
    for pattern in patterns:
        text = str(pattern)
        if glob.has_magic(text):
            found = sorted(glob.glob(text))
            if not found:
                raise SimkitError(f"{text}: no file matches this pattern")
            paths += [Path(p) for p in found]
        else:
            path = Path(text)
            if not path.exists():
                raise SimkitError(f"{path}: no such file")
            if path.is_dir():
                raise SimkitError(f"{path}: is a folder, not a file")
            paths.append(path)
    if not paths:
        raise SimkitError("no input file given")
    seen: set[Path] = set()
    unique = []
    for path in paths:
        if path.resolve() not in seen:
            seen.add(path.resolve())
            unique.append(path)
    return unique


@dataclass(frozen=True)
class ImportResult:
    """What an import wrote: the file, its events (and how many pass), the rate."""

    output: Path
    n_events: int
    n_passed: int
    columns: tuple[str, ...]
    layout: str
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.n_events / self.seconds if self.seconds > 0 else float("inf")
