"""The reference simulation: Pythia 8 → parametric detector → FastJet → dijet features.

Two processes at √s = 13 TeV, both without multiparton interactions by default (as in
the LHC Olympics 2020 R&D set) and with hadronization:

- ``qcd-dijet`` (label 0): ``HardQCD:all`` with pT-hat above ``pthat_min`` (1100 GeV:
  about 70 % of the events then have a leading jet above the 1.2 TeV selection, and
  events below pT-hat 1100 GeV almost never pass it);
- ``wprime-xy`` (label 1): W' → X Y, X and Y → q q̄. Pythia's W' (PDG 34) with
  ``Wprime:coup2WZ = 1`` decays to W Z only, and the W and Z masses are reset to mX and
  mY with quark decays only (top excluded): the LHC Olympics recipe.

Events are generated in *shards* of a fixed size; shard *i* seeds Pythia and the detector
from ``(seed, process, tune, i)`` only, so the same seed and event count give the same
events whatever runs the shards: this process, local worker processes, or a Dask
cluster. Each shard is an event file of its own, merged in shard order at the end
(:mod:`simkit.shards`), so memory stays bounded and an interrupted run resumes.

>>> sample = generate("qcd-dijet", 50, seed=1)  # doctest: +SKIP
>>> sample.reco.passing().column("mjj")  # doctest: +SKIP
"""

from __future__ import annotations

import collections
import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from simkit.errors import SimkitError
from simkit.events import EventTable, Sample

if TYPE_CHECKING:  # the chain's modules import awkward, vector, fastjet: loaded when used,
    # so that `simkit --help` and the tune list stay fast
    from simkit.generators.detector import Detector, Particles

#: √s in GeV.
ECM = 13000.0
#: Events per shard unless asked otherwise; part of what fixes the events of a seed.
SHARD_SIZE = 1000
#: Events per ``Pythia.nextBatch`` call inside a shard (bounds a worker's memory).
BATCH_SIZE = 250
#: Pythia's ``Random:seed`` range.
MAX_PYTHIA_SEED = 900_000_000


@dataclass(frozen=True)
class Tune:
    pp: int  # Pythia's Tune:pp number
    description: str


#: Pythia 8 tunes by name (numbers from Pythia's "Tunes" manual page). The A14 variations
#: are the eigentune pairs of ATL-PHYS-PUB-2014-021 around the NNPDF2.3LO central tune.
TUNES: dict[str, Tune] = {
    "monash": Tune(14, "Monash 2013 (Pythia's default), NNPDF2.3 QCD+QED LO"),
    "a14": Tune(21, "ATLAS A14 central tune, NNPDF2.3 LO"),
    "a14-cteq6l1": Tune(19, "ATLAS A14 central tune, CTEQ6L1"),
    "a14-mstw2008lo": Tune(20, "ATLAS A14 central tune, MSTW2008LO"),
    "a14-var1-up": Tune(23, "A14 variation 1+ (MPI αs 0.131, colour reconnection)"),
    "a14-var1-down": Tune(24, "A14 variation 1− (MPI αs 0.121, colour reconnection)"),
    "a14-var2-up": Tune(25, "A14 variation 2+ (FSR αs 0.139)"),
    "a14-var2-down": Tune(26, "A14 variation 2− (FSR αs 0.111)"),
    "a14-var3a-up": Tune(27, "A14 variation 3a+ (FSR αs 0.136, ISR damping)"),
    "a14-var3a-down": Tune(28, "A14 variation 3a− (FSR αs 0.124, ISR damping)"),
    "a14-var3b-up": Tune(29, "A14 variation 3b+ (FSR αs 0.114, ISR αs 0.129)"),
    "a14-var3b-down": Tune(30, "A14 variation 3b− (FSR αs 0.138, ISR αs 0.126)"),
    "a14-var3c-up": Tune(31, "A14 variation 3c+ (ISR αs 0.140)"),
    "a14-var3c-down": Tune(32, "A14 variation 3c− (ISR αs 0.115)"),
    "cms-cuetp8m1": Tune(18, "CMS CUETP8M1 (Monash*), NNPDF2.3 LO"),
}
DEFAULT_TUNE = "monash"


