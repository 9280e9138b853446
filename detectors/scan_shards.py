"""The scan's windows as shards: each window searched anywhere, from files, resumably.

A scan (:func:`detectors.scan.scan`) searches every mjj window in turn: a template
blinded to the window (OmniFold refitted without it), then the k-fold × ensemble
template classifier. At the LHC Olympics' size a window costs minutes to tens of minutes,
and a scan of about 14 windows hours. :func:`scan_in_shards` runs each window as one
shard of :mod:`simkit.shards`:

- the shard's work is a :class:`ScanShard`, a picklable description made of settings and
  *file* paths (the data, the template or the run's simulation and flow), so that local
  worker processes (``jobs``) and Dask workers (``scheduler``) can run it; what does not
  depend on the window (the events read, the flow's events drawn once with a fixed
  seed) is made once per process;
- window ``i`` keeps the seed ``seed + 1000 i`` of the in-memory scan and runs with one
  thread, so its result does not depend on who ran it or next to what;
- its result is written atomically as ``scan.shards/shard-0000i.h5`` in the output
  folder (:meth:`detectors.search.WindowResult.save`: arrays as datasets, the rest JSON),
  with the folder's ``plan.json`` saying what made it: ``resume=True`` after a kill or a
  pre-emption reruns only the missing windows, and refuses a folder made with other
  settings in one line.

The same seed and files give the same ``metrics.json`` whichever ran the windows: this
process, ``jobs`` processes or a Dask cluster.

>>> task = ScanShard(data="data.h5", windows=((3000.0, 3400.0), (3200.0, 3640.0)),
...                  templates=FixedTemplate("template.h5"), config=SearchConfig())
>>> result = scan_in_shards(task, "search/", jobs=2)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from detectors.labels import SR_COLUMN, SignalRegion
from detectors.search import WINDOW_FORMAT, SearchConfig, SearchResult, WindowResult
from simkit.errors import SimkitError
from simkit.events import EventTable

#: The shard folder's stem in a scan's output folder: ``scan.shards/``.
SHARDS_NAME = "scan"

# What one worker process has read or drawn (events, a template maker holding the flow's
# events): made once for all the windows it runs, keyed by the files' identities
_CACHE: dict[tuple, object] = {}


def _identity(path: str | None) -> dict | list | None:
    """What tells one version of an input from another, cheaply (a folder: its files)."""
    if path is None:
        return None
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
        return [_identity(str(f)) for f in files]
    try:
        stat = os.stat(p)
    except OSError:
        raise SimkitError(f"{p}: input of the scan is missing") from None
    return {"path": str(p), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _cached(key: tuple, files: list[str], make: Callable[[], object]):
    """``make()``, once per process for ``key`` and these versions of ``files``."""
    key = (*key, json.dumps([_identity(p) for p in files], sort_keys=True))
    if key not in _CACHE:
        if len(_CACHE) >= 4:  # a long-lived worker that serves several scans
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = make()
    return _CACHE[key]


def _reco(path: str):
    """The reco level of an event file as a Sample, read once per process."""
    from simkit.io import read_sample

    return _cached(("reco", path), [path], lambda: read_sample(path, levels=["reco"]))


def _absolute(path: str | None) -> str | None:
    # workers may run in another folder: they get absolute paths
    return None if path is None else os.path.abspath(path)


@dataclass(frozen=True)
class FixedTemplate:
    """One template event file for every window (not re-blinded); ``weights``: extra
    per-event weights, ``FILE.h5:DATASET``."""

    path: str
    weights: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", _absolute(self.path))

    def files(self) -> list[str]:
        spec = None if self.weights is None else self.weights.rsplit(":", 1)[0]
        return [p for p in (self.path, spec) if p is not None]

    def table(self) -> EventTable:
        """The template's reco events, its weights times the extra ones."""
        from simkit.io import read_sample, read_weights

        table = read_sample(self.path, levels=["reco"]).reco
        if self.weights:
            table = table.with_weights(table.weights * read_weights(self.weights, len(table)))
        return table

    def load(self) -> Callable[[SignalRegion], EventTable]:
        """``template_for(window)``: the same table for every window."""
        table = self.table()
        return lambda window: table


@dataclass(frozen=True)
class BlindedTemplates:
    """A template of ``kind`` rebuilt in every window, blinded to it
    (:func:`detectors.scan.window_templates`), from files: the simulation ``sim`` (gen and
    reco; validated-flow, reweighted-sim), the data ``data`` (reco), the flow's folder
    ``flow`` (validated-flow). ``unfold``: OmniFold's keyword arguments, as JSON text."""

    kind: str
    data: str
    sim: str | None = None
    flow: str | None = None
    unfold: str = "{}"
    features: tuple[str, ...] | None = None
    events: int = 200_000
    sideband_width: float | None = None
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("data", "sim", "flow"):
            object.__setattr__(self, name, _absolute(getattr(self, name)))
        if self.features is not None:
            object.__setattr__(self, "features", tuple(self.features))
        json.loads(self.unfold)  # JSON text, so that the task stays hashable and picklable

    def files(self) -> list[str]:
        return [p for p in (self.data, self.sim, self.flow) if p is not None]

    def load(self) -> Callable[[SignalRegion], EventTable]:
        """``template_for(window)`` (:func:`detectors.scan.window_templates`); the flow's
        events are drawn here, once, with the template's seed."""
        from detectors.scan import window_templates
        from simkit.io import read_sample

        sim = flow = None
        if self.kind != "sideband-flow":
            sim = read_sample(self.sim)
        if self.kind == "validated-flow":
            from simkit.surrogates import load_surrogate

            flow = load_surrogate(self.flow, device=self.device)
        return window_templates(
            self.kind, sim=sim, data=_reco(self.data), flow=flow,
            unfold=json.loads(self.unfold), features=self.features, events=self.events,
            sideband_width=self.sideband_width, seed=self.seed, device=self.device,
        )  # fmt: skip


