"""The detector chain on the reference simulation (slow: generates Pythia events)."""

import json

import numpy as np
import pytest

from simkit.cli import main
from simkit.events import Sample
from simkit.io import read_sample, write_sample

pytest.importorskip("pythia8mc")


@pytest.mark.slow
def test_detect_on_pythia_events(tmp_path, capsys):
    from simkit.generators.pythia import generate

    qcd = generate("qcd-dijet", 3000, seed=5)
    signal = generate("wprime-xy", 600, seed=5)
    data = Sample.concatenate([qcd, signal])
    write_sample(tmp_path / "data.h5", data)
    for labels in ("all", "tag-and-probe"):
        out = tmp_path / labels
        assert main(["detect", "train", "--input", str(tmp_path / "data.h5"), "--labels",
                     labels, "--epochs", "30", "-o", str(out / "det"), "--quiet"]) == 0  # fmt: skip
        assert main(["detect", "score", str(out / "det"), "--input", str(tmp_path / "data.h5"),
                     "-o", str(out / "s.h5"), "--quiet"]) == 0  # fmt: skip
        assert main(["detect", "evaluate", str(out / "s.h5"), "-o", str(out / "ev"),
                     "--roc-events", "all", "--quiet"]) == 0  # fmt: skip
        metrics = json.loads((out / "ev" / "metrics.json").read_text())
        # the W' events (two-prong jets of 500 and 100 GeV) are more anomalous than QCD
        # on average: AUC above 0.6 on 400 passing signal events (σ(AUC) ≈ 0.015)
        assert metrics["auc"] > 0.6
        trained = json.loads((out / "det" / "metrics.json").read_text())
        assert trained["labels_signal_fraction"] > 0
    scored = read_sample(tmp_path / "all" / "s.h5")
    np.testing.assert_array_equal(scored.labels, data.labels)
    capsys.readouterr()
