"""``simkit import lhco|root``: other people's event files into a simkit event file."""

from __future__ import annotations

import argparse

from simkit.cli import add_output, non_negative_float, positive_int, say, subparser
from simkit.cli.sharding import add_sharding


def register(sub, common) -> None:
    parser = subparser(
        sub,
        "import",
        common,
        help="import the LHC Olympics 2020 files or ROOT trees into an event file",
        description="Import events from outside simkit into an HDF5 event file (reco level).\n"
        "  lhco   the LHC Olympics 2020 files: high-level features or raw hadrons\n"
        "  root   ROOT trees through uproot, with a mapping of branches to columns\n"
        "Run `simkit import SOURCE --help` for a source's options.",
    )
    sources = parser.add_subparsers(dest="source", metavar="SOURCE", required=True)
    _lhco_parser(sources, common)
    _root_parser(sources, common)


def _lhco_parser(sources, common) -> None:
    from simkit.formats.lhco import LHCOConfig

    defaults = LHCOConfig()
    p = subparser(
        sources,
        "lhco",
        common,
        help="an LHC Olympics 2020 file (R&D set or black box), either layout",
        description="Import an LHC Olympics 2020 file; its layout is detected:\n"
        "  features  pandas table pxj1 pyj1 pzj1 mj1 tau1j1 tau2j1 tau3j1 (and j2, label):\n"
        "            the reference columns through vector, without n_j1/n_j2\n"
        "  raw       2100 columns, 700 hadrons × (pT, η, φ) (+ label): anti-kT R=1.0 jets\n"
        "            (FastJet) and N-subjettiness, all reference columns, read in chunks\n"
        "j1 is the heavier of the two leading jets; an event passes with two jets and the\n"
        "leading one above --min-pt; labels go to /labels. Needs `pip install 'simkit[lhco]'`.",
    )
    p.add_argument("file", metavar="FILE.h5", help="the LHC Olympics file")
    add_output(p, "output event file (.h5)")
    p.add_argument(
        "--min-pt",
        type=non_negative_float,
        default=defaults.min_pt,
        metavar="GEV",
        help="leading-jet pT of the pass flag (default: the reference simulation's, "
        "the R&D trigger's 1.2 TeV)",
    )
    p.add_argument(
        "--chunk-size",
        type=positive_int,
        default=defaults.chunk_size,
        metavar="N",
        help="events read and clustered at a time: the shard of --jobs/--scheduler",
    )
    p.add_argument("-n", "--events", type=positive_int, metavar="N", help="import the first N only")
    add_sharding(p)
    p.set_defaults(func=run_lhco)


def _root_parser(sources, common) -> None:
    from simkit.formats.root import RootConfig

    defaults = RootConfig()
    p = subparser(
        sources,
        "root",
        common,
        help="ROOT trees through uproot, with a TOML mapping of branches to columns",
        description="Import ROOT trees (several files or a glob) through uproot. The mapping\n"
        "(--map) says which branches make which columns, with uproot expressions and the\n"
        "reductions nth(X, i), num, sum, max, min of jagged branches; it also names the\n"
        "tree, the selection and the weight. Built-in mappings:\n"
        "  nanoaod   CMS NanoAOD: the two leading FatJet as the reference dijet columns\n"
        "  delphes   Delphes: the two leading FatJet, Event.Weight as the weight\n"
        "  simkit    a tree written by `simkit export` (read back exactly)\n"
        "`--print-map nanoaod` prints a built-in mapping to start your own from.\n"
        "Needs `pip install 'simkit[root]'`.",
    )
    p.add_argument("files", nargs="*", metavar="FILE.root", help="ROOT files or glob patterns")
    add_output(p, "output event file (.h5)", required=False)
    p.add_argument(
        "--map",
        dest="mapping",
        metavar="MAP",
        help="a mapping file (.toml) or a built-in: nanoaod, delphes, simkit",
    )
    p.add_argument("--tree", metavar="TREE", help="the TTree (default: the mapping's)")
    p.add_argument("--selection", metavar="EXPR", help="events to import (replaces the mapping's)")
    p.add_argument(
        "--weight",
        metavar="EXPR",
        help="per-event weight (replaces the mapping's; 'none': no weights)",
    )
    p.add_argument(
        "--chunk-size",
        type=positive_int,
        default=defaults.chunk_size,
        metavar="N",
        help="entries read at a time: the shard of --jobs/--scheduler",
    )
    p.add_argument(
        "-n", "--entries", type=positive_int, metavar="N", help="read the first N entries only"
    )
    p.add_argument(
        "--print-map",
        metavar="NAME",
        choices=("nanoaod", "delphes"),
        help="print a built-in mapping (nanoaod, delphes) and exit",
    )
    add_sharding(p)
    p.set_defaults(func=run_root)


def _report(args: argparse.Namespace, result) -> None:
    say(
        args,
        f"wrote {result.n_events:,} events ({result.n_passed:,} pass) to {result.output}: "
        f"{len(result.columns)} columns ({', '.join(result.columns)}); "
        f"{result.seconds:.1f} s, {result.events_per_second:,.0f} events/s",
    )


def run_lhco(args: argparse.Namespace) -> int:
    from simkit.formats.lhco import LHCOConfig, import_lhco

    config = LHCOConfig(
        min_pt=args.min_pt,
        chunk_size=args.chunk_size,
        max_events=args.events,
        progress=not args.quiet,
    )
    sharding = {k: getattr(args, k) for k in ("jobs", "scheduler", "resume", "keep_shards")}
    _report(args, import_lhco(args.file, args.output, config, **sharding))
    return 0


def run_root(args: argparse.Namespace) -> int:
    from simkit.errors import SimkitError
    from simkit.formats.root import RootConfig, builtin_text, import_root

    if args.print_map:
        print(builtin_text(args.print_map), end="")
        return 0
    if not args.files:
        raise SimkitError("give the ROOT file(s) to import")
    if args.mapping is None:
        raise SimkitError("give a mapping: --map nanoaod|delphes|simkit|MAP.toml")
    if args.output is None:
        raise SimkitError("give the output event file: -o OUT.h5")
    config = RootConfig(
        tree=args.tree,
        chunk_size=args.chunk_size,
        max_entries=args.entries,
        progress=not args.quiet,
    )
    result = import_root(
        args.files,
        args.output,
        args.mapping,
        config,
        selection=args.selection,
        weight=args.weight,
        **{k: getattr(args, k) for k in ("jobs", "scheduler", "resume", "keep_shards")},
    )
    _report(args, result)
    return 0
