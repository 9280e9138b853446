"""The event-file format: round trips, validation of bad files, atomic and streamed writes."""

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from conftest import make_sample

from simkit.errors import FileFormatError, SimkitError
from simkit.events import EventTable, Sample
from simkit.io import (
    SampleWriter,
    inspect,
    iter_samples,
    make_provenance,
    read_array,
    read_sample,
    read_weights,
    write_arrays,
    write_sample,
)


def assert_same(a: Sample, b: Sample):
    assert a.levels == b.levels
    for lv in a.levels:
        ta, tb = a.level(lv), b.level(lv)
        assert ta.columns == tb.columns and ta.units == tb.units
        np.testing.assert_array_equal(ta.features, tb.features)
        np.testing.assert_array_equal(ta.passed, tb.passed)
        np.testing.assert_array_equal(ta.weights, tb.weights)
        if ta.labels is None:
            assert tb.labels is None
        else:
            np.testing.assert_array_equal(ta.labels, tb.labels)
    assert set(a.scores) == set(b.scores)
    for k in a.scores:
        np.testing.assert_array_equal(a.scores[k], b.scores[k])


def test_roundtrip_every_dataset(tmp_path):
    s = make_sample(257, scores=True)
    s.provenance = make_provenance("test", seed=7, events=257)
    write_sample(tmp_path / "s.h5", s)
    back = read_sample(tmp_path / "s.h5")
    assert_same(s, back)
    assert back.provenance == s.provenance
    with h5py.File(tmp_path / "s.h5") as fh:
        assert fh.attrs["format"] == "simkit-events" and fh.attrs["format_version"] == 1
        assert fh["reco/features"].dtype == np.float32
        assert fh["reco/pass"].dtype == bool
        assert fh["weights"].dtype == np.float64
        assert fh["labels"].dtype == np.int8
        assert fh["scores/ae"].dtype == np.float32
        assert fh["reco/features"].compression == "gzip"
        assert json.loads(fh["provenance"][()])["seed"] == 7


def test_unit_weights_not_stored(tmp_path):
    s = make_sample(20, weights=False, labels=False)
    write_sample(tmp_path / "s.h5", s)
    info = inspect(tmp_path / "s.h5")
    assert not info.has_weights and not info.has_labels
    assert_same(s, read_sample(tmp_path / "s.h5"))


def test_truth_level_read_only_when_named(tmp_path):
    s = make_sample(30)
    data = Sample(reco=s.reco, truth=s.gen)
    write_sample(tmp_path / "d.h5", data)
    assert read_sample(tmp_path / "d.h5").levels == ("reco",)
    assert read_sample(tmp_path / "d.h5", levels=["truth"]).levels == ("truth",)


def test_omnifold_arrays_roundtrip(tmp_path):
    push = np.random.default_rng(0).uniform(0.5, 2, size=(3, 40))
    write_arrays(tmp_path / "w.h5", {"omnifold/push": push, "omnifold/pull": push * 2})
    np.testing.assert_array_equal(read_array(tmp_path / "w.h5", "omnifold/push"), push)
    assert inspect(tmp_path / "w.h5").omnifold == {"pull": (3, 40), "push": (3, 40)}
    np.testing.assert_array_equal(read_weights(f"{tmp_path / 'w.h5'}:omnifold/push", 40), push[-1])
    with pytest.raises(SimkitError, match="3 weights|40 weights"):
        read_weights(f"{tmp_path / 'w.h5'}:omnifold/push", 39)


def test_read_chosen_columns_and_rows(tmp_path):
    s = make_sample(100)
    write_sample(tmp_path / "s.h5", s)
    part = read_sample(tmp_path / "s.h5", columns=["c", "a"], rows=slice(10, 30))
    np.testing.assert_array_equal(part.reco.features, s.reco.select(["c", "a"]).features[10:30])
    np.testing.assert_array_equal(part.gen.column("a"), s.gen.column("a")[10:30])
    with pytest.raises(FileFormatError, match="no column 'mjj'"):
        read_sample(tmp_path / "s.h5", columns=["mjj"])


