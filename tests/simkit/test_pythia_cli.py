"""`simkit generate qcd-dijet|wprime-xy`: reproducible files whatever --jobs, clean errors."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import h5py
import pytest

from simkit.cli import main
from simkit.generators.jets import COLUMNS, MIN_LEADING_PT
from simkit.generators.pythia import TUNES
from simkit.io import read_sample


def run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_same_seed_same_file_whatever_jobs(tmp_path, capsys, monkeypatch):
    """Four shards made in this process (--jobs 1) and by two worker processes (--jobs 2)
    give byte-identical files; another seed gives another file."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    common = ["generate", "qcd-dijet", "-n", "120", "--shard-size", "30", "--quiet"]
    for name, extra in (("one.h5", []), ("two.h5", ["--jobs", "2"]), ("other.h5", ["--seed", "9"])):
        code, _, err = run(capsys, *common, *extra, "-o", str(tmp_path / name))
        assert code == 0, err
    one = (tmp_path / "one.h5").read_bytes()
    assert one == (tmp_path / "two.h5").read_bytes()
    assert one != (tmp_path / "other.h5").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.h5", "other.h5", "two.h5"]
    with h5py.File(tmp_path / "one.h5") as fh:
        assert fh["reco/features"].shape == (120, len(COLUMNS))
        assert fh["labels"][()].sum() == 0


def test_dask_cluster_writes_the_same_file(tmp_path, capsys, monkeypatch):
    """Two shards run by a Dask cluster of two worker processes (--scheduler local:2)
    give the file that this process alone writes, byte for byte."""
    pytest.importorskip("distributed")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    common = ["generate", "qcd-dijet", "-n", "40", "--shard-size", "20", "--quiet"]
    for name, extra in (("one.h5", []), ("dask.h5", ["--scheduler", "local:2"])):
        code, _, err = run(capsys, *common, *extra, "-o", str(tmp_path / name))
        assert code == 0, err
    assert (tmp_path / "one.h5").read_bytes() == (tmp_path / "dask.h5").read_bytes()


