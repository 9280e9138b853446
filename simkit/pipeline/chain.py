"""The default chain, stage by stage, and :func:`run_pipeline` that runs it.

Each stage writes into its own folder of the run folder and reads the files of the
stages before it; it calls the task (:mod:`simkit.tasks`) that the matching ``simkit``
command calls, so its folder holds what the command writes by hand, and the report
quotes the command, generated from the same task config. The stages live in
:mod:`simkit.pipeline.steps`; :func:`declarations` lists them in order:

1. ``sim`` — QCD dijets, the simulation's tune, gen + reco → ``sim.h5``; the chain's
   end-to-end rate in this run (the anchor of the surrogates' speed-up);
2. ``data`` — QCD dijets with the data tune and a jet-energy-scale shift, with
   W' → XY injected at ``s_over_b`` among passing events → ``data.h5`` (reco level
   only, labels kept for evaluation only); the W' events not injected → ``signal.h5``;
3. ``surrogate-<kind>`` — a flow (and/or GAN) fitted to the simulation at reco level,
   conditioned on mjj, and sampled → ``model/``, ``surrogate.h5``;
4. ``unfold`` — the unfold task: OmniFold of the simulation to the data;
5. ``validated-<kind>`` — the surrogate refitted to the simulation × OmniFold push
   weights (weighted maximum likelihood), sampled over the validated mjj spectrum and
   inside the signal region;
6. ``compare`` — the compare task for each candidate against the data (the gate);
7. ``detect-<model>-<labels>`` — the detect tasks: train on validated surrogate events,
   score the data and the signal-only sample;
8. ``evaluate`` — ROC, SIC, ε_S at ε_B and the bump hunt per detector;
9. ``search`` — the template search, in the signal region or scanned across mjj;
10. ``report`` — ``report.html`` and ``metrics.json`` at the root of the run folder.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from simkit.errors import SimkitError
from simkit.pipeline.config import detector_names, load_config
from simkit.pipeline.context import RunContext
from simkit.pipeline.stages import Stage, run_stage
from simkit.pipeline.steps.compare import stage_compare
from simkit.pipeline.steps.detect import stage_detect, stage_evaluate
from simkit.pipeline.steps.generate import stage_data, stage_sim
from simkit.pipeline.steps.report import stage_report
from simkit.pipeline.steps.search import stage_search
from simkit.pipeline.steps.surrogate import stage_surrogate, stage_validated
from simkit.pipeline.steps.unfold import stage_unfold


def declarations(config: Mapping) -> list[tuple[str, Callable[[RunContext], Stage]]]:
    """Every stage of a config, in the order they run: ``(name, make(ctx))``."""
    kinds = config["surrogate"]["kinds"]
    out: list[tuple[str, Callable[[RunContext], Stage]]] = [
        ("sim", stage_sim),
        ("data", stage_data),
        *((f"surrogate-{k}", partial(stage_surrogate, kind=k)) for k in kinds),
        ("unfold", stage_unfold),
        *((f"validated-{k}", partial(stage_validated, kind=k)) for k in kinds),
        ("compare", stage_compare),
        *(
            (f"detect-{m}-{lab}", partial(stage_detect, model=m, labels=lab))
            for m, lab in detector_names(config)
        ),
        ("evaluate", stage_evaluate),
    ]
    if config["search"]["enabled"]:
        out.append(("search", stage_search))
    out.append(("report", stage_report))
    return out


def stage_names(config: Mapping) -> list[str]:
    """Every stage of a config, in the order they run."""
    return [name for name, _ in declarations(config)]


def _matches(name: str, patterns: Iterable[str]) -> bool:
    """``all``, a stage's name, or the part before its first ``-`` (``detect``)."""
    return any(p in ("all", name) or name.startswith(f"{p}-") for p in patterns)


def _check_stage_patterns(patterns: Iterable[str], names: Sequence[str], flag: str) -> None:
    for pattern in patterns:
        if not any(_matches(n, [pattern]) for n in names):
            raise SimkitError(
                f"{flag} {pattern!r} names no stage; stages: all, {', '.join(names)} "
                "(or a prefix such as detect)"
            )


def run_pipeline(
    config: str | os.PathLike | Mapping[str, Any],
    run_dir: str | os.PathLike,
    *,
    force: Sequence[str] = (),
    device: str | None = None,
    until: str | None = None,
    quiet: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Run the chain of ``config`` (a TOML path or a parsed document) into ``run_dir``.

    Stages whose settings and input files are unchanged since they last finished are
    skipped, so a second call resumes an interrupted run. ``force`` reruns stages
    (``"all"``, a name such as ``"unfold"``, or a prefix such as ``"detect"``); stages
    after them rerun when their inputs changed. ``device`` overrides ``[run] device``;
    ``until`` stops after that stage. Returns the run's summary: the headline numbers
    (also in ``run_dir/metrics.json``), each stage's summary and time, the warnings,
    and the report's path.

    >>> summary = run_pipeline("examples/demo.toml", "runs/demo")  # doctest: +SKIP
    >>> summary["headline"]["validated_flow_validated"]  # doctest: +SKIP
    """
    from simkit.io import write_json

    resolved, warnings = load_config(config)
    if device is not None:
        resolved["run"]["device"] = device
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise SimkitError(f"{run_dir}: exists and is not a folder")
    names = stage_names(resolved)
    _check_stage_patterns(force, names, "--force")
    if until is not None:
        _check_stage_patterns([until], names, "--until")
    say = (lambda _: None) if quiet else (log or print)
    ctx = RunContext(resolved, run_dir, resolved["run"]["device"], quiet, say, warnings=warnings)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "config.json", resolved)
    for warning in warnings:
        say(f"warning: {warning}")
    t0 = time.perf_counter()
    for name, make in declarations(resolved):
        stage = make(ctx)
        ctx.results[name] = run_stage(stage, run_dir, force=_matches(name, force), log=say)
        if until is not None and _matches(name, [until]):
            break
    return {
        "run_dir": str(run_dir),
        "report": str(run_dir / "report.html") if "report" in ctx.results else None,
        "headline": ctx.results["report"].summary["headline"] if "report" in ctx.results else {},
        "stages": {
            name: {"seconds": r.seconds, "skipped": r.skipped, "summary": r.summary}
            for name, r in ctx.results.items()
        },
        "warnings": warnings,
        "seconds": time.perf_counter() - t0,
    }
