"""Stage ``report``: ``report.html`` and ``metrics.json`` at the root of the run folder."""

from __future__ import annotations

from pathlib import Path

from simkit.pipeline.context import RunContext
from simkit.pipeline.stages import Stage


def stage_report(ctx: RunContext) -> Stage:
    from simkit.pipeline.stages import MARKER

    def action(folder: Path) -> dict:
        from simkit.pipeline.report import write_report

        summary = write_report(ctx, ctx.warnings)
        return {"headline": summary}

    markers = [ctx.path(name, MARKER) for name in ctx.results]
    return Stage(
        "report",
        action,
        settings={"warnings": list(ctx.warnings), "config": ctx.config},
        inputs=markers,
        outputs=["../report.html", "../metrics.json"],
    )
