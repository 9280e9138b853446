"""``simkit run CONFIG.toml``: the whole chain from one config, with an HTML report."""

from __future__ import annotations

import argparse
from pathlib import Path

from simkit.cli import add_output, say, subparser


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Options shared by ``simkit run`` and ``simkit demo``."""
    p.add_argument(
        "--force",
        action="append",
        metavar="STAGE",
        help="run STAGE again even if unchanged (repeatable): 'all', a stage name such as "
        "unfold, or a prefix such as detect; later stages rerun when their inputs changed",
    )
    p.add_argument(
        "--until",
        metavar="STAGE",
        help="stop after this stage (a later call continues from there)",
    )
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        help="where torch runs (default: the config's [run] device)",
    )


def register(sub, common) -> None:
    p = subparser(
        sub,
        "run",
        common,
        help="run the whole chain from a TOML config (stages skip when unchanged)",
        description="Run the chain of a TOML config: sim → data → surrogate → unfold →\n"
        "validated surrogate → compare → detect → evaluate → report. Each stage writes into\n"
        "its own folder of the run folder and is skipped when its settings and input files\n"
        "are unchanged, so an interrupted run resumes where it stopped. The run folder gets\n"
        "report.html (self-contained) and metrics.json. See examples/*.toml and\n"
        "docs/reference/config.md for every key.",
    )
    p.add_argument("config", nargs="?", metavar="CONFIG.toml", help="the run's config")
    add_output(p, "run folder (default: runs/<config name>)", required=False)
    add_run_options(p)
    p.add_argument(
        "--schema",
        action="store_true",
        help="print every config key (a Markdown table) and exit",
    )
    p.set_defaults(func=run)


def execute(args: argparse.Namespace, config, run_dir: Path) -> int:
    """Run the pipeline for ``simkit run`` / ``simkit demo`` and print where the report is."""
    from simkit.pipeline import run_pipeline

    summary = run_pipeline(
        config,
        run_dir,
        force=args.force or (),
        device=args.device,
        until=args.until,
        quiet=args.quiet,
    )
    for warning in summary["warnings"]:
        say(args, f"warning: {warning}")
    top = summary["headline"]
    if summary["report"] is None:
        print(f"stopped after {args.until}; run folder {run_dir}", flush=True)
        return 0
    lines = [f"finished in {summary['seconds']:.0f} s"]
    for key, value in top.items():
        if key.endswith("_speed_up"):
            lines.append(f"  {key}: {value:,.0f}×")
        elif key.startswith("gate_") and key.endswith("_validated"):
            name = key.removeprefix("gate_").removesuffix("_validated")
            word = "VALIDATED" if value else "NOT VALIDATED"
            lines.append(
                f"  gate {name}: {word} (AUC {top[f'gate_{name}_auc']:.3f}, "
                f"max χ²/ndf {top[f'gate_{name}_max_chi2_ndf']:.2f}, "
                f"min p {top[f'gate_{name}_min_p_value']:.2g})"
            )
        elif key.startswith("detector_") and key.endswith("_auc") and value is not None:
            name = key.removeprefix("detector_").removesuffix("_auc")
            sic = top.get(f"detector_{name}_max_sic")
            sic_text = "n/a" if sic is None else f"{sic:.2f}"
            lines.append(f"  detector {name}: AUC {value:.3f}, max SIC {sic_text}")
    if "search_z_after" in top:
        trust = {True: "", False: " — NOT TRUSTWORTHY: the template fails its gate", None: ""}
        low, high = top["search_window"]
        scanned = ""
        if top["search_z_global"] is not None:
            scanned = (
                f"; best of {top['search_n_windows']} windows, global Z "
                f"{top['search_z_global']:.2f}σ"
            )
        lines.append(
            f"  search ({top['search_template']}) in {low:.0f}–{high:.0f} GeV: local Z "
            f"{top['search_z_before']:.2f}σ before the cut, {top['search_z_after']:.2f}σ after "
            f"({top['search_observed']:.0f} observed, {top['search_expected']:.1f} ± "
            f"{top['search_expected_error']:.1f} expected){scanned}"
            + trust[top["search_trustworthy"]]
        )
    print("\n".join(lines), flush=True)
    print(f"report: {summary['report']} (open it in a browser)", flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    from simkit.errors import SimkitError
    from simkit.pipeline import SECTIONS
    from simkit.pipeline.schema import markdown_table

    if args.schema:
        print(markdown_table(SECTIONS))
        return 0
    if args.config is None:
        raise SimkitError("give a config file (see examples/demo.toml), or --schema")
    run_dir = Path(args.output) if args.output else Path("runs") / Path(args.config).stem
    return execute(args, args.config, run_dir)