@pytest.mark.parametrize("chunk", [1, 7, 100, 1000])
def test_chunked_read_equals_whole_read(tmp_path, chunk):
    s = make_sample(100, scores=True)
    write_sample(tmp_path / "s.h5", s)
    chunks = list(iter_samples(tmp_path / "s.h5", chunk))
    assert len(chunks) == -(-100 // chunk)
    assert_same(Sample.concatenate(chunks), read_sample(tmp_path / "s.h5"))


def test_stream_writer_equals_whole_write(tmp_path):
    s = make_sample(1000, scores=True)
    with SampleWriter.like(tmp_path / "stream.h5", s, chunk_rows=64) as out:
        for start in range(0, 1000, 333):
            out.append(s.mask(slice(start, start + 333)))
    assert inspect(tmp_path / "stream.h5").n_events == 1000
    assert_same(s, read_sample(tmp_path / "stream.h5"))


@pytest.mark.parametrize("sizes", [[5], [64], [63, 1, 65], [200, 3, 130, 128]])
def test_stream_writer_stores_whole_chunks_of_any_appends(tmp_path, sizes):
    """The writer compresses its chunks itself (ISA-L, direct chunk writes): appends of
    any size, chunk-aligned or not, read back equal; rows waiting for a chunk are its own
    copy, so the caller may reuse its arrays after ``append``."""
    s = make_sample(sum(sizes), scores=True)
    with SampleWriter.like(tmp_path / "s.h5", s, chunk_rows=64) as out:
        start = 0
        for n in sizes:
            part = s.mask(np.arange(start, start + n))  # a copy of those rows
            out.append(part)
            part.reco.features[:] = np.nan  # the caller reuses its buffer
            start += n
        assert set(out._direct) == {
            *("reco/features", "reco/pass", "gen/features", "gen/pass"),
            *("weights", "labels", "scores/ae"),
        }
    assert_same(s, read_sample(tmp_path / "s.h5"))


def test_chunks_written_directly_are_what_hdf5s_own_filters_store(tmp_path, monkeypatch):
    """Each stored chunk is the shuffle filter's byte planes in a zlib stream: decoded
    here with Python's zlib, and HDF5 itself reads the file like one written through its
    own gzip + shuffle filters, with the same filter settings."""
    import zlib

    import simkit.io as io

    s = make_sample(300, scores=True)

    def write(path):
        with SampleWriter.like(path, s, chunk_rows=128) as out:
            out.append(s)

    write(tmp_path / "direct.h5")
    monkeypatch.setattr(io, "_deflate", None)  # HDF5's own filter pipeline
    write(tmp_path / "filters.h5")
    with h5py.File(tmp_path / "direct.h5") as a, h5py.File(tmp_path / "filters.h5") as b:
        ds, ref = a["reco/features"], b["reco/features"]
        settings = [(d.compression, d.compression_opts, d.shuffle, d.chunks) for d in (ds, ref)]
        assert settings[0] == settings[1]
        np.testing.assert_array_equal(ds[()], ref[()])
        mask, stored = ds.id.read_direct_chunk((0, 0))
        assert mask == 0  # every filter of the pipeline applied
        planes = np.frombuffer(zlib.decompress(stored), np.uint8).reshape(4, -1)
        values = planes.T.copy().view(np.float32).reshape(ds.chunks)
        np.testing.assert_array_equal(values, ds[: ds.chunks[0]])
    assert_same(read_sample(tmp_path / "direct.h5"), read_sample(tmp_path / "filters.h5"))


def test_interrupted_stream_leaves_no_file(tmp_path):
    s = make_sample(100)
    target = tmp_path / "out.h5"
    with pytest.raises(RuntimeError), SampleWriter.like(target, s) as out:
        out.append(s)
        raise RuntimeError("crash in the middle")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_killed_writer_leaves_no_file_that_looks_whole(tmp_path):
    """A process killed mid-write leaves at most a hidden temporary, never the target."""
    target = tmp_path / "out.h5"
    code = f"""
import os, numpy as np
from simkit.events import EventTable, Sample
from simkit.io import SampleWriter
t = EventTable.from_columns({{"x": np.zeros(10)}})
w = SampleWriter({str(target)!r}, levels={{"reco": ("x",)}})
w.append(Sample(reco=t))
os._exit(9)
"""
    result = subprocess.run([sys.executable, "-c", code], check=False)
    assert result.returncode == 9
    assert not target.exists()
    assert all(p.name.startswith(".out.h5.") for p in tmp_path.iterdir())


def test_existing_file_survives_failed_write(tmp_path):
    target = tmp_path / "keep.h5"
    s = make_sample(10)
    write_sample(target, s)
    before = target.read_bytes()
    bad = make_sample(10)
    bad.reco.features[3, 1] = np.nan
    with pytest.raises(SimkitError, match="refusing to write NaN/inf: reco column 'b' at row 3"):
        write_sample(target, bad)
    assert target.read_bytes() == before


def test_same_content_gives_identical_bytes(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    s = make_sample(50)
    for name in ("a.h5", "b.h5"):
        s.provenance = make_provenance("test", seed=1)
        write_sample(tmp_path / name, s)
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


# --------------------------------------------------------------------------- bad input


def _write_raw(path, mutate):
    write_sample(path, make_sample(20))
    with h5py.File(path, "r+") as fh:
        mutate(fh)
    return path


def test_nan_feature_names_column_and_row(tmp_path):
    def put_nan(fh):
        data = fh["reco/features"][()]
        data[13, 2] = np.nan
        fh["reco/features"][...] = data

    path = _write_raw(tmp_path / "nan.h5", put_nan)
    with pytest.raises(
        FileFormatError, match=r"nan.h5: /reco/features column 'c' is nan at row 13"
    ):
        read_sample(path)
    # the same error when the bad row sits in a later chunk
    with pytest.raises(FileFormatError, match="at row 13"):
        list(iter_samples(path, 5))


def test_inf_feature(tmp_path):
    def put_inf(fh):
        data = fh["gen/features"][()]
        data[0, 0] = np.inf
        fh["gen/features"][...] = data

    path = _write_raw(tmp_path / "inf.h5", put_inf)
    with pytest.raises(FileFormatError, match="/gen/features column 'a' is inf at row 0"):
        read_sample(path)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda fh: fh.attrs.__delitem__("format"), "no 'format' attribute"),
        (lambda fh: fh.attrs.__setitem__("format", "root-tree"), "format is 'root-tree'"),
        (lambda fh: fh.attrs.__setitem__("format_version", 2), "format_version 2 is not supported"),
        (
            lambda fh: fh["reco/features"].attrs.__setitem__("columns", ["a", "b"]),
            "has 3 columns but its 'columns' attribute names 2",
        ),
        (lambda fh: fh["reco/features"].attrs.__delitem__("columns"), "no 'columns' attribute"),
        (
            lambda fh: (
                fh.__delitem__("gen"),
                fh.create_dataset("gen/features", data=np.zeros((19, 3), "f4")),
                fh["gen/features"].attrs.__setitem__("columns", ["a", "b", "c"]),
            ),
            "/gen has 19 rows but /reco has 20",
        ),
        (
            lambda fh: (
                fh.__delitem__("reco/pass"),
                fh.create_dataset("reco/pass", data=np.ones(3, bool)),
            ),
            "/reco/pass has 3 rows",
        ),
        (
            lambda fh: (fh.__delitem__("weights"), fh.create_dataset("weights", data=np.ones(5))),
            "/weights has 5 rows",
        ),
        (
            lambda fh: (
                fh.__delitem__("provenance"),
                fh.create_dataset("provenance", data="{oops"),
            ),
            "provenance is not valid JSON",
        ),
    ],
)
def test_bad_structure(tmp_path, mutate, message):
    path = _write_raw(tmp_path / "bad.h5", mutate)
    with pytest.raises(FileFormatError, match=message):
        read_sample(path)


