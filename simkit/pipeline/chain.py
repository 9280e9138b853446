"""The default chain, stage by stage, and :func:`run_pipeline` that runs it.

Each stage writes into its own folder of the run folder and reads the files of the
stages before it; where a ``simkit`` command does the job, the stage runs that very
command (in this process), so its folder holds what the command writes by hand and
the report can quote the command:

1. ``sim`` — QCD dijets, the simulation's tune, gen + reco → ``sim.h5``; the chain's
   end-to-end rate in this run (the anchor of the surrogates' speed-up);
2. ``data`` — QCD dijets with the data tune and a jet-energy-scale shift, with
   W' → XY injected at ``s_over_b`` among passing events → ``data.h5`` (reco level
   only, labels kept for evaluation only); the W' events not injected → ``signal.h5``;
3. ``surrogate-<kind>`` — a flow (and/or GAN) fitted to the simulation at reco level,
   conditioned on mjj, and sampled → ``model/``, ``surrogate.h5``;
4. ``unfold`` — ``simkit unfold`` of the simulation to the data;
5. ``validated-<kind>`` — the surrogate refitted to the simulation × OmniFold push
   weights (weighted maximum likelihood), sampled over the validated mjj spectrum and
   inside the signal region;
6. ``compare`` — ``simkit compare`` of each candidate against the data (the gate);
7. ``detect-<model>-<labels>`` — ``simkit detect train`` on validated surrogate events,
   ``simkit detect score`` of the data and of the signal-only sample;
8. ``evaluate`` — ROC, SIC, ε_S at ε_B and the bump hunt per detector;
9. ``report`` — ``report.html`` and ``metrics.json`` at the root of the run folder.
"""

from __future__ import annotations

import os
import shlex
import shutil
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from simkit.errors import SimkitError
from simkit.pipeline.config import SR_COLUMN, detector_names, load_config
from simkit.pipeline.stages import Stage, StageResult, run_stage
from simkit.regions import region_text


@dataclass
class RunContext:
    """What every stage needs: the resolved config, where to write, how to talk."""

    config: dict
    run_dir: Path
    device: str
    quiet: bool
    log: Callable[[str], None]
    results: dict[str, StageResult] = field(default_factory=dict)

    def path(self, *parts: str) -> Path:
        return self.run_dir.joinpath(*parts)

    def seed(self, name: str) -> int:
        """The seed of one stage: derived from the run's seed and the stage's name, so
        that stages never share a random stream and a new stage changes no other."""
        sequence = np.random.SeedSequence([self.config["run"]["seed"], zlib.crc32(name.encode())])
        return int(sequence.generate_state(1, np.uint32)[0] % (2**31 - 1))


# --------------------------------------------------------------------------- 1. sim


def _passing(path: Path, level: str = "reco") -> int:
    from simkit.io import read_sample

    return int(read_sample(path, levels=[level], columns=[SR_COLUMN]).level(level).passed.sum())


