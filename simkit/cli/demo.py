"""``simkit demo``: the whole chain on the built-in small config (what ``make demo`` runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from simkit.cli import add_output, say, subparser
from simkit.cli.run import add_run_options, execute


def register(sub, common) -> None:
    p = subparser(
        sub,
        "demo",
        common,
        help="run the whole chain on the built-in small config (what `make demo` runs)",
        description="The default chain at small built-in sizes (simkit/pipeline/demo.toml, the\n"
        "same as examples/demo.toml): Pythia simulation and pseudo-data with a W' signal,\n"
        "a flow surrogate, OmniFold and the validation gate, VAE detectors with three label\n"
        "options, ROC/SIC and a bump hunt, and report.html. A few minutes on a 2-core CPU;\n"
        "a second call reuses every finished stage.",
    )
    add_output(p, "run folder", required=False, default="runs/demo")
    add_run_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from simkit.pipeline import demo_config_path

    config = demo_config_path()
    say(args, f"simkit demo: config {config}, run folder {args.output}")
    return execute(args, config, Path(args.output))
