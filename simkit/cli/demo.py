"""``simkit demo``: the chain that exists today, at small sizes, saying what it ran."""

from __future__ import annotations

import argparse
from pathlib import Path

from simkit.cli import add_output, add_seed, say, subparser


def register(sub, common) -> None:
    p = subparser(
        sub, "demo", common, help="run the built-in demonstration chain (what `make demo` runs)"
    )
    add_output(p, "output folder", required=False, default="runs/demo")
    add_seed(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from simkit.cli import main as simkit

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    quiet = ["--quiet"] if args.quiet else []
    steps = [
        [
            "generate",
            "gaussian",
            "--events",
            "100000",
            "--seed",
            str(args.seed),
            "-o",
            str(out / "sim.h5"),
            *quiet,
        ],
        [
            "generate",
            "gaussian",
            "--data",
            "--events",
            "100000",
            "--seed",
            str(args.seed),
            "-o",
            str(out / "data.h5"),
            *quiet,
        ],
        ["info", str(out / "sim.h5")],
        ["info", str(out / "data.h5")],
        [
            "unfold",
            "--sim",
            str(out / "sim.h5"),
            "--data",
            str(out / "data.h5"),
            "--iterations",
            "3",
            "--seed",
            str(args.seed),
            "--score-truth",
            "-o",
            str(out / "unfold"),
            *quiet,
        ],
        [
            "compare",
            "--reference",
            str(out / "data.h5"),
            "--candidate",
            str(out / "sim.h5"),
            "--candidate-weights",
            f"{out / 'unfold' / 'weights.h5'}:omnifold/push",
            "--seed",
            str(args.seed),
            "-o",
            str(out / "compare"),
            *quiet,
        ],
    ]
    for step in steps:
        say(args, f"\n$ simkit {' '.join(step)}")
        status = simkit(step)
        if status:
            return status
    say(
        args,
        "\nThis demo ran: the Gaussian OmniFold reference problem, simulation and "
        f"pseudo-data files written to {out}/ and summarized, unfolded by OmniFold "
        f"({out}/unfold/) and the reweighted simulation compared with the data "
        f"({out}/compare/).\n"
        "Not run here: the Pythia reference simulation, surrogates and anomaly detectors.",
    )
    return 0
