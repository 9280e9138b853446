"""`simkit detect train|score|evaluate` end to end, and its one-line errors."""

import json

import h5py
import numpy as np
import pytest
from dijet_toy import dijet_sample

from simkit.cli import main
from simkit.events import Sample
from simkit.io import inspect, read_sample, write_arrays, write_sample

FAST = ["--epochs", "4", "--hidden", "16", "--latent", "2", "--quiet"]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("detect")
    rng = np.random.default_rng(12)
    write_sample(folder / "data.h5", dijet_sample(4000, 100, rng))
    write_sample(folder / "test.h5", dijet_sample(4000, 400, rng))
    return folder


@pytest.mark.parametrize(
    "model, labels",
    [("vae", "all"), ("ae", "sideband"), ("vae", "tag-and-probe"), ("classifier", "sideband")],
)
def test_train_score_evaluate(files, tmp_path, capsys, model, labels):
    det = tmp_path / "det"
    code, _, err = run(
        capsys, "detect", "train", "--input", files / "data.h5", "--model", model,
        "--labels", labels, "--seed", 1, "-o", det, *FAST,
    )  # fmt: skip
    assert code == 0, err
    for name in ("config.json", "model.safetensors", "metrics.json", "training.png"):
        assert (det / name).exists()
    trained = json.loads((det / "metrics.json").read_text())
    assert trained["labels"] == labels and trained["labels_kept_events"] > 0
    assert trained["labels_signal_fraction"] is not None  # the toy has labels
    scores = tmp_path / "scores.h5"
    assert run(capsys, "detect", "score", det, "--input", files / "test.h5", "-o", scores)[0] == 0
    info = inspect(scores)
    primary = info.provenance["settings"]["primary_score"]
    assert primary in info.scores and info.has_labels
    source, scored = read_sample(files / "test.h5"), read_sample(scores)
    np.testing.assert_array_equal(scored.labels, source.labels)  # rows aligned
    np.testing.assert_array_equal(scored.reco.features, source.reco.features)
    ev = tmp_path / "eval"
    code, _, err = run(capsys, "detect", "evaluate", scores, "-o", ev, "--bin-width", 200)
    assert code == 0, err
    metrics = json.loads((ev / "metrics.json").read_text())
    assert metrics["score"] == primary
    for key in ("auc", "max_sic", "eps_s_at_eps_b"):
        assert key in metrics
    assert 0 <= metrics["auc"] <= 1
    assert (ev / "roc.png").exists() and (ev / "sic.png").exists() and (ev / "scores.png").exists()


def test_scores_match_the_python_api(files, tmp_path, capsys):
    from detectors.train import Detector

    det = tmp_path / "det"
    run(capsys, "detect", "train", "--input", files / "data.h5", "--model", "ae", "-o", det, *FAST)
    out = tmp_path / "s.h5"
    assert run(capsys, "detect", "score", det, "--input", files / "test.h5", "-o", out,
               "--name", "mine", "--chunk", 1000)[0] == 0  # fmt: skip
    detector = Detector.load(det)
    expected = detector.score_events(read_sample(files / "test.h5").reco)
    np.testing.assert_allclose(read_sample(out).scores["mine_recon"], expected, rtol=1e-6)


def test_weights_file_is_multiplied_in(files, tmp_path, capsys):
    n = inspect(files / "data.h5").n_events
    weights = np.random.default_rng(0).uniform(0.5, 1.5, n)
    write_arrays(tmp_path / "w.h5", {"weights": weights})
    det = tmp_path / "det"
    code, _, err = run(
        capsys, "detect", "train", "--input", files / "data.h5", "--weights",
        f"{tmp_path / 'w.h5'}:weights", "-o", det, *FAST,
    )  # fmt: skip
    assert code == 0, err
    # the standardizer inside the model was fitted with the weights
    from detectors.train import Detector
    from simkit.nn import weighted_mean_std

    det_obj = Detector.load(det)
    table = read_sample(files / "data.h5").reco
    mean, _ = weighted_mean_std(table.select(det_obj.columns_).features, weights)
    np.testing.assert_allclose(det_obj.network_.standardizer.mean.numpy(), mean, rtol=1e-5)
    code, _, err = run(capsys, "detect", "train", "--input", files / "data.h5", "--weights",
                       f"{tmp_path / 'w.h5'}:nope", "-o", det, *FAST)  # fmt: skip
    assert code == 2 and "nope" in err


def test_unlabelled_data_scores_and_evaluates(files, tmp_path, capsys):
    data = tmp_path / "unlabelled.h5"
    data.write_bytes((files / "test.h5").read_bytes())
    with h5py.File(data, "a") as fh:
        del fh["labels"]
    det = tmp_path / "det"
    code, _, err = run(capsys, "detect", "train", "--input", data, "--labels", "sideband",
                       "-o", det, *FAST)  # fmt: skip
    assert code == 0, err
    assert json.loads((det / "metrics.json").read_text())["labels_signal_fraction"] is None
    scores = tmp_path / "s.h5"
    assert run(capsys, "detect", "score", det, "--input", data, "-o", scores)[0] == 0
    assert not inspect(scores).has_labels
    code, _, _ = run(capsys, "detect", "evaluate", scores, "-o", tmp_path / "ev",
                       "--bin-width", 200, "--target-eps-b", 0.3)  # fmt: skip
    assert code == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["auc"] is None and "no labels" in metrics["notes"][0]
    assert "bump_z_local" in metrics


