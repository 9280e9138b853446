"""Stage ``compare``: every candidate against the data through the gate (the compare task)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from simkit.pipeline.context import RunContext
from simkit.pipeline.stages import Stage
from simkit.pipeline.steps.unfold import blind_args, blind_options


@dataclass(frozen=True)
class Comparison:
    """One candidate against a reference (the data unless said) through the gate."""

    name: str
    title: str
    candidate: Path
    weights: str | None = None
    columns: tuple[str, ...] | None = None
    after: bool = False  # a corrected sample (reported as "after")
    reference: Path | None = None  # None: the data
    reference_weights: str | None = None
    reference_title: str = "data"


def comparisons(ctx: RunContext) -> list[Comparison]:
    """Every comparison of the ``compare`` stage, in report order."""
    sim = ctx.path("sim", "sim.h5")
    unfold_columns = ctx.config["unfold"]["columns"]
    sim_columns = tuple(unfold_columns) if unfold_columns else None
    push = f"{ctx.path('unfold', 'weights.h5')}:omnifold/push"
    out = [
        Comparison("sim-before", "simulation", sim, columns=sim_columns),
        Comparison(
            "sim-push",
            "simulation × push (unfolded, gen-level weights)",
            sim,
            push,
            sim_columns,
            after=True,
        ),
    ]
    if ctx.config["compare"]["pull"]:
        out.append(
            Comparison(
                "sim-pull",
                "simulation × pull (step-1 reco-level weights)",
                sim,
                f"{ctx.path('unfold', 'weights.h5')}:omnifold/pull",
                sim_columns,
                after=True,
            )
        )
    sur = ctx.config["surrogate"]
    columns = tuple(dict.fromkeys([*sur["condition"], *sur["columns"]]))
    for kind in sur["kinds"]:
        before = ctx.path(f"surrogate-{kind}", "surrogate.h5")
        validated = ctx.path(f"validated-{kind}", "surrogate.h5")
        out += [
            Comparison(f"{kind}-before", f"{kind} surrogate", before, columns=columns),
            Comparison(
                f"{kind}-validated",
                f"validated {kind} surrogate (refitted to simulation × push)",
                validated,
                columns=columns,
                after=True,
            ),
            # against its own target: what the surrogate failed to learn, apart from
            # what the data and the simulation disagree on
            Comparison(
                f"{kind}-target",
                f"validated {kind} surrogate",
                validated,
                columns=columns,
                after=True,
                reference=sim,
                reference_weights=push,
                reference_title="its target: simulation × push",
            ),
        ]
    return out


def stage_compare(ctx: RunContext) -> Stage:
    seed = ctx.seed("compare")
    gate = ctx.config["compare"]
    todo = comparisons(ctx)
    data = ctx.path("data", "data.h5")
    candidates = dict.fromkeys(c.candidate for c in todo)
    inputs = [data, ctx.path("sim", "sim.h5"), *candidates, ctx.path("unfold", "weights.h5")]

    def action(folder: Path) -> dict:
        from simkit.tasks.base import command_line
        from simkit.tasks.compare import CompareConfig, CompareInputs
        from simkit.tasks.compare import run as compare

        summary: dict = {"comparisons": {}, "commands": []}
        for item in todo:
            out = folder / item.name
            config = CompareConfig(
                columns=item.columns,
                **{k: gate[k] for k in ("alpha", "auc_tolerance", "chi2_tolerance", "bins")},
                bootstrap=gate["bootstrap"],
                **(blind_options(ctx) if item.reference is None else {}),  # against the data
                seed=seed,
                device=ctx.device,
                progress=not ctx.quiet,
            )
            inputs = CompareInputs(
                reference=str(item.reference or data),
                candidate=str(item.candidate),
                reference_weights=item.reference_weights,
                candidate_weights=item.weights,
            )
            metrics = compare(config, inputs, out).metrics
            if not ctx.quiet:
                ctx.log(
                    f"  {item.name}: {(metrics['validated'] and 'validated') or 'not validated'}"
                )
            summary["commands"].append(command_line("compare", inputs, config, output=out))
            summary["comparisons"][item.name] = {
                "title": item.title,
                "reference": item.reference_title,
                "after": item.after,
                **{
                    k: metrics[k]
                    for k in (
                        "auc",
                        "auc_low",
                        "auc_high",
                        "max_chi2_ndf",
                        "worst_column",
                        "auc_p_value",
                        "min_p_value",
                        "n_reference",
                        "n_candidate",
                        "ess_candidate",
                        "validated",
                    )
                },
            }
        return summary

    settings = {"gate": gate, "device": ctx.device, "seed": seed, "blind": blind_args(ctx)}
    settings["comparisons"] = [
        [c.name, c.columns, c.weights and c.weights.rpartition(":")[2], c.reference_title]
        for c in todo
    ]
    return Stage(
        "compare",
        action,
        settings=settings,
        inputs=inputs,
        outputs=[f"{c.name}/metrics.json" for c in todo],
    )
