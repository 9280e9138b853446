"""``simkit generate PROCESS``: make an event file from a generator.

Each process is its own sub-command with its own options
(``simkit generate gaussian --help``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from simkit.cli import _Formatter, add_output, add_seed, positive_int, say


def register(sub, common) -> None:
    parser = sub.add_parser(
        "generate",
        parents=[common],
        formatter_class=_Formatter,
        help="generate events into an event file (toy problems, Pythia 8)",
        description="Generate events into an HDF5 event file. Processes:\n"
        "  gaussian        the OmniFold Gaussian reference problem\n"
        "  gaussian-hard   the same with detector bias, inefficiency and fakes\n"
        "Run `simkit generate PROCESS --help` for a process's options.",
    )
    processes = parser.add_subparsers(dest="process", metavar="PROCESS", required=True)
    for name, help_text in (
        (
            "gaussian",
            "OmniFold reference problem: truth N(0,1) (data: N(0.2,0.8)), "
            "Gaussian smearing σ=0.5, one column x at gen and reco level",
        ),
        (
            "gaussian-hard",
            "Gaussian truth through a biased detector with an x-dependent "
            "efficiency below one and 10%% fakes (pass masks used)",
        ),
    ):
        p = processes.add_parser(
            name,
            parents=[common],
            help=help_text,
            description=help_text,
            formatter_class=_Formatter,
        )
        _toy_options(p)
        p.set_defaults(func=run_toy)


def _toy_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-n", "--events", type=positive_int, default=100_000, help="number of (true) events"
    )
    add_seed(p)
    p.add_argument(
        "--data",
        action="store_true",
        help="make pseudo-data instead: truth N(0.2, 0.8), reco level only; the "
        "truth is kept in the /truth group, which the unfolding never reads",
    )
    add_output(p, "output event file (.h5)")


def run_toy(args: argparse.Namespace) -> int:
    from simkit.generators import toy
    from simkit.io import make_provenance, write_sample

    # sim and data made with the same --seed must still be independent samples
    rng = np.random.default_rng([args.seed, 1 if args.data else 0])
    make = toy.gaussian if args.process == "gaussian" else toy.gaussian_hard
    t0 = time.perf_counter()
    sample = make(args.events, rng, data=args.data)
    sample.provenance = make_provenance(
        f"simkit.generators.toy.{make.__name__}",
        seed=args.seed,
        **{**sample.provenance, "process": args.process, "events": args.events},
    )
    path = write_sample(args.output, sample)
    kind = "pseudo-data (reco + hidden truth)" if args.data else "simulation (gen + reco)"
    say(
        args,
        f"wrote {len(sample)} events of {args.process} {kind} to {path} "
        f"in {time.perf_counter() - t0:.2f} s",
    )
    return 0
