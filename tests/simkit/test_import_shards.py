"""simkit import lhco in shards: the same bytes whoever imports them; resume."""

import numpy as np
import pytest
from lhco_toy import write_both

from simkit.cli import main
from simkit.formats.lhco import LHCOConfig, import_lhco


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """120 toy events of raw hadrons (the layout that is clustered: the costly one)."""
    folder = tmp_path_factory.mktemp("lhco-shards")
    return write_both(folder, 120, np.random.default_rng(16))[0]


def test_raw_import_same_bytes_whatever_runs_the_shards(raw, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    config = LHCOConfig(chunk_size=40)
    one = import_lhco(raw, tmp_path / "one.h5", config).output.read_bytes()
    two = import_lhco(raw, tmp_path / "two.h5", config, jobs=2).output.read_bytes()
    assert one == two
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.h5", "two.h5"]


def test_cli_resume_after_a_failed_shard(raw, tmp_path, capsys, monkeypatch):
    """Shard 1 of 3 fails: shard 0 is kept; --resume imports shards 1 and 2 only and
    writes the uninterrupted import's bytes."""
    import simkit.formats.lhco as L

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    real = L._read_rows
    calls = []

    def failing(store, layout, path, config, start, stop):
        if start == 40:
            raise OSError("the disk went away")
        return real(store, layout, path, config, start, stop)

    def counting(store, layout, path, config, start, stop):
        calls.append(start)
        return real(store, layout, path, config, start, stop)

    argv = ["import", "lhco", str(raw), "--chunk-size", "40", "--quiet"]
    monkeypatch.setattr(L, "_read_rows", failing)
    assert main([*argv, "-o", str(tmp_path / "a.h5")]) != 0
    err = capsys.readouterr().err
    assert "shard 1 of 3 (events 40–79) failed" in err and "--resume" in err
    monkeypatch.setattr(L, "_read_rows", counting)
    assert main([*argv, "--resume", "-o", str(tmp_path / "a.h5")]) == 0
    assert calls == [40, 80]
    assert main([*argv, "-o", str(tmp_path / "b.h5")]) == 0
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


# --------------------------------------------------------------------------- ROOT


def write_nanoaod(path, n: int, rng) -> None:
    """A NanoAOD-shaped tree: nFatJet and jagged FatJet_* branches."""
    ak = pytest.importorskip("awkward")
    uproot = pytest.importorskip("uproot")
    counts = rng.integers(0, 4, n)
    total = int(counts.sum())
    tau1 = rng.uniform(0.2, 0.6, total)
    values = {
        "pt": rng.uniform(300, 2200, total),
        "eta": rng.normal(0, 1.2, total),
        "phi": rng.uniform(-np.pi, np.pi, total),
        "mass": rng.uniform(20, 500, total),
        "tau1": tau1,
        "tau2": tau1 * 0.5,
        "tau3": tau1 * 0.25,
    }
    branches = {
        f"FatJet_{k}": ak.unflatten(v.astype(np.float32), counts) for k, v in values.items()
    }
    branches["FatJet_nConstituents"] = ak.unflatten(
        rng.integers(5, 99, total).astype(np.uint8), counts
    )
    types = {k: v.type.content for k, v in branches.items()}
    with uproot.recreate(path) as fh:
        fh.mktree("Events", types, counter_name=lambda _: "nFatJet")
        fh["Events"].extend(branches)


@pytest.fixture(scope="module")
def nano(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nano")
    rng = np.random.default_rng(17)
    for i in range(2):
        write_nanoaod(folder / f"part{i}.root", 70, rng)
    return folder


def test_root_import_in_shards(nano, tmp_path, capsys, monkeypatch):
    """Two files in shards of 30 entries (never across files), a selection that keeps a
    different number of events in each: two worker processes write the bytes of one;
    a failed shard is named, and --resume finishes the uninterrupted file."""
    import simkit.formats.root as R
    from simkit.formats.root import RootConfig, import_root

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    files = str(nano / "part*.root")
    common = {"config": RootConfig(chunk_size=30), "selection": "nFatJet >= 2"}
    one = import_root(files, tmp_path / "one.h5", "nanoaod", **common)
    two = import_root(files, tmp_path / "two.h5", "nanoaod", jobs=2, **common)
    assert one.output.read_bytes() == two.output.read_bytes()
    assert one.n_events == two.n_events < 140

    real = R._chunk_sample

    def failing(arrays, mapping, exprs, where, start):
        if "part1" in where and start == 30:
            raise OSError("the disk went away")
        return real(arrays, mapping, exprs, where, start)

    argv = ["import", "root", files, "--map", "nanoaod", "--selection", "nFatJet >= 2",
            "--chunk-size", "30", "--quiet"]  # fmt: skip
    monkeypatch.setattr(R, "_chunk_sample", failing)
    assert main([*argv, "-o", str(tmp_path / "a.h5")]) != 0
    err = capsys.readouterr().err
    assert "part1.root entries 30–59) failed" in err and "--resume" in err
    monkeypatch.setattr(R, "_chunk_sample", real)
    assert main([*argv, "--resume", "-o", str(tmp_path / "a.h5")]) == 0
    assert (tmp_path / "a.h5").read_bytes() == one.output.read_bytes()
