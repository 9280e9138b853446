"""Benchmark: anomaly detectors on the reference simulation, LHC Olympics style.

QCD dijets against W'(3500) → X(500) Y(100), both from the Pythia 8 chain
(``simkit.generators.pythia``). Three samples, all reco level, passing events only:

- *data*: half of the QCD events plus ``--injected`` signal events, labels hidden from
  every strategy but ``truth``; the label strategies choose training events from it;
- *supervised*: the same QCD events plus a separate labelled signal sample, for the
  supervised classifier (the upper bound);
- *test*: the other half of the QCD events plus ``--signal-test`` signal events.

For AE and VAE with each label option (all, sideband, tag-and-probe, truth), CWoLa
(classifier, sideband) and the supervised classifier (truth): AUC and max SIC on the
test events in the signal region 3.3 ≤ mjj < 3.7 TeV (the LHC Olympics convention),
ε_S at ε_B = 1e-2 and 1e-3, and the training throughput. Generated samples are cached
in ``runs/cache/detectors/`` (``runs/`` is git-ignored).

    python benchmarks/detectors.py --quick        # a smoke run (a few minutes here)
    python benchmarks/detectors.py                # the full run (sizes are flags)
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# This file has the name of the package it benchmarks: keep its own folder off the path,
# or `import detectors` would import this script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from detectors.evaluate import performance  # noqa: E402
from detectors.labels import SignalRegion, choose  # noqa: E402
from detectors.train import Detector  # noqa: E402
from simkit.events import EventTable  # noqa: E402
from simkit.io import read_sample, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "runs" / "cache" / "detectors"
RUNS = (
    ("ae", "all"),
    ("ae", "sideband"),
    ("ae", "tag-and-probe"),
    ("ae", "truth"),
    ("vae", "all"),
    ("vae", "sideband"),
    ("vae", "tag-and-probe"),
    ("vae", "truth"),
    ("classifier", "sideband"),  # CWoLa
    ("classifier", "truth"),  # supervised: the upper bound
)
SIZES = {  # full, quick
    "qcd_events": (60000, 8000),
    "signal_events": (8000, 2000),
    "injected": (400, 100),
    "signal_test": (2500, 800),
    "epochs": (100, 20),
}


def parser(description: str = __doc__) -> argparse.ArgumentParser:
    """The options that make the samples (and train the detectors); other benchmarks on
    the same events add theirs to it (``benchmarks/detectors_vs_pyod.py``)."""
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    p.add_argument("--qcd-events", type=int, help="QCD events generated (half data, half test)")
    p.add_argument("--signal-events", type=int, help="W' → XY events generated")
    p.add_argument("--injected", type=int, help="signal events injected into the data")
    p.add_argument("--signal-test", type=int, help="signal events in the test sample")
    p.add_argument("--epochs", type=int, help="maximum epochs (early stopping, patience 10)")
    p.add_argument("--qcd-file", help="use this qcd-dijet event file instead of generating")
    p.add_argument("--signal-file", help="use this wprime-xy event file instead of generating")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--jobs", type=int, default=2, help="Pythia worker processes")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads while training")
    p.add_argument("--min-background", type=int, default=25, help="SIC trust threshold")
    p.add_argument(
        "--features",
        nargs="+",
        help="detector inputs (default: the package default, m tau21 tau32 n of both jets)",
    )
    p.add_argument("-o", "--output", default=str(ROOT / "runs" / "bench-detectors"))
    p.add_argument("--quiet", action="store_true")
    return p


def parse(argv=None, p: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    args = (p or parser()).parse_args(argv)
    for name, (full, quick) in SIZES.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


def generator_version() -> str:
    """A short hash of the simulation code: a changed generator never reuses old samples."""
    digest = hashlib.sha256()
    for name in ("pythia.py", "detector.py", "jets.py"):
        path = ROOT / "simkit" / "generators" / name
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def cached_sample(process: str, n_events: int, seed: int, args, **options) -> Path:
    """Generate once, then reuse: the file name holds what makes the events (``options``
    are the process's, e.g. ``mx``/``my`` of wprime-xy)."""
    from simkit.generators.pythia import generate

    tag = "".join(f"_{k}{v:g}" for k, v in sorted(options.items()))
    path = CACHE / f"{process}{tag}_n{n_events}_seed{seed}_{generator_version()}.h5"
    if not path.exists():
        t0 = time.perf_counter()
        generate(
            process,
            n_events,
            seed,
            jobs=args.jobs,
            output=path,
            progress=not args.quiet,
            **options,
        )
        seconds = time.perf_counter() - t0
        print(
            f"generated {n_events} {process}{tag} in {seconds:.0f} s "
            f"({1e3 * seconds / n_events:.2f} ms/event)"
        )
    return path


def passing_reco(path: Path) -> EventTable:
    return read_sample(path, levels=["reco"]).reco.passing()


def split(table: EventTable, *counts: int) -> list[EventTable]:
    """Consecutive row blocks of the given sizes (the events are already independent)."""
    if sum(counts) > len(table):
        raise SystemExit(
            f"asked for {sum(counts)} events but only {len(table)} pass the selection; "
            "generate more (--signal-events / --qcd-events)"
        )
    edges = np.cumsum((0, *counts))
    return [table.mask(slice(a, b)) for a, b in itertools.pairwise(edges)]


@dataclass
class Samples:
    """The three samples of the benchmark and the signal region (see the module docstring)."""

    data: EventTable
    supervised: EventTable
    test: EventTable
    region: SignalRegion
    info: dict = field(default_factory=dict)


def samples(args) -> Samples:
    """Data, supervised and test samples from the cached (or given) event files."""
    t_start = time.perf_counter()
    qcd = passing_reco(
        Path(args.qcd_file)
        if args.qcd_file
        else cached_sample("qcd-dijet", args.qcd_events, args.seed, args)
    )
    signal = passing_reco(
        Path(args.signal_file)
        if args.signal_file
        else cached_sample("wprime-xy", args.signal_events, args.seed, args)
    )
    generation_s = time.perf_counter() - t_start
    half = len(qcd) // 2
    qcd_data, qcd_test = split(qcd, half, len(qcd) - half)
    n_train_signal = len(signal) - args.injected - args.signal_test
    sig_injected, sig_test, sig_train = split(
        signal, args.injected, args.signal_test, n_train_signal
    )
    data = EventTable.concatenate([qcd_data, sig_injected])
    supervised = EventTable.concatenate([qcd_data, sig_train])
    test = EventTable.concatenate([qcd_test, sig_test])
    # sidebands 400 GeV wide on either side: CWoLa needs them close to the SR, where
    # the jet substructure depends little on mjj (its classifier would learn that instead)
    region = SignalRegion.parse("3300:3700", "2900:4100")
    in_sr = region.inside(test.column("mjj"))
    data_sr = region.inside(data.column("mjj"))
    s_over_b = float((data.labels[data_sr] == 1).sum() / max((data.labels[data_sr] == 0).sum(), 1))
    print(
        f"data: {len(qcd_data)} QCD + {len(sig_injected)} signal (S/B in SR {s_over_b:.3%}); "
        f"test: {len(qcd_test)} QCD + {len(sig_test)} signal, {int(in_sr.sum())} in SR; "
        f"supervised signal: {len(sig_train)}"
    )
    info = {
        "data_qcd": len(qcd_data),
        "data_signal": len(sig_injected),
        "data_s_over_b_in_sr": s_over_b,
        "test_qcd_in_sr": int((in_sr & (test.labels == 0)).sum()),
        "test_signal_in_sr": int((in_sr & (test.labels == 1)).sum()),
        "supervised_signal": len(sig_train),
        "generation_seconds": generation_s,
    }
    return Samples(data, supervised, test, region, info)


def main(argv=None) -> int:
    args = parse(argv)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    made = samples(args)
    data, supervised, test, region = made.data, made.supervised, made.test, made.region
    in_sr = region.inside(test.column("mjj"))

    rows = []
    for model, labels in RUNS:
        source = supervised if (model, labels) == ("classifier", "truth") else data
        training = choose(
            source,
            labels,
            features=args.features,
            classes=model == "classifier",
            signal_region=region,
        )
        detector = Detector(
            model,
            epochs=args.epochs,
            patience=10,
            device=args.device,
            seed=args.seed,
            progress=not args.quiet,
            threads=args.threads,
        ).fit(training)
        scores = detector.scores(test, device=detector.result_.device)
        summary = detector.result_.summary()
        row = {
            "model": "CWoLa" if (model, labels) == ("classifier", "sideband") else model,
            "labels": "truth (supervised)"
            if (model, labels) == ("classifier", "truth")
            else labels,
            "score": detector.score_,
            "training_examples": len(training),
            "training_signal_fraction": training.report["signal_fraction"],
            "train_seconds": summary["seconds"],
            "epochs": summary["epochs"],
            "events_per_second": summary["events_per_second"],
            "device": summary["device"],
        }
        for name, values in scores.items():
            perf = performance(
                values[in_sr], test.labels[in_sr], min_background=args.min_background
            )
            metrics = perf.metrics()
            prefix = "" if name == detector.score_ else f"{name}_"
            row[f"{prefix}auc"] = metrics["auc"]
            row[f"{prefix}max_sic"] = metrics["max_sic"]
            row[f"{prefix}max_sic_error"] = metrics["max_sic_error"]
            row[f"{prefix}eps_s_at_eps_b"] = metrics["eps_s_at_eps_b"]
        rows.append(row)
        print(
            f"{row['model']:>10} {row['labels']:<18} AUC {row['auc']:.3f}  max SIC "
            f"{_fmt(row['max_sic'])}  ({summary['seconds']:.0f} s, "
            f"{summary['events_per_second']:.3g} ev/s)",
            flush=True,
        )

    throughput = measure_throughput(data, args)
    supervised_sic = rows[-1]["max_sic"]
    vae_all_sic = next(r["max_sic"] for r in rows if r["model"] == "vae" and r["labels"] == "all")
    ratio = vae_all_sic / supervised_sic if vae_all_sic and supervised_sic else None
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "machine": f"{platform.machine()}, {args.threads} torch thread(s), "
        f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'}",
        "sizes": {k: getattr(args, k) for k in SIZES},
        **made.info,
        "min_background": args.min_background,
        "total_seconds": time.perf_counter() - t_start,
        "features": args.features or "default",
        "vae_all_over_supervised_max_sic": ratio,
        "throughput": throughput,
        "rows": rows,
    }
    write_json(out / "results.json", result)
    table = markdown(result)
    (out / "table.md").write_text(table)
    print(table)
    return 0


