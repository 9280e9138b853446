"""The whole chain end to end on tiny sizes: an interrupted run resumes, a finished one
skips every stage, and the report is one self-contained file with the summary first."""

import json
import re

import pytest

import simkit.pipeline.chain as chain
import simkit.pipeline.steps.detect as detect_steps
from simkit.cli import main
from simkit.pipeline import run_pipeline, stage_names
from simkit.pipeline.report import HEADLINE_KEYS

#: Small enough for the default test run (~20 s on two free cores): the numbers mean
#: nothing at this size, the test checks that every stage runs and hands files on.
TINY = {
    "run": {"seed": 3, "jobs": 1, "device": "cpu"},
    "generate": {"sim_events": 500, "data_events": 500, "signal_events": 250, "s_over_b": 0.05},
    "surrogate": {"events": 1500, "sr_events": 800, "bootstrap": 0},
    "unfold": {"iterations": 1, "epochs": 5},
    "compare": {"bootstrap": 0},
    "detect": {"epochs": 3},
    "evaluate": {"target_eps_b": 0.1, "min_background": 5, "bin_width": 200.0},
    "search": {
        "template_events": 3000,
        "folds": 3,
        "ensemble": 1,
        "efficiencies": [0.1],
        "primary_efficiency": 0.1,
    },
}
TINY["surrogate"]["flow"] = {"epochs": 2, "layers": 2, "hidden": 16}


class Interrupted(KeyboardInterrupt):
    """Stands for Ctrl-C in the middle of a stage."""


def _markers(run_dir):
    return {p.parent.name for p in run_dir.glob("*/stage.json")}


