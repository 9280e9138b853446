"""simkit import lhco: both LHC Olympics 2020 layouts on files the tests write themselves."""

import json

import h5py
import numpy as np
import pandas as pd
import pytest
import vector
from lhco_toy import feature_frame, hadron_events, raw_frame, write_both

from simkit.cli import main
from simkit.errors import SimkitError
from simkit.formats import sha256
from simkit.formats.lhco import FEATURE_COLUMNS, LHCOConfig, detect_layout, import_lhco
from simkit.generators import jets as J
from simkit.io import read_sample

#: float32 has a 24-bit significand: one rounding is at most 2**-24 relative
FLOAT32 = 2.0**-24


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """300 toy events written in both layouts (pandas fixed format, as to_hdf's default)."""
    folder = tmp_path_factory.mktemp("lhco")
    raw, features, labels = write_both(folder, 300, np.random.default_rng(15))
    return raw, features, labels


@pytest.mark.parametrize("fmt", ["fixed", "table"])
def test_layouts_are_detected(tmp_path, rng, fmt):
    raw, features, _ = write_both(tmp_path, 5, rng, fmt=fmt)
    assert detect_layout(raw).kind == "raw" and detect_layout(raw).has_labels
    assert detect_layout(features).kind == "features" and detect_layout(features).has_labels
    assert detect_layout(raw).n_events == 5


def test_raw_import_reproduces_the_feature_file(both, tmp_path):
    """The raw path (FastJet on the hadrons) and the feature path (vector on the jets the
    same clustering gave, stored as float32) agree within the feature file's rounding."""
    raw, features, labels = both
    a = read_sample(import_lhco(raw, tmp_path / "raw.h5", LHCOConfig(chunk_size=128)).output)
    b = read_sample(import_lhco(features, tmp_path / "features.h5").output)
    a, b = a.reco, b.reco
    assert a.columns == J.COLUMNS
    assert b.columns == tuple(c for c in J.COLUMNS if not c.startswith("n_j"))
    np.testing.assert_array_equal(a.labels, labels)
    np.testing.assert_array_equal(b.labels, labels)
    np.testing.assert_array_equal(a.passed, b.passed)
    assert 0.8 < a.passed.mean() < 0.97  # a tenth of the toy events are below 1.2 TeV
    passing = a.passed
    for column in b.columns:
        exact, rounded = a.column(column)[passing], b.column(column)[passing]
        if column == "delta_mj":  # a difference of two rounded masses
            scale = a.column("m_j1")[passing]
        elif column.startswith("phi") or column.startswith("eta"):
            scale = np.maximum(np.abs(exact), 1.0)  # near 0 the rounding is absolute
        else:
            scale = np.abs(exact)
        # inputs rounded once to float32, outputs once more: 4 roundings is generous
        np.testing.assert_array_less(np.abs(exact - rounded), 4 * FLOAT32 * scale + 1e-30)
    # the masses come straight from the file: equal to float32 precision (one rounding)
    for column in ("m_j1", "m_j2"):
        np.testing.assert_allclose(
            b.column(column)[passing], a.column(column)[passing], rtol=FLOAT32
        )
    # failing events: placeholders, as in the reference simulation
    assert (a.features[~passing] == 0).all() and (b.features[~passing] == 0).all()
    assert (a.column("m_j1")[passing] >= a.column("m_j2")[passing]).all()
    assert (a.column("n_j1")[passing] >= 1).all()


def test_features_are_built_with_vector(tmp_path):
    """One hand-made row: j1 is the heavier jet (the file orders by pT), mjj of the sum."""
    jets = {
        "j1": (1500.0, 0.0, 300.0, 80.0, 0.5, 0.2, 0.1),
        "j2": (-1400.0, 10.0, -200.0, 400.0, 0.4, 0.3, 0.2),
    }
    row = {
        f"{q}{j}": v
        for j, vals in jets.items()
        for q, v in zip(("px", "py", "pz", "m", "tau1", "tau2", "tau3"), vals, strict=True)
    }
    pd.DataFrame([row]).to_hdf(tmp_path / "f.h5", key="df")
    table = read_sample(import_lhco(tmp_path / "f.h5", tmp_path / "o.h5").output).reco
    assert table.labels is None and table.passed.tolist() == [True]
    heavy = vector.obj(px=-1400.0, py=10.0, pz=-200.0, mass=400.0)
    light = vector.obj(px=1500.0, py=0.0, pz=300.0, mass=80.0)
    expected = {
        "mjj": (heavy + light).mass,
        "pt_j1": heavy.pt,
        "eta_j1": heavy.eta,
        "phi_j1": heavy.phi,
        "m_j1": 400.0,
        "tau21_j1": 0.3 / 0.4,
        "tau32_j1": 0.2 / 0.3,
        "pt_j2": light.pt,
        "m_j2": 80.0,
        "tau21_j2": 0.2 / 0.5,
        "tau32_j2": 0.1 / 0.2,
        "delta_mj": 320.0,
    }
    for column, value in expected.items():
        assert table.column(column)[0] == pytest.approx(value, rel=1e-6), column