@dataclass(frozen=True)
class Process:
    label: int  # 0 = SM background, 1 = signal
    key: int  # enters the shard seeds, so that processes never share random streams
    defaults: dict = field(default_factory=dict)
    description: str = ""


PROCESSES: dict[str, Process] = {
    "qcd-dijet": Process(
        label=0,
        key=1,
        defaults={"pthat_min": 1100.0, "mpi": False},
        description="QCD dijets (HardQCD:all), pT-hat > pthat_min",
    ),
    "wprime-xy": Process(
        label=1,
        key=2,
        defaults={"mwprime": 3500.0, "mx": 500.0, "my": 100.0, "mpi": False},
        description="W' → X Y with X, Y → q q̄ (LHC Olympics 2020 R&D signal)",
    ),
}

#: Settings shared by every process. Particles with cτ > 10 mm are stable: the usual
#: definition of a stable generator-level particle at the LHC.
COMMON_SETTINGS = (
    f"Beams:eCM = {ECM:g}",
    "ParticleDecays:limitTau0 = on",
    "ParticleDecays:tau0Max = 10",
    "Print:quiet = on",
)


# --------------------------------------------------------------------------- settings


def _check_options(process: str, options: dict) -> dict:
    if process not in PROCESSES:
        raise SimkitError(f"unknown process {process!r}; processes are: {', '.join(PROCESSES)}")
    defaults = PROCESSES[process].defaults
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise SimkitError(
            f"{process} has no option {', '.join(unknown)}; its options are: {', '.join(defaults)}"
        )
    merged = {**defaults, **{k: v for k, v in options.items() if v is not None}}
    for name, value in merged.items():
        if name == "mpi":
            merged[name] = bool(value)
            continue
        value = float(value)
        if not math.isfinite(value) or value <= 0:
            raise SimkitError(f"{process}: {name} must be a positive number of GeV, got {value}")
        merged[name] = value
    if process == "wprime-xy" and merged["mx"] + merged["my"] >= merged["mwprime"]:
        raise SimkitError(
            f"wprime-xy: mX + mY = {merged['mx'] + merged['my']:g} GeV must be below "
            f"mW' = {merged['mwprime']:g} GeV for W' → X Y to be open"
        )
    return merged


def process_settings(process: str, **options) -> list[str]:
    """The Pythia settings of one process (tune and seed not included)."""
    opts = _check_options(process, options)
    mpi = [] if opts["mpi"] else ["PartonLevel:MPI = off"]
    if process == "qcd-dijet":
        return ["HardQCD:all = on", f"PhaseSpace:pTHatMin = {opts['pthat_min']:g}", *mpi]
    # W' (34) → W (24) Z (23), the W and Z masses moved to mX and mY, quark decays only
    hadronic = ["onMode = off", "onIfAny = 1 2 3 4 5", "offIfAny = 6"]
    return [
        "NewGaugeBoson:ffbar2Wprime = on",
        "Wprime:coup2WZ = 1",
        f"34:m0 = {opts['mwprime']:g}",
        "34:onMode = off",
        "34:onIfMatch = 24 23",
        f"24:m0 = {opts['mx']:g}",
        *[f"24:{s}" for s in hadronic],
        f"23:m0 = {opts['my']:g}",
        *[f"23:{s}" for s in hadronic],
        *mpi,
    ]


def pythia_settings(process: str, tune: str = DEFAULT_TUNE, **options) -> list[str]:
    """Every Pythia setting of a run except the seed, in the order they are read.

    The tune comes first: ``Tune:pp`` resets the parameters it owns.
    """
    if tune not in TUNES:
        raise SimkitError(f"unknown tune {tune!r}; tunes are: {', '.join(TUNES)}")
    return [f"Tune:pp = {TUNES[tune].pp}", *COMMON_SETTINGS, *process_settings(process, **options)]