def test_not_hdf5(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("mjj,pt\n1,2\n")
    with pytest.raises(FileFormatError, match="notes.h5: not an HDF5 file"):
        read_sample(path)


def test_truncated(tmp_path):
    path = tmp_path / "trunc.h5"
    write_sample(path, make_sample(5000))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError, match="trunc.h5: (truncated|unreadable|not an HDF5)"):
        read_sample(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileFormatError, match="nothere.h5: no such file"):
        read_sample(tmp_path / "nothere.h5")


def test_nan_weight_in_file(tmp_path):
    def put(fh):
        w = fh["weights"][()]
        w[4] = np.nan
        fh["weights"][...] = w

    path = _write_raw(tmp_path / "w.h5", put)
    with pytest.raises(FileFormatError, match="/weights is not finite at row 4"):
        read_sample(path)


def test_writer_rejects_wrong_columns(tmp_path):
    s = make_sample(10)
    with SampleWriter(tmp_path / "x.h5", levels={"reco": ("a", "b")}) as out:
        with pytest.raises(SimkitError, match="differ from the file's"):
            out.append(s)
        out.append(Sample(reco=s.reco.select(["a", "b"])))
    assert inspect(tmp_path / "x.h5").n_events == 10


def test_table_with_labels_and_without_weights_file(tmp_path):
    t = EventTable.from_columns({"x": np.arange(4.0)}, labels=np.array([0, 1, 0, 1]))
    write_sample(tmp_path / "l.h5", Sample(reco=t))
    np.testing.assert_array_equal(read_sample(tmp_path / "l.h5").labels, [0, 1, 0, 1])
    assert os.path.getsize(tmp_path / "l.h5") > 0


def test_written_files_get_the_mode_the_umask_gives(tmp_path):
    """A file is written under a hidden temporary name and renamed into place; it gets
    0666 less the umask, like any file the user's programs create (it was 0600)."""
    umask = os.umask(0o022)
    try:
        write_sample(tmp_path / "a.h5", make_sample(10))
        with SampleWriter.like(tmp_path / "b.h5", make_sample(10)) as out:
            out.append(make_sample(10))
        os.umask(0o027)
        write_sample(tmp_path / "c.h5", make_sample(10))
    finally:
        os.umask(umask)
    modes = [(tmp_path / f).stat().st_mode & 0o777 for f in ("a.h5", "b.h5", "c.h5")]
    assert modes == [0o644, 0o644, 0o640]
