"""The command line: exit codes, one-line errors, reproducible files, info output."""

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from simkit.cli import main
from simkit.io import read_sample


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_and_info(tmp_path, capsys):
    path = tmp_path / "sim.h5"
    code, out, _ = run(
        capsys, "generate", "gaussian", "--events", "2000", "--seed", "3", "-o", str(path)
    )
    assert code == 0 and "wrote 2000 events" in out
    code, out, _ = run(capsys, "info", str(path))
    assert code == 0
    assert "2000 events" in out and "[gen]" in out and "[reco]" in out
    assert '"seed": 3' in out
    code, out, _ = run(capsys, "info", "--json", str(path))
    summary = json.loads(out)
    assert summary["events"] == 2000
    assert summary["levels"]["reco"]["columns"]["x"]["mean"] == pytest.approx(0, abs=0.1)


def test_generate_data_variant(tmp_path, capsys):
    path = tmp_path / "data.h5"
    assert run(capsys, "generate", "gaussian", "--data", "-n", "1000", "-o", str(path))[0] == 0
    with h5py.File(path) as fh:
        assert "gen" not in fh and "reco" in fh and "truth" in fh


def test_same_seed_bitwise_identical_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    for name in ("a.h5", "b.h5"):
        assert (
            run(
                capsys,
                "generate",
                "gaussian-hard",
                "-n",
                "5000",
                "--seed",
                "11",
                "-o",
                str(tmp_path / name),
            )[0]
            == 0
        )
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()
    assert (
        run(
            capsys,
            "generate",
            "gaussian-hard",
            "-n",
            "5000",
            "--seed",
            "12",
            "-o",
            str(tmp_path / "c.h5"),
        )[0]
        == 0
    )
    assert (tmp_path / "a.h5").read_bytes() != (tmp_path / "c.h5").read_bytes()


def test_sim_and_data_with_same_seed_are_independent(tmp_path, capsys):
    run(capsys, "generate", "gaussian", "-n", "1000", "--seed", "1", "-o", str(tmp_path / "s.h5"))
    run(
        capsys,
        "generate",
        "gaussian",
        "--data",
        "-n",
        "1000",
        "--seed",
        "1",
        "-o",
        str(tmp_path / "d.h5"),
    )
    s, d = read_sample(tmp_path / "s.h5"), read_sample(tmp_path / "d.h5", levels=["truth"])
    r = np.corrcoef(s.gen.column("x"), d.truth.column("x"))[0, 1]
    assert abs(r) < 4 / np.sqrt(1000)  # 4σ of the null correlation's spread


@pytest.mark.parametrize(
    "argv, message",
    [
        (["info", "missing.h5"], "missing.h5: no such file"),
        (["generate", "gaussian", "-n", "0", "-o", "x.h5"], "at least 1"),
        (["generate", "gaussian", "-n", "ten", "-o", "x.h5"], "'ten' is not a number"),
        (["generate", "gaussian", "--seed", "-3", "-o", "x.h5"], "non-negative"),
        (["generate", "nonsense", "-o", "x.h5"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    try:
        code, _out, err = run(capsys, *argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
        err = capsys.readouterr().err
    assert code != 0
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "x.h5").exists()


def test_not_hdf5_and_debug_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    code, _, err = run(capsys, "info", str(bad))
    assert code == 2
    assert err.strip().count("\n") == 0 and "not an HDF5 file" in err
    code, _, err = run(capsys, "info", "--debug", str(bad))
    assert code == 2 and "Traceback" in err


def test_console_script_exit_code(tmp_path):
    """The installed entry point behaves like main(): one line, exit 2, no traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "simkit", "info", str(tmp_path / "none.h5")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"simkit info: error: {tmp_path / 'none.h5'}: no such file"


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("generate", "info", "demo"):
        assert command in out


@pytest.mark.parametrize(
    "kind, text, ok",
    [
        ("fraction", "0.5", True),
        ("fraction", "1.5", False),
        ("fraction", "nan", False),
        ("positive_float", "2e3", True),
        ("positive_float", "0", False),
        ("positive_float", "inf", False),
        ("positive_float", "nan", False),
        ("non_negative_float", "0", True),
        ("non_negative_float", "-1", False),
        ("non_negative_float", "abc", False),
        ("widths", "64,32", True),
        ("widths", "64,0", False),
        ("widths", "a,b", False),
        ("positive_int", "1e6", True),
        ("positive_int", "2.5", False),
    ],
)
def test_argument_types_accept_sense_and_refuse_nonsense(kind, text, ok):
    import argparse

    import simkit.cli as cli

    parse = getattr(cli, kind)
    if ok:
        parse(text)
    else:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


def test_the_console_script_freezes_the_collector_after_the_command(tmp_path):
    """``simkit`` (the console script, ``python -m simkit``) runs :func:`main`, then moves
    the objects left to the collector's permanent generation, so that the interpreter's
    final collection skips torch's module objects; ``main`` itself leaves it alone."""
    path = tmp_path / "sim.h5"
    assert main(["generate", "gaussian", "-n", "100", "-o", str(path)]) == 0
    script = (
        "import gc, sys\n"
        "from simkit import cli\n"
        f"sys.argv = ['simkit', 'info', {str(path)!r}]\n"
        "code = cli.main(sys.argv[1:])\n"
        "frozen_by_main = gc.get_freeze_count()\n"
        "code += cli.console()\n"
        "print(code, frozen_by_main, gc.get_freeze_count() > 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "0 0 True"
