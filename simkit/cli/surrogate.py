"""``simkit surrogate fit|sample``: learn simulated events, then generate many more, fast.

``fit`` trains a flow or a GAN on part of an event file, saves the model folder and
writes a fidelity report against the held-out part (per-column histograms with ratio
panels and a two-sample classifier AUC from :mod:`validation.metrics`).
``sample`` streams events from a saved model into an ordinary event file.

The Python functions behind them, :func:`fit_surrogate` and :func:`sample_surrogate`,
return the numbers the commands print.
"""

from __future__ import annotations

import argparse

from simkit.cli import (
    add_device,
    add_output,
    add_seed,
    fraction,
    positive_float,
    positive_int,
    say,
    subparser,
)
from simkit.cli.parser import task_defaults


def register(sub, common) -> None:
    parser = subparser(
        sub,
        "surrogate",
        common,
        help="fit a flow or GAN surrogate to an event file, or sample events from one",
        description="Surrogates learn the events of a simulation and generate many more, "
        "fast.\n  fit     train a flow or GAN; write the model, metrics.json and a "
        "fidelity report\n  sample  generate events from a saved model into an event file",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fit = subparser(
        actions,
        "fit",
        common,
        help="train a surrogate and report its fidelity on held-out events",
        description="Train a conditional normalizing flow (normflows neural-spline "
        "couplings) or a WGAN-GP on the events of an event file. A random --test-fraction "
        "of the passing events is held out; the report compares events generated with "
        "the held-out events' contexts against them.",
    )
    fit.add_argument("--kind", required=True, choices=("flow", "gan"), help="model family")
    fit.add_argument("--input", required=True, metavar="FILE.h5", help="event file to learn")
    fit.add_argument("--level", choices=("reco", "gen"), help="event level")
    fit.add_argument(
        "--columns",
        nargs="+",
        metavar="COL",
        help="columns to generate (default: every column of the level not in --condition)",
    )
    fit.add_argument(
        "--condition",
        nargs="+",
        metavar="COL",
        help="columns to condition on (e.g. mjj); sampling then needs "
        "--condition-from or --condition-range",
    )
    fit.add_argument(
        "--weights",
        metavar="W.h5:DATASET",
        help="per-event weights (e.g. unfold/weights.h5:omnifold/push; a 2-D dataset "
        "gives its last row), multiplied into the file's own weights",
    )
    fit.add_argument(
        "--epochs", type=positive_int, help="maximum epochs (default: flow 80, gan 50)"
    )
    fit.add_argument("--batch-size", type=positive_int, help="events per step")
    fit.add_argument(
        "--lr", type=positive_float, help="learning rate (default: flow 1e-3, gan 3e-4)"
    )
    fit.add_argument(
        "--patience",
        type=int,
        help="epochs without validation improvement before stopping (0 = never; "
        "default: flow 8, gan 15)",
    )
    fit.add_argument(
        "--test-fraction",
        type=fraction,
        help="fraction of events held out for the fidelity report",
    )
    fit.add_argument("--max-events", type=positive_int, help="use at most this many passing events")
    fit.add_argument(
        "--transform",
        action="append",
        metavar="COL=KIND",
        help="override a column's preprocessing: identity, log, log:LO (of x - LO), "
        "logit (0,1) or logit:LO:HI (repeatable; default: chosen from the data)",
    )
    fit.add_argument(
        "--no-azimuth-frame",
        dest="azimuth_frame",
        action="store_false",
        help="keep absolute azimuthal angles (default: the second jet's azimuth is modelled "
        "relative to the first, wrap(phi2 - phi1 - pi), exact with unit Jacobian; keep "
        "them absolute for a detector that breaks the azimuthal symmetry)",
    )
    fit.add_argument(
        "--layers",
        type=positive_int,
        help="flow: coupling layers (default 6); gan: hidden layers of each network (3)",
    )
    fit.add_argument(
        "--hidden",
        type=positive_int,
        help="width of the hidden layers (default: flow 64, gan 256)",
    )
    fit.add_argument(
        "--precision",
        choices=("fp32", "bf16", "auto"),
        help="training arithmetic (default: flow fp32; gan auto = bf16 on CUDA)",
    )
    fit.add_argument(
        "--bootstrap",
        type=int,
        help="bootstrap replicas for the AUC interval (0 = none)",
    )
    fit.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted fit from OUTPUT/checkpoint.pt (same settings)",
    )
    add_device(fit)
    add_seed(fit)
    add_output(fit, "model folder (also gets metrics.json, fidelity.png, training.png)")
    task_defaults(fit, "simkit.tasks.surrogate:FitConfig")
    fit.set_defaults(func=run_fit)

    sample = subparser(
        actions,
        "sample",
        common,
        help="generate events from a saved surrogate into an event file",
        description="Generate events from a model folder written by `simkit surrogate fit`, "
        "streamed in chunks into an ordinary event file (the model's level, every "
        "modelled column including the conditioning ones).",
    )
    sample.add_argument("model", metavar="DIR", help="model folder")
    sample.add_argument("--events", "-n", type=positive_int, required=True, help="events")
    source = sample.add_mutually_exclusive_group()
    source.add_argument(
        "--condition-from",
        metavar="FILE.h5",
        help="draw the conditioning columns from this file's passing events "
        "(with replacement, probability ∝ event weight)",
    )
    source.add_argument(
        "--condition-range",
        nargs="+",
        metavar="LO:HI",
        help="draw each conditioning column uniformly in [LO, HI] (one range per column)",
    )
    sample.add_argument(
        "--chunk-size",
        type=positive_int,
        help="events generated and written per chunk (default 131072 on CPU, 1048576 on GPU)",
    )
    sample.add_argument(
        "--compression",
        choices=("gzip", "none"),
        help="gzip = level 1 + shuffle (simkit's default); none writes faster, files larger",
    )
    sample.add_argument(
        "--sampler",
        choices=("auto", "torch-free", "torch"),
        help="torch-free: a flow on the CPU without importing torch (the folder's "
        "sampler.safetensors); torch: the model's own path; auto (default): the first that "
        "can. The two draw different events for the same seed",
    )
    add_device(sample)
    add_seed(sample)
    add_output(sample, "output event file (.h5)")
    task_defaults(sample, "simkit.tasks.surrogate:SampleConfig")
    sample.set_defaults(func=run_sample)


def run_fit(args: argparse.Namespace) -> int:
    from simkit.tasks.surrogate import FitConfig, FitInputs, fit

    config = FitConfig.from_args(args, progress=not args.quiet)
    say(args, fit(config, FitInputs.from_args(args), args.output).summary_line(args.output))
    return 0


def run_sample(args: argparse.Namespace) -> int:
    from simkit.tasks.surrogate import SampleConfig, SampleInputs, sample

    config = SampleConfig.from_args(args, progress=not args.quiet)
    say(args, sample(config, SampleInputs.from_args(args), args.output).summary_line())
    return 0
