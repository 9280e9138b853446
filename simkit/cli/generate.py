"""``simkit generate PROCESS``: make an event file from a generator.

Each process is its own sub-command with its own options
(``simkit generate gaussian --help``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from simkit.cli import add_output, add_seed, positive_float, positive_int, say, subparser
from simkit.cli.parser import task_defaults
from simkit.cli.sharding import add_sharding


def register(sub, common) -> None:
    parser = subparser(
        sub,
        "generate",
        common,
        help="generate events into an event file (toy problems, Pythia 8)",
        description="Generate events into an HDF5 event file. Processes:\n"
        "  gaussian        the OmniFold Gaussian reference problem\n"
        "  gaussian-hard   the same with detector bias, inefficiency and fakes\n"
        "  qcd-dijet       Pythia 8 QCD dijets → detector → FastJet (background)\n"
        "  wprime-xy       Pythia 8 W' → X Y, X,Y → qq̄ → detector → FastJet (signal)\n"
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
        p = subparser(processes, name, common, help_text)
        _toy_options(p)
        p.set_defaults(func=run_toy)
    _pythia_parsers(processes, common)


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


# --------------------------------------------------------------------------- Pythia 8


def non_negative_float(text: str) -> float:
    """argparse type: a finite float ≥ 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value >= 0 and np.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number ≥ 0, got {text}")
    return value


def _pythia_parsers(processes, common) -> None:
    from simkit.generators.pythia import PROCESSES, TUNES

    tunes = "\n".join(
        f"  {name:<16}{tune.description} (Tune:pp = {tune.pp})" for name, tune in TUNES.items()
    )
    chain = (
        "Pythia 8 at √s = 13 TeV (MPI off unless --mpi, hadronization on) → parametric\n"
        "detector → anti-kT R=1.0 jets (FastJet) → 16 LHC-Olympics-style features at\n"
        "generator (gen) and detector (reco) level; an event passes a level with two jets\n"
        "and a leading jet above --min-pt. The same --seed and --events (and --shard-size)\n"
        "give the same file whatever runs the shards (--jobs, --scheduler); an interrupted\n"
        "run continues with --resume.\n\ntunes:\n" + tunes
    )
    for name in PROCESSES:
        process = PROCESSES[name]
        p = subparser(
            processes,
            name,
            common,
            help=f"Pythia 8: {process.description}",
            description=f"{process.description}.\n\n{chain}",
        )
        p.add_argument("-n", "--events", type=positive_int, help="number of events")
        add_seed(p)
        p.add_argument(
            "--tune",
            choices=tuple(TUNES),
            metavar="TUNE",
            help="Pythia tune by name (listed above): a 'data-like' sample can use "
            "another tune than the simulation",
        )
        if name == "qcd-dijet":
            p.add_argument(
                "--pthat-min",
                type=positive_float,
                default=process.defaults["pthat_min"],
                metavar="GEV",
                help="minimum pT of the hard 2 → 2 scattering",
            )
        else:
            for option, what in (("mwprime", "W'"), ("mx", "X (decays to qq̄)"), ("my", "Y (qq̄)")):
                p.add_argument(
                    f"--{option}",
                    type=positive_float,
                    default=process.defaults[option],
                    metavar="GEV",
                    help=f"mass of the {what}",
                )
        p.add_argument("--mpi", action="store_true", help="switch multiparton interactions on")
        p.add_argument(
            "--jes",
            type=positive_float,
            help="jet-energy scale: reco jet four-momenta are multiplied by it",
        )
        p.add_argument(
            "--jer",
            type=non_negative_float,
            default=argparse.SUPPRESS,
            help="jet-level relative energy resolution, a log-normal width (default: the "
            "detector's, see docs/explanation/simulation.md)",
        )
        p.add_argument(
            "--min-pt",
            type=positive_float,
            default=argparse.SUPPRESS,
            metavar="GEV",
            help="leading-jet pT threshold of the selection (default: 1200, as in the "
            "LHC Olympics)",
        )
        p.add_argument(
            "--shard-size",
            type=positive_int,
            help="events per shard; with --seed it fixes the events (change it and the "
            "events change)",
        )
        add_sharding(p)
        add_output(p, "output event file (.h5)")
        task_defaults(p, "simkit.tasks.generate:GenerateConfig")
        p.set_defaults(func=run_pythia)


def run_pythia(args: argparse.Namespace) -> int:
    from simkit.io import read_array
    from simkit.tasks.generate import GenerateConfig
    from simkit.tasks.generate import run as generate

    config = GenerateConfig.from_args(args, progress=not args.quiet)
    result = generate(config, args.output)
    passed = {lv: float(np.mean(read_array(result.output, f"{lv}/pass"))) for lv in ("gen", "reco")}
    say(
        args,
        f"wrote {config.events} events of {config.process} (tune {config.tune}) to "
        f"{result.output} in {result.seconds:.1f} s "
        f"({config.events / result.seconds:.0f} events/s); passing: "
        f"gen {passed['gen']:.1%}, reco {passed['reco']:.1%}",
    )
    return 0
