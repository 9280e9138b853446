"""Stages ``detect-<model>-<labels>`` (train and score, the detect tasks) and
``evaluate`` (ROC, SIC and the bump hunt of each detector)."""

from __future__ import annotations

from pathlib import Path

from simkit.pipeline.config import detector_names
from simkit.pipeline.context import RunContext
from simkit.pipeline.stages import Stage
from simkit.regions import region_text


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
