"""Stage ``unfold``: OmniFold of the simulation to the data (the unfold task)."""

from __future__ import annotations

from pathlib import Path

from simkit.pipeline.config import SR_COLUMN
from simkit.pipeline.context import RunContext
from simkit.pipeline.stages import Stage
from simkit.regions import region_text


def unfold_config(ctx: RunContext, seed: int):
    """The ``unfold`` stage's task config, from ``[unfold]`` and ``[compare]``."""
    from simkit.tasks.unfold import UnfoldConfig

    unf, gate = ctx.config["unfold"], ctx.config["compare"]
    keys = ("iterations", "failed_reco", "tolerance", "push_tolerance", "ensemble", "epochs")
    return UnfoldConfig(
        columns=unf["columns"] or None,
        **{k: unf[k] for k in (*keys, "batch_size")},
        **{k: gate[k] for k in ("alpha", "auc_tolerance", "chi2_tolerance", "bins")},
        **blind_options(ctx),
        seed=seed,
        device=ctx.device,
        progress=not ctx.quiet,
    )


def blind_args(ctx: RunContext) -> list:
    """``--blind`` of the signal region when ``[unfold] blind``: OmniFold's step 1 and
    every comparison with the data look only outside it."""
    blind = blind_options(ctx)
    return [] if not blind else ["--blind", blind["blind"], "--blind-column", SR_COLUMN]


def blind_options(ctx: RunContext) -> dict:
    """The task options that blind the signal region (``[unfold] blind``), or none."""
    if not ctx.config["unfold"]["blind"]:
        return {}
    return {"blind": region_text(ctx.config["detect"]["signal_region"]), "blind_column": SR_COLUMN}


def stage_unfold(ctx: RunContext) -> Stage:
    seed = ctx.seed("unfold")
    settings = {
        "unfold": ctx.config["unfold"],
        "gate": ctx.config["compare"],
        "device": ctx.device,
        "seed": seed,
    }

    def action(folder: Path) -> dict:
        from simkit.tasks.base import command_line
        from simkit.tasks.unfold import UnfoldInputs
        from simkit.tasks.unfold import run as unfold

        config = unfold_config(ctx, seed)
        inputs = UnfoldInputs(
            sim=str(ctx.path("sim", "sim.h5")), data=str(ctx.path("data", "data.h5"))
        )
        result = unfold(config, inputs, folder, log=None if ctx.quiet else ctx.log)
        print(result.gate_line(), flush=True)  # as `simkit unfold` does, even quiet
        metrics = result.metrics
        command = command_line("unfold", inputs, config, output=folder)
        keep = ("before_auc", "before_max_chi2_ndf", "before_min_p_value", "before_validated")
        keep += ("after_auc", "after_max_chi2_ndf", "after_min_p_value", "after_validated")
        keep += ("iterations", "converged", "ess_final", "seconds_unfold")
        return {**{k: metrics[k] for k in keep}, "commands": [command]}

    return Stage(
        "unfold",
        action,
        settings=settings,
        inputs=[ctx.path("sim", "sim.h5"), ctx.path("data", "data.h5")],
        outputs=["weights.h5", "reweighter", "metrics.json"],
    )