def stage_sim(ctx: RunContext) -> Stage:
    gen = ctx.config["generate"]
    settings = {k: gen[k] for k in ("sim_events", "sim_tune", "min_pt", "pthat_min")}
    seed = ctx.seed("sim")

    def action(folder: Path) -> dict:
        from simkit.generators.pythia import generate
        from simkit.io import inspect

        jobs = ctx.config["run"]["jobs"]
        scheduler = ctx.config["run"]["scheduler"]
        path = folder / "sim.h5"
        t0 = time.perf_counter()
        generate(
            "qcd-dijet",
            gen["sim_events"],
            seed,
            tune=gen["sim_tune"],
            jobs=jobs,
            scheduler=scheduler,
            resume=True,  # a stage rerun after a kill keeps the finished shards
            output=path,
            progress=not ctx.quiet,
            min_pt=gen["min_pt"],
            pthat_min=gen["pthat_min"],
        )
        seconds = time.perf_counter() - t0
        passing = _passing(path)
        command = shlex.join(
            [
                "simkit",
                "generate",
                "qcd-dijet",
                "--events",
                str(gen["sim_events"]),
                "--seed",
                str(seed),
                "--tune",
                gen["sim_tune"],
                "--min-pt",
                f"{gen['min_pt']:g}",
                "--pthat-min",
                f"{gen['pthat_min']:g}",
                *(["--scheduler", scheduler] if scheduler else ["--jobs", str(jobs)]),
                "--resume",
                "-o",
                str(path),
            ]
        )
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
        from simkit.generators.pythia import generate
        from simkit.io import make_provenance, read_sample, write_sample

        jobs = ctx.config["run"]["jobs"]
        common = {
            "tune": gen["data_tune"],
            "jobs": jobs,
            "scheduler": ctx.config["run"]["scheduler"],
            "resume": True,
            "jes": gen["data_jes"],
            "min_pt": gen["min_pt"],
            "progress": not ctx.quiet,
        }
        # generated into files of the stage folder, which Dask workers see too
        parts = folder / "generated"
        background = generate(
            "qcd-dijet",
            gen["data_events"],
            seeds["background"],
            pthat_min=gen["pthat_min"],
            output=parts / "background.h5",
            **common,
        )
        signal = generate(
            "wprime-xy",
            gen["signal_events"],
            seeds["signal"],
            mwprime=gen["mwprime"],
            mx=gen["mx"],
            my=gen["my"],
            output=parts / "signal.h5",
            **common,
        )
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
            "commands": [],
        }

    return Stage(
        "data",
        action,
        settings={**{k: gen[k] for k in keys}, "signal_region": region, "seeds": seeds},
        outputs=["data.h5", "signal.h5"],
    )


# --------------------------------------------------------------------------- 3. surrogates


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
            options = SampleConfig(
                events=events, seed=seed + 1 + n, device=ctx.device, progress=not ctx.quiet
            )
            rate = sample(options, what, folder / name).metrics
            summary["commands"].append(
                command_line("surrogate sample", what, options, output=folder / name)
            )
            stem = Path(name).stem
            summary[f"{stem}_events"] = events
            summary[f"{stem}_events_per_second"] = rate["events_per_second"]
            summary[f"{stem}_seconds"] = rate["generate_seconds"] + rate["write_seconds"]
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


# --------------------------------------------------------------------------- 4. unfold


def unfold_config(ctx: RunContext, seed: int):
    """The ``unfold`` stage's task config, from ``[unfold]`` and ``[compare]``."""
    from simkit.tasks.unfold import UnfoldConfig

    unf, gate = ctx.config["unfold"], ctx.config["compare"]
    keys = ("iterations", "failed_reco", "tolerance", "push_tolerance", "ensemble", "epochs")
    return UnfoldConfig(
        columns=unf["columns"] or None,
        **{k: unf[k] for k in (*keys, "batch_size")},
        **{k: gate[k] for k in ("alpha", "auc_tolerance", "chi2_tolerance", "bins")},
        **_blind(ctx),
        seed=seed,
        device=ctx.device,
        progress=not ctx.quiet,
    )


def _blind_args(ctx: RunContext) -> list:
    """``--blind`` of the signal region when ``[unfold] blind``: OmniFold's step 1 and
    every comparison with the data look only outside it."""
    blind = _blind(ctx)
    return [] if not blind else ["--blind", blind["blind"], "--blind-column", SR_COLUMN]


def _blind(ctx: RunContext) -> dict:
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


# --------------------------------------------------------------------------- 5. validated


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


# --------------------------------------------------------------------------- 6. compare


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
                **(_blind(ctx) if item.reference is None else {}),  # against the data
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

    settings = {"gate": gate, "device": ctx.device, "seed": seed, "blind": _blind_args(ctx)}
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


# --------------------------------------------------------------------------- 7. detect


