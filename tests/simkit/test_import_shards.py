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
