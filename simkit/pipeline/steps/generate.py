"""Stages ``sim`` (the reference simulation) and ``data`` (pseudo-data with a W' injected)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from simkit.errors import SimkitError
from simkit.pipeline.config import SR_COLUMN
from simkit.pipeline.context import RunContext
from simkit.pipeline.stages import Stage


def _passing(path: Path, level: str = "reco") -> int:
    from simkit.io import read_sample

    return int(read_sample(path, levels=[level], columns=[SR_COLUMN]).level(level).passed.sum())


def stage_sim(ctx: RunContext) -> Stage:
    gen = ctx.config["generate"]
    settings = {k: gen[k] for k in ("sim_events", "sim_tune", "min_pt", "pthat_min")}
    seed = ctx.seed("sim")

    def action(folder: Path) -> dict:
        from simkit.io import inspect
        from simkit.tasks.base import command_line
        from simkit.tasks.generate import GenerateConfig
        from simkit.tasks.generate import run as generate

        jobs = ctx.config["run"]["jobs"]
        path = folder / "sim.h5"
        config = GenerateConfig(
            "qcd-dijet",
            events=gen["sim_events"],
            seed=seed,
            tune=gen["sim_tune"],
            pthat_min=gen["pthat_min"],
            min_pt=gen["min_pt"],
            jobs=jobs,
            scheduler=ctx.config["run"]["scheduler"],
            resume=True,  # a stage rerun after a kill keeps the finished shards
            replace_other_shards=True,  # ... and one whose settings changed replaces them
            progress=not ctx.quiet,
        )
        seconds = generate(config, path).seconds
        passing = _passing(path)
        command = command_line("generate", config, output=path)
        return {
            "events": gen["sim_events"],
            "passing_reco": passing,
            "passing_gen": _passing(path, "gen"),
            "seconds": seconds,
            "jobs": jobs,
            "events_per_second": gen["sim_events"] / seconds,
            "passing_events_per_second": passing / seconds,
            "cross_section_pb": inspect(path).provenance.get("cross_section_pb"),
            "commands": [command],
        }

    return Stage("sim", action, settings={**settings, "seed": seed}, outputs=["sim.h5"])


# --------------------------------------------------------------------------- 2. data


def stage_data(ctx: RunContext) -> Stage:
    gen = ctx.config["generate"]
    keys = (
        "data_events",
        "signal_events",
        "data_tune",
        "data_jes",
        "s_over_b",
        "mwprime",
        "mx",
        "my",
        "min_pt",
        "pthat_min",
    )
    seeds = {name: ctx.seed(f"data-{name}") for name in ("background", "signal", "mixing")}
    region = ctx.config["detect"]["signal_region"]

    def action(folder: Path) -> dict:
        from simkit.events import EventTable, Sample
        from simkit.io import make_provenance, read_sample, write_sample
        from simkit.tasks.base import command_line
        from simkit.tasks.generate import GenerateConfig
        from simkit.tasks.generate import run as generate

        common = {
            "tune": gen["data_tune"],
            "jobs": ctx.config["run"]["jobs"],
            "scheduler": ctx.config["run"]["scheduler"],
            "resume": True,
            "replace_other_shards": True,
            "jes": gen["data_jes"],
            "min_pt": gen["min_pt"],
            "progress": not ctx.quiet,
        }
        # generated into files of the stage folder, which Dask workers see too
        parts = folder / "generated"
        made = {
            "background": GenerateConfig(
                "qcd-dijet",
                events=gen["data_events"],
                seed=seeds["background"],
                pthat_min=gen["pthat_min"],
                **common,
            ),
            "signal": GenerateConfig(
                "wprime-xy",
                events=gen["signal_events"],
                seed=seeds["signal"],
                mwprime=gen["mwprime"],
                mx=gen["mx"],
                my=gen["my"],
                **common,
            ),
        }
        commands = []
        for name, config in made.items():
            generate(config, parts / f"{name}.h5")
            commands.append(command_line("generate", config, output=parts / f"{name}.h5"))
        background, signal = parts / "background.h5", parts / "signal.h5"
        background, signal = read_sample(background), read_sample(signal)
        shutil.rmtree(parts)
        # data are what the detector recorded: passing reco events, no generator level
        bkg = background.reco.passing()
        sig = signal.reco.passing()
        n_inject = round(gen["s_over_b"] * len(bkg))
        if n_inject > len(sig):
            raise SimkitError(
                f"[generate] s_over_b = {gen['s_over_b']:g} asks for {n_inject} W' events "
                f"among {len(bkg)} passing background events, but signal_events = "
                f"{gen['signal_events']} gave only {len(sig)} passing ones: raise signal_events"
            )
        rng = np.random.default_rng(seeds["mixing"])
        order = rng.permutation(len(sig))
        injected, rest = sig.mask(np.sort(order[:n_inject])), sig.mask(np.sort(order[n_inject:]))
        mixed = EventTable.concatenate([bkg, injected])
        mixed = mixed.mask(rng.permutation(len(mixed)))  # no trace of the injection order
        provenance = make_provenance(
            "simkit.pipeline.data",
            seed=seeds["mixing"],
            what="pseudo-data: QCD dijets (data tune, JES-shifted detector) with W' → XY "
            "injected; passing reco events only, the generator level dropped (data have no "
            "truth); /labels kept for evaluation only, never read by training",
            s_over_b=gen["s_over_b"],
            background_events=len(bkg),
            signal_events=n_inject,
            background=background.provenance,
            signal=signal.provenance,
        )
        write_sample(folder / "data.h5", Sample(reco=mixed), provenance=provenance)
        signal_provenance = make_provenance(
            "simkit.pipeline.data",
            seed=seeds["mixing"],
            what="the passing W' → XY events not injected into the data (same tune and "
            "detector): a signal-only sample for ROC statistics, never trained on",
            signal_events=len(rest),
            signal=signal.provenance,
        )
        write_sample(folder / "signal.h5", Sample(reco=rest), provenance=signal_provenance)

        def in_sr(table: EventTable) -> int:
            mjj = table.column(SR_COLUMN)
            return int(((mjj >= region[0]) & (mjj < region[1])).sum())

        sr_bkg, sr_sig = in_sr(bkg), in_sr(injected)
        return {
            "background_generated": gen["data_events"],
            "background_passing": len(bkg),
            "signal_generated": gen["signal_events"],
            "signal_passing": len(sig),
            "signal_injected": n_inject,
            "signal_test_events": len(rest),
            "data_events": len(mixed),
            "s_over_b": n_inject / len(bkg) if len(bkg) else None,
            "sr_background": sr_bkg,
            "sr_signal_injected": sr_sig,
            "sr_s_over_b": sr_sig / sr_bkg if sr_bkg else None,
            "sr_signal_test": in_sr(rest),
            # the generation by hand; the mixing into data.h5 has no command of its own
            "commands": commands,
        }

    return Stage(
        "data",
        action,
        settings={**{k: gen[k] for k in keys}, "signal_region": region, "seeds": seeds},
        outputs=["data.h5", "signal.h5"],
    )