def _pythia(settings: Sequence[str], seed: int | None = None):
    """A Pythia instance with ``settings`` read, every one checked; initialized if seeded."""
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)  # no banner
    lines = list(settings)
    if seed is not None:
        lines += ["Random:setSeed = on", f"Random:seed = {seed}"]
    for line in lines:
        if not pythia.readString(line):
            raise SimkitError(f"Pythia refused the setting {line!r}")
    if seed is not None and not pythia.init():
        raise SimkitError("Pythia failed to initialize with settings: " + "; ".join(settings))
    return pythia


def shard_sizes(n_events: int, shard_size: int = SHARD_SIZE) -> list[int]:
    """The events of each shard: ``shard_size`` each, the rest in the last one."""
    full, rest = divmod(n_events, shard_size)
    return [shard_size] * full + ([rest] if rest else [])


def shard_seeds(
    seed: int, process: str, tune: str, shard: int
) -> tuple[int, np.random.SeedSequence]:
    """Pythia's seed (1..900000000) and the detector's seed sequence of one shard.

    Derived from (seed, process, tune, shard) through ``numpy.random.SeedSequence``, so
    shards, processes and tunes never share a random stream, while the detector knobs
    (``jes``, ``jer``) do not enter: the same seed gives the same particles through a
    differently calibrated detector.
    """
    root = np.random.SeedSequence([seed, PROCESSES[process].key, TUNES[tune].pp, shard])
    pythia_seq, detector_seq = root.spawn(2)
    pythia_seed = int(pythia_seq.generate_state(1, np.uint64)[0] % MAX_PYTHIA_SEED) + 1
    return pythia_seed, detector_seq


# --------------------------------------------------------------------------- one shard


@dataclass(frozen=True)
class Run:
    """Everything a worker needs to simulate a shard (picklable)."""

    process: str
    tune: str
    seed: int
    settings: tuple[str, ...]
    detector: Detector
    min_pt: float
    batch_size: int = BATCH_SIZE


@dataclass
class Shard:
    """The simulated events of one shard, with how long each stage took."""

    index: int
    gen_features: np.ndarray
    gen_pass: np.ndarray
    reco_features: np.ndarray
    reco_pass: np.ndarray
    sigma_mb: float  # Pythia's cross-section estimate after this shard
    sigma_error_mb: float
    seconds: dict[str, float]

    def __len__(self) -> int:
        return len(self.gen_pass)