def stage_detect(ctx: RunContext, model: str, labels: str) -> Stage:
    name = f"detect-{model}-{labels}"
    det = ctx.config["detect"]
    seed = ctx.seed(name)
    validated = ctx.path(f"validated-{det['surrogate']}")
    # labels = all trains on validated background events inside the signal region (where
    # the data are scored); sideband and tag-and-probe choose from the whole spectrum
    training = validated / ("surrogate_sr.h5" if labels == "all" else "surrogate.h5")
    data, signal = ctx.path("data", "data.h5"), ctx.path("data", "signal.h5")

    def action(folder: Path) -> dict:
        from simkit.tasks.base import command_line
        from simkit.tasks.detect import ScoreConfig, ScoreInputs, TrainConfig, TrainInputs, train
        from simkit.tasks.detect import score as score_events

        det_dir = folder / "model"
        config = TrainConfig(
            model=model,
            labels=labels,
            signal_region=region_text(det["signal_region"]),
            sidebands=region_text(det["sidebands"]) if det["sidebands"] else None,
            features=det["features"] or None,
            tag=det["tag"],
            epochs=det["epochs"],
            latent=det["latent"],
            beta=det["beta"],
            patience=det["patience"],
            seed=seed,
            device=ctx.device,
            progress=not ctx.quiet,
        )
        inputs = TrainInputs(input=(str(training),))
        log = None if ctx.quiet else ctx.log
        metrics = train(config, inputs, det_dir, log=log).metrics
        commands = [command_line("detect train", inputs, config, output=det_dir)]
        scoring = ScoreConfig(
            device=ctx.device, scheduler=ctx.config["run"]["scheduler"], progress=not ctx.quiet
        )
        for source, output in ((data, "scores_data.h5"), (signal, "scores_signal.h5")):
            what = ScoreInputs(model=str(det_dir), input=(str(source),))
            score_events(scoring, what, folder / output)
            commands.append(command_line("detect score", what, scoring, output=folder / output))
        return {
            "model": model,
            "labels": labels,
            "score": metrics["score"],
            "features": metrics["features"],
            "training_file": str(training),
            "training_examples": metrics["labels_training_examples"],
            "kept_events": metrics["labels_kept_events"],
            "train_epochs": metrics["train_epochs"],
            "train_seconds": metrics["train_seconds"],
            "commands": commands,
        }

    settings = {
        "model": model,
        "labels": labels,
        "detect": {k: v for k, v in det.items() if k not in ("models", "labels")},
        "device": ctx.device,
        "seed": seed,
    }
    return Stage(
        name,
        action,
        settings=settings,
        inputs=[training, data, signal],
        outputs=["model", "scores_data.h5", "scores_signal.h5"],
    )


# --------------------------------------------------------------------------- 8. evaluate


def evaluate_detector(ctx: RunContext, detector_dir: Path, out: Path) -> dict:
    """ROC on the signal region, the bump hunt on the data; metrics and plots into ``out``.

    The ROC takes the data's background events in the signal region against every
    signal event there — those injected into the data *and* those of the signal-only
    sample (:func:`simkit.tasks.detect.evaluate` with ``signal``); the cut for the bump
    hunt is fixed on the data themselves (labels never enter).
    """
    from simkit.tasks.detect import EvaluateConfig, EvaluateInputs, evaluate

    ev, det = ctx.config["evaluate"], ctx.config["detect"]
    config = EvaluateConfig(
        signal_region=region_text(det["signal_region"]),
        sidebands=region_text(det["sidebands"]) if det["sidebands"] else None,
        min_background=ev["min_background"],
        eps_b_targets=ev["eps_b_targets"],
        target_eps_b=ev["target_eps_b"],
        bin_width=ev["bin_width"],
        mjj_range=region_text(ev["mjj_range"]) if ev["mjj_range"] else None,
    )
    inputs = EvaluateInputs(
        scores=str(detector_dir / "scores_data.h5"),
        signal=str(detector_dir / "scores_signal.h5"),
    )
    return evaluate(config, inputs, out).metrics


