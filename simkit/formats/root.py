"""ROOT trees as simkit event files, through ``uproot`` and a TOML mapping.

A *mapping* says which branches make which simkit columns. Every value is an expression
in uproot's expression language (Python syntax over branch names, with NumPy's math
functions), plus these reductions of jagged (per-object) branches to one value per event:

- ``nth(x, i)``: the i-th entry of each event (NaN where the event has fewer);
- ``num(x)``, ``sum(x)``, ``max(x)``, ``min(x)``: count, sum, largest and smallest
  entry (``max``/``min``: NaN for an event without entries).

A Delphes branch named with its array dimension (``FatJet.Tau[5]``) can also be named
without it (``FatJet.Tau``). The mapping (TOML)::

    tree = "Events"                 # the TTree (--tree overrides)
    selection = "nFatJet >= 2"      # events kept (others are not imported)
    weight = "genWeight"            # per-event weight (absent: 1)
    label = "isSignal"              # 0/1 truth label (absent: none)

    [reco.dijet]                    # the reference dijet columns, from jagged branches
    pt = "FatJet_pt"                # ... of the two leading-pT objects: j1 the heavier
    eta = "FatJet_eta"
    phi = "FatJet_phi"
    mass = "FatJet_mass"
    tau1 = "FatJet_tau1"
    tau2 = "FatJet_tau2"
    tau3 = "FatJet_tau3"
    n_constituents = "FatJet_nConstituents"   # optional: gives n_j1, n_j2
    min_pt = 1200.0                 # pass flag: leading jet above this pT (GeV)

    [reco.columns]                  # any further columns, one value per event
    tau21_lead = "nth(FatJet_tau2, 0) / nth(FatJet_tau1, 0)"
    met = "MET_pt"
    [reco.units]
    met = "GeV"

``[gen]`` takes the same keys as ``[reco]`` for a generator level; ``[reco] pass`` (and
``[gen] pass``) is an optional boolean expression for the level's pass flag; ``[scores]``
maps score names to expressions. Built-in mappings: ``nanoaod``, ``delphes``, and
``simkit`` (the trees ``simkit export`` writes, read back exactly).

Rules: a column must give one number per event (a jagged result is an error that says how
to reduce it); a NaN or infinity in an imported, passing event is an error naming the
file, entry and column; a failing event's non-finite values become 0 (the placeholders
of the event-file format).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from simkit.errors import FileFormatError, SimkitError, first_line
from simkit.events import EventTable, Sample
from simkit.formats import ImportResult, expand_paths, require, source_record
from simkit.formats import dijet as D

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

BUILTIN = ("nanoaod", "delphes", "simkit")
LEVEL_NAMES = ("gen", "reco")
DIJET_FIELDS = ("pt", "eta", "phi", "mass", "tau1", "tau2", "tau3")
_TOP_KEYS = {"description", "tree", "selection", "weight", "label", "reco", "gen", "scores"}
_LEVEL_KEYS = {"dijet", "columns", "units", "pass"}
_DIJET_KEYS = {*DIJET_FIELDS, "n_constituents", "min_pt"}


# --------------------------------------------------------------------------- the mapping


@dataclass(frozen=True)
class DijetMapping:
    """Jagged per-object expressions whose two leading-pT entries become the dijet columns."""

    fields: dict[str, str]
    n_constituents: str | None = None
    #: leading-jet pT of the pass flag (GeV); None: the reference simulation's
    min_pt: float | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return D.columns(self.n_constituents is not None)


@dataclass(frozen=True)
class LevelMapping:
    """The columns of one level: a dijet block and/or per-event expressions."""

    dijet: DijetMapping | None = None
    columns: dict[str, str] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    passed: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return (self.dijet.columns if self.dijet else ()) + tuple(self.columns)

    @property
    def unit_list(self) -> tuple[str, ...]:
        dijet = D.units(self.dijet.n_constituents is not None) if self.dijet else ()
        return dijet + tuple(self.units.get(c, "") for c in self.columns)


@dataclass(frozen=True)
class RootMapping:
    """Which branches make which simkit columns (see the module's docstring)."""

    name: str
    tree: str | None
    levels: dict[str, LevelMapping]
    selection: str | None = None
    weight: str | None = None
    label: str | None = None
    scores: dict[str, str] = field(default_factory=dict)
    description: str = ""
    text: str = ""

    def replace(self, **changes) -> RootMapping:
        from dataclasses import replace

        return replace(self, **changes)


def _need_str(where: str, value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SimkitError(f"{where} must be a non-empty string (an expression), got {value!r}")
    return value


def _need_table(where: str, value) -> dict:
    if not isinstance(value, dict):
        raise SimkitError(f"{where} must be a table, got {value!r}")
    return value


def _unknown(where: str, table: Mapping, allowed: set[str]) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise SimkitError(
            f"{where}: unknown key {', '.join(map(repr, extra))} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )


def _level(name: str, where: str, table: Mapping) -> LevelMapping:
    _unknown(where, table, _LEVEL_KEYS)
    dijet = None
    if "dijet" in table:
        spec = _need_table(f"{where}.dijet", table["dijet"])
        _unknown(f"{where}.dijet", spec, _DIJET_KEYS)
        missing = [k for k in DIJET_FIELDS if k not in spec]
        if missing:
            raise SimkitError(f"{where}.dijet: needs {', '.join(missing)}")
        min_pt = spec.get("min_pt")
        if min_pt is not None and (
            isinstance(min_pt, bool) or not isinstance(min_pt, (int, float)) or min_pt < 0
        ):
            raise SimkitError(f"{where}.dijet.min_pt must be a number ≥ 0, got {min_pt!r}")
        dijet = DijetMapping(
            fields={k: _need_str(f"{where}.dijet.{k}", spec[k]) for k in DIJET_FIELDS},
            n_constituents=(
                _need_str(f"{where}.dijet.n_constituents", spec["n_constituents"])
                if "n_constituents" in spec
                else None
            ),
            min_pt=None if min_pt is None else float(min_pt),
        )
    columns = {
        str(k): _need_str(f"{where}.columns.{k}", v)
        for k, v in _need_table(f"{where}.columns", table.get("columns", {})).items()
    }
    units = {
        str(k): str(v) for k, v in _need_table(f"{where}.units", table.get("units", {})).items()
    }
    stray = sorted(set(units) - set(columns))
    if stray:
        raise SimkitError(f"{where}.units: {', '.join(stray)} is not a column of [{where}.columns]")
    level = LevelMapping(
        dijet=dijet,
        columns=columns,
        units=units,
        passed=_need_str(f"{where}.pass", table["pass"]) if "pass" in table else None,
    )
    names = level.names
    if not names:
        raise SimkitError(f"{where}: maps no column (give [{where}.dijet] or [{where}.columns])")
    duplicated = sorted({c for c in names if names.count(c) > 1})
    if duplicated:
        raise SimkitError(f"{where}: column {', '.join(duplicated)} is made twice")
    return level


def parse_mapping(document: Mapping, *, name: str = "mapping", text: str = "") -> RootMapping:
    """Check a parsed mapping document and return it as a :class:`RootMapping`."""
    _unknown(name, document, _TOP_KEYS)
    levels = {
        lv: _level(lv, f"{name}: [{lv}]", _need_table(f"[{lv}]", document[lv]))
        for lv in LEVEL_NAMES
        if lv in document
    }
    if not levels:
        raise SimkitError(f"{name}: maps no level (give a [reco] table)")
    optional = {
        key: _need_str(f"{name}: {key}", document[key]) if key in document else None
        for key in ("tree", "selection", "weight", "label")
    }
    scores = {
        str(k): _need_str(f"{name}: scores.{k}", v)
        for k, v in _need_table("[scores]", document.get("scores", {})).items()
    }
    return RootMapping(
        name=name,
        levels=levels,
        scores=scores,
        description=str(document.get("description", "")),
        text=text,
        **optional,
    )


def builtin_text(name: str) -> str:
    """The TOML of a built-in mapping (``simkit`` is made from the tree itself)."""
    if name not in ("nanoaod", "delphes"):
        raise SimkitError(f"no built-in mapping {name!r}; built-in: nanoaod, delphes")
    return resources.files("simkit.formats").joinpath(f"mappings/{name}.toml").read_text()


def load_mapping(spec: str | os.PathLike) -> RootMapping:
    """A mapping by built-in name (``nanoaod``, ``delphes``) or from a TOML file."""
    spec = str(spec)
    if spec in ("nanoaod", "delphes"):
        text, name = builtin_text(spec), spec
    else:
        path = Path(spec)
        if not path.is_file():
            raise SimkitError(
                f"{spec}: no such mapping file (built-in mappings: {', '.join(BUILTIN)})"
            )
        text, name = path.read_text(), str(path)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SimkitError(f"{name}: not valid TOML ({exc})") from None
    return parse_mapping(document, name=name, text=text)


def simkit_mapping(metadata: Mapping, name: str = "simkit") -> RootMapping:
    """The mapping that reads a tree written by ``simkit export`` back exactly."""
    from simkit.formats.export import LABEL, WEIGHT, level_branches

    levels = {}
    for lv, meta in metadata["levels"].items():
        branches = level_branches(lv, meta["columns"])
        levels[lv] = LevelMapping(
            columns={
                c: f'get("{b}")' for c, b in zip(meta["columns"], branches["columns"], strict=True)
            },
            units=dict(zip(meta["columns"], meta["units"], strict=True)),
            passed=f'get("{branches["passed"]}")',
        )
    return RootMapping(
        name=name,
        tree=metadata.get("tree"),
        levels=levels,
        weight=f'get("{WEIGHT}")' if metadata.get("weights") else None,
        label=f'get("{LABEL}")' if metadata.get("labels") else None,
        scores={s: f'get("{b}")' for s, b in metadata.get("scores", {}).items()},
        description="the tree written by simkit export",
        text=json.dumps({k: v for k, v in metadata.items() if k != "provenance"}, sort_keys=True),
    )


# --------------------------------------------------------------------------- evaluation


def _language():
    """uproot's Python expression language with the reductions of the module docstring."""
    ak = require("awkward", "importing ROOT files", "root")
    uproot = require("uproot", "importing ROOT files", "root")

    def nth(values, index):
        index = int(index)
        padded = ak.pad_none(values, index + 1, axis=1)
        return ak.fill_none(padded[:, index], np.nan)

    def extreme(reducer):
        return lambda values: ak.fill_none(reducer(values, axis=1), np.nan)

    functions = {
        **uproot.language.python.PythonLanguage.default_functions,
        "nth": nth,
        "num": lambda values: ak.num(values, axis=1),
        "sum": lambda values: ak.sum(values, axis=1),
        "max": extreme(ak.max),
        "min": extreme(ak.min),
    }
    return uproot.language.python.PythonLanguage(functions=functions)


@dataclass(frozen=True)
class _Expr:
    alias: str
    expression: str
    what: str  # "column 'mjj'", "dijet.pt", "weight", ...
    kind: str  # "flat", "jagged", "bool"


def _expressions(mapping: RootMapping) -> list[_Expr]:
    found: list[_Expr] = []

    def add(expression, what, kind="flat"):
        found.append(_Expr(f"_simkit_{len(found)}", expression, what, kind))

    for lv, level in mapping.levels.items():
        if level.dijet is not None:
            for key, expression in level.dijet.fields.items():
                add(expression, f"[{lv}.dijet] {key}", "jagged")
            if level.dijet.n_constituents is not None:
                add(level.dijet.n_constituents, f"[{lv}.dijet] n_constituents", "jagged")
        for column, expression in level.columns.items():
            add(expression, f"[{lv}.columns] {column}")
        if level.passed is not None:
            add(level.passed, f"[{lv}] pass", "bool")
    if mapping.weight is not None:
        add(mapping.weight, "weight")
    if mapping.label is not None:
        add(mapping.label, "label")
    for score, expression in mapping.scores.items():
        add(expression, f"[scores] {score}")
    return found


_DIMENSION = re.compile(r"^(.+?)((\[\d+\])+)$")


def dimension_aliases(keys) -> dict[str, str]:
    """Aliases that name a branch without its array dimension (``FatJet.Tau[5]`` as
    ``FatJet.Tau``), for the names that are not branches themselves.

    >>> dimension_aliases(["FatJet.PT", "FatJet.Tau[5]", "FatJet/FatJet.Tau[5]"])
    {'FatJet.Tau': 'get("FatJet.Tau[5]")'}
    """
    keys = list(keys)
    aliases = {}
    for key in keys:
        match = _DIMENSION.match(key)
        if match and "/" not in key and match.group(1) not in keys:
            aliases[match.group(1)] = f'get("{key}")'
    return aliases


def _open_tree(path: Path, tree: str):
    uproot = require("uproot", "importing ROOT files", "root")
    try:
        handle = uproot.open(path)
    except Exception as exc:
        raise FileFormatError(f"{path}: not a readable ROOT file ({_first_line(exc)})") from None
    try:
        classes = handle.classnames()
    except Exception as exc:
        handle.close()
        raise FileFormatError(
            f"{path}: unreadable ROOT file, truncated? ({_first_line(exc)})"
        ) from None
    trees = sorted({k.split(";")[0] for k, c in classes.items() if c.startswith("TTree")})
    if tree not in trees:
        handle.close()
        have = ", ".join(trees) if trees else "none"
        raise FileFormatError(f"{path}: has no TTree {tree!r} (trees: {have})")
    try:
        return handle, handle[tree]
    except Exception as exc:
        handle.close()
        raise FileFormatError(f"{path}: tree {tree!r} is unreadable ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    # uproot's messages end with where in its compiled code they arose: not the user's
    return first_line(exc).split(" (in compiled code")[0]


def _check_branches(path: Path, tree, tree_name: str, exprs, selection, aliases, language):
    """A missing branch is named with the mapping entry that asks for it."""
    from uproot.behaviors.TBranch import _keys_deep

    keys = _keys_deep(tree)
    checks = [(e.expression, e.what) for e in exprs]
    if selection is not None:
        checks.append((selection, "selection"))
    for expression, what in checks:
        try:
            language.free_symbols(expression, keys, aliases, str(path), tree_name)
        except SyntaxError:
            raise SimkitError(f"{what} = {expression!r} is not a valid expression") from None
        except Exception as exc:
            missing = getattr(exc, "key", None) or _first_line(exc)
            raise FileFormatError(
                f"{path}: tree {tree_name!r} has no branch {missing!r} "
                f"(needed by {what} = {expression!r})"
            ) from None


def _values(array, expr: _Expr, where: str) -> np.ndarray:
    """A per-event expression's result as float64 (bool kept), or one clear error."""
    ak = sys.modules["awkward"]
    if isinstance(array, ak.Array):
        if array.ndim != 1:
            raise SimkitError(
                f"{where}: {expr.what} = {expr.expression!r} gives a list per event "
                "(a jagged branch): reduce it to one value, e.g. nth(X, 0) for the leading "
                "entry, or num/sum/max/min(X)"
            )
        array = ak.to_numpy(ak.fill_none(array, np.nan))
    values = np.asarray(array)
    if values.dtype.kind not in "fiub":
        raise SimkitError(f"{where}: {expr.what} = {expr.expression!r} is not numeric")
    return values


def _two_leading(arrays, exprs, where: str, n: int):
    """(N, 2) arrays of the dijet fields' two leading-pT entries, and the events with two."""
    ak = sys.modules["awkward"]
    jagged = {}
    for e in exprs:
        array = arrays[e.alias]
        if not isinstance(array, ak.Array) or array.ndim != 2:
            raise SimkitError(
                f"{where}: {e.what} = {e.expression!r} must give one value per jet "
                "(a jagged branch such as FatJet_pt)"
            )
        jagged[e.what.split()[-1]] = array
    counts = ak.num(jagged["pt"], axis=1)
    for key, array in jagged.items():
        if not ak.all(ak.num(array, axis=1) == counts):
            raise SimkitError(
                f"{where}: [dijet] {key} has a different number of entries than pt in some event"
            )
    order = ak.argsort(jagged["pt"], axis=1, ascending=False)
    two = {
        key: ak.to_numpy(
            ak.fill_none(ak.pad_none(array[order], 2, axis=1, clip=True), np.nan)
        ).astype(np.float64)
        for key, array in jagged.items()
    }
    return two, ak.to_numpy(counts) >= 2


def _chunk_sample(arrays, mapping: RootMapping, exprs: list[_Expr], where: str, start: int):
    n = len(arrays)
    by_what = {e.what: e for e in exprs}
    flat = {}
    for e in exprs:
        if e.kind != "jagged":
            values = _values(arrays[e.alias], e, where)
            flat[e.what] = np.broadcast_to(values, (n,)) if values.ndim == 0 else values
    weights = np.ones(n) if mapping.weight is None else flat["weight"].astype(np.float64)
    labels = None
    if mapping.label is not None:
        raw = flat["label"].astype(np.float64)
        bad = ~np.isin(raw, (0.0, 1.0))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise SimkitError(
                f"{where} entry {start + row}: label is {raw[row]!r}, expected 0 or 1"
            )
        labels = raw.astype(np.int8)
    if not np.isfinite(weights).all():
        row = int(np.flatnonzero(~np.isfinite(weights))[0])
        raise SimkitError(
            f"{where} entry {start + row}: weight = {mapping.weight!r} is {weights[row]}"
        )
    tables = {}
    for lv, level in mapping.levels.items():
        blocks, passed = [], np.ones(n, bool)
        if level.passed is not None:
            passed &= flat[f"[{lv}] pass"].astype(bool)
        if level.dijet is not None:
            keys = [f"[{lv}.dijet] {k}" for k in DIJET_FIELDS]
            if level.dijet.n_constituents is not None:
                keys.append(f"[{lv}.dijet] n_constituents")
            two, present = _two_leading(arrays, [by_what[k] for k in keys], where, n)
            jets = D.TwoJets(
                pt=two["pt"],
                eta=two["eta"],
                phi=two["phi"],
                mass=two["mass"],
                taus=np.stack([two["tau1"], two["tau2"], two["tau3"]], axis=-1),
                n_constituents=two.get("n_constituents"),
                present=present,
            )
            features, dijet_pass = D.dijet_columns(jets, min_pt=level.dijet.min_pt)
            passed &= dijet_pass
            blocks.append(features.astype(np.float64))
        if level.columns:
            blocks.append(np.column_stack([flat[f"[{lv}.columns] {c}"] for c in level.columns]))
        features = np.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]
        features = features.astype(np.float64)
        # a failing event's values are not used: placeholders where they are not numbers
        features[~passed] = np.where(np.isfinite(features[~passed]), features[~passed], 0.0)
        finite = np.isfinite(features)
        if not finite.all():
            row, col = np.argwhere(~finite)[0]
            raise SimkitError(
                f"{where} entry {start + int(row)}: [{lv}] column {level.names[col]!r} is "
                f"{features[row, col]} (a missing object? require it in the selection)"
            )
        tables[lv] = EventTable(
            features=features.astype(np.float32),
            columns=level.names,
            weights=weights,
            passed=passed,
            labels=labels,
            units=level.unit_list,
        )
    scores = {}
    for score in mapping.scores:
        values = flat[f"[scores] {score}"].astype(np.float32)
        if not np.isfinite(values).all():
            row = int(np.flatnonzero(~np.isfinite(values))[0])
            raise SimkitError(f"{where} entry {start + row}: score {score!r} is {values[row]}")
        scores[score] = values
    return Sample(**tables, scores=scores)


# --------------------------------------------------------------------------- import


@dataclass(frozen=True)
class RootConfig:
    """Settings of a ROOT import (each default declared once, here)."""

    #: the TTree (None: the mapping's ``tree``)
    tree: str | None = None
    #: entries read per step of ``TTree.iterate``
    chunk_size: int = 100_000
    #: import only the first this many entries (before the selection) of all files
    max_entries: int | None = None
    #: show a progress bar
    progress: bool = False

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise SimkitError(f"chunk size must be at least 1, got {self.chunk_size}")
        if self.max_entries is not None and self.max_entries < 1:
            raise SimkitError(f"max_entries must be at least 1, got {self.max_entries}")


def read_metadata(path: Path) -> dict | None:
    """The ``simkit_metadata`` that ``simkit export`` leaves in a ROOT file, or None."""
    from simkit.formats.export import METADATA

    uproot = require("uproot", "importing ROOT files", "root")
    try:
        with uproot.open(path) as handle:
            if METADATA not in handle:
                return None
            return json.loads(str(handle[METADATA]))
    except (json.JSONDecodeError, Exception) as exc:
        if isinstance(exc, SimkitError):
            raise
        raise FileFormatError(f"{path}: unreadable ROOT file ({_first_line(exc)})") from None


def _resolve(mapping: RootMapping | str | os.PathLike, first: Path) -> RootMapping:
    if isinstance(mapping, RootMapping):
        return mapping
    if str(mapping) == "simkit":
        metadata = read_metadata(first)
        if metadata is None:
            raise FileFormatError(
                f"{first}: --map simkit reads trees written by `simkit export`, and this "
                "file has no simkit_metadata"
            )
        return simkit_mapping(metadata)
    return load_mapping(mapping)


def _steps(
    path: Path,
    tree_name: str,
    mapping: RootMapping,
    entry_start: int,
    entry_stop: int,
    step_size: int,
) -> Iterator[tuple[Sample, int]]:
    """Samples of entries ``entry_start`` to ``entry_stop`` of one file's tree, ``step_size``
    entries a step (with the entries each step read); every failure one clear line."""
    ak = require("awkward", "importing ROOT files", "root")
    exprs = _expressions(mapping)
    language = _language()
    handle, tree = _open_tree(path, tree_name)
    with handle:
        from uproot.behaviors.TBranch import _keys_deep

        aliases = dimension_aliases(_keys_deep(tree))
        _check_branches(path, tree, tree_name, exprs, mapping.selection, aliases, language)
        aliases.update({e.alias: e.expression for e in exprs})
        where = f"{path}:{tree_name}"
        try:
            steps = tree.iterate(
                [e.alias for e in exprs],
                cut=mapping.selection,
                aliases=aliases,
                language=language,
                entry_start=entry_start,
                entry_stop=entry_stop,
                step_size=step_size,
                library="ak",
                report=True,
            )
            for arrays, report in steps:
                if not isinstance(arrays, ak.Array):
                    arrays = ak.Array(arrays)
                sample = _chunk_sample(arrays, mapping, exprs, where, report.tree_entry_start)
                yield sample, report.tree_entry_stop - report.tree_entry_start
        except SimkitError:
            raise
        except IndexError as exc:
            raise SimkitError(
                f"{where}: an expression indexes past the end of an event's list "
                f"({_first_line(exc)}): use nth(X, i), which gives NaN there, and a "
                "selection that drops those events"
            ) from None
        except OSError as exc:
            raise FileFormatError(
                f"{where}: damaged or truncated file (an interrupted copy?): {_first_line(exc)}"
            ) from None
        except Exception as exc:
            raise FileFormatError(
                f"{where}: could not be read or evaluated (a bad expression? a damaged "
                f"file?): {type(exc).__name__}: {_first_line(exc)}"
            ) from None


def _entry_ranges(paths, tree_name: str, config: RootConfig) -> list[tuple[int, int, int]]:
    """``(file index, first entry, stop entry)`` of each chunk of ``config.chunk_size``
    entries, within ``config.max_entries`` over all files."""
    budget = config.max_entries
    ranges = []
    for k, path in enumerate(paths):
        if budget is not None and budget <= 0:
            break
        handle, tree = _open_tree(path, tree_name)
        with handle:
            entries = tree.num_entries
        stop = entries if budget is None else min(entries, budget)
        ranges += [
            (k, a, min(a + config.chunk_size, stop)) for a in range(0, stop, config.chunk_size)
        ]
        if budget is not None:
            budget -= stop
    return ranges


def iter_root(paths, mapping: RootMapping, config: RootConfig) -> Iterator[tuple[Sample, int]]:
    """Samples chunk by chunk from ROOT files (with the entries each chunk read)."""
    tree_name = config.tree or mapping.tree
    if tree_name is None:
        raise SimkitError(f"{mapping.name}: names no tree: give --tree")
    for k, start, stop in _entry_ranges(paths, tree_name, config):
        yield from _steps(paths[k], tree_name, mapping, start, stop, stop - start)


@dataclass(frozen=True)
class RootShard:
    """Import entries ``ranges[i]`` (file, first, stop) into shard ``i``'s event file
    (picklable: sent to worker processes; see :mod:`simkit.shards`)."""

    paths: tuple[str, ...]
    tree: str
    mapping: RootMapping
    ranges: tuple[tuple[int, int, int], ...]

    def __call__(self, index: int, output: Path) -> None:
        from simkit.io import SampleWriter

        k, start, stop = self.ranges[index]
        levels = self.mapping.levels
        with SampleWriter(
            output,
            levels={lv: m.names for lv, m in levels.items()},
            units={lv: m.unit_list for lv, m in levels.items()},
            weights=self.mapping.weight is not None,
            labels=self.mapping.label is not None,
            scores=tuple(self.mapping.scores),
            provenance={"shard": index, "file": self.paths[k], "entries": [start, stop]},
        ) as out:
            for sample, _ in _steps(Path(self.paths[k]), self.tree, self.mapping, start, stop,
                                    stop - start):  # fmt: skip
                out.append(sample)


def import_root(
    files,
    output: str | os.PathLike,
    mapping: RootMapping | str | os.PathLike,
    config: RootConfig | None = None,
    *,
    selection: str | None = None,
    weight: str | None = None,
    jobs: int = 1,
    scheduler=None,
    resume: bool = False,
    keep_shards: bool = False,
) -> ImportResult:
    """Convert ROOT trees (paths or glob patterns) into one simkit event file.

    ``selection`` and ``weight`` override the mapping's (``weight="none"`` drops it).
    The entries are read in shards of ``config.chunk_size`` (never across files), each
    written as an event file into ``OUTPUT.shards/`` and merged in order
    (:mod:`simkit.shards`): by this process, ``jobs`` worker processes or a Dask
    ``scheduler``, with the same bytes out, and ``resume=True`` continues an
    interrupted import. Nothing is left at ``output`` when the input is bad.
    """
    from simkit.io import make_provenance, read_array
    from simkit.shards import ShardPlan, run_shards

    config = config or RootConfig()
    paths = expand_paths([files] if isinstance(files, (str, os.PathLike)) else files)
    t0 = time.perf_counter()
    resolved = _resolve(mapping, paths[0])
    if selection is not None:
        resolved = resolved.replace(selection=selection or None)
    if weight is not None:
        resolved = resolved.replace(weight=None if weight in ("", "none") else weight)
    tree_name = config.tree or resolved.tree
    if tree_name is None:
        raise SimkitError(f"{resolved.name}: names no tree: give --tree")
    uproot = require("uproot", "importing ROOT files", "root")
    require("awkward", "importing ROOT files", "root")
    ranges = tuple(_entry_ranges(paths, tree_name, config))
    total = sum(stop - start for _, start, stop in ranges)
    main = "reco" if "reco" in resolved.levels else next(iter(resolved.levels))
    mapping_record = {
        "name": resolved.name,
        "text": resolved.text,
        "selection": resolved.selection,
        "weight": resolved.weight,
    }
    plan = ShardPlan(
        Path(output),
        fingerprint={
            "sources": [
                {"path": str(p), "bytes": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns}
                for p in paths
            ],
            "tree": tree_name,
            "mapping": mapping_record,
            "chunk_size": config.chunk_size,
            "max_entries": config.max_entries,
        },
        sizes=tuple(stop - start for _, start, stop in ranges) or (0,),
        names=tuple(f"{paths[k]} entries {a}–{b - 1}" for k, a, b in ranges) or ("no entries",),
        exact=False,  # the selection decides how many events each shard keeps
    )
    run_shards(
        plan,
        RootShard(tuple(str(p) for p in paths), tree_name, resolved, ranges or ((0, 0, 0),)),
        provenance=make_provenance(
            "simkit.formats.root",
            sources=[source_record(p) for p in paths],
            tree=tree_name,
            mapping=mapping_record,
            entries_read=total,
            uproot=uproot.__version__,
        ),
        jobs=jobs,
        scheduler=scheduler,
        resume=resume,
        keep=keep_shards,
        progress=config.progress,
        desc="root",
        unit="entry",
        preload=("uproot", "awkward", "simkit.formats.root"),
    )
    passed = read_array(output, f"{main}/pass")
    n_events, n_passed = len(passed), int(np.count_nonzero(passed))
    return ImportResult(
        output=Path(output),
        n_events=n_events,
        n_passed=n_passed,
        columns=resolved.levels[main].names,
        layout=f"root:{resolved.name}",
        seconds=time.perf_counter() - t0,
    )
