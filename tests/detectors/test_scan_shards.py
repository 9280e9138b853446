"""A scan's windows as shards: the same numbers whoever runs them, resumable, and a
window's result file that gives back what the metrics and the plots read."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from dijet_toy import dijet_sample

import detectors.search
from detectors.labels import SignalRegion
from detectors.scan import scan
from detectors.scan_shards import FixedTemplate, ScanShard, scan_in_shards, scan_plan
from detectors.search import SearchConfig, SearchResult, WindowResult, search_window
from detectors.template import TemplateClassifierConfig
from simkit.errors import SimkitError
from simkit.io import read_sample, write_sample
from simkit.shards import local_cluster

FEATURES = ("m_j1", "tau21_j1", "m_j2", "tau21_j2")
FAST = SearchConfig(
    features=FEATURES,
    gate=False,
    efficiencies=(0.1, 0.01),
    classifier=TemplateClassifierConfig(folds=3, ensemble=1, max_iter=30),
)
WINDOWS = ((3050.0, 3450.0), (3250.0, 3700.0), (3450.0, 3950.0))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Toy data with a little signal at 3.5 TeV, and an idealized template."""
    folder = tmp_path_factory.mktemp("scan_shards")
    rng = np.random.default_rng(31)
    write_sample(folder / "data.h5", dijet_sample(6000, 60, rng))
    write_sample(folder / "template.h5", dijet_sample(12000, 0, rng).with_labels(None))
    return folder


def task(files, windows=WINDOWS, config=FAST, **kwargs) -> ScanShard:
    return ScanShard(
        data=str(files / "data.h5"),
        windows=windows,
        templates=FixedTemplate(str(files / "template.h5")),
        config=config,
        seed=4,
        **kwargs,
    )


def metrics(result) -> str:
    """What metrics.json holds, as text: identical numbers or not."""
    return json.dumps(result.to_dict(), sort_keys=True, default=float)


def test_shards_in_process_and_in_two_processes_give_the_in_memory_scan(files, tmp_path):
    """The scan in memory, its windows as shards in this process, and in two worker
    processes: the same metrics, to the last bit."""
    two = task(files, WINDOWS[:2])
    data = read_sample(files / "data.h5", levels=["reco"]).reco
    template = read_sample(files / "template.h5").reco
    windows = [SignalRegion(low=lo, high=hi) for lo, hi in two.windows]
    in_memory = metrics(scan(data, lambda window: template, windows, FAST, seed=4))
    assert metrics(scan_in_shards(two, tmp_path / "here")) == in_memory
    assert metrics(scan_in_shards(two, tmp_path / "jobs", jobs=2)) == in_memory
    assert not (tmp_path / "jobs" / "scan.shards").exists()  # removed at the end


@pytest.mark.slow
def test_shards_on_a_dask_cluster_give_the_same_metrics(files, tmp_path):
    pytest.importorskip("distributed")
    two = task(files, WINDOWS[:2])
    here = metrics(scan_in_shards(two, tmp_path / "here"))
    with local_cluster(2, silence_logs=50) as cluster:
        assert metrics(scan_in_shards(two, tmp_path / "dask", scheduler=cluster)) == here


def test_an_interrupted_scan_resumes_with_the_missing_windows_only(files, tmp_path, monkeypatch):
    """The third window fails (a pre-emption, say): the first two are kept; --resume
    searches only the third and gives the uninterrupted scan's metrics."""
    search = detectors.search.search_window
    searched = []

    def failing(data, template, region, *args, **kwargs):
        if region.low == WINDOWS[2][0]:
            raise RuntimeError("pre-empted")
        return search(data, template, region, *args, **kwargs)

    monkeypatch.setattr(detectors.search, "search_window", failing)
    with pytest.raises(SimkitError, match=r"shard 2 of 3 \(window 3450–3950 GeV\).*--resume"):
        scan_in_shards(task(files), tmp_path)
    plan = scan_plan(task(files), tmp_path)
    assert plan.complete() == [0, 1]
    kept = [plan.path(i).stat().st_mtime_ns for i in (0, 1)]

    def counting(data, template, region, *args, **kwargs):
        searched.append(region.low)
        return search(data, template, region, *args, **kwargs)

    monkeypatch.setattr(detectors.search, "search_window", counting)
    resumed = scan_in_shards(task(files), tmp_path, resume=True, keep=True)
    assert searched == [WINDOWS[2][0]]
    assert [plan.path(i).stat().st_mtime_ns for i in (0, 1)] == kept
    monkeypatch.undo()
    assert metrics(resumed) == metrics(scan_in_shards(task(files), tmp_path / "whole"))


