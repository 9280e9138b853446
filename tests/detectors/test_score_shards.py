"""detectors.score: scoring in shards gives the same bytes whoever runs the shards."""

import numpy as np
import pytest
from dijet_toy import dijet_sample

from detectors.score import score_files
from detectors.train import Detector, train_detector
from simkit.errors import SimkitError
from simkit.io import read_sample, write_sample
from simkit.shards import local_cluster


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two input files and a small trained VAE."""
    folder = tmp_path_factory.mktemp("score")
    rng = np.random.default_rng(5)
    write_sample(folder / "a.h5", dijet_sample(1500, 60, rng))
    write_sample(folder / "b.h5", dijet_sample(700, 30, rng))
    training = read_sample(folder / "a.h5").reco
    train_detector(training, model="vae", latent=2, hidden=(16,), epochs=2, progress=False).save(
        folder / "det"
    )
    return folder


def score(files, out, **kwargs):
    inputs = [files / "a.h5", files / "b.h5"]
    return score_files(files / "det", inputs, out, rows_per_shard=500, device="cpu", **kwargs)


def test_scores_are_the_detectors_row_after_row(files, tmp_path):
    summary = score(files, tmp_path / "s.h5")
    scored = read_sample(tmp_path / "s.h5")
    assert summary.n_events == len(scored) == 1560 + 730
    detector = Detector.load(files / "det")
    expected = np.r_[
        detector.score_events(read_sample(files / "a.h5").reco),
        detector.score_events(read_sample(files / "b.h5").reco),
    ]
    np.testing.assert_allclose(scored.scores[summary.primary], expected, rtol=1e-6)
    assert scored.provenance["settings"]["primary_score"] == summary.primary


def test_same_bytes_in_process_and_on_dask(files, tmp_path, monkeypatch):
    """Five shards scored here and by a Dask cluster of two worker processes (local
    worker processes run the same code path as generation's, tested there)."""
    pytest.importorskip("distributed")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    one = score(files, tmp_path / "one.h5").output.read_bytes()
    with local_cluster(2, silence_logs=50) as cluster:
        assert score(files, tmp_path / "dask.h5", scheduler=cluster).output.read_bytes() == one


def test_resume_after_the_model_changed_is_refused(files, tmp_path):
    score(files, tmp_path / "s.h5", keep_shards=True)
    training = read_sample(files / "b.h5").reco
    train_detector(training, model="ae", latent=2, hidden=(8,), epochs=1, progress=False).save(
        tmp_path / "det2"
    )
    with pytest.raises(SimkitError, match="cannot resume.*model"):
        score_files(tmp_path / "det2", [files / "a.h5", files / "b.h5"], tmp_path / "s.h5",
                    rows_per_shard=500, resume=True)  # fmt: skip
