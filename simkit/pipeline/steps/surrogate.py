"""Stages ``surrogate-<kind>`` (fitted to the simulation) and ``validated-<kind>``
(refitted to the simulation × the OmniFold push weights), through the surrogate tasks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from simkit.errors import SimkitError
from simkit.pipeline.config import SR_COLUMN
from simkit.pipeline.context import RunContext
from simkit.pipeline.stages import Stage


def fit_config(ctx: RunContext, kind: str, seed: int):
    """The surrogate fit's task config from ``[surrogate]``."""
    from simkit.tasks.surrogate import FitConfig

    sur = ctx.config["surrogate"]
    options = sur[kind]
    return FitConfig(
        kind=kind,
        columns=sur["columns"],
        condition=sur["condition"],
        **{k: options[k] for k in ("epochs", "batch_size", "layers", "hidden", "patience")},
        bootstrap=sur["bootstrap"],
        azimuth_frame=sur["azimuth_frame"],
        seed=seed,
        device=ctx.device,
        progress=not ctx.quiet,
    )


def _fit_and_sample(
    ctx: RunContext,
    folder: Path,
    kind: str,
    seed: int,
    samples: Mapping[str, tuple[int, Path]],
    weights: str | None = None,
) -> dict:
    """Fit one surrogate to the simulation, then sample ``{file: (events, contexts)}``,
    on ``[run] threads`` torch CPU threads; the summary holds the commands."""
    from simkit.nn import cpu_threads, resolve_device
    from simkit.tasks.base import command_line
    from simkit.tasks.surrogate import FitInputs, SampleConfig, SampleInputs, fit, sample

    model = folder / "model"
    threads = ctx.config["run"]["threads"]
    config = fit_config(ctx, kind, seed)
    inputs = FitInputs(input=str(ctx.path("sim", "sim.h5")), weights=weights)
    summary: dict = {"commands": [command_line("surrogate fit", inputs, config, output=model)]}
    with cpu_threads(threads, ctx.device):
        metrics = fit(config, inputs, model).metrics
        summary.update(
            {f"fit_{k}": v for k, v in metrics.items() if not isinstance(v, (list, dict))}
        )
        for n, (name, (events, contexts)) in enumerate(samples.items()):
            what = SampleInputs(model=str(model), condition_from=str(contexts))
            # the torch path: this process imports torch to fit anyway, and the chain's
            # events stay those of its seeds (the torch-free sampler draws other noise)
            options = SampleConfig(
                events=events,
                seed=seed + 1 + n,
                device=ctx.device,
                sampler="torch",
                progress=not ctx.quiet,
            )
            rate = sample(options, what, folder / name).metrics
            summary["commands"].append(
                command_line("surrogate sample", what, options, output=folder / name)
            )
            stem = Path(name).stem
            summary[f"{stem}_events"] = events
            summary[f"{stem}_events_per_second"] = rate["events_per_second"]
            summary[f"{stem}_seconds"] = rate["seconds"]
    summary["device"] = str(resolve_device(ctx.device))
    summary["threads"] = threads
    return summary


def stage_surrogate(ctx: RunContext, kind: str) -> Stage:
    name = f"surrogate-{kind}"
    sur = ctx.config["surrogate"]
    seed = ctx.seed(name)
    sim = ctx.path("sim", "sim.h5")
    settings = {
        "kind": kind,
        "columns": sur["columns"],
        "condition": sur["condition"],
        "events": sur["events"],
        "bootstrap": sur["bootstrap"],
        kind: sur[kind],
        "device": ctx.device,
        "seed": seed,
    }

    def action(folder: Path) -> dict:
        # contexts from the simulation's own mjj spectrum: the surrogate as fitted
        return _fit_and_sample(ctx, folder, kind, seed, {"surrogate.h5": (sur["events"], sim)})

    return Stage(name, action, settings=settings, inputs=[sim], outputs=["model", "surrogate.h5"])


def push_weights_spec(ctx: RunContext) -> str:
    """The unfolded weights as a ``FILE:DATASET`` spec (a 2-D dataset gives its last row)."""
    return f"{ctx.path('unfold', 'weights.h5')}:omnifold/push"


def write_contexts(ctx: RunContext, folder: Path) -> tuple[Path, Path]:
    """The validated spectrum of the conditioning columns: the simulation's passing reco
    events with weights MC × push, over everything and inside the signal region."""
    from simkit.events import Sample, in_window
    from simkit.io import make_provenance, read_sample, read_weights, write_sample

    condition = ctx.config["surrogate"]["condition"]
    sim = read_sample(ctx.path("sim", "sim.h5"), levels=["reco"], columns=condition).reco
    push = read_weights(push_weights_spec(ctx), len(sim))
    validated = sim.with_weights(sim.weights * push).passing()
    validated = validated.mask(validated.weights > 0)
    low, high = ctx.config["detect"]["signal_region"]
    mjj = validated.column(SR_COLUMN)
    paths = []
    for name, rows in (
        ("contexts.h5", slice(None)),
        ("contexts_sr.h5", in_window(mjj, low, high)),
    ):
        table = validated.mask(rows)
        if len(table) == 0:
            raise SimkitError(f"no simulated event with weight > 0 for {name}")
        provenance = make_provenance(
            "simkit.pipeline.validated",
            what="conditioning columns of the simulation's passing reco events, weighted "
            "with MC × OmniFold push weights" + (" (signal region)" if "sr" in name else ""),
            sim=str(ctx.path("sim", "sim.h5")),
            weights=push_weights_spec(ctx),
        )
        paths.append(write_sample(folder / name, Sample(reco=table), provenance=provenance))
    return paths[0], paths[1]


def stage_validated(ctx: RunContext, kind: str) -> Stage:
    name = f"validated-{kind}"
    sur = ctx.config["surrogate"]
    seed = ctx.seed(name)
    settings = {
        "kind": kind,
        "columns": sur["columns"],
        "condition": sur["condition"],
        "events": sur["events"],
        "sr_events": sur["sr_events"],
        "bootstrap": sur["bootstrap"],
        kind: sur[kind],
        "signal_region": ctx.config["detect"]["signal_region"],
        "device": ctx.device,
        "seed": seed,
    }

    def action(folder: Path) -> dict:
        contexts, contexts_sr = write_contexts(ctx, folder)
        samples = {
            "surrogate.h5": (sur["events"], contexts),
            "surrogate_sr.h5": (sur["sr_events"], contexts_sr),
        }
        return _fit_and_sample(ctx, folder, kind, seed, samples, weights=push_weights_spec(ctx))

    return Stage(
        name,
        action,
        settings=settings,
        inputs=[ctx.path("sim", "sim.h5"), ctx.path("unfold", "weights.h5")],
        outputs=["model", "surrogate.h5", "surrogate_sr.h5", "contexts.h5", "contexts_sr.h5"],
    )