class _ParticleTable:
    """Charge and visibility of PDG codes, looked up in Pythia's particle data once each."""

    def __init__(self, pythia) -> None:
        self._data = pythia.particleData
        self._known: dict[int, tuple[float, bool]] = {}

    def lookup(self, pid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        codes, where = np.unique(pid, return_inverse=True)
        for code in codes.tolist():
            if code not in self._known:
                self._known[code] = (self._data.charge(code), self._data.isVisible(code))
        charge = np.array([self._known[c][0] for c in codes.tolist()], dtype=np.float64)
        visible = np.array([self._known[c][1] for c in codes.tolist()], dtype=bool)
        return charge[where], visible[where]


def visible_final_state(batch, table: _ParticleTable) -> Particles:
    """The visible final-state particles (status > 0, neutrinos and other invisibles
    removed) of a ``Pythia.nextBatch`` Awkward array, as flat arrays."""
    import awkward as ak

    from simkit.generators.detector import Particles

    particles = batch.prt
    final = particles[particles.status > 0]
    p = final.p
    pid = ak.to_numpy(ak.flatten(final.id)).astype(np.int64)
    charge, visible = table.lookup(pid)
    everything = Particles.from_arrays(
        px=ak.to_numpy(ak.flatten(p.px)),
        py=ak.to_numpy(ak.flatten(p.py)),
        pz=ak.to_numpy(ak.flatten(p.pz)),
        e=ak.to_numpy(ak.flatten(p.e)),
        pid=pid,
        charge=charge,
        counts=ak.to_numpy(ak.num(final)),
    )
    return everything.select(visible)


def simulate_shard(run: Run, index: int, n_events: int) -> Shard:
    """Generate, detect and cluster the ``n_events`` of shard ``index``."""
    from simkit.generators import jets
    from simkit.generators.detector import jet_response, simulate

    seconds = {"generation": 0.0, "detector": 0.0, "clustering_features": 0.0}
    t0 = time.perf_counter()
    pythia_seed, detector_seq = shard_seeds(run.seed, run.process, run.tune, index)
    pythia = _pythia(run.settings, pythia_seed)
    rng = np.random.default_rng(detector_seq)
    table = _ParticleTable(pythia)
    seconds["generation"] += time.perf_counter() - t0

    out: dict[str, list[np.ndarray]] = collections.defaultdict(list)
    remaining, empty_batches = n_events, 0
    while remaining > 0:
        t0 = time.perf_counter()
        batch = pythia.nextBatch(min(run.batch_size, remaining), "skip")
        if len(batch) == 0:
            empty_batches += 1
            if empty_batches >= 3:
                raise SimkitError(
                    f"Pythia failed to generate {run.process} events (three empty batches)"
                )
            continue
        remaining -= len(batch)
        particles = visible_final_state(batch, table)
        t1 = time.perf_counter()
        gen_features, gen_pass = jets.dijet_features(jets.cluster(particles), min_pt=run.min_pt)
        t2 = time.perf_counter()
        objects = simulate(particles, rng, run.detector)
        t3 = time.perf_counter()
        reco_jets = jets.cluster(objects)
        t4 = time.perf_counter()
        reco_jets = reco_jets.scaled(jet_response(reco_jets.n_jets, rng, run.detector))
        t5 = time.perf_counter()
        reco_features, reco_pass = jets.dijet_features(reco_jets, min_pt=run.min_pt)
        t6 = time.perf_counter()
        seconds["generation"] += t1 - t0
        seconds["detector"] += (t3 - t2) + (t5 - t4)
        seconds["clustering_features"] += (t2 - t1) + (t4 - t3) + (t6 - t5)
        out["gen_features"].append(gen_features)
        out["gen_pass"].append(gen_pass)
        out["reco_features"].append(reco_features)
        out["reco_pass"].append(reco_pass)
    info = pythia.infoPython()
    return Shard(
        index=index,
        **{name: np.concatenate(parts) for name, parts in out.items()},
        sigma_mb=float(info.sigmaGen()),
        sigma_error_mb=float(info.sigmaErr()),
        seconds=seconds,
    )


@dataclass(frozen=True)
class ShardTask:
    """Simulate shard ``index`` and write it as an event file (picklable, for workers).

    The file's provenance holds the shard's cross-section estimate and timings; the
    merged file's cross-section is averaged from them.
    """

    run: Run
    sizes: tuple[int, ...]

    def __call__(self, index: int, path: Path) -> None:
        from simkit.generators import jets
        from simkit.io import SampleWriter

        cpu = time.process_time()
        shard = simulate_shard(self.run, index, self.sizes[index])
        label = PROCESSES[self.run.process].label
        provenance = {
            "shard": index,
            "events": len(shard),
            "sigma_mb": shard.sigma_mb,
            "sigma_error_mb": shard.sigma_error_mb,
            "seconds": shard.seconds,  # wall time of each stage
            "cpu_seconds": time.process_time() - cpu,  # what the shard cost, whatever the load
        }
        with SampleWriter(
            path,
            levels={"gen": jets.COLUMNS, "reco": jets.COLUMNS},
            units={"gen": jets.UNITS, "reco": jets.UNITS},
            labels=True,
            provenance=provenance,
        ) as writer:
            writer.append(Sample(**_tables(shard, label)))


def cross_section(shards: Sequence[dict]) -> dict[str, float]:
    """The run's cross-section (pb) and its error, event-weighted over the shards'
    Pythia estimates (``sigma_mb``, ``sigma_error_mb``, ``events`` of each)."""
    n = np.array([s["events"] for s in shards], dtype=np.float64)
    sigma = np.array([s["sigma_mb"] for s in shards])
    error = np.array([s["sigma_error_mb"] for s in shards])
    mb_to_pb = 1e9
    return {
        "cross_section_pb": float(np.sum(n * sigma) / n.sum() * mb_to_pb),
        "cross_section_error_pb": float(np.sqrt(np.sum((n * error) ** 2)) / n.sum() * mb_to_pb),
    }


# --------------------------------------------------------------------------- the API


def _tables(shard: Shard, label: int) -> dict[str, EventTable]:
    from simkit.generators import jets

    n = len(shard)
    common = {
        "columns": jets.COLUMNS,
        "weights": np.ones(n),
        "labels": np.full(n, label, np.int8),
        "units": jets.UNITS,
    }
    return {
        "gen": EventTable(features=shard.gen_features, passed=shard.gen_pass, **common),
        "reco": EventTable(features=shard.reco_features, passed=shard.reco_pass, **common),
    }


def _check_count(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise SimkitError(f"{name} must be a whole number ≥ {minimum}, got {value!r}")
    return int(value)


def generate(
    process: str,
    n_events: int,
    seed: int,
    *,
    tune: str = DEFAULT_TUNE,
    jobs: int = 1,
    output: str | Path | None = None,
    progress: bool = False,
    detector: Detector | None = None,
    jes: float | None = None,
    jer: float | None = None,
    min_pt: float | None = None,
    shard_size: int = SHARD_SIZE,
    scheduler=None,
    resume: bool = False,
    keep_shards: bool = False,
    replace_other_shards: bool = False,
    **process_options,
) -> Sample | Path:
    """Simulate ``n_events`` events of ``process`` at generator and detector level.

    Returns the :class:`~simkit.events.Sample` (levels ``gen`` and ``reco``, columns
    :data:`simkit.generators.jets.COLUMNS`, labels 0/1) when ``output`` is None, else
    streams the shards into that event file and returns its path. ``jes``/``jer`` set those
    fields of ``detector`` (default :class:`Detector`); ``process_options`` are the
    process's (``pthat_min``, ``mpi`` for qcd-dijet; ``mwprime``, ``mx``, ``my``, ``mpi``
    for wprime-xy); ``min_pt`` is the leading-jet pT threshold of the selection (default
    1200 GeV).

    Shards (``shard_size`` events each) run in this process, in ``jobs`` worker
    processes, or on a Dask ``scheduler`` (``"local:N"``, ``"tcp://HOST:PORT"``, a
    ``distributed.Client`` or cluster; see :mod:`simkit.shards`). Each is written as an
    event file into ``OUTPUT.shards/`` and merged at the end, so the same ``seed``,
    ``n_events`` and ``shard_size`` give the same bytes whatever ran them, and
    ``resume=True`` after an interruption runs only the shards not yet written (with
    ``replace_other_shards``, shards of other settings are replaced instead of refused).
    """
    import tempfile

    from simkit.generators import jets
    from simkit.generators.detector import Detector
    from simkit.io import make_provenance, read_sample
    from simkit.shards import ShardPlan, events_name, run_shards

    min_pt = jets.MIN_LEADING_PT if min_pt is None else min_pt

    n_events = _check_count("the number of events", n_events)
    seed = _check_count("the seed", seed, minimum=0)
    jobs = _check_count("the number of jobs", jobs)
    shard_size = _check_count("the shard size", shard_size)
    if not (math.isfinite(min_pt) and min_pt > 0):
        raise SimkitError(f"the leading-jet pT threshold must be positive, got {min_pt}")
    settings = pythia_settings(process, tune, **process_options)
    _pythia(settings)  # every setting checked here, before any worker starts
    detector = detector or Detector()
    knobs = {k: v for k, v in (("jes", jes), ("jer", jer)) if v is not None}
    if knobs:
        detector = replace(detector, **knobs)
    options = _check_options(process, process_options)
    run = Run(process, tune, seed, tuple(settings), detector, float(min_pt))
    sizes = tuple(shard_sizes(n_events, shard_size))
    label = PROCESSES[process].label
    provenance = make_provenance(
        "simkit.generators.pythia",
        seed=seed,
        process=process,
        label=label,
        events=n_events,
        tune=tune,
        tune_pp=TUNES[tune].pp,
        process_options=options,
        pythia_settings=settings,
        seeding="per shard i: numpy SeedSequence([seed, process key, Tune:pp, i]).spawn(2) "
        "-> Random:seed, detector generator",
        process_key=PROCESSES[process].key,
        shard_size=shard_size,
        detector=detector.as_dict(),
        jets={
            "algorithm": "anti-kT",
            "radius": jets.JET_RADIUS,
            "min_jet_pt": jets.MIN_JET_PT,
            "nsubjettiness": "beta=1, normalized with R0=1.0, WTA exclusive-kT axes",
        },
        min_pt=float(min_pt),
    )
    starts = np.cumsum((0, *sizes))
    common = {
        "fingerprint": {"seed": seed, **provenance["settings"]},
        "sizes": sizes,
        "names": tuple(events_name(int(a), int(b)) for a, b in itertools.pairwise(starts)),
    }
    execution = {
        "provenance": provenance,
        "finish": cross_section,
        "jobs": jobs,
        "scheduler": scheduler,
        "progress": progress,
        "desc": process,
        "preload": ("pythia8mc", "simkit.generators.jets", "simkit.generators.pythia"),
    }
    task = ShardTask(run, sizes)
    if output is not None:
        plan = ShardPlan(Path(output), **common)
        return run_shards(
            plan,
            task,
            resume=resume,
            keep=keep_shards,
            replace_other=replace_other_shards,
            **execution,
        )
    with tempfile.TemporaryDirectory(prefix="simkit-generate-") as folder:
        plan = ShardPlan(Path(folder) / f"{process}.h5", **common)
        return read_sample(run_shards(plan, task, **execution))


def measure_rate(
    n_events: int = 1000, seed: int = 0, process: str = "qcd-dijet", **options
) -> dict[str, float]:
    """Events per second of the chain in this process (one job), stage by stage.

    Keys: ``events``, ``seconds``, ``generation_per_s`` (Pythia, initialization
    included), ``detector_per_s``, ``clustering_features_per_s`` (both levels) and
    ``end_to_end_per_s`` (wall time of everything). Used by the benchmarks, and by the
    surrogates to compare their sampling rate with the reference simulation's.
    """
    from simkit.generators import jets
    from simkit.generators.detector import Detector

    n_events = _check_count("the number of events", n_events)
    tune = options.pop("tune", DEFAULT_TUNE)
    detector = options.pop("detector", None) or Detector()
    min_pt = options.pop("min_pt", jets.MIN_LEADING_PT)
    shard_size = options.pop("shard_size", SHARD_SIZE)
    settings = pythia_settings(process, tune, **options)
    run = Run(process, tune, seed, tuple(settings), detector, float(min_pt))
    totals = {"generation": 0.0, "detector": 0.0, "clustering_features": 0.0}
    t0 = time.perf_counter()
    for i, n in enumerate(shard_sizes(n_events, shard_size)):
        shard = simulate_shard(run, i, n)
        for stage, seconds in shard.seconds.items():
            totals[stage] += seconds
    wall = time.perf_counter() - t0
    return {
        "events": n_events,
        "seconds": wall,
        "generation_per_s": n_events / totals["generation"],
        "detector_per_s": n_events / totals["detector"],
        "clustering_features_per_s": n_events / totals["clustering_features"],
        "end_to_end_per_s": n_events / wall,
    }
