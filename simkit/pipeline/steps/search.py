"""Stage ``search``: the template search in the signal region, or scanned across mjj
(the template and search tasks)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from simkit.pipeline.context import RunContext
from simkit.pipeline.stages import Stage
from simkit.regions import region_text


def search_settings(config: Mapping) -> dict:
    """The search's settings with what it takes from other sections filled in."""
    search, det = config["search"], config["detect"]
    modelled = [*config["surrogate"]["condition"], *config["surrogate"]["columns"]]
    features = search["features"] or det["features"]
    if features is None:
        from simkit.pipeline.config import SUBSTRUCTURE

        features = [c for c in SUBSTRUCTURE if c in modelled]
    return {
        **search,
        "features": list(features),
        "signal_region": list(det["signal_region"]),
        "bin_width": config["evaluate"]["bin_width"],
        "surrogate": det["surrogate"],
        "gate": {k: config["compare"][k] for k in ("alpha", "auc_tolerance", "chi2_tolerance")},
    }


def stage_search(ctx: RunContext) -> Stage:
    """The template search in the signal region: build the template, search, save."""
    settings = {**search_settings(ctx.config), "device": ctx.device, "seed": ctx.seed("search")}
    kind = settings["template"]
    sim, data = ctx.path("sim", "sim.h5"), ctx.path("data", "data.h5")
    signal = ctx.path("data", "signal.h5")
    pull = f"{ctx.path('unfold', 'weights.h5')}:omnifold/pull"
    flow = ctx.path(f"surrogate-{settings['surrogate']}", "model")
    inputs = {
        "validated-flow": [sim, ctx.path("unfold", "weights.h5"), flow],
        "reweighted-sim": [sim, ctx.path("unfold", "weights.h5")],
        "sideband-flow": [],
    }[kind]

    def action(folder: Path) -> dict:
        from simkit.tasks.base import command_line
        from simkit.tasks.search import SearchInputs, TemplateConfig, TemplateInputs
        from simkit.tasks.search import search as search_task
        from simkit.tasks.search import template as build

        seed = settings["seed"]
        config = search_config(ctx, settings)
        window = region_text(settings["signal_region"])
        if settings["scan"]:
            # every window gets its own template (OmniFold blinded to it): nothing to
            # build for the fixed signal region. Each window is a shard in
            # search/scan.shards/, on [run] scheduler when there is one (else [run] jobs
            # processes: the same numbers either way); a stage rerun
            # after a kill searches only the windows it had not finished
            config = replace(
                config,
                scan=True,
                seed=seed,
                scheduler=ctx.config["run"]["scheduler"],
                jobs=ctx.config["run"]["jobs"],
                resume=True,
                replace_other_shards=True,
            )
            inputs = SearchInputs(data=str(data), run=str(ctx.run_dir), signal=str(signal))
            unfold = unfold_options(ctx)
            result = search_task(config, inputs, folder, unfold=unfold, flow_model=str(flow))
            commands = [command_line("search", inputs, config, output=folder)]
        else:
            made = TemplateConfig(
                kind=kind,
                window=window,
                sideband_width=settings["sideband_width"],
                features=settings["features"],
                events=settings["template_events"],
                seed=seed,
                device=ctx.device,
                progress=not ctx.quiet,
            )
            parts = (
                {"data": str(data)}
                if kind == "sideband-flow"
                else {"sim": str(sim), "weights": pull, "flow": str(flow)}
            )
            source = TemplateInputs(**parts)
            build(made, source, folder / "template.h5")
            config = replace(config, window=window, seed=seed + 1)
            inputs = SearchInputs(
                data=str(data), template=str(folder / "template.h5"), signal=str(signal)
            )
            result = search_task(config, inputs, folder)
            commands = [
                command_line("template", made, source, output=folder / "template.h5"),
                command_line("search", inputs, config, output=folder),
            ]
        best = result.best
        return {
            "template": kind,
            "classifier": settings["classifier"],
            "z_global": None if result.scan is None else result.scan["z_global"],
            "n_windows": len(result.windows),
            "window": [best.low, best.high],
            "z_before": best.z_local_before_cut,
            "z_after": best.z_local,
            "efficiency": best.primary.efficiency,
            "observed": best.primary.observed,
            "expected": best.primary.expected,
            "expected_error": best.primary.expected_error,
            "trustworthy": result.trustworthy,
            "gate_min_p_value": None if best.gate is None else best.gate["min_p_value"],
            "gate_auc": None if best.gate is None else best.gate["auc"],
            "auc": best.auc,
            "max_sic": best.max_sic,
            "max_sic_error": best.max_sic_error,
            "line": result.summary_line(),
            "commands": commands,
        }

    return Stage(
        "search",
        action,
        settings=settings,
        inputs=[data, signal, *inputs],
        outputs=["metrics.json", "spectrum.png", "scan.png" if settings["scan"] else "template.h5"],
    )


def search_config(ctx: RunContext, settings: Mapping):
    """The search task's config from ``[search]`` (and what it takes from elsewhere)."""
    from simkit.tasks.search import SearchTaskConfig

    return SearchTaskConfig(
        features=settings["features"],
        efficiencies=settings["efficiencies"],
        primary=settings["primary_efficiency"],
        bin_width=settings["bin_width"],
        sideband_width=settings["sideband_width"],
        sideband_correction=settings["sideband_correction"],
        alpha=settings["gate"]["alpha"],
        auc_tolerance=settings["gate"]["auc_tolerance"],
        chi2_tolerance=settings["gate"]["chi2_tolerance"],
        classifier=settings["classifier"],
        folds=settings["folds"],
        ensemble=settings["ensemble"],
        oversample=settings["oversample"],
        template_kind=settings["template"],
        events=settings["template_events"],
        scan_width=settings["scan_width"],
        scan_min_count=settings["scan_min_count"],
        device=ctx.device,
        progress=not ctx.quiet,
    )


def unfold_options(ctx: RunContext) -> dict:
    """``[unfold]`` as OmniFold's keyword arguments, for the scan's per-window unfolding."""
    unf = ctx.config["unfold"]
    return {
        "iterations": unf["iterations"],
        "failed_reco": unf["failed_reco"],
        "tolerance": unf["tolerance"],
        "push_tolerance": unf["push_tolerance"],
        "ensemble": unf["ensemble"],
        "classifier": {"epochs": unf["epochs"], "batch_size": unf["batch_size"]},
        "columns": unf["columns"],
    }
