"""``simkit detect train|score|evaluate``: anomaly detectors from the shell.

Thin layer: parse, load, call :mod:`detectors` (imported lazily), write files.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from simkit.cli import (
    add_device,
    add_output,
    add_seed,
    fraction,
    non_negative_float,
    positive_float,
    positive_int,
    say,
    subparser,
    widths,
)
from simkit.errors import SimkitError

LEVELS = ("reco", "gen")


def register(sub, common) -> None:
    parser = subparser(
        sub,
        "detect",
        common,
        help="anomaly detectors: train (AE/VAE, CWoLa, supervised), score, evaluate",
        description="Anomaly detectors on dijet events.\n"
        "  train     train an AE/VAE (or a classifier) with a label strategy\n"
        "  score     write a detector's scores for every event of a file\n"
        "  evaluate  ROC, AUC, SIC, ε_S at fixed ε_B and a bump hunt of a scored file\n"
        "Run `simkit detect ACTION --help` for the options.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    _register_train(actions, common)
    _register_score(actions, common)
    _register_evaluate(actions, common)


def _names(values: list[str] | None) -> list[str] | None:
    """``--features a,b c`` → [a, b, c]."""
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _add_threads(p) -> None:
    p.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        help="torch CPU threads: the networks are small, and on a loaded 2-core machine a "
        "second thread slowed training 250-fold (measured)",
    )


def _add_region(p) -> None:
    p.add_argument("--sr-column", default="mjj", help="column the signal region is a window of")
    p.add_argument(
        "--signal-region",
        default="3300:3700",
        metavar="LOW:HIGH",
        help="signal region LOW ≤ column < HIGH (GeV); the LHC Olympics 2020 window",
    )
    p.add_argument(
        "--sidebands",
        default=None,
        metavar="LOW:HIGH",
        help="outer bounds of the sidebands (either side may be empty); default unbounded",
    )


def _region(args):
    from detectors.labels import SignalRegion

    return SignalRegion.parse(args.signal_region, args.sidebands, column=args.sr_column)


# --------------------------------------------------------------------------- train


def _register_train(actions, common) -> None:
    p = subparser(
        actions,
        "train",
        common,
        "train a detector on the events a label strategy chooses",
        "Train an anomaly detector (ae, vae) or a classifier on an event file.\n\n"
        "Label strategies (--labels) choose the training events:\n"
        "  all            every passing event (a validated background sample)\n"
        "  sideband       events outside --signal-region of --sr-column; with\n"
        "                 --model classifier: CWoLa (signal region vs sidebands)\n"
        "  tag-and-probe  per jet: the probe jet of every event whose other jet passes\n"
        "                 the background-like --tag selection (both orderings)\n"
        "  truth          reads /labels: background only for ae/vae, signal vs\n"
        "                 background for a classifier (the supervised reference)\n\n"
        "Writes DIR/config.json + model.safetensors (the model), metrics.json,\n"
        "training.png and checkpoint.pt (for --resume).",
    )
    p.add_argument(
        "--input",
        required=True,
        nargs="+",
        metavar="FILE.h5",
        help="event file(s) to train on; several files are joined row after row "
        "(e.g. background plus a little injected signal)",
    )
    p.add_argument(
        "--model",
        default="vae",
        choices=("ae", "vae", "classifier"),
        help="autoencoder, β-VAE, or classifier (CWoLa with sideband, supervised with truth)",
    )
    p.add_argument(
        "--labels",
        default="all",
        choices=("all", "sideband", "tag-and-probe", "truth"),
        help="how training events are chosen (see above)",
    )
    p.add_argument(
        "--features",
        nargs="+",
        metavar="COLUMN",
        help="input columns (comma or space separated); default: the jet-substructure "
        "columns m, tau21, tau32, n of both jets (mjj left out), or every column but the "
        "signal-region column for other samples. For tag-and-probe, per-jet quantities "
        "(m or m_j1 both mean m)",
    )
    p.add_argument(
        "--weights",
        metavar="W.h5:DATASET",
        help="per-event weights (e.g. unfold/weights.h5:omnifold/push), multiplied into the "
        "sample's own weights; rows aligned with --input",
    )
    p.add_argument("--level", default="reco", choices=LEVELS, help="which level's features")
    _add_region(p)
    p.add_argument(
        "--tag",
        default=None,
        metavar="CUTS",
        help="tag-and-probe: background-like selection of the tag jet over its own columns, "
        "comma-separated cuts on per-jet quantities (default 'tau21>0.5': one-prong-like)",
    )
    p.add_argument(
        "--combine",
        default="max",
        choices=("max", "mean", "min"),
        help="tag-and-probe: how the two jets' scores make the event score",
    )
    g = p.add_argument_group("network")
    g.add_argument(
        "--latent",
        type=positive_int,
        default=None,
        help="latent size (ae, vae; default: the model's, 1 for ae and vae)",
    )
    g.add_argument(
        "--hidden",
        type=widths,
        default=None,
        help="hidden widths, e.g. 64,64 (the decoder mirrors the encoder; default: the "
        "model's, 16 for ae and vae, 64,64 for a classifier)",
    )
    g.add_argument(
        "--activation", default="silu", choices=("silu", "relu", "gelu", "tanh", "leaky_relu")
    )
    g.add_argument(
        "--beta",
        type=non_negative_float,
        default=1.0,
        help="β of the VAE's KL term (0 turns it off)",
    )
    g.add_argument(
        "--score",
        default=None,
        help="score used by default: ae recon; vae recon|kl|total (default recon; total = "
        "recon + KL); classifier logit",
    )
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=positive_int, default=200, help="maximum epochs")
    g.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="mini-batch size (default 8192 on a GPU, 1024 on a CPU)",
    )
    g.add_argument("--lr", type=positive_float, default=1e-3, help="learning rate (AdamW)")
    g.add_argument(
        "--patience",
        type=int,
        default=10,
        help="stop after this many epochs without validation improvement (0 = never)",
    )
    g.add_argument("--val-fraction", type=fraction, default=0.2, help="held out for early stopping")
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted training from DIR/checkpoint.pt",
    )
    add_device(g)
    _add_threads(g)
    add_seed(p)
    add_output(p, "output folder for the trained detector")
    p.set_defaults(func=run_train)


def _inspect_inputs(paths, level: str) -> list:
    """Validated headers of the input files; all must have ``level`` and its columns."""
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


def _read_training_table(args):
    from simkit.events import Sample
    from simkit.io import read_sample, read_weights

    _inspect_inputs(args.input, args.level)
    parts = [read_sample(path, levels=[args.level]) for path in args.input]
    for part in parts:
        part.scores.clear()  # earlier detectors' scores play no part in training
    sample = Sample.concatenate(parts) if len(parts) > 1 else parts[0]
    if args.weights:
        extra = read_weights(args.weights, len(sample))
        sample = sample.with_weights(sample.weights * extra)
    return sample.level(args.level)


def run_train(args: argparse.Namespace) -> int:
    from detectors.labels import choose
    from detectors.train import Detector, plot_history
    from simkit.io import write_json
    from simkit.plotting import pyplot, savefig

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise SimkitError(f"{out}: exists and is not a folder")
    table = _read_training_table(args)
    training = choose(
        table,
        args.labels,
        features=_names(args.features),
        classes=args.model == "classifier",
        signal_region=_region(args),
        tag=args.tag,
    )
    report = training.report
    fraction_text = (
        f", signal fraction {report['signal_fraction']:.4g}"
        if report.get("signal_fraction") is not None
        else ""
    )
    say(
        args,
        f"--labels {args.labels}: kept {report['kept_events']} of {report['passing_events']} "
        f"passing events ({len(training)} training examples){fraction_text}",
    )
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoint.pt"
    if checkpoint.exists() and not args.resume:
        checkpoint.unlink()  # a new training: an old checkpoint must not be resumed silently
    detector = Detector(
        args.model,
        latent=args.latent,
        hidden=args.hidden,
        activation=args.activation,
        beta=args.beta,
        score=args.score,
        combine=args.combine,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=args.patience,
        val_fraction=args.val_fraction,
        device=args.device,
        seed=args.seed,
        progress=not args.quiet,
        checkpoint=checkpoint,
        resume=args.resume,
        threads=args.threads,
    ).fit(training)
    summary = detector.result_.summary()
    detector.save(out, extra={"input": [str(p) for p in args.input], "weights": args.weights})
    metrics = {
        "model": args.model,
        "labels": args.labels,
        "score": detector.score_,
        "features": list(detector.columns_),
        "per_jet": detector.per_jet_,
        **{f"labels_{k}": v for k, v in report.items() if k != "strategy"},
        **{f"train_{k}": v for k, v in summary.items()},
    }
    write_json(out / "metrics.json", metrics)
    fig, ax = pyplot().subplots(figsize=(6, 4))
    plot_history(detector.result_.history, ax)
    savefig(fig, out / "training.png")
    say(
        args,
        f"trained {args.model} on {summary['device']} in {summary['seconds']:.1f} s "
        f"({summary['epochs']} epochs, best {summary['best_epoch']}, "
        f"{summary['events_per_second']:.3g} events/s); wrote {out}",
    )
    return 0


# --------------------------------------------------------------------------- score


def _register_score(actions, common) -> None:
    p = subparser(
        actions,
        "score",
        common,
        "score every event of a file with a trained detector",
        "Write an event file with the input's events (features, weights, labels when\n"
        "present) and /scores/<name>_<score> for each score of the detector, aligned\n"
        "with the input's rows. The detector's own score is recorded in the provenance\n"
        "as primary_score.",
    )
    p.add_argument("model", metavar="DIR", help="folder written by `simkit detect train`")
    p.add_argument(
        "--input",
        required=True,
        nargs="+",
        metavar="FILE.h5",
        help="events to score; several files are joined row after row into one output",
    )
    p.add_argument(
        "--name",
        default=None,
        help="prefix of the score datasets (default: the model kind, e.g. vae → vae_total)",
    )
    p.add_argument("--level", default="reco", choices=LEVELS, help="which level's features")
    p.add_argument(
        "--chunk", type=positive_int, default=131072, help="events scored per chunk (memory)"
    )
    add_device(p)
    _add_threads(p)
    add_output(p, "output event file with the scores (.h5)")
    p.set_defaults(func=run_score)


def run_score(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from detectors.train import Detector
    from simkit.events import Sample
    from simkit.io import SampleWriter, iter_samples, make_provenance
    from simkit.nn import resolve_device

    detector = Detector.load(args.model)
    detector.threads = args.threads
    infos = _inspect_inputs(args.input, args.level)
    info = infos[0]
    detector.check_columns(info.levels[args.level].columns, str(args.input[0]))
    prefix = args.name or detector.model
    names = {s: f"{prefix}_{s}" for s in detector.score_names}
    levels = [lv for lv in info.levels if lv != "truth" and all(lv in i.levels for i in infos)]
    # scores already in the inputs are carried over when every input has them
    kept_scores = [n for n in info.scores if all(n in i.scores for i in infos)]
    device = resolve_device(args.device)
    provenance = make_provenance(
        "detectors.score",
        input=[str(p) for p in args.input],
        model=str(args.model),
        detector=detector.describe(),
        primary_score=names[detector.score_],
        level=args.level,
        input_provenance=[i.provenance for i in infos],
    )
    t0 = time.perf_counter()
    writer = SampleWriter(
        args.output,
        levels={lv: info.levels[lv].columns for lv in levels},
        units={lv: info.levels[lv].units for lv in levels},
        weights=any(i.has_weights for i in infos),
        labels=info.has_labels,
        scores=tuple(dict.fromkeys((*kept_scores, *names.values()))),
        provenance=provenance,
    )
    total = sum(i.n_events for i in infos)
    with writer, tqdm(total=total, disable=args.quiet, unit="ev", desc="score") as bar:
        for path in args.input:
            for chunk in iter_samples(path, args.chunk, levels=levels):
                scores = detector.scores(chunk.level(args.level), device=device)
                chunk = Sample(
                    **{lv: chunk.level(lv) for lv in levels},
                    provenance=chunk.provenance,
                    scores={
                        **{n: chunk.scores[n] for n in kept_scores},
                        **{names[s]: v for s, v in scores.items()},
                    },
                )
                writer.append(chunk)
                bar.update(len(chunk))
    say(
        args,
        f"scored {writer.n_events} events in {time.perf_counter() - t0:.1f} s: "
        f"{', '.join(names.values())} (primary {names[detector.score_]}) → {args.output}",
    )
    return 0


# --------------------------------------------------------------------------- evaluate


def _register_evaluate(actions, common) -> None:
    p = subparser(
        actions,
        "evaluate",
        common,
        "ROC, AUC, SIC, ε_S at fixed ε_B and a bump hunt of a scored file",
        "Evaluate a score of a file written by `simkit detect score`.\n\n"
        "With labels (simulation): ROC, AUC, SIC curve and max SIC, ε_S at ε_B = 1e-2,\n"
        "1e-3, 1e-4, by default over the events in the signal region. Always: a cut\n"
        "fixed for --target-eps-b on --calibration (a scored background-only file) or on\n"
        "the evaluated events, then the mjj spectrum after the cut fitted in the\n"
        "sidebands with the dijet function and the local significance of the excess in\n"
        "the signal region. Writes metrics.json, roc.png, sic.png, scores.png,\n"
        "bump_hunt.png.",
    )
    p.add_argument("scores", metavar="SCORES.h5", help="file written by `simkit detect score`")
    p.add_argument(
        "--score", default=None, help="score dataset to evaluate (default: the primary score)"
    )
    p.add_argument("--level", default="reco", choices=LEVELS, help="level of the mjj column")
    _add_region(p)
    p.add_argument(
        "--roc-events",
        default="auto",
        choices=("auto", "all", "signal-region"),
        help="events the ROC uses; auto = the signal region when the column exists",
    )
    p.add_argument(
        "--min-background",
        type=positive_int,
        default=25,
        help="SIC points need at least this many background events passing (10%% "
        "uncertainty on √ε_B at 25)",
    )
    p.add_argument(
        "--calibration",
        metavar="CAL.h5",
        help="scored background-only file on which the cut is fixed (default: the "
        "evaluated events themselves)",
    )
    p.add_argument(
        "--target-eps-b",
        type=fraction,
        default=1e-2,
        help="background efficiency of the bump-hunt cut",
    )
    p.add_argument("--bin-width", type=positive_float, default=100.0, help="mjj bin width (GeV)")
    p.add_argument(
        "--mjj-range",
        default=None,
        metavar="LOW:HIGH",
        help="bump-hunt fit range (default: from the spectrum's peak to its 99.9%% quantile)",
    )
    p.add_argument(
        "--sqrt-s", type=positive_float, default=13000.0, help="collision energy (GeV), x = mjj/√s"
    )
    add_output(p, "output folder for metrics.json and plots")
    p.set_defaults(func=run_evaluate)


def _choose_score(info, asked: str | None, path) -> str:
    if asked:
        if asked not in info.scores:
            have = ", ".join(info.scores) or "none"
            raise SimkitError(f"{path}: has no score {asked!r} (scores: {have})")
        return asked
    primary = info.provenance.get("settings", {}).get("primary_score")
    if primary in info.scores:
        return primary
    if len(info.scores) == 1:
        return info.scores[0]
    if not info.scores:
        raise SimkitError(f"{path}: holds no scores; run `simkit detect score` first")
    raise SimkitError(
        f"{path}: holds several scores ({', '.join(info.scores)}); pick one with --score"
    )


def _read_scored(path, score: str, level: str, column: str):
    """Passing events: (score, weights, labels or None, mjj or None)."""
    from simkit.io import inspect, read_sample

    info = inspect(path)
    if level not in info.levels:
        raise SimkitError(f"{path}: has no {level} level")
    columns = info.levels[level].columns
    has_column = column in columns
    sample = read_sample(path, levels=[level], columns=[column] if has_column else columns[:1])
    table = sample.level(level)
    keep = table.passed
    return (
        sample.scores[score][keep],
        table.weights[keep],
        None if table.labels is None else table.labels[keep],
        table.column(column)[keep] if has_column else None,
    )


def run_evaluate(args: argparse.Namespace) -> int:
    from detectors.evaluate import evaluate
    from detectors.labels import parse_range
    from simkit.io import inspect, write_json

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise SimkitError(f"{out}: exists and is not a folder")
    if not 0 < args.target_eps_b < 1:
        raise SimkitError(f"--target-eps-b must be between 0 and 1, got {args.target_eps_b}")
    region = _region(args)
    info = inspect(args.scores)
    score = _choose_score(info, args.score, args.scores)
    scores, weights, labels, mjj = _read_scored(args.scores, score, args.level, region.column)
    calibration = calibration_weights = None
    if args.calibration:
        cal_info = inspect(args.calibration)
        if score not in cal_info.scores:
            raise SimkitError(f"{args.calibration}: has no score {score!r}")
        calibration, calibration_weights, _, _ = _read_scored(
            args.calibration, score, args.level, region.column
        )
    result = evaluate(
        scores,
        labels=labels,
        weights=weights,
        mjj=mjj,
        signal_region=region,
        roc_events=args.roc_events,
        min_background=args.min_background,
        target_eps_b=args.target_eps_b,
        calibration_scores=calibration,
        calibration_weights=calibration_weights,
        bin_width=args.bin_width,
        mjj_range=parse_range(args.mjj_range, "--mjj-range") if args.mjj_range else None,
        sqrt_s=args.sqrt_s,
        score_name=score,
    )
    metrics = result.metrics()
    out.mkdir(parents=True, exist_ok=True)
    result.save_plots(out)
    write_json(out / "metrics.json", {"input": str(args.scores), **metrics})
    parts = [f"score {score}"]
    if metrics.get("auc") is not None:
        sic = metrics["max_sic"]
        parts.append(f"AUC {metrics['auc']:.4f}")
        parts.append(f"max SIC {sic:.2f}" if sic is not None else "max SIC n/a")
    if result.bump is not None:
        parts.append(f"bump-hunt Z {result.bump.z_local:.2f}")
    say(args, "; ".join(parts) + f"; wrote {out}")
    for note in result.notes:
        say(args, f"note: {note}")
    return 0
