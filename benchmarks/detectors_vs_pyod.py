"""Benchmark: simkit's AE and VAE against off-the-shelf pyod detectors, on the same events.

The samples of ``benchmarks/detectors.py`` (same cache in ``runs/cache/detectors/``, same
split). Every detector trains with labels ``all`` on the package's default features
(``m, tau21, tau32, n`` of both jets), on one of two training sets (``--training``):

- ``background-sr`` (default): the data sample's QCD events inside the signal region
  3.3 ≤ mjj < 3.7 TeV — what the pipeline's ``all`` detector trains on (validated
  background in the signal region), here with a perfect background model;
- ``data``: every data event, QCD plus the injected signal (labels never read), the
  ``all`` row of ``benchmarks/detectors.py``;

and scores the *test* events in the signal region. For each seed:

- simkit ``ae`` and ``vae``: :class:`detectors.train.Detector` with the package
  defaults (architecture and score: :mod:`detectors.models`) but at most ``--epochs``
  epochs (100 in the full run, as in ``benchmarks/detectors.py``; early stopping with
  patience 10 ends most runs sooner); ``ae-former`` and ``vae-former`` with the defaults
  before 2026-12-02 (latent 4, encoder 64-64, the VAE scored by recon + KL);
- pyod ``AutoEncoder`` and ``VAE``: pyod's defaults (its own standardization), seeded
  with ``random_state``;
- pyod ``KNN`` (distance to the 5th neighbour) on standardized features — on raw ones
  the jet mass in GeV would decide every distance — and ``IForest`` (seeded).

AUC and max SIC (:func:`detectors.evaluate.performance`, SIC points with ≥
``--min-background`` background events) per seed, then mean ± standard deviation and
the range over the seeds. The same trained detectors also score a second signal,
W' → X Y with other masses (``--second-signal``, default X = Y = 200 GeV, generated and
cached like the others), against the same test QCD: defaults tuned to one signal must
not fail on another.

pyod is an optional extra (``pip install -c constraints.txt -e '.[bench]'``), imported
here only.

    python benchmarks/detectors_vs_pyod.py --quick          # a smoke run
    python benchmarks/detectors_vs_pyod.py --seeds 5        # the table in BENCHMARKS.md
"""

from __future__ import annotations

import importlib.util
import platform
import sys
import time
from pathlib import Path

# This folder holds `detectors.py`, the name of the package benchmarked: keep it off the
# path, or `import detectors` would import that script.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from detectors.evaluate import performance  # noqa: E402
from detectors.labels import choose  # noqa: E402
from detectors.train import Detector  # noqa: E402
from simkit.events import EventTable  # noqa: E402
from simkit.io import write_json  # noqa: E402

ROOT = HERE.parent
TRAINING = ("background-sr", "data")
MODELS = (
    "simkit-ae",
    "simkit-vae",
    "simkit-ae-former",
    "simkit-vae-former",
    "pyod-ae",
    "pyod-vae",
    "pyod-knn",
    "pyod-iforest",
)
#: The defaults before 2026-12-02 (latent 4, encoder 64-64, the VAE scored by recon + KL),
#: for the before/after comparison.
FORMER_DEFAULTS = {
    "ae-former": ("ae", {"latent": 4, "hidden": (64, 64)}),
    "vae-former": ("vae", {"latent": 4, "hidden": (64, 64), "score": "total"}),
}
PYOD_HINT = "pyod is missing: pip install -c constraints.txt -e '.[bench]'"


