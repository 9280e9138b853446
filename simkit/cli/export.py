"""``simkit export FILE.h5 --format root|parquet -o OUT``: results back to ROOT or Parquet."""

from __future__ import annotations

import argparse
from pathlib import Path

from simkit.cli import add_output, positive_int, say, subparser

_SUFFIXES = {".root": "root", ".parquet": "parquet", ".pq": "parquet"}


def register(sub, common) -> None:
    from simkit.formats.export import ExportConfig

    defaults = ExportConfig()
    p = subparser(
        sub,
        "export",
        common,
        help="write an event file as a ROOT TTree or a Parquet table",
        description="Write an event file as a ROOT TTree (uproot) or a Parquet table (pyarrow):\n"
        "one entry per event; reco columns by name, gen columns as gen_NAME, the pass flags\n"
        "(passed, gen_passed), weight, label, score_NAME and omnifold_NAME_K when the file\n"
        "has them. Units and provenance go along as JSON (simkit_metadata). Read it back\n"
        "with `simkit import root OUT.root --map simkit`. Needs `pip install 'simkit[root]'`.",
    )
    p.add_argument("file", metavar="FILE.h5", help="an event file (or a weights file)")
    add_output(p, "output file (.root or .parquet)")
    p.add_argument(
        "--format",
        choices=("root", "parquet"),
        help="output format (default: from the output's suffix, .root or .parquet)",
    )
    p.add_argument("--tree", default=defaults.tree, metavar="NAME", help="name of the ROOT TTree")
    p.add_argument(
        "--chunk-size",
        type=positive_int,
        default=defaults.chunk_size,
        metavar="N",
        help="events written at a time",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from simkit.errors import SimkitError
    from simkit.formats.export import ExportConfig, export

    fmt = args.format or _SUFFIXES.get(Path(args.output).suffix.lower())
    if fmt is None:
        raise SimkitError(
            f"{args.output}: give --format root|parquet (or an output ending in .root or .parquet)"
        )
    config = ExportConfig(format=fmt, tree=args.tree, chunk_size=args.chunk_size)
    result = export(args.file, args.output, config)
    say(
        args,
        f"wrote {result.n_events:,} events to {result.output} ({result.format}, "
        f"{len(result.branches)} branches) in {result.seconds:.1f} s",
    )
    return 0
