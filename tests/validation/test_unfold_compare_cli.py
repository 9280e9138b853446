"""``simkit unfold`` and ``simkit compare`` from the command line: outputs and bad input."""

import json

import h5py
import numpy as np
import pytest

from simkit.cli import main
from simkit.io import inspect, read_array, read_sample
from validation.omnifold import Reweighter

QUICK = ["--device", "cpu", "--quiet"]


def run(capsys, *argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    for name, extra in (("sim", []), ("data", ["--data"]), ("hard", [])):
        process = "gaussian-hard" if name == "hard" else "gaussian"
        assert (
            main(
                [
                    "generate",
                    process,
                    "-n",
                    "3000",
                    "--seed",
                    "5",
                    "-o",
                    str(folder / f"{name}.h5"),
                    "-q",
                    *extra,
                ]
            )
            == 0
        )
    return folder


def test_unfold_writes_weights_metrics_plots_and_reweighter(files, tmp_path, capsys):
    out = tmp_path / "unfold"
    code, stdout, err = run(
        capsys,
        "unfold",
        "--sim",
        files / "sim.h5",
        "--data",
        files / "data.h5",
        "--iterations",
        2,
        "--seed",
        3,
        "--score-truth",
        "--alpha",
        0.02,
        "-o",
        out,
        *QUICK,
    )
    assert code == 0, err
    assert "gate at reco level: before" in stdout  # the verdict is printed even with --quiet
    pull, push = (
        read_array(out / "weights.h5", "omnifold/pull"),
        read_array(out / "weights.h5", "omnifold/push"),
    )
    assert pull.shape == push.shape == (2, 3000) and push.dtype == np.float64
    assert inspect(out / "weights.h5").omnifold == {"pull": (2, 3000), "push": (2, 3000)}
    metrics = json.loads((out / "metrics.json").read_text())
    for key in (
        "iter2_step1_auc",
        "iter2_step2_ess",
        "iter1_step1_seconds",
        "before_validated",
        "validated",
        "truth_triangular_x",
        "before_auc_p_value",
        "before_chi2_p_value_x",
        "after_min_p_value",
    ):
        assert key in metrics
    assert metrics["before_validated"] is False  # N(0,1) vs N(0.2,0.8) is visible at 3000 events
    # the defaults: step 1b and the convergence rule, which needs more than 2 iterations here
    assert metrics["failed_reco"] == "learn" and metrics["tolerance"] == 2.0
    assert metrics["iterations_max"] == metrics["iterations"] == 2
    assert metrics["converged"] is False
    assert metrics["stop_reason"].startswith("not converged in the maximum of 2 iterations")
    assert "iter2_step1_auc_z" in metrics and "iter2_push_change_relative" in metrics
    # --alpha reaches both gates: two tests (AUC, x), Bonferroni
    assert metrics["gate_alpha"] == 0.02 and metrics["gate_alpha_per_test"] == 0.01
    assert metrics["gate_auc_tolerance"] == 0.01 and metrics["gate_chi2_tolerance"] == 0.05
    for png in ("reco.png", "gen.png", "weights.png", "iterations.png"):
        assert (out / png).stat().st_size > 1000
    sim = read_sample(files / "sim.h5")
    weights = Reweighter.load(out / "reweighter", device="cpu").weights(sim.gen.features)
    np.testing.assert_allclose(weights, push[-1], rtol=1e-6)


def test_compare_gate_and_candidate_weights(files, tmp_path, capsys):
    out = tmp_path / "cmp"
    code, stdout, err = run(
        capsys,
        "compare",
        "--reference",
        files / "data.h5",
        "--candidate",
        files / "sim.h5",
        "--bootstrap",
        20,
        "-o",
        out,
        *QUICK,
    )
    assert code == 0, err
    assert stdout.startswith("NOT VALIDATED: AUC")
    metrics = json.loads((out / "metrics.json").read_text())
    assert (
        metrics["validated"] is False
        and metrics["auc_low"] <= metrics["auc"] <= metrics["auc_high"]
    )
    for key in ("auc_null_sigma", "auc_p_value", "chi2_p_value_x", "min_p_value", "max_chi2_ndf"):
        assert key in metrics
    assert (metrics["gate_alpha"], metrics["gate_auc_tolerance"]) == (0.01, 0.01)
    assert metrics["gate_chi2_tolerance"] == 0.05
    assert (out / "columns.png").exists()
    # loose tolerances pass the same samples: every gate flag reaches the gate
    code, stdout, _ = run(
        capsys,
        "compare",
        "--reference",
        files / "data.h5",
        "--candidate",
        files / "sim.h5",
        "--alpha",
        1e-6,
        "--auc-tolerance",
        0.4,
        "--chi2-tolerance",
        10,
        "--bootstrap",
        0,
        "-o",
        out,
        *QUICK,
    )
    assert code == 0 and stdout.startswith("VALIDATED"), stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["gate_alpha"], metrics["gate_auc_tolerance"]) == (1e-6, 0.4)
    assert metrics["gate_chi2_tolerance"] == 10
    # --strict turns "not validated" into exit status 4
    code, _, _ = run(
        capsys,
        "compare",
        "--reference",
        files / "data.h5",
        "--candidate",
        files / "sim.h5",
        "--bootstrap",
        0,
        "--strict",
        "-o",
        out,
        *QUICK,
    )
    assert code == 4
    # candidate weights from a weights file (2-D → last row)
    weights = tmp_path / "w.h5"
    with h5py.File(files / "sim.h5") as fh:
        n = fh["reco/features"].shape[0]
    from simkit.io import write_arrays

    write_arrays(weights, {"omnifold/push": np.ones((2, n))})
    code, stdout, err = run(
        capsys,
        "compare",
        "--reference",
        files / "sim.h5",
        "--candidate",
        files / "sim.h5",
        "--candidate-weights",
        f"{weights}:omnifold/push",
        "--level",
        "gen",
        "--bootstrap",
        0,
        "-o",
        out,
        *QUICK,
    )
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["level"] == "gen"