def stage_evaluate(ctx: RunContext) -> Stage:
    names = detector_names(ctx.config)
    folders = {f"{m}-{lab}": ctx.path(f"detect-{m}-{lab}") for m, lab in names}
    inputs = [f / s for f in folders.values() for s in ("scores_data.h5", "scores_signal.h5")]

    def action(folder: Path) -> dict:
        summary: dict = {"detectors": {}}
        for name, det_dir in folders.items():
            metrics = evaluate_detector(ctx, det_dir, folder / name)
            summary["detectors"][name] = {
                k: metrics.get(k)
                for k in (
                    "score",
                    "auc",
                    "max_sic",
                    "max_sic_error",
                    "max_sic_eps_s",
                    "max_sic_eps_b",
                    "eps_s_at_eps_b",
                    "eps_s_at_eps_b_error",
                    "auc_injected_only",
                    "signal_events",
                    "background_events",
                    "roc_signal_injected",
                    "roc_signal_test",
                    "bump_z_local",
                    "bump_z_local_before_cut",
                    "bump_observed_sr",
                    "bump_expected_sr",
                    "bump_expected_sr_error",
                    "cut_pass_fraction",
                    "notes",
                )
            }
        return summary

    settings = {"evaluate": ctx.config["evaluate"], "detect": ctx.config["detect"]}
    outputs = [f"{name}/metrics.json" for name in folders]
    return Stage("evaluate", action, settings=settings, inputs=inputs, outputs=outputs)


# --------------------------------------------------------------------------- 9. report


# --------------------------------------------------------------------------- 9. search


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
            # build for the fixed signal region
            config = replace(config, scan=True, seed=seed)
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


def stage_report(ctx: RunContext, warnings: Sequence[str]) -> Stage:
    from simkit.pipeline.stages import MARKER

    def action(folder: Path) -> dict:
        from simkit.pipeline.report import write_report

        summary = write_report(ctx, warnings)
        return {"headline": summary}

    markers = [ctx.path(name, MARKER) for name in ctx.results]
    return Stage(
        "report",
        action,
        settings={"warnings": list(warnings), "config": ctx.config},
        inputs=markers,
        outputs=["../report.html", "../metrics.json"],
    )


# --------------------------------------------------------------------------- the run


def stage_names(config: Mapping) -> list[str]:
    """Every stage of a config, in the order they run."""
    kinds = config["surrogate"]["kinds"]
    return [
        "sim",
        "data",
        *(f"surrogate-{k}" for k in kinds),
        "unfold",
        *(f"validated-{k}" for k in kinds),
        "compare",
        *(f"detect-{m}-{lab}" for m, lab in detector_names(config)),
        "evaluate",
        *(["search"] if config["search"]["enabled"] else []),
        "report",
    ]


def _factories(ctx: RunContext, warnings: Sequence[str]) -> list[tuple[str, Callable[[], Stage]]]:
    kinds = ctx.config["surrogate"]["kinds"]
    out: list[tuple[str, Callable[[], Stage]]] = [
        ("sim", lambda: stage_sim(ctx)),
        ("data", lambda: stage_data(ctx)),
    ]
    out += [(f"surrogate-{k}", lambda k=k: stage_surrogate(ctx, k)) for k in kinds]
    out.append(("unfold", lambda: stage_unfold(ctx)))
    out += [(f"validated-{k}", lambda k=k: stage_validated(ctx, k)) for k in kinds]
    out.append(("compare", lambda: stage_compare(ctx)))
    out += [
        (f"detect-{m}-{lab}", lambda m=m, lab=lab: stage_detect(ctx, m, lab))
        for m, lab in detector_names(ctx.config)
    ]
    out.append(("evaluate", lambda: stage_evaluate(ctx)))
    if ctx.config["search"]["enabled"]:
        out.append(("search", lambda: stage_search(ctx)))
    out.append(("report", lambda: stage_report(ctx, warnings)))
    return out


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
    ctx = RunContext(resolved, run_dir, resolved["run"]["device"], quiet, say)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "config.json", resolved)
    for warning in warnings:
        say(f"warning: {warning}")
    t0 = time.perf_counter()
    for name, factory in _factories(ctx, warnings):
        stage = factory()
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