def measure_throughput(data: EventTable, args) -> dict:
    """Training events/s of the default VAE at two batch sizes, fixed 5 epochs."""
    training = choose(data, "all", features=args.features)
    out = {}
    for batch in (1024, 8192):
        detector = Detector(
            "vae",
            epochs=5,
            patience=0,
            batch_size=batch,
            device=args.device,
            seed=args.seed,
            threads=args.threads,
        ).fit(training)
        summary = detector.result_.summary()
        out[f"vae_batch_{batch}"] = {
            "events_per_second": summary["events_per_second"],
            "device": summary["device"],
            "train_events": summary["train_events"],
        }
        print(f"throughput, VAE, batch {batch}: {summary['events_per_second']:.3g} events/s")
    return out


def _fmt(value, digits=2):
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown(result: dict) -> str:
    lines = [
        "| detector | labels | score | AUC | max SIC | ε_S @ ε_B=1e-2 | ε_S @ ε_B=1e-3 "
        "| VAE recon / kl / total: max SIC | train examples | signal in train | train s "
        "| events/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        eps = r["eps_s_at_eps_b"]
        sic = "n/a" if r["max_sic"] is None else f"{r['max_sic']:.2f} ± {r['max_sic_error']:.2f}"
        frac = r["training_signal_fraction"]
        # every VAE score, the detector's own one included (its metrics have no prefix)
        other = (
            " / ".join(
                _fmt(r["max_sic"] if r["score"] == name else r[f"{name}_max_sic"])
                for name in ("recon", "kl", "total")
            )
            if r["model"] == "vae"
            else ""
        )
        lines.append(
            f"| {r['model']} | {r['labels']} | {r['score']} | {r['auc']:.3f} | {sic} "
            f"| {_fmt(eps.get('1e-02'), 3)} | {_fmt(eps.get('1e-03'), 3)} "
            f"| {other} "
            f"| {r['training_examples']} | {'n/a' if frac is None else f'{frac:.2%}'} "
            f"| {r['train_seconds']:.0f} | {r['events_per_second']:.3g} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
