"""``simkit detect train|score|evaluate``: anomaly detectors from the shell.

Thin layer: parse, load, call :mod:`detectors` (imported lazily), write files.
"""

from __future__ import annotations

import argparse

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
from simkit.cli.parser import task_defaults
from simkit.cli.sharding import add_sharding

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


def _add_threads(p) -> None:
    p.add_argument(
        "--threads",
        type=positive_int,
        help="torch CPU threads: the networks are small, and on a loaded 2-core machine a "
        "second thread slowed training 250-fold (measured)",
    )


def _add_region(p) -> None:
    p.add_argument("--sr-column", help="column the signal region is a window of")
    p.add_argument(
        "--signal-region",
        metavar="LOW:HIGH",
        help="signal region LOW ≤ column < HIGH (GeV); the LHC Olympics 2020 window",
    )
    p.add_argument(
        "--sidebands",
        metavar="LOW:HIGH",
        help="outer bounds of the sidebands (either side may be empty); default unbounded",
    )


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
        choices=("ae", "vae", "classifier"),
        help="autoencoder, β-VAE, or classifier (CWoLa with sideband, supervised with truth)",
    )
    p.add_argument(
        "--labels",
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
    p.add_argument("--level", choices=LEVELS, help="which level's features")
    _add_region(p)
    p.add_argument(
        "--tag",
        metavar="CUTS",
        help="tag-and-probe: background-like selection of the tag jet over its own columns, "
        "comma-separated cuts on per-jet quantities (default 'tau21>0.5': one-prong-like)",
    )
    p.add_argument(
        "--combine",
        choices=("max", "mean", "min"),
        help="tag-and-probe: how the two jets' scores make the event score",
    )
    g = p.add_argument_group("network")
    g.add_argument(
        "--latent",
        type=positive_int,
        help="latent size (ae, vae; default: the model's, 1 for ae and vae)",
    )
    g.add_argument(
        "--hidden",
        type=widths,
        help="hidden widths, e.g. 64,64 (the decoder mirrors the encoder; default: the "
        "model's, 16 for ae and vae, 64,64 for a classifier)",
    )
    g.add_argument("--activation", choices=("silu", "relu", "gelu", "tanh", "leaky_relu"))
    g.add_argument(
        "--beta",
        type=non_negative_float,
        help="β of the VAE's KL term (0 turns it off)",
    )
    g.add_argument(
        "--score",
        help="score used by default: ae recon; vae recon|kl|total (default recon; total = "
        "recon + KL); classifier logit",
    )
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=positive_int, help="maximum epochs")
    g.add_argument(
        "--batch-size",
        type=positive_int,
        help="mini-batch size (default 8192 on a GPU, 1024 on a CPU)",
    )
    g.add_argument("--lr", type=positive_float, help="learning rate (AdamW)")
    g.add_argument(
        "--patience",
        type=int,
        help="stop after this many epochs without validation improvement (0 = never)",
    )
    g.add_argument("--val-fraction", type=fraction, help="held out for early stopping")
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted training from DIR/checkpoint.pt",
    )
    add_device(g)
    _add_threads(g)
    add_seed(p)
    add_output(p, "output folder for the trained detector")
    task_defaults(p, "simkit.tasks.detect:TrainConfig", "simkit.tasks.detect:TrainInputs")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from simkit.tasks.detect import TrainConfig, TrainInputs, train

    config = TrainConfig.from_args(args, progress=not args.quiet)
    result = train(config, TrainInputs.from_args(args), args.output, log=lambda x: say(args, x))
    say(args, result.summary_line(args.output))
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
        help="prefix of the score datasets (default: the model kind, e.g. vae → vae_total)",
    )
    p.add_argument("--level", choices=LEVELS, help="which level's features")
    p.add_argument(
        "--chunk",
        type=positive_int,
        help="events per shard: scored at once (memory), the unit of --jobs/--scheduler",
    )
    add_device(p)
    _add_threads(p)
    add_sharding(p)
    add_output(p, "output event file with the scores (.h5)")
    task_defaults(p, "simkit.tasks.detect:ScoreConfig")
    p.set_defaults(func=run_score)


def run_score(args: argparse.Namespace) -> int:
    from simkit.tasks.detect import ScoreConfig, ScoreInputs, score

    config = ScoreConfig.from_args(args, progress=not args.quiet)
    say(args, score(config, ScoreInputs.from_args(args), args.output).summary_line())
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
    p.add_argument("--score", help="score dataset to evaluate (default: the primary score)")
    p.add_argument("--level", choices=LEVELS, help="level of the mjj column")
    _add_region(p)
    p.add_argument(
        "--roc-events",
        choices=("auto", "all", "signal-region"),
        help="events the ROC uses; auto = the signal region when the column exists",
    )
    p.add_argument(
        "--min-background",
        type=positive_int,
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
        help="background efficiency of the bump-hunt cut",
    )
    p.add_argument(
        "--signal",
        metavar="SIGNAL.h5",
        help="a scored signal-only file: its events in the signal region join the ROC (with "
        "the evaluated file's own), so that ε_S rests on more than a few injected events",
    )
    p.add_argument(
        "--eps-b-targets",
        type=fraction,
        nargs="+",
        metavar="EPS_B",
        help="background efficiencies at which ε_S is reported",
    )
    p.add_argument("--bin-width", type=positive_float, help="mjj bin width (GeV)")
    p.add_argument(
        "--mjj-range",
        metavar="LOW:HIGH",
        help="bump-hunt fit range (default: from the spectrum's peak to its 99.9%% quantile)",
    )
    p.add_argument("--sqrt-s", type=positive_float, help="collision energy (GeV), x = mjj/√s")
    add_output(p, "output folder for metrics.json and plots")
    task_defaults(p, "simkit.tasks.detect:EvaluateConfig")
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from simkit.tasks.detect import EvaluateConfig, EvaluateInputs, evaluate

    result = evaluate(EvaluateConfig.from_args(args), EvaluateInputs.from_args(args), args.output)
    for line in result.summary_lines(args.output):
        say(args, line)
    return 0
