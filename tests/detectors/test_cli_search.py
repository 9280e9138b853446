"""`simkit template` and `simkit search` end to end, and their one-line errors."""

import json

import numpy as np
import pytest
from dijet_toy import dijet_sample

from simkit.cli import main
from simkit.errors import SimkitError
from simkit.io import inspect, write_arrays, write_sample

FAST = ["--folds", "3", "--ensemble", "1", "--quiet"]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("search")
    rng = np.random.default_rng(21)
    write_sample(folder / "data.h5", dijet_sample(10000, 120, rng))
    sim = dijet_sample(20000, 0, rng)
    sim = sim.with_labels(None)
    write_sample(folder / "sim.h5", sim)
    write_arrays(folder / "weights.h5", {"omnifold/pull": np.ones((2, len(sim)))})
    return folder


def test_reweighted_sim_template_then_search(files, tmp_path, capsys):
    template = tmp_path / "t.h5"
    code, _, err = run(
        capsys, "template", "reweighted-sim", "--sim", files / "sim.h5",
        "--weights", f"{files / 'weights.h5'}:omnifold/pull", "--window", "3300:3700",
        "-o", template, "--quiet",
    )  # fmt: skip
    assert code == 0, err
    info = inspect(template)
    assert info.provenance["settings"]["template"] == "reweighted-sim"
    out = tmp_path / "search"
    code, stdout, err = run(
        capsys, "search", "--data", files / "data.h5", "--template", template,
        "--window", "3300:3700", "-o", out, *FAST[:-1],
    )  # fmt: skip
    assert code == 0, err
    assert "Z =" in stdout and "before the cut" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["template"] == "reweighted-sim"
    best = metrics["best"]
    assert best["z_local"] > best["z_local_before_cut"]
    assert metrics["auc"] > 0.9  # the toy signal is easy; labels only judge
    assert (out / "spectrum.png").exists()


def test_sideband_flow_template(files, tmp_path, capsys):
    template = tmp_path / "t.h5"
    code, _, err = run(
        capsys, "template", "sideband-flow", "--data", files / "data.h5", "--window",
        "3300:3700", "--features", "m_j1,tau21_j1", "--events", 2000, "--flow-epochs", 1,
        "--device", "cpu", "-o", template, "--quiet",
    )  # fmt: skip
    assert code == 0, err
    info = inspect(template)
    assert set(info.levels["reco"].columns) == {"mjj", "m_j1", "tau21_j1"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["template", "reweighted-sim", "--window", "3300:3700"], "needs --sim, --weights"),
        (["template", "validated-flow", "--window", "3700:3300", "--run", "."], "LOW < HIGH"),
        (
            ["template", "reweighted-sim", "--run", "/nonexistent", "--window", "1:2"],
            "not a run folder",
        ),
        (
            ["search", "--data", "DATA", "--template", "DATA", "--window", "6000:6100"],
            "data events in the window",
        ),
        (
            [
                "search",
                "--data",
                "DATA",
                "--template",
                "DATA",
                "--window",
                "3300:3700",
                "--features",
                "m_j1,nope",
            ],
            "no column 'nope'",
        ),
        (
            [
                "search",
                "--data",
                "DATA",
                "--template",
                "DATA",
                "--window",
                "3300:3700",
                "--folds",
                "1",
            ],
            "at least 2 folds",
        ),
        (
            [
                "search",
                "--data",
                "DATA",
                "--template",
                "DATA",
                "--window",
                "3300:3700",
                "--primary",
                "0.05",
            ],
            "primary efficiency",
        ),
        (
            ["search", "--data", "missing.h5", "--template", "DATA", "--window", "3300:3700"],
            "missing.h5",
        ),
        (
            ["search", "--data", "DATA", "--template", "DATA", "--window", "3300:3700",
             "--jobs", "2"],
            "run a scan's windows as shards: add --scan",
        ),
        (
            ["search", "--scan", "--data", "DATA", "--template", "DATA", "--sim", "DATA",
             "--scheduler", "banana"],
            "scheduler 'banana' is not a Dask scheduler",
        ),
    ],
)  # fmt: skip
def test_errors_are_one_line(files, tmp_path, capsys, argv, message):
    argv = [files / "data.h5" if a == "DATA" else a for a in argv]
    code, _, err = run(capsys, *argv, "-o", tmp_path / "out")
    assert code == 2
    assert message in err
    assert err.count("\n") == 1
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_scan_with_one_template(files, tmp_path, capsys):
    """--scan over the toy's spectrum with one (idealized) template: windows from the
    simulation's resolution, a local Z each, a global Z, the scan plot."""
    from simkit.events import Sample

    rng = np.random.default_rng(22)
    reco = dijet_sample(20000, 0, rng).reco
    features = reco.features.copy()
    features[:, reco.index("mjj")] /= 1 + rng.normal(0, 0.045, len(reco))
    gen = type(reco)(
        features=features,
        columns=reco.columns,
        weights=reco.weights,
        passed=reco.passed,
        labels=reco.labels,
    )
    write_sample(tmp_path / "simgen.h5", Sample(gen=gen, reco=reco))
    write_sample(tmp_path / "ideal.h5", dijet_sample(40000, 0, rng).with_labels(None))
    out = tmp_path / "scan"
    argv = (
        "search", "--scan", "--data", files / "data.h5", "--template", tmp_path / "ideal.h5",
        "--sim", tmp_path / "simgen.h5", "--no-gate", "--scan-min-count", 1000, "-o", out,
        *FAST[:-1],
    )  # fmt: skip
    code, stdout, err = run(capsys, *argv, "--keep-shards")
    assert code == 0, err
    assert "global Z" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_windows"] == len(metrics["windows"]) >= 2
    assert "z_global" in metrics and "width_rule" in metrics["scan"]
    assert (out / "scan.png").exists()
    # each window a shard, kept: --resume finds them all and searches none again
    shards = sorted((out / "scan.shards").glob("shard-*.h5"))
    assert len(shards) == metrics["n_windows"]
    written = [p.stat().st_mtime_ns for p in shards]
    code, _, err = run(capsys, *argv, "--resume", "--keep-shards")
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert [p.stat().st_mtime_ns for p in shards] == written
    # a resumed run whose plots fail keeps the windows; once written, they go
    from detectors.search import SearchResult

    def broken(self, folder):
        raise SimkitError("disk full")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SearchResult, "save_plots", broken)
        code, _, err = run(capsys, *argv, "--resume")
    assert code != 0 and "disk full" in err
    assert [p.stat().st_mtime_ns for p in shards] == written
    code, _, err = run(capsys, *argv, "--resume")
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert not (out / "scan.shards").exists()
    code, _, err = run(capsys, "search", "--scan", "--data", files / "data.h5", "-o", out)
    assert code == 2 and "--scan needs --run RUN_DIR" in err