def _samples_module():
    """``benchmarks/detectors.py`` (samples, cache, split), loaded by path under another
    name: its own file name is the package's."""
    spec = importlib.util.spec_from_file_location("detectors_benchmark", HERE / "detectors.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


def parse(bench, argv=None):
    p = bench.parser(__doc__)
    p.add_argument("--seeds", type=int, default=5, help="seeds per detector (1, 2, …)")
    p.add_argument(
        "--models", nargs="+", default=list(MODELS), choices=MODELS, help="detectors to run"
    )
    p.add_argument(
        "--training",
        choices=TRAINING,
        default=TRAINING[0],
        help="background-sr: the data's QCD events in the signal region; data: every "
        "data event, injected signal included",
    )
    p.add_argument(
        "--second-signal",
        default="200:200",
        metavar="MX:MY",
        help="also test on W' → X Y with these masses (GeV; '' for none)",
    )
    p.add_argument(
        "--second-signal-events", type=int, default=4000, help="W' events generated for it"
    )
    p.set_defaults(output=str(ROOT / "runs" / "bench-detectors-vs-pyod"))
    return bench.parse(argv, p)


def fit_simkit(model: str, training, seed: int, args):
    """A trained simkit detector, as a function from a table to its default score."""
    model, options = FORMER_DEFAULTS.get(model, (model, {}))
    options = {**options, "epochs": args.epochs}
    detector = Detector(model, device=args.device, seed=seed, threads=args.threads, **options).fit(
        training
    )
    return detector.score_events


def fit_pyod(model: str, training, seed: int, args):
    """A trained pyod detector (its defaults), as a function from a table to scores."""
    try:
        from pyod.models.auto_encoder import AutoEncoder
        from pyod.models.iforest import IForest
        from pyod.models.knn import KNN
        from pyod.models.vae import VAE
    except ImportError:
        raise SystemExit(PYOD_HINT) from None
    x_train, columns = training.features, training.columns
    mean, std = np.zeros(x_train.shape[1]), np.ones(x_train.shape[1])
    if model == "knn":
        mean, std = x_train.mean(axis=0), x_train.std(axis=0)
        detector = KNN()
    elif model == "iforest":
        detector = IForest(random_state=seed)
    else:
        use_cuda = args.device != "cpu" and torch.cuda.is_available()
        cls = AutoEncoder if model == "ae" else VAE
        detector = cls(
            random_state=seed, verbose=0, device=torch.device("cuda" if use_cuda else "cpu")
        )
    detector.fit((x_train - mean) / std)
    return lambda table: detector.decision_function((table.select(columns).features - mean) / std)


def summarize(values: list[float | None]) -> dict:
    a = np.array([np.nan if v is None else v for v in values], dtype=float)
    return {
        "mean": float(np.nanmean(a)),
        "std": float(np.nanstd(a)),
        "min": float(np.nanmin(a)),
        "max": float(np.nanmax(a)),
        "values": [None if np.isnan(v) else float(v) for v in a],
    }


def second_signal(bench, made, args):
    """Test QCD in the SR plus a W' → XY signal with other X, Y masses (a signal the
    defaults were not chosen on), or None."""
    if not args.second_signal:
        return None
    mx, my = (float(v) for v in args.second_signal.split(":"))
    path = bench.cached_sample(
        "wprime-xy", args.second_signal_events, args.seed, args, mx=mx, my=my
    )
    signal = bench.passing_reco(path)
    signal = signal.mask(made.region.inside(signal.column("mjj")))
    qcd = made.test.mask(made.region.inside(made.test.column("mjj")) & (made.test.labels == 0))
    return EventTable.concatenate([qcd, signal])


def main(argv=None) -> int:
    bench = _samples_module()
    args = parse(bench, argv)
    torch.set_num_threads(args.threads)  # pyod's networks use torch's global setting
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    made = bench.samples(args)
    data = made.data
    if args.training == "background-sr":
        # a perfect background model in the signal region (truth labels pick it)
        data = data.mask(made.region.inside(data.column("mjj")) & (data.labels == 0))
    training = choose(data, "all", features=args.features)
    tests = {"W' → X(500) Y(100)": made.test.mask(made.region.inside(made.test.column("mjj")))}
    second = second_signal(bench, made, args)
    if second is not None:
        mx, my = args.second_signal.split(":")
        tests[f"W' → X({mx}) Y({my})"] = second
    print(
        f"training: {len(training)} events ({training.report['signal_fraction']:.2%} signal); "
        + "; ".join(
            f"test {name} in SR: {int((t.labels == 0).sum())} QCD + "
            f"{int((t.labels == 1).sum())} signal"
            for name, t in tests.items()
        ),
        flush=True,
    )

    rows = []
    for name in args.models:
        library, model = name.split("-", 1)
        fit = fit_simkit if library == "simkit" else fit_pyod
        per_seed = {signal: [] for signal in tests}
        seconds = []
        # KNN is deterministic: every seed would give the same scores
        seeds = [1] if model == "knn" else range(1, args.seeds + 1)
        for seed in seeds:
            t0 = time.perf_counter()
            score = fit(model, training, seed, args)
            seconds.append(time.perf_counter() - t0)
            line = []
            for signal, test in tests.items():
                metrics = performance(
                    score(test), test.labels, min_background=args.min_background
                ).metrics()
                per_seed[signal].append(metrics)
                line.append(
                    f"{signal}: AUC {metrics['auc']:.3f} max SIC {bench._fmt(metrics['max_sic'])}"
                )
            print(f"{name:>13} seed {seed} ({seconds[-1]:.0f} s): " + "; ".join(line), flush=True)
        rows.append(
            {
                "detector": name,
                "seeds": len(seeds),
                "seconds_per_seed": float(np.mean(seconds)),
                "signals": {
                    signal: {
                        "auc": summarize([m["auc"] for m in runs]),
                        "max_sic": summarize([m["max_sic"] for m in runs]),
                    }
                    for signal, runs in per_seed.items()
                },
            }
        )

    result = {
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "machine": f"{platform.machine()}, {args.threads} torch thread(s), "
        f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'}",
        "versions": _versions(),
        "sizes": {k: getattr(args, k) for k in bench.SIZES},
        **made.info,
        "training": args.training,
        "training_events": len(training),
        "training_signal_fraction": training.report["signal_fraction"],
        "test_events": {
            signal: {
                "qcd": int((t.labels == 0).sum()),
                "signal": int((t.labels == 1).sum()),
            }
            for signal, t in tests.items()
        },
        "min_background": args.min_background,
        "total_seconds": time.perf_counter() - t_start,
        "features": list(training.columns),
        "rows": rows,
    }
    write_json(out / "results.json", result)
    table = markdown(result)
    (out / "table.md").write_text(table)
    print(table)
    return 0


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("torch", "pyod", "scikit-learn"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out


def markdown(result: dict) -> str:
    signals = list(result["rows"][0]["signals"])
    head = "| detector | seeds | " + " | ".join(
        f"{signal}: AUC | {signal}: max SIC" for signal in signals
    )
    lines = [head + " | s per seed |", "|---|---|" + "---|---|" * len(signals) + "---|"]
    for r in result["rows"]:
        cells = []
        for signal in signals:
            auc, sic = r["signals"][signal]["auc"], r["signals"][signal]["max_sic"]
            spread = r["seeds"] > 1
            cells.append(
                f"{auc['mean']:.3f}"
                + (f" ± {auc['std']:.3f}" if spread else "")
                + f" | {sic['mean']:.2f}"
                + (f" ± {sic['std']:.2f}" if spread else "")
            )
        lines.append(
            f"| {r['detector']} | {r['seeds']} | "
            + " | ".join(cells)
            + f" | {r['seconds_per_seed']:.0f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