def test_resuming_with_other_settings_is_refused_and_a_new_run_starts_over(files, tmp_path):
    first = task(files, WINDOWS[:1])
    scan_in_shards(first, tmp_path, keep=True)
    other = task(files, WINDOWS[:1], config=replace(FAST, bin_width=50.0))
    with pytest.raises(SimkitError, match=r"^cannot resume: .*bin_width 100\.0 \(now 50\.0\)"):
        scan_in_shards(other, tmp_path, resume=True)
    # with replace_other (the pipeline's stage rerun) or without resume: started over
    result = scan_in_shards(other, tmp_path, resume=True, replace_other=True, keep=True)
    assert result.config.bin_width == 50.0
    plan = json.loads((tmp_path / "scan.shards" / "plan.json").read_text())
    assert plan["fingerprint"]["bin_width"] == 50.0


def test_a_windows_result_file_gives_back_the_metrics_and_the_plots(tmp_path):
    """save → load: the same to_dict (labels, ROC and gate included), the plots' arrays,
    the bump hunts; and the loaded window draws every plot."""
    rng = np.random.default_rng(8)
    data = dijet_sample(6000, 80, rng).reco
    template = dijet_sample(12000, 0, rng).reco
    config = replace(FAST, gate=True)
    window = search_window(data, template, SignalRegion(low=3250.0, high=3700.0), config, seed=2)
    assert window.gate is not None and window.roc is not None and window.bump_after is not None
    loaded = WindowResult.load(window.save(tmp_path / "window.h5", provenance={"shard": 3}))
    assert loaded.fit is None
    assert loaded.to_dict() == window.to_dict()
    for name in ("data_rank", "data_mjj", "data_labels"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(window, name))
        assert getattr(loaded, name).dtype == getattr(window, name).dtype
    for name in ("roc", "window_scores", "window_features"):
        for a, b in zip(getattr(loaded, name), getattr(window, name), strict=True):
            np.testing.assert_array_equal(a, b)
    for name in ("bump_before", "bump_after"):
        a, b = getattr(loaded, name), getattr(window, name)
        assert a.metrics() == b.metrics() and a.signal_region == b.signal_region
        np.testing.assert_array_equal(a.covariance, b.covariance)
    assert loaded.features == window.features and loaded.classifier == window.classifier
    result = SearchResult([loaded], "idealized", config)
    names = {p.name for p in result.save_plots(tmp_path / "plots")}
    assert {"features.png", "scores.png", "spectrum.png", "bump_hunt.png", "roc.png"} <= names
    with pytest.raises(SimkitError, match="not a search window's result"):
        WindowResult.load(files_that_are_not_windows(tmp_path))


def files_that_are_not_windows(folder):
    path = folder / "events.h5"
    write_sample(path, dijet_sample(10, 0, np.random.default_rng(0)))
    return path


def test_a_nonsensical_scheduler_is_one_line_before_any_work(files, tmp_path):
    with pytest.raises(SimkitError, match="^scheduler 'banana' is not a Dask scheduler"):
        scan_in_shards(task(files), tmp_path, scheduler="banana")
    assert not (tmp_path / "scan.shards").exists()


@pytest.fixture(scope="module")
def run_files(tmp_path_factory):
    """A simulation with both levels, data, and a small flow fitted to the simulation."""
    from simkit.events import Sample
    from simkit.surrogates.flow import FlowSurrogate

    folder = tmp_path_factory.mktemp("blinded")
    rng = np.random.default_rng(32)
    reco = dijet_sample(5000, 0, rng).reco
    features = reco.features.copy()
    features[:, reco.index("mjj")] /= 1 + rng.normal(0, 0.045, len(reco))
    gen = type(reco)(features=features, columns=reco.columns, weights=reco.weights,
                     passed=reco.passed, labels=reco.labels)  # fmt: skip
    write_sample(folder / "sim.h5", Sample(gen=gen, reco=reco))
    write_sample(folder / "data.h5", dijet_sample(6000, 60, rng))
    flow = FlowSurrogate(condition=["mjj"], columns=list(FEATURES), epochs=2, n_layers=2,
                         hidden=16, device="cpu").fit(reco.select(["mjj", *FEATURES]))  # fmt: skip
    flow.save(folder / "flow")
    return folder


@pytest.mark.slow
def test_templates_rebuilt_per_window_agree_in_one_and_two_processes(run_files, tmp_path):
    """validated-flow rebuilt in each window (OmniFold blinded to it, the flow's events
    drawn once per process with the template's seed): this process and two worker
    processes give the same metrics."""
    from detectors.scan_shards import BlindedTemplates

    templates = BlindedTemplates(
        "validated-flow", data=str(run_files / "data.h5"), sim=str(run_files / "sim.h5"),
        flow=str(run_files / "flow"), events=4000, features=FEATURES, seed=2, device="cpu",
        unfold=json.dumps({"iterations": 1, "classifier": {"epochs": 2}}),
    )  # fmt: skip
    blinded = ScanShard(str(run_files / "data.h5"), WINDOWS[:2], templates, FAST, seed=3)
    here = metrics(scan_in_shards(blinded, tmp_path / "here"))
    assert metrics(scan_in_shards(blinded, tmp_path / "jobs", jobs=2)) == here