def _copy(src, dst, edit):
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "r+") as fh:
        edit(fh)
    return dst


def test_bad_input_is_one_clear_line(files, tmp_path, capsys):
    sim, data = files / "sim.h5", files / "data.h5"
    out = tmp_path / "o"

    def nan_weights(fh):
        w = np.ones(fh["reco/features"].shape[0])
        w[7] = np.nan
        fh.create_dataset("weights", data=w)

    def renamed(fh):
        fh["reco/features"].attrs["columns"] = np.array(["y"], dtype=h5py.string_dtype())

    def nothing_passes(fh):
        fh["reco/pass"][...] = False

    cases = [
        (["unfold", "--sim", data, "--data", data], "has no gen level"),
        (
            ["unfold", "--sim", sim, "--data", _copy(data, tmp_path / "r.h5", renamed)],
            "columns differ",
        ),
        (["unfold", "--sim", sim, "--data", data, "--columns", "y"], "columns differ"),
        (
            ["unfold", "--sim", _copy(sim, tmp_path / "n.h5", nothing_passes), "--data", data],
            "no simulated event passes the reco",
        ),
        (
            ["unfold", "--sim", _copy(sim, tmp_path / "w.h5", nan_weights), "--data", data],
            "/weights is not finite at row 7",
        ),
        (
            ["unfold", "--sim", sim, "--data", data, "--iterations", 0],
            "--iterations: must be a whole number of at least 1",
        ),
        (
            ["unfold", "--sim", sim, "--data", data, "--data-weights", f"{sim}:nope"],
            "has no dataset /nope",
        ),
        (
            ["compare", "--reference", data, "--candidate", sim, "--level", "gen"],
            "has no gen level",
        ),
        (["compare", "--reference", data, "--candidate", tmp_path / "missing.h5"], "no such file"),
        (["unfold", "--sim", sim, "--data", data, "--blind", "0:1"], "'mjj' among the unfolded"),
        (
            ["unfold", "--sim", sim, "--data", data, "--blind", "1:", "--blind-column", "x"],
            "--blind must be bounded on both sides",
        ),
        (
            ["unfold", "--sim", sim, "--data", data, "--blind=-99:99", "--blind-column", "x"],
            "no passing simulated event is left outside the blinded region",
        ),
        (
            ["compare", "--reference", data, "--candidate", sim, "--blind", "2:1"],
            "--blind needs LOW < HIGH",
        ),
        (
            ["compare", "--reference", data, "--candidate", sim, "--blind", "0:1"],
            "has no column 'mjj'",
        ),
        (
            ["compare", "--reference", data, "--candidate", sim, "--alpha", 1],
            "--alpha: must be strictly between 0 and 1, got 1",
        ),
        (
            ["compare", "--reference", data, "--candidate", sim, "--alpha", "nan"],
            "--alpha: must be strictly between 0 and 1, got nan",
        ),
        (
            ["compare", "--reference", data, "--candidate", sim, "--chi2-tolerance", -0.1],
            "--chi2-tolerance: must be a finite number ≥ 0, got -0.1",
        ),
        (
            ["compare", "--reference", data, "--candidate", sim, "--auc-tolerance", 0.5],
            "--auc-tolerance must be below 0.5, got 0.5",
        ),
        (
            ["unfold", "--sim", sim, "--data", data, "--auc-tolerance", "-1"],
            "--auc-tolerance: must be a finite number ≥ 0, got -1",
        ),
    ]
    for argv, message in cases:
        code, _, err = run(capsys, *argv, "-o", out, *QUICK)
        assert code == 2, (argv, err)
        assert message in err, (message, err)
        assert "Traceback" not in err
        lines = err.strip().splitlines()
        if lines[0].startswith("usage:"):  # argparse: its usage, then one error line
            lines = [line for line in lines if "error:" in line]
        assert len(lines) == 1, err
    assert not (out / "weights.h5").exists()


def test_blind_leaves_the_window_out_of_step_one_and_the_gate(files, tmp_path, capsys):
    sim, data = files / "sim.h5", files / "data.h5"
    blind = ["--blind", "0.5:1.5", "--blind-column", "x"]
    code, stdout, err = run(
        capsys,
        "unfold",
        "--sim",
        sim,
        "--data",
        data,
        "--iterations",
        1,
        *blind,
        "-o",
        tmp_path / "u",
        *QUICK,
    )
    assert code == 0, err
    assert "gate at reco level outside 0.5 ≤ x < 1.5" in stdout
    metrics = json.loads((tmp_path / "u" / "metrics.json").read_text())
    assert metrics["blind"] == ["x", 0.5, 1.5]
    # every event keeps a weight, the window's interpolated
    assert read_array(tmp_path / "u" / "weights.h5", "omnifold/pull").shape == (1, 3000)

    x = read_sample(data, levels=["reco"]).reco.column("x")
    outside = int(np.sum((x < 0.5) | (x >= 1.5)))
    code, stdout, err = run(
        capsys,
        "compare",
        "--reference",
        data,
        "--candidate",
        sim,
        *blind,
        "--bootstrap",
        0,
        "-o",
        tmp_path / "c",
        *QUICK,
    )
    assert code == 0, err
    metrics = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert metrics["blind"] == ["x", 0.5, 1.5]
    assert metrics["n_reference"] == outside < 3000