def test_interrupted_run_resumes_then_skips_everything(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    names = stage_names(chain.load_config(TINY)[0])

    def interrupt(*args, **kwargs):
        raise Interrupted

    monkeypatch.setattr(detect_steps, "evaluate_detector", interrupt)
    with pytest.raises(Interrupted):
        run_pipeline(TINY, run_dir, quiet=True)
    done_before = names[: names.index("evaluate")]
    assert _markers(run_dir) == set(done_before)  # the interrupted stage left no marker
    assert not (run_dir / "report.html").exists()
    monkeypatch.undo()

    resumed = run_pipeline(TINY, run_dir, quiet=True)
    ran = {name for name, stage in resumed["stages"].items() if not stage["skipped"]}
    assert ran == {"evaluate", "search", "report"}  # finished stages were not redone
    assert list(resumed["stages"]) == names

    again = run_pipeline(TINY, run_dir, quiet=True)
    assert all(stage["skipped"] for stage in again["stages"].values())
    assert again["headline"] == resumed["headline"]

    # the report: one file, summary first, images inside, nothing fetched from elsewhere
    text = (run_dir / "report.html").read_text()
    summary = text.index("<h2>Summary</h2>")
    assert summary < text.index("1. Simulation")
    for heading in ("speed-up over the Pythia chain", "Validation gate", "Detectors"):
        assert summary < text.index(heading) < text.index("1. Simulation")
    assert text.count("data:image/png;base64,") >= 15
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", text)
    assert "<script" not in text and "<link" not in text
    assert "statistically weak" in text  # honest at this size
    assert "NOT VALIDATED" in text or "VALIDATED" in text

    headline = json.loads((run_dir / "metrics.json").read_text())
    assert headline == resumed["headline"]
    assert headline["surrogate_flow_speed_up"] > 1
    for name in ("sim_before", "sim_push", "sim_pull", "flow_before", "flow_validated"):
        assert isinstance(headline[f"gate_{name}_validated"], bool)
    assert isinstance(headline["gate_flow_target_validated"], bool)
    # every key is one the README documents (patterns such as gate_<comparison>_auc)
    patterns = [re.sub("<[^>]+>", "[a-z0-9_.+-]+", re.escape(k)) for k in HEADLINE_KEYS]
    for key in headline:
        assert any(re.fullmatch(p, key) for p in patterns), key
    for labels in ("all", "sideband", "tag_and_probe"):
        assert 0.0 <= headline[f"detector_vae_{labels}_auc"] <= 1.0

    # blinded by default: the signal region is out of step 1 and of every comparison
    # with the data, not of the surrogate's comparison with its own target
    sr = [*TINY.get("detect", {}).get("signal_region", [3300.0, 3700.0])]
    unfold = json.loads((run_dir / "unfold" / "metrics.json").read_text())
    assert unfold["blind"] == ["mjj", *sr]
    for name in ("sim-before", "sim-push", "flow-validated"):
        assert json.loads((run_dir / "compare" / name / "metrics.json").read_text())["blind"]
    assert "blind" not in json.loads(
        (run_dir / "compare" / "flow-target" / "metrics.json").read_text()
    )
    assert "Blinded: step 1 learns from the data outside" in text

    # the data hold reco events only, the signal at the asked S/B
    from simkit.io import inspect, read_sample

    info = inspect(run_dir / "data" / "data.h5")
    assert set(info.levels) == {"reco"} and info.has_labels
    data = read_sample(run_dir / "data" / "data.h5")
    n_signal = int((data.labels == 1).sum())
    assert n_signal == round(0.05 * int((data.labels == 0).sum()))

    # the command line on the finished run: every stage skipped, the report named
    assert main(["run", "--quiet", "-o", str(run_dir), str(_write_toml(tmp_path))]) == 0


def _write_toml(tmp_path):
    lines = []
    for section, values in TINY.items():
        nested = {k: v for k, v in values.items() if isinstance(v, dict)}
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items() if k not in nested]
        for name, table in nested.items():
            lines.append(f"[{section}.{name}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    path = tmp_path / "tiny.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_gan_and_ae_options_run_through_the_chain(tmp_path):
    """The options the demo leaves out: both surrogates, detectors trained on the GAN's
    validated events, AE and VAE; every stage runs and the headline names them all."""
    config = json.loads(json.dumps(TINY))
    config["surrogate"]["kinds"] = ["flow", "gan"]
    config["surrogate"]["gan"] = {"epochs": 2, "layers": 1, "hidden": 16}
    config["detect"].update(models=["ae", "vae"], labels=["all", "tag-and-probe"], surrogate="gan")
    summary = run_pipeline(config, tmp_path / "run", quiet=True)
    names = list(summary["stages"])
    for stage in ("surrogate-gan", "validated-gan", "detect-ae-all", "detect-vae-tag-and-probe"):
        assert stage in names and not summary["stages"][stage]["skipped"]
    headline = summary["headline"]
    assert headline["surrogate_gan_speed_up"] > 1
    assert isinstance(headline["gate_gan_validated_validated"], bool)
    for model in ("ae", "vae"):
        for labels in ("all", "tag_and_probe"):
            assert 0.0 <= headline[f"detector_{model}_{labels}_auc"] <= 1.0
    # the detectors read the GAN's events, not the flow's
    train = json.loads((tmp_path / "run" / "detect-ae-all" / "stage.json").read_text())
    assert "validated-gan" in json.dumps(train["settings"]) + json.dumps(train["summary"])


@pytest.mark.slow
def test_the_search_stage_scans_when_asked(tmp_path, monkeypatch):
    """[search] scan = true: windows across mjj, OmniFold blinded to each, z_global. A
    run killed in the second window resumes the scan there (the first is kept)."""
    import copy

    import detectors.search

    config = copy.deepcopy(TINY)
    config["search"].update(scan=True, scan_min_count=20)
    search_window = detectors.search.search_window
    searched = []

    def search_then_stop(data, template, region, *args, **kwargs):
        searched.append(region.low)
        if len(searched) == 2 and not resumed:
            raise Interrupted
        return search_window(data, template, region, *args, **kwargs)

    monkeypatch.setattr(detectors.search, "search_window", search_then_stop)
    resumed = False
    with pytest.raises(Interrupted):
        run_pipeline(config, tmp_path / "run", quiet=True)
    assert len(list((tmp_path / "run" / "search" / "scan.shards").glob("shard-*.h5"))) == 1
    resumed = True
    summary = run_pipeline(config, tmp_path / "run", quiet=True)
    metrics = json.loads((tmp_path / "run" / "search" / "metrics.json").read_text())
    assert metrics["n_windows"] == len(metrics["windows"]) >= 2
    assert len(searched) == 1 + metrics["n_windows"]  # the first window was not redone
    assert not (tmp_path / "run" / "search" / "scan.shards").exists()
    assert "z_global" in metrics and metrics["scan"]["width_rule"].startswith("3 ×")
    assert summary["headline"]["search_z_global"] == metrics["z_global"]
    assert (tmp_path / "run" / "search" / "scan.png").exists()