def test_chunks_and_limits_give_the_same_events(both, tmp_path):
    raw, _, _ = both
    whole = read_sample(import_lhco(raw, tmp_path / "a.h5", LHCOConfig(chunk_size=1000)).output)
    part = import_lhco(raw, tmp_path / "b.h5", LHCOConfig(chunk_size=7, max_events=50))
    assert part.n_events == 50
    np.testing.assert_array_equal(read_sample(part.output).reco.features, whole.reco.features[:50])


def test_black_box_without_labels_and_provenance(tmp_path, rng):
    raw, _, _ = write_both(tmp_path, 20, rng, labels=False)
    result = import_lhco(raw, tmp_path / "bb.h5")
    sample = read_sample(result.output)
    assert sample.labels is None and len(sample) == 20
    with h5py.File(result.output) as fh:
        assert "labels" not in fh
    settings = sample.provenance["settings"]
    assert sample.provenance["generator"] == "simkit.formats.lhco"
    assert settings["source"]["sha256"] == sha256(raw)
    assert settings["layout"] == "raw" and settings["min_pt"] == J.MIN_LEADING_PT


def test_cli_import_and_missing_columns_named_in_one_line(both, tmp_path, capsys):
    _, features, _ = both
    out = tmp_path / "lhco.h5"
    assert main(["import", "lhco", str(features), "-o", str(out), "--min-pt", "0", "-q"]) == 0
    assert read_sample(out).reco.passed.all()
    # the feature file has no constituent counts: a command that needs them says so
    code = main(
        [
            "compare",
            "--reference",
            str(out),
            "--candidate",
            str(out),
            "--columns",
            "n_j1",
            "-o",
            str(tmp_path / "cmp"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "n_j1" in err, err


# --------------------------------------------------------------------------- bad input


def _fails(capsys, args, *words):
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


def test_unknown_layout(tmp_path, capsys):
    pd.DataFrame({"a": [1.0], "b": [2.0]}).to_hdf(tmp_path / "x.h5", key="df")
    out = tmp_path / "o.h5"
    err = _fails(capsys, ["import", "lhco", str(tmp_path / "x.h5"), "-o", str(out)], "pxj1", "2100")
    assert "/df with 2 columns (a, b)" in err
    assert not out.exists() and list(tmp_path.iterdir()) == [tmp_path / "x.h5"]


def test_not_hdf5_and_truncated(both, tmp_path, capsys):
    raw, _, _ = both
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an HDF5 file\n" * 100)
    _fails(capsys, ["import", "lhco", str(junk), "-o", str(tmp_path / "o.h5")], "not an HDF5 file")
    cut = tmp_path / "cut.h5"
    cut.write_bytes(raw.read_bytes()[: raw.stat().st_size // 2])
    _fails(capsys, ["import", "lhco", str(cut), "-o", str(tmp_path / "o.h5")], "truncated")
    _fails(
        capsys,
        ["import", "lhco", str(tmp_path / "nope.h5"), "-o", str(tmp_path / "o.h5")],
        "no such file",
    )
    assert not (tmp_path / "o.h5").exists()


def test_nan_in_either_layout(tmp_path, rng, capsys):
    events = hadron_events(30, rng)
    frame = feature_frame(events, None)
    frame.loc[17, "tau2j2"] = np.nan
    frame.to_hdf(tmp_path / "f.h5", key="df")
    _fails(
        capsys,
        [
            "import",
            "lhco",
            str(tmp_path / "f.h5"),
            "-o",
            str(tmp_path / "o.h5"),
            "--chunk-size",
            "8",
        ],
        "tau2j2",
        "row 17",
    )
    raw = raw_frame(events, None)
    raw.iloc[21, 4] = np.inf
    raw.to_hdf(tmp_path / "r.h5", key="df")
    _fails(
        capsys,
        ["import", "lhco", str(tmp_path / "r.h5"), "-o", str(tmp_path / "o.h5")],
        "row 21",
        "hadron 1",
    )
    assert not (tmp_path / "o.h5").exists()


def test_labels_must_be_zero_or_one(tmp_path, rng, capsys):
    frame = feature_frame(hadron_events(4, rng), np.array([0, 1, 2, 0]))
    frame.to_hdf(tmp_path / "f.h5", key="df")
    _fails(
        capsys,
        ["import", "lhco", str(tmp_path / "f.h5"), "-o", str(tmp_path / "o.h5")],
        "label of row 2",
    )


def test_missing_pandas_gives_an_install_hint(both, tmp_path, capsys, monkeypatch):
    _, features, _ = both
    monkeypatch.setitem(__import__("sys").modules, "pandas", None)  # import pandas fails
    _fails(
        capsys,
        ["import", "lhco", str(features), "-o", str(tmp_path / "o.h5")],
        "pip install 'simkit[lhco]'",
    )


def test_feature_columns_match_the_lhco_files():
    assert FEATURE_COLUMNS[:7] == ("pxj1", "pyj1", "pzj1", "mj1", "tau1j1", "tau2j1", "tau3j1")
    assert len(FEATURE_COLUMNS) == 14
    with pytest.raises(SimkitError):
        LHCOConfig(chunk_size=0)
    assert json.dumps(LHCOConfig().__dict__)