def test_sigterm_then_resume_gives_the_uninterrupted_file(tmp_path, capsys, monkeypatch):
    """A batch system pre-empts a generation (SIGTERM) after some shards: they stay in
    OUT.shards/, and --resume simulates only the others and writes the very file an
    uninterrupted run writes."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    argv = ["generate", "qcd-dijet", "-n", "40", "--shard-size", "10", "--seed", "4", "--quiet"]
    shards = tmp_path / "big.h5.shards"
    process = subprocess.Popen(
        [sys.executable, "-m", "simkit", *argv, "-o", str(tmp_path / "big.h5")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "SOURCE_DATE_EPOCH": "1767225600"},
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while len(list(shards.glob("shard-*.h5"))) < 2 and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode != 0, err
    assert not (tmp_path / "big.h5").exists()
    kept = sorted(p.name for p in shards.glob("shard-*.h5"))
    assert 2 <= len(kept) < 4
    code, _, err = run(capsys, *argv, "--resume", "-o", str(tmp_path / "big.h5"))
    assert code == 0, err
    code, _, err = run(capsys, *argv, "-o", str(tmp_path / "whole.h5"))
    assert code == 0, err
    assert (tmp_path / "big.h5").read_bytes() == (tmp_path / "whole.h5").read_bytes()
    assert not shards.exists() and not list(tmp_path.glob(".big.h5.*"))  # no begun merge


def test_resume_with_another_seed_is_refused(tmp_path, capsys):
    argv = ["generate", "qcd-dijet", "-n", "20", "--shard-size", "10", "--quiet"]
    out = str(tmp_path / "sim.h5")
    code, _, err = run(capsys, *argv, "--seed", "1", "--keep-shards", "-o", out)
    assert code == 0, err
    code, _, err = run(capsys, *argv, "--seed", "2", "--resume", "-o", out)
    assert code == 2
    assert err.strip().count("\n") == 0 and "cannot resume" in err and "seed 1 (now 2)" in err
    # the pipeline's stages resume too, but a stage rerun for new settings replaces them
    from simkit.tasks.generate import GenerateConfig
    from simkit.tasks.generate import run as generate

    config = GenerateConfig("qcd-dijet", events=20, seed=2, shard_size=10, progress=False)
    fresh = generate(config, tmp_path / "fresh.h5").output
    again = generate(replace(config, resume=True, replace_other_shards=True), out).output
    assert read_sample(again).reco.features.tolist() == read_sample(fresh).reco.features.tolist()


@pytest.mark.parametrize(
    "scheduler, message",
    [
        ("banana", "is not a Dask scheduler"),
        ("local:0", "local:N needs a whole number"),
        ("tcp://127.0.0.1:9", "could not reach the Dask scheduler"),
    ],
)
def test_bad_scheduler_is_one_line(tmp_path, capsys, monkeypatch, scheduler, message):
    pytest.importorskip("distributed")
    monkeypatch.setattr("simkit.shards.CONNECT_TIMEOUT", 1.0)
    code, _, err = run(
        capsys, "generate", "qcd-dijet", "-n", "10", "--scheduler", scheduler, "--quiet",
        "-o", str(tmp_path / "x.h5"),
    )  # fmt: skip
    assert code == 2
    assert err.strip().count("\n") == 0 and message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_signal_command_and_summary(tmp_path, capsys):
    path = tmp_path / "sig.h5"
    code, out, err = run(
        capsys, "generate", "wprime-xy", "-n", "40", "--mx", "400", "--my", "80",
        "--tune", "a14", "--jes", "1.02", "--jer", "0.05", "-o", str(path),
    )  # fmt: skip
    assert code == 0, err
    assert "wrote 40 events of wprime-xy (tune a14)" in out and "passing: gen" in out
    with h5py.File(path) as fh:
        assert (fh["labels"][()] == 1).all()


def test_help_lists_the_tunes(capsys):
    code, out, _ = run(capsys, "generate", "qcd-dijet", "--help")
    assert code == 0
    for name, tune in TUNES.items():
        assert name in out and f"Tune:pp = {tune.pp}" in out
    assert f"{MIN_LEADING_PT:g}" in out  # the default written in the help is the code's


@pytest.mark.parametrize(
    "argv, message",
    [
        (["qcd-dijet", "--tune", "perugia"], "invalid choice: 'perugia'"),
        (["qcd-dijet", "-n", "0"], "at least 1"),
        (["qcd-dijet", "-n", "-20"], "at least 1"),
        (["wprime-xy", "--mx", "3000", "--my", "600"], "must be below mW' = 3500 GeV"),
        (["wprime-xy", "--mwprime", "0"], "positive"),
        (["qcd-dijet", "--jer", "-0.1"], "must be a finite number ≥ 0"),
        (["qcd-dijet", "--jes", "0"], "positive"),
        (["qcd-dijet", "--jobs", "0"], "at least 1"),
    ],
)
def test_bad_flags_are_one_line_errors(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "generate", *argv, "-o", "x.h5")
    assert code != 0
    assert message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_worker_failure_is_one_line_and_leaves_no_file(tmp_path, capsys):
    """Pythia cannot initialize with pT-hat above √s/2: the error raised in the worker
    processes reaches the user as one line naming the shard, and as no shard finished
    no file (nor shard folder) is left."""
    code, _, err = run(
        capsys, "generate", "qcd-dijet", "-n", "20", "--shard-size", "10", "--jobs", "2",
        "--pthat-min", "7000", "--quiet", "-o", str(tmp_path / "x.h5"),
    )  # fmt: skip
    assert code == 2
    assert err.strip().count("\n") == 0 and "Pythia failed to initialize" in err
    assert "shard " in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_ctrl_c_stops_workers_and_leaves_no_file(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "simkit", "generate", "qcd-dijet", "-n", "100000", "--jobs", "2",
         "--quiet", "-o", str(tmp_path / "big.h5")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(8)  # workers started and simulating
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert err.strip() == "simkit generate: interrupted"
    assert list(tmp_path.iterdir()) == []
    assert not os.path.exists(tmp_path / "big.h5")
