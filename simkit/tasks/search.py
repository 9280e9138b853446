"""The search as tasks: build a background template in an mjj window (``simkit
template``), and search the data against it, in one window or scanned across mjj
(``simkit search``).

:class:`SearchTaskConfig` is flat, one field per option of ``simkit search``; it builds
the library's :class:`detectors.search.SearchConfig` (whose defaults it takes).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from detectors.scan import SCAN_MIN_COUNT, SCAN_WIDTH_FACTOR
from detectors.search import SearchConfig
from detectors.template import CLASSIFIERS, TemplateClassifierConfig
from detectors.templates import TEMPLATE_KINDS
from simkit.errors import SimkitError
from simkit.regions import SR_COLUMN, SignalRegion
from simkit.tasks.base import Options, option
from simkit.tasks.unfold import GateOptions

_SEARCH = SearchConfig()
_CLASSIFIER = TemplateClassifierConfig()
DEVICES = ("auto", "cpu", "cuda")


def _names(value) -> tuple[str, ...] | None:
    """``"a,b"`` or ``("a", "b")`` → ``("a", "b")``."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    return tuple(v.strip() for v in items if v.strip()) or None


# --------------------------------------------------------------------------- template


@dataclass(frozen=True)
class TemplateConfig(Options):
    """``simkit template``'s settings."""

    POSITIONAL = ("kind",)
    kind: str = option("validated-flow", choices=TEMPLATE_KINDS)
    window: str | None = None  # "LOW:HIGH" (required)
    sideband_width: float | None = _SEARCH.sideband_width
    features: tuple[str, ...] | None = option(None, format="names")
    events: int = 200_000
    flow_epochs: int = 40
    seed: int = 0
    device: str = option("auto", choices=DEVICES)
    progress: bool = option(True, cli=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", _names(self.features))

    def region(self) -> SignalRegion:
        if self.window is None:
            raise SimkitError("give the window, e.g. --window 3300:3700")
        return SignalRegion.parse(self.window, what="--window")


@dataclass(frozen=True)
class TemplateInputs(Options):
    """What a template is made of: a simulation and its (blinded) weights, a flow
    fitted to the simulation, or the data; ``run`` fills the missing ones from a
    ``simkit run`` folder."""

    run: str | None = None
    sim: str | None = None
    weights: str | None = None
    flow: str | None = None
    data: str | None = None

    def resolved(self) -> TemplateInputs:
        if self.run is None:
            return self
        run = Path(self.run)
        if not run.is_dir():
            raise SimkitError(f"{run}: not a run folder")
        return TemplateInputs(
            run=self.run,
            sim=self.sim or str(run / "sim" / "sim.h5"),
            weights=self.weights or f"{run / 'unfold' / 'weights.h5'}:omnifold/pull",
            flow=self.flow or str(run / "surrogate-flow" / "model"),
            data=self.data or str(run / "data" / "data.h5"),
        )


@dataclass
class TemplateResult:
    """The template's events (reco level) and where they came from."""

    table: object = field(repr=False)
    config: TemplateConfig
    inputs: dict
    seconds: float

    def to_dict(self) -> dict:
        return {"template": self.config.kind, "events": len(self.table), **self.inputs}

    def save(self, path) -> Path:
        from simkit.events import Sample
        from simkit.io import make_provenance, write_sample

        region = self.config.region()
        provenance = make_provenance(
            "simkit.template",
            seed=self.config.seed,
            template=self.config.kind,
            window=[region.low, region.high],
            **self.inputs,
        )
        return write_sample(path, Sample(reco=self.table), provenance=provenance)

    def summary_line(self, path) -> str:
        region, mjj = self.config.region(), self.table.column(SR_COLUMN)
        return (
            f"template {self.config.kind}: {len(self.table)} events in {mjj.min():.0f}–"
            f"{mjj.max():.0f} GeV (window {region.low:g}–{region.high:g}) → {path} "
            f"({self.seconds:.1f} s)"
        )


def template(config: TemplateConfig, inputs: TemplateInputs, output=None) -> TemplateResult:
    """Build the template of ``config.kind`` over the window and its sidebands; with
    ``output`` write it as an event file."""
    from detectors.search import search_features
    from detectors.templates import build_template
    from simkit.io import read_sample, read_weights

    t0 = time.perf_counter()
    inputs = inputs.resolved()
    region = config.region()
    kind = config.kind
    used: dict = {}
    sim = weights = flow = data = None

    def need(*names) -> None:
        missing = [f"--{n}" for n in names if getattr(inputs, n) is None]
        if missing:
            raise SimkitError(f"{kind} needs {', '.join(missing)} (or --run RUN_DIR)")

    if kind in ("reweighted-sim", "validated-flow"):
        need("sim", "weights", *(["flow"] if kind == "validated-flow" else []))
        sim = read_sample(inputs.sim, levels=["reco"]).reco
        weights = read_weights(inputs.weights, len(sim))
        used = {"sim": inputs.sim, "weights": inputs.weights}
    if kind == "validated-flow":
        from simkit.surrogates import load_surrogate

        flow = load_surrogate(inputs.flow, device=config.device)
        used["flow"] = inputs.flow
    if kind == "sideband-flow":
        need("data")
        data = read_sample(inputs.data, levels=["reco"]).reco
        used = {"data": inputs.data}
    features = config.features
    if kind == "sideband-flow" and features is None:
        features = search_features(data, data)
    table = build_template(
        kind, region, sideband_width=config.sideband_width, sim=sim, weights=weights,
        flow=flow, data=data, features=None if features is None else list(features),
        events=config.events, seed=config.seed, device=config.device,
        flow_options={"epochs": config.flow_epochs}, progress=config.progress,
    )  # fmt: skip
    result = TemplateResult(table, config, used, time.perf_counter() - t0)
    if output is not None:
        result.save(output)
    return result


# --------------------------------------------------------------------------- search


@dataclass(frozen=True)
class SearchTaskConfig(GateOptions):
    """``simkit search``'s settings (defaults: :class:`detectors.search.SearchConfig`
    and :class:`detectors.template.TemplateClassifierConfig`)."""

    window: str | None = None  # "LOW:HIGH"; or scan
    sideband_width: float | None = _SEARCH.sideband_width
    features: tuple[str, ...] | None = option(None, format="names")
    classifier: str = option(_CLASSIFIER.classifier, choices=CLASSIFIERS)
    folds: int = _CLASSIFIER.folds
    ensemble: int = _CLASSIFIER.ensemble
    oversample: float = _CLASSIFIER.oversample
    efficiencies: tuple[float, ...] = option(_SEARCH.efficiencies, format="names")
    primary: float | None = _SEARCH.primary_efficiency
    bin_width: float = _SEARCH.bin_width
    gate: bool = option(_SEARCH.gate, flag="--no-gate")
    sideband_correction: str = option(
        _SEARCH.sideband_correction, choices=("auto", "always", "never")
    )
    scan: bool = False
    template_kind: str = option("validated-flow", choices=TEMPLATE_KINDS)
    scan_width: float = SCAN_WIDTH_FACTOR
    scan_min_count: int = SCAN_MIN_COUNT
    events: int = 200_000
    seed: int = 0
    device: str = option("auto", choices=DEVICES)
    jobs: int = 1  # local worker processes, each searching whole windows of a scan
    scheduler: str | None = None  # a Dask scheduler for the scan's windows (simkit.shards)
    resume: bool = False
    keep_shards: bool = False
    #: with resume, a shard folder of other settings is replaced instead of refused (the
    #: pipeline: a stage reruns because what it depends on changed)
    replace_other_shards: bool = option(False, cli=False)
    progress: bool = option(True, cli=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "features", _names(self.features))
        object.__setattr__(self, "efficiencies", tuple(float(e) for e in self.efficiencies))
        if self.jobs < 1:
            raise SimkitError(f"--jobs must be 1 or more, got {self.jobs}")

    @property
    def sharded(self) -> bool:
        """Whether a shard option was asked for (they shard a scan's windows)."""
        return self.jobs > 1 or self.scheduler is not None or self.resume or self.keep_shards

    def search_config(self) -> SearchConfig:
        """The library's settings of the search in one window."""
        return SearchConfig(
            features=self.features,
            efficiencies=self.efficiencies,
            primary_efficiency=self.primary,
            bin_width=self.bin_width,
            sideband_width=self.sideband_width,
            gate=self.gate,
            sideband_correction=self.sideband_correction,
            gate_alpha=self.alpha,
            gate_auc_tolerance=self.auc_tolerance,
            gate_chi2_tolerance=self.chi2_tolerance,
            classifier=TemplateClassifierConfig(
                classifier=self.classifier,
                folds=self.folds,
                ensemble=self.ensemble,
                oversample=self.oversample,
                device=self.device,
            ),
        )


@dataclass(frozen=True)
class SearchInputs(Options):
    """The data; a template (one window, or every window of a scan) with optional extra
    weights and, for a scan's resolution, the simulation; or a run folder whose
    template is rebuilt per window; and optionally a labelled signal-only file whose
    events join the ROC (never used in training)."""

    data: str
    template: str | None = None
    template_weights: str | None = None
    sim: str | None = None
    run: str | None = None
    signal: str | None = None


def _template_name(path: str) -> str:
    from simkit.io import inspect

    info = inspect(path)
    return str(info.provenance.get("settings", {}).get("template", Path(path).stem))


def search(
    config: SearchTaskConfig,
    inputs: SearchInputs,
    output=None,
    *,
    unfold: Mapping | None = None,
    flow_model: str | None = None,
):
    """The search in ``config.window``, or scanned across mjj (``config.scan``); returns
    a :class:`detectors.search.SearchResult`, saved in ``output`` when given.

    A scan from ``inputs.run`` rebuilds a template of ``config.template_kind`` in every
    window, with OmniFold blinded to it (``unfold``: :class:`validation.omnifold.OmniFold`
    keyword arguments; ``flow_model``: the flow's folder, default the run's
    ``surrogate-flow/model``). With ``output``, or ``jobs``/``scheduler``, a scan's
    windows run as shards (:mod:`detectors.scan_shards`) into ``OUTPUT/scan.shards/``:
    in this process, in ``jobs`` processes or on a Dask scheduler, the same numbers
    whichever, and ``resume`` continues an interrupted scan."""
    from detectors.scan_shards import FixedTemplate
    from detectors.search import search as search_windows
    from simkit.io import read_sample

    if config.scan:
        result = _scan(config, inputs, unfold, flow_model, output)
    else:
        if config.window is None or inputs.template is None:
            raise SimkitError("give --window and --template (or --scan)")
        if config.sharded:
            raise SimkitError(
                "--jobs, --scheduler, --resume and --keep-shards run a scan's windows as "
                "shards: add --scan (one window is one piece of work)"
            )
        extra_signal = None
        if inputs.signal is not None:
            extra_signal = read_sample(inputs.signal, levels=["reco"]).reco
        region = SignalRegion.parse(config.window, what="--window")
        result = search_windows(
            read_sample(inputs.data, levels=["reco"]).reco,
            FixedTemplate(inputs.template, inputs.template_weights).table(),
            [region],
            config.search_config(),
            template_name=_template_name(inputs.template),
            seed=config.seed,
            progress=config.progress,
            extra_signal=extra_signal,
        )
    if output is not None:
        result.save(output)
        if config.scan and not config.keep_shards:
            # only now: a scan whose plots failed keeps its windows for --resume
            from detectors.scan_shards import SHARDS_NAME

            shutil.rmtree(Path(output) / f"{SHARDS_NAME}.shards", ignore_errors=True)
    return result


def _scan(config, inputs, unfold, flow_model, output):
    """One template for every window (``template``, resolution from ``sim``), or a
    template rebuilt and re-blinded per window from ``run``; the windows in shards when
    there is an output folder or workers, else in memory."""
    import json

    from detectors.scan import mjj_resolution, scan_windows
    from detectors.scan_shards import BlindedTemplates, FixedTemplate, ScanShard
    from simkit.io import read_sample

    if config.window is not None:
        raise SimkitError("--scan chooses its windows: drop --window")
    if config.scheduler is not None:
        from simkit.shards import parse_scheduler

        parse_scheduler(config.scheduler)  # a nonsensical one fails before any work
    if inputs.run is not None:
        run = Path(inputs.run)
        if not run.is_dir():
            raise SimkitError(f"{run}: not a run folder")
        kind = config.template_kind
        sim_path = run / "sim" / "sim.h5"
        flow = None
        if kind == "validated-flow":
            flow = str(flow_model or run / "surrogate-flow" / "model")
        templates = BlindedTemplates(
            kind, data=inputs.data, sim=None if kind == "sideband-flow" else str(sim_path),
            flow=flow, unfold=json.dumps({"device": config.device, **dict(unfold or {})}),
            features=config.features, events=config.events,
            sideband_width=config.sideband_width, seed=config.seed, device=config.device,
        )  # fmt: skip
        # the windows' seeds follow the template's (as detectors.scan.blinded_scan)
        seed, template_name = config.seed + 1, kind
        rule = " (simulation); step half a width"
    else:
        if inputs.template is None or inputs.sim is None:
            raise SimkitError(
                "--scan needs --run RUN_DIR, or --template and --sim (for the mjj resolution)"
            )
        templates = FixedTemplate(inputs.template, inputs.template_weights)
        sim_path = inputs.sim
        seed, template_name = config.seed, _template_name(inputs.template)
        rule = "; one template for every window (not re-blinded)"
    sim = read_sample(sim_path, columns=[SR_COLUMN])
    if sim.gen is None:
        raise SimkitError(f"{sim_path}: has no generator level to measure the resolution with")
    both = sim.gen.passed & sim.reco.passed
    resolution = mjj_resolution(sim.gen.column(SR_COLUMN)[both], sim.reco.column(SR_COLUMN)[both])
    data_mjj = read_sample(inputs.data, levels=["reco"], columns=[SR_COLUMN]).reco
    windows = scan_windows(
        data_mjj.passing().column(SR_COLUMN),
        resolution,
        width_factor=config.scan_width,
        min_count=config.scan_min_count,
        bin_width=config.bin_width,
    )
    width_rule = (
        f"{config.scan_width:g} × σ(m)·m with σ(m)/m = {resolution.a:.4f} + "
        f"{resolution.b:.1f} GeV / m{rule}"
    )
    task = ScanShard(
        data=inputs.data,
        windows=tuple((w.low, w.high) for w in windows),
        templates=templates,
        config=config.search_config(),
        seed=seed,
        signal=inputs.signal,
    )
    options = {"template_name": template_name, "width_rule": width_rule}
    if output is None and config.jobs == 1 and config.scheduler is None:
        result = _scan_in_memory(task, windows, config, options)
    else:
        result = _scan_in_shards(task, config, output, options)
    result.scan["resolution"] = resolution.to_dict()
    return result


def _scan_in_memory(task, windows, config, options):
    """:func:`detectors.scan.scan` in this process: what a library caller without an
    output folder gets (each window's ``fit`` kept)."""
    from detectors.scan import scan
    from simkit.io import read_sample

    signal = None
    if task.signal is not None:
        signal = read_sample(task.signal, levels=["reco"]).reco
    return scan(
        read_sample(task.data, levels=["reco"]).reco,
        task.templates.load(),
        windows,
        task.config,
        seed=task.seed,
        progress=config.progress,
        extra_signal=signal,
        **options,
    )


def _scan_in_shards(task, config, output, options):
    import tempfile

    from detectors.scan_shards import scan_in_shards

    execution = {
        "jobs": config.jobs,
        "scheduler": config.scheduler,
        "progress": config.progress,
        **options,
    }
    if output is None:  # workers but nowhere to keep their windows: a scratch folder
        with tempfile.TemporaryDirectory(prefix="simkit-scan-") as folder:
            return scan_in_shards(task, folder, **execution)
    Path(output).mkdir(parents=True, exist_ok=True)
    return scan_in_shards(
        task,
        output,
        resume=config.resume,
        replace_other=config.replace_other_shards,
        keep=True,  # removed by search() once metrics.json and the plots are written
        **execution,
    )