def test_calibration_file_fixes_the_threshold(files, tmp_path, capsys):
    det = tmp_path / "det"
    run(capsys, "detect", "train", "--input", files / "data.h5", "--model", "ae", "-o", det, *FAST)
    for name in ("data", "test"):
        run(capsys, "detect", "score", det, "--input", files / f"{name}.h5",
            "-o", tmp_path / f"{name}_s.h5")  # fmt: skip
    code, _, err = run(capsys, "detect", "evaluate", tmp_path / "test_s.h5", "-o", tmp_path / "ev",
                       "--calibration", tmp_path / "data_s.h5", "--target-eps-b", 0.05,
                       "--bin-width", 200)  # fmt: skip
    assert code == 0, err
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["threshold_source"] == "calibration sample"
    cal = read_sample(tmp_path / "data_s.h5")
    passing = cal.reco.passed
    kept = (cal.scores["ae_recon"][passing] > metrics["threshold"]).mean()
    assert kept == pytest.approx(0.05, abs=1 / passing.sum())


def test_train_resume(files, tmp_path, capsys):
    det = tmp_path / "det"
    args = ["detect", "train", "--input", files / "data.h5", "--patience", "0", "-o", det,
            "--hidden", "8", "--quiet"]  # fmt: skip
    assert run(capsys, *args, "--epochs", 2)[0] == 0
    assert (det / "checkpoint.pt").exists()
    assert run(capsys, *args, "--epochs", 3, "--resume")[0] == 0
    assert json.loads((det / "metrics.json").read_text())["train_epochs"] == 3


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "classifier", "--labels", "all"], "needs two classes"),
        (["--features", "nope"], "no column 'nope'"),
        (["--labels", "tag-and-probe", "--tag", "tau21>>"], "cannot read"),
        (["--signal-region", "3700:3300"], "LOW < HIGH"),
        (["--level", "gen"], "has no gen level"),
    ],
)
def test_train_errors_are_one_line(files, tmp_path, capsys, argv, message):
    code, _, err = run(capsys, "detect", "train", "--input", files / "data.h5", "-o",
                       tmp_path / "d", *argv, *FAST)  # fmt: skip
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_score_and_evaluate_errors(files, tmp_path, capsys):
    code, _, err = run(capsys, "detect", "score", tmp_path / "missing", "--input",
                       files / "test.h5", "-o", tmp_path / "s.h5")  # fmt: skip
    assert code == 2 and "no such model folder" in err
    assert not (tmp_path / "s.h5").exists()
    code, _, err = run(capsys, "detect", "evaluate", files / "test.h5", "-o", tmp_path / "e")
    assert code == 2 and "holds no scores" in err
    # a detector reading columns the input lacks
    det = tmp_path / "det"
    run(capsys, "detect", "train", "--input", files / "data.h5", "-o", det, *FAST)
    other = tmp_path / "other.h5"
    reco = read_sample(files / "test.h5").reco.select(["mjj", "m_j1"])
    write_sample(other, Sample(reco=reco))
    code, _, err = run(capsys, "detect", "score", det, "--input", other, "-o", tmp_path / "s.h5")
    assert code == 2 and "lacks column(s)" in err
    assert not (tmp_path / "s.h5").exists()


def test_several_inputs_are_joined_row_after_row(files, tmp_path, capsys):
    det = tmp_path / "det"
    code, _, err = run(capsys, "detect", "train", "--input", files / "data.h5", files / "test.h5",
                       "--labels", "sideband", "-o", det, *FAST)  # fmt: skip
    assert code == 0, err
    both = inspect(files / "data.h5").n_events + inspect(files / "test.h5").n_events
    assert json.loads((det / "metrics.json").read_text())["labels_passing_events"] == both
    out = tmp_path / "s.h5"
    code, _, err = run(capsys, "detect", "score", det, "--input", files / "test.h5",
                       files / "data.h5", "-o", out, "--chunk", 3000)  # fmt: skip
    assert code == 0, err
    scored = read_sample(out)
    expected = np.r_[read_sample(files / "test.h5").labels, read_sample(files / "data.h5").labels]
    np.testing.assert_array_equal(scored.labels, expected)
    assert len(scored) == both
    # inputs that do not fit together are one clear line
    no_labels = tmp_path / "nolabels.h5"
    no_labels.write_bytes((files / "data.h5").read_bytes())
    with h5py.File(no_labels, "a") as fh:
        del fh["labels"]
    code, _, err = run(capsys, "detect", "score", det, "--input", files / "test.h5", no_labels,
                       "-o", tmp_path / "bad.h5")  # fmt: skip
    assert code == 2 and "/labels" in err and not (tmp_path / "bad.h5").exists()
