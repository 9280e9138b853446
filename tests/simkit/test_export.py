"""simkit export: event files as ROOT TTrees and Parquet tables, and exact round trips."""

import json
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
import uproot
from conftest import make_sample
from lhco_toy import write_both

from simkit.cli import main
from simkit.formats.export import ExportConfig, export, read_parquet_metadata
from simkit.formats.lhco import import_lhco
from simkit.formats.root import import_root
from simkit.io import read_sample, write_arrays, write_sample


def assert_same(a, b):
    """Two samples hold the same events, bit for bit."""
    assert a.levels == b.levels
    for level in a.levels:
        x, y = a.level(level), b.level(level)
        assert x.columns == y.columns and x.units == y.units
        np.testing.assert_array_equal(x.features, y.features)
        np.testing.assert_array_equal(x.passed, y.passed)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert (a.labels is None) == (b.labels is None)
    if a.labels is not None:
        np.testing.assert_array_equal(a.labels, b.labels)
    assert a.scores.keys() == b.scores.keys()
    for name in a.scores:
        np.testing.assert_array_equal(a.scores[name], b.scores[name])


@pytest.fixture
def sim(tmp_path):
    """Gen + reco, weights, labels and a score: every optional dataset."""
    sample = make_sample(250, ("mjj", "m_j1", "tau21_j1"), scores=True)
    return write_sample(tmp_path / "sim.h5", sample), sample


def test_root_tree_holds_every_dataset(sim, tmp_path):
    path, sample = sim
    result = export(path, tmp_path / "sim.root", ExportConfig(chunk_size=64))
    with uproot.open(result.output) as fh:
        tree = fh["events"]
        assert tree.title == "simkit-events" and tree.num_entries == 250
        arrays = tree.arrays(library="np")
        metadata = json.loads(str(fh["simkit_metadata"]))
    np.testing.assert_array_equal(arrays["mjj"], sample.reco.column("mjj"))
    np.testing.assert_array_equal(arrays["gen_tau21_j1"], sample.gen.column("tau21_j1"))
    np.testing.assert_array_equal(arrays["passed"], sample.reco.passed)
    np.testing.assert_array_equal(arrays["gen_passed"], sample.gen.passed)
    np.testing.assert_array_equal(arrays["weight"], sample.weights)
    np.testing.assert_array_equal(arrays["label"], sample.labels)
    np.testing.assert_array_equal(arrays["score_ae"], sample.scores["ae"])
    assert arrays["mjj"].dtype == np.float32 and arrays["weight"].dtype == np.float64
    assert metadata["levels"]["reco"]["units"] == list(sample.reco.units)
    assert metadata["provenance"] == sample.provenance


def test_parquet_table_holds_every_dataset(sim, tmp_path):
    path, sample = sim
    assert main(["export", str(path), "-o", str(tmp_path / "sim.parquet"), "-q"]) == 0
    table = pq.read_table(tmp_path / "sim.parquet")
    assert table.num_rows == 250
    np.testing.assert_array_equal(table["m_j1"].to_numpy(), sample.reco.column("m_j1"))
    np.testing.assert_array_equal(table["gen_mjj"].to_numpy(), sample.gen.column("mjj"))
    np.testing.assert_array_equal(table["label"].to_numpy(), sample.labels)
    np.testing.assert_array_equal(table["weight"].to_numpy(), sample.weights)
    assert read_parquet_metadata(tmp_path / "sim.parquet")["levels"]["gen"]["columns"] == [
        "mjj",
        "m_j1",
        "tau21_j1",
    ]


def test_round_trip_through_root_is_exact(sim, tmp_path):
    path, _ = sim
    export(path, tmp_path / "sim.root")
    back = import_root(tmp_path / "sim.root", tmp_path / "back.h5", "simkit")
    assert_same(read_sample(path), read_sample(back.output))
    assert read_sample(back.output).provenance["settings"]["mapping"]["name"] == "simkit"


def test_import_export_import_lhco_is_exact(tmp_path, rng):
    """The LHC Olympics import → ROOT → import back gives the same event file."""
    _, features, _ = write_both(tmp_path, 60, rng)
    first = import_lhco(features, tmp_path / "lhco.h5").output
    assert (
        main(["export", str(first), "--format", "root", "-o", str(tmp_path / "l.root"), "-q"]) == 0
    )
    code = main(
        [
            "import",
            "root",
            str(tmp_path / "l.root"),
            "--map",
            "simkit",
            "-o",
            str(tmp_path / "again.h5"),
            "-q",
        ]
    )
    assert code == 0
    assert_same(read_sample(first), read_sample(tmp_path / "again.h5"))


def test_weights_file_of_the_unfolding(tmp_path, rng):
    push = rng.uniform(0.5, 2.0, (3, 40))
    write_arrays(tmp_path / "w.h5", {"omnifold/pull": push * 0.9, "omnifold/push": push})
    export(tmp_path / "w.h5", tmp_path / "w.parquet", ExportConfig(format="parquet", chunk_size=16))
    table = pq.read_table(tmp_path / "w.parquet")
    assert table.column_names == [f"omnifold_{d}_{k}" for d in ("pull", "push") for k in range(3)]
    np.testing.assert_array_equal(table["omnifold_push_2"].to_numpy(), push[2])


def test_hidden_truth_is_not_exported(tmp_path):
    sample = make_sample(20, ("x",), gen=False, labels=False, weights=False)
    sample.truth = sample.reco
    write_sample(tmp_path / "data.h5", sample)
    export(tmp_path / "data.h5", tmp_path / "d.root")
    with uproot.open(tmp_path / "d.root") as fh:
        assert fh["events"].keys() == ["x", "passed"]


def _fails(capsys, args, *words):
    code = main(["export", *map(str, args)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, err


def test_bad_exports(sim, tmp_path, capsys, monkeypatch):
    path, _ = sim
    _fails(capsys, [path, "-o", tmp_path / "x.csv"], "--format")
    _fails(capsys, [tmp_path / "none.h5", "-o", tmp_path / "x.root"], "no such file")
    clash = make_sample(5, ("weight",), gen=False)
    write_sample(tmp_path / "clash.h5", clash)
    _fails(capsys, [tmp_path / "clash.h5", "-o", tmp_path / "c.root"], "clash")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    _fails(capsys, [path, "-o", tmp_path / "x.parquet"], "pip install 'simkit[root]'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clash.h5", "sim.h5"]
