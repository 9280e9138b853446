"""The model folder, read without torch: ``config.json`` (what the model is) and
``model.safetensors`` (its numbers), as :func:`simkit.nn.save_model` writes them.

:func:`simkit.nn.load_model` reads a folder into torch tensors for the models' own
``load``; :func:`read_model_document` is the torch-free half that it shares with the
torch-free sampler (:mod:`simkit.surrogates.sampler`), which reads the weights with
:func:`read_model_arrays`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from simkit.errors import FileFormatError, first_line

MODEL_FORMAT = "simkit-model"
MODEL_VERSION = 1
WEIGHTS_FILE = "model.safetensors"


def read_model_document(folder: str | os.PathLike, kind: str | Sequence[str]) -> dict:
    """``config.json`` of a model folder, checked: the simkit model format and version,
    one of the ``kind`` names accepted, and a weights file beside it; anything else is
    one clear :class:`~simkit.errors.FileFormatError`."""
    folder = Path(folder)
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    if not folder.is_dir():
        raise FileFormatError(f"{folder}: no such model folder")
    cfg_path = folder / "config.json"
    if not cfg_path.exists():
        raise FileFormatError(f"{folder}: no config.json: not a simkit model folder")
    try:
        document = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise FileFormatError(f"{cfg_path}: damaged (not valid JSON)") from None
    if not isinstance(document, dict) or document.get("format") != MODEL_FORMAT:
        raise FileFormatError(f"{folder}: config.json is not a simkit model description")
    if document.get("format_version") != MODEL_VERSION:
        raise FileFormatError(
            f"{folder}: model format version {document.get('format_version')} is not supported"
        )
    if document.get("kind") not in kinds:
        raise FileFormatError(
            f"{folder}: holds a {document.get('kind')!r} model, expected {' or '.join(kinds)}"
        )
    if not (folder / WEIGHTS_FILE).exists():
        raise FileFormatError(f"{folder}: {WEIGHTS_FILE} is missing")
    return document


def read_safetensors(path: Path, load) -> dict:
    """``load(path)`` (a safetensors reader of some array library), its failures one
    clear :class:`~simkit.errors.FileFormatError` naming the file."""
    from safetensors import SafetensorError

    try:
        return load(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise FileFormatError(f"{path}: damaged weights file ({first_line(exc)})") from None


def weights_digest(raw: bytes) -> str:
    """SHA-256 of a weights file's bytes: what ties a derived file to the weights."""
    return hashlib.sha256(raw).hexdigest()


def read_model_arrays(folder: str | os.PathLike) -> tuple[dict[str, np.ndarray], str]:
    """The weights of a model folder as numpy arrays (no torch, nothing unpickled), and
    the :func:`weights_digest` of their file, from one read."""
    from safetensors.numpy import load

    path = Path(folder) / WEIGHTS_FILE
    raw = read_safetensors(path, lambda p: Path(p).read_bytes())
    return read_safetensors(path, lambda _: load(raw)), weights_digest(raw)