@dataclass(frozen=True)
class ScanShard:
    """Search window ``index`` of a scan and write its result (picklable: sent to worker
    processes). ``windows`` are ``(low, high)`` in mjj; window ``i`` is searched with the
    seed ``seed + 1000 i`` (as :func:`detectors.scan.scan` does) against the template
    ``templates`` makes for it; ``signal``: a labelled signal-only event file whose
    events join the ROC."""

    data: str
    windows: tuple[tuple[float, float], ...]
    templates: FixedTemplate | BlindedTemplates
    config: SearchConfig
    seed: int = 0
    signal: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", _absolute(self.data))
        object.__setattr__(self, "signal", _absolute(self.signal))
        windows = tuple((float(lo), float(hi)) for lo, hi in self.windows)
        object.__setattr__(self, "windows", windows)
        if not windows:
            raise SimkitError("no window to scan")

    def window(self, index: int) -> SignalRegion:
        return SignalRegion(SR_COLUMN, *self.windows[index])

    def fingerprint(self) -> dict:
        """Everything that fixes the windows' results (for ``plan.json``), flat so that
        a refused resume names the setting that changed."""
        config = self.config.to_dict()
        classifier = config.pop("classifier")
        return {
            "scan": "search windows",
            "data": _identity(self.data),
            "signal": _identity(self.signal),
            "windows": [list(w) for w in self.windows],
            "seed": self.seed,
            "template": type(self.templates).__name__,
            **{f"template_{k}": v for k, v in asdict(self.templates).items()},
            "template_files": [_identity(p) for p in self.templates.files()],
            **config,
            **{f"classifier_{k}": v for k, v in classifier.items()},
        }

    def __call__(self, index: int, path: Path) -> None:
        from threadpoolctl import threadpool_limits

        from detectors.search import search_window
        from simkit.nn import cpu_threads

        window = self.window(index)
        # one thread in every runner: the numbers must not depend on who ran the window
        with threadpool_limits(1), cpu_threads(1, "cpu"):
            templates = self.templates
            template_for = _cached(("templates", templates), templates.files(), templates.load)
            signal = None if self.signal is None else _reco(self.signal).reco
            result = search_window(
                _reco(self.data).reco,
                template_for(window),
                window,
                self.config,
                seed=self.seed + 1000 * index,
                extra_signal=signal,
            )
        result.save(path, provenance={"shard": index, "window": list(self.windows[index])})


def is_window_file(path: Path, index: int) -> bool:
    """``path`` is a complete window result and says it is shard ``index``."""
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            if fh.attrs.get("format") != WINDOW_FORMAT:
                return False
            return json.loads(fh["provenance"].asstr()[()]).get("shard") == index
    except (OSError, KeyError, ValueError):
        return False


def scan_plan(task: ScanShard, folder: str | os.PathLike):
    """The :class:`simkit.shards.ShardPlan` of ``task``'s windows in ``folder``
    (``folder/scan.shards/``), one shard per window."""
    from simkit.shards import ShardPlan

    return ShardPlan(
        Path(folder) / SHARDS_NAME,
        task.fingerprint(),
        sizes=(1,) * len(task.windows),
        names=tuple(f"window {lo:g}–{hi:g} GeV" for lo, hi in task.windows),
        exact=False,
        validate=is_window_file,
    )


def scan_in_shards(
    task: ScanShard,
    folder: str | os.PathLike,
    *,
    template_name: str = "template",
    width_rule: str = "as given",
    mean_upcrossings: float | None = None,
    jobs: int = 1,
    scheduler=None,
    resume: bool = False,
    replace_other: bool = False,
    keep: bool = False,
    progress: bool = False,
) -> SearchResult:
    """Every window of ``task`` as one shard (see the module), run in this process, in
    ``jobs`` local processes or on a Dask ``scheduler`` (:func:`simkit.shards.execute`),
    then the scan's result as :func:`detectors.scan.scan` returns it (the windows' ``fit``
    is None: the models stay where they ran). The shards go to ``folder/scan.shards/``,
    removed at the end unless ``keep``; ``resume`` reruns only the windows not there.
    """
    from detectors.scan import scan_result
    from simkit.shards import execute

    plan = scan_plan(task, folder)
    try:
        execute(
            plan,
            task,
            jobs=jobs,
            scheduler=scheduler,
            resume=resume,
            replace_other=replace_other,
            progress=progress,
            desc="scan",
            unit="window",
            preload=("torch", "sklearn.ensemble", "detectors.scan_shards"),
        )
    finally:
        _CACHE.clear()  # this process ran windows too: let their events go
    results = [WindowResult.load(plan.path(i)) for i in range(len(plan))]
    if not keep:
        shutil.rmtree(plan.folder, ignore_errors=True)
    return scan_result(
        results,
        task.config,
        template_name=template_name,
        mean_upcrossings=mean_upcrossings,
        width_rule=width_rule,
    )
