"""``simkit surrogate fit|sample`` from the command line (in-process)."""

import json

import numpy as np
import pytest
from surrogate_testing import interrupt_after_epoch

from simkit.cli import main
from simkit.events import EventTable, Sample
from simkit.io import inspect, read_sample, write_arrays, write_sample

FAST = [
    "--epochs",
    "2",
    "--batch-size",
    "256",
    "--layers",
    "2",
    "--hidden",
    "8",
    "--bootstrap",
    "0",
]


def _write_conditional_file(path):
    """mjj-like context with a mass that follows it and a τ-like ratio; some failing rows."""
    r = np.random.default_rng(0)
    n = 3000
    mjj = r.uniform(2000.0, 4000.0, n)
    reco = EventTable.from_columns(
        {"mjj": mjj, "m_j1": mjj / 20 * r.lognormal(0, 0.1, n), "tau21_j1": r.beta(3, 3, n)},
        passed=r.random(n) < 0.9,
        units={"mjj": "GeV", "m_j1": "GeV"},
    )
    write_sample(path, Sample(reco=reco, provenance={"generator": "test", "seed": 0}))
    return path


@pytest.fixture
def conditional_file(tmp_path):
    return _write_conditional_file(tmp_path / "sim.h5")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One conditional flow fitted through the CLI, shared by the tests that only read it."""
    folder = tmp_path_factory.mktemp("fitted")
    path = _write_conditional_file(folder / "sim.h5")
    assert _fit(path, folder / "flow", "--condition", "mjj") == 0
    return path, folder / "flow"


def _fit(path, out, *extra):
    return main(
        [
            "surrogate",
            "fit",
            "--kind",
            "flow",
            "--input",
            str(path),
            "--seed",
            "1",
            "-o",
            str(out),
            "--quiet",
            *FAST,
            *extra,
        ]
    )


def test_fit_writes_model_metrics_and_report(fitted):
    conditional_file, out = fitted
    for name in (
        "config.json",
        "model.safetensors",
        "metrics.json",
        "fidelity.png",
        "training.png",
        "checkpoint.pt",
    ):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    n_pass = int(read_sample(conditional_file).reco.passed.sum())
    assert metrics["events_test"] == round(n_pass * 0.2)
    assert metrics["events_fit"] + metrics["events_test"] == n_pass
    assert metrics["condition"] == ["mjj"] and metrics["columns"] == ["mjj", "m_j1", "tau21_j1"]
    assert 0.0 <= metrics["two_sample_auc"] <= 1.0 and metrics["test_nll"] is not None
    assert metrics["precision"] == "fp32"
    from simkit.tasks.surrogate import FIT_METRICS

    assert set(metrics) == set(FIT_METRICS)


def test_sample_writes_an_ordinary_event_file(fitted, tmp_path):
    conditional_file, out = fitted
    fast = tmp_path / "fast.h5"
    args = [
        "surrogate",
        "sample",
        str(out),
        "--events",
        "2500",
        "--condition-range",
        "2500:3000",
        "--seed",
        "4",
        "--chunk-size",
        "1000",
        "-o",
        str(fast),
        "--quiet",
    ]
    assert main(args) == 0
    info = inspect(fast)
    assert info.n_events == 2500 and list(info.levels) == ["reco"]
    assert info.levels["reco"].columns == ("mjj", "m_j1", "tau21_j1")
    assert info.levels["reco"].units[0] == "GeV"
    assert info.provenance["generator"] == "simkit.surrogates.flow"
    assert info.provenance["settings"]["model"] == str(out.resolve())
    assert info.provenance["settings"]["trained_on"]["file"] == str(conditional_file)
    events = read_sample(fast).reco
    assert events.column("mjj").min() >= 2500 and events.column("mjj").max() <= 3000
    assert ((events.column("tau21_j1") > 0) & (events.column("tau21_j1") < 1)).all()
    # same seed, same events
    again = tmp_path / "again.h5"
    assert main([*args[:-3], "-o", str(again), "--quiet"]) == 0
    np.testing.assert_array_equal(read_sample(again).reco.features, events.features)


def test_sample_with_contexts_from_a_file(fitted, tmp_path):
    conditional_file, out = fitted
    fast = tmp_path / "fast.h5"
    assert (
        main(
            [
                "surrogate",
                "sample",
                str(out),
                "-n",
                "500",
                "--condition-from",
                str(conditional_file),
                "-o",
                str(fast),
                "--quiet",
                "--compression",
                "none",
            ]
        )
        == 0
    )
    source = read_sample(conditional_file).reco.passing().column("mjj")
    assert np.isin(read_sample(fast).reco.column("mjj"), source).all()


def test_gan_fit_and_sample(conditional_file, tmp_path):
    out = tmp_path / "gan"
    args = [
        "surrogate",
        "fit",
        "--kind",
        "gan",
        "--input",
        str(conditional_file),
        "--epochs",
        "1",
        "--hidden",
        "16",
        "--layers",
        "2",
        "--bootstrap",
        "0",
        "-o",
        str(out),
        "-q",
    ]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["kind"] == "gan" and metrics["test_nll"] is None
    assert (
        main(["surrogate", "sample", str(out), "-n", "100", "-o", str(tmp_path / "g.h5"), "-q"])
        == 0
    )
    assert inspect(tmp_path / "g.h5").n_events == 100


def test_weights_from_another_file_enter_the_fit(conditional_file, tmp_path):
    n = inspect(conditional_file).n_events
    w = np.where(read_sample(conditional_file).reco.column("tau21_j1") > 0.5, 2.0, 1.0)
    write_arrays(tmp_path / "w.h5", {"omnifold/push": np.stack([np.ones(n), w])})
    out = tmp_path / "weighted"
    assert _fit(conditional_file, out, "--weights", f"{tmp_path / 'w.h5'}:omnifold/push") == 0
    document = json.loads((out / "config.json").read_text())
    assert document["trained_on"]["weights"].endswith("w.h5:omnifold/push")


def test_an_interrupted_fit_resumes_to_the_same_model(conditional_file, tmp_path, monkeypatch):
    assert _fit(conditional_file, tmp_path / "whole") == 0
    out = tmp_path / "interrupted"
    with monkeypatch.context() as patch:
        interrupt_after_epoch(patch, 1)
        assert _fit(conditional_file, out) == 130  # Ctrl-C after the first epoch
    assert (out / "checkpoint.pt").is_file() and not (out / "metrics.json").exists()
    assert _fit(conditional_file, out, "--resume") == 0
    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    resumed = json.loads((out / "metrics.json").read_text())
    for key in ("epochs", "best_epoch", "best_val_loss", "test_nll", "two_sample_auc"):
        assert resumed[key] == whole[key], key


@pytest.mark.parametrize(
    "args, message",
    [
        (["--condition", "pt"], "no column 'pt'"),
        (["--transform", "m_j1=sqrt"], "unknown transform"),
        (["--transform", "mjj=logit"], "the logit transform needs values in (0, 1)"),
        (["--test-fraction", "0"], "test fraction must be in (0, 1)"),
        (["--weights", "missing.h5"], "missing.h5: no such file"),
    ],
)
def test_bad_fit_input_is_one_line(conditional_file, tmp_path, capsys, args, message):
    assert _fit(conditional_file, tmp_path / "bad", *args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_bad_sample_input_is_one_line_and_leaves_no_file(fitted, tmp_path, capsys):
    _, out = fitted
    target = tmp_path / "fast.h5"
    cases = [
        ([str(out), "-n", "10"], "give --condition-from FILE.h5 or --condition-range"),
        ([str(out), "-n", "10", "--condition-range", "5:1"], "need finite LO < HI"),
        ([str(out), "-n", "10", "--condition-range", "1:2", "3:4"], "give 1 --condition-range"),
        ([str(out), "-n", "10", "--condition-range=-5:-1"], "the log transform needs"),
        ([str(tmp_path), "-n", "10"], "no config.json"),
        ([str(out), "-n", "10", "--condition-from", str(tmp_path / "no.h5")], "no such file"),
    ]
    for args, message in cases:
        assert main(["surrogate", "sample", *args, "-o", str(target), "-q"]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, err
        assert not target.exists()
        assert not list(tmp_path.glob(".fast.h5.*"))


def test_sample_writes_in_order_beside_generation_and_a_failed_write_leaves_nothing(
    fitted, tmp_path, monkeypatch
):
    """Chunks are written in a second thread while the next one is generated: the file
    holds the in-memory sample row for row, and a write that fails ends the command with
    its error and no file, also when it fails while a later chunk is being generated."""
    from simkit.io import SampleWriter
    from simkit.surrogates import contexts_in_range, load_surrogate
    from simkit.surrogates.sampler import FlowSampler
    from simkit.tasks.surrogate import sample_surrogate

    _, out = fitted
    for sampler, model in (
        ("torch-free", FlowSampler.load(out)),
        ("torch", load_surrogate(out, device="cpu")),
    ):
        target = tmp_path / f"events-{sampler}.h5"
        timing = sample_surrogate(
            out, target, 2500, condition_range=[(2500, 3000)], seed=3, chunk_size=700,
            sampler=sampler, device="cpu",
        )  # fmt: skip
        expected = model.sample(2500, contexts_in_range([(2500, 3000)]), seed=3, chunk_size=700)
        np.testing.assert_array_equal(read_sample(target).reco.features, expected.features)
        assert timing["seconds"] >= timing["generate_seconds"] > 0
        assert timing["write_seconds"] > 0

    calls = []
    original = SampleWriter.append

    def fail_second(self, sample):
        calls.append(len(sample))
        if len(calls) == 2:
            raise OSError("disk full")
        return original(self, sample)

    monkeypatch.setattr(SampleWriter, "append", fail_second)
    broken = tmp_path / "broken.h5"
    with pytest.raises(OSError, match="disk full"):
        sample_surrogate(out, broken, 2500, condition_range=[(2500, 3000)], chunk_size=700)
    assert len(calls) == 2  # no chunk written after the failure
    assert not broken.exists() and not list(tmp_path.glob(".broken.h5.*"))


def test_the_azimuthal_frame_can_be_turned_off(tmp_path):
    """--no-azimuth-frame keeps absolute angles (a detector that breaks the φ symmetry);
    the default models the second azimuth relative to the first."""
    rng = np.random.default_rng(5)
    n = 400
    phi1 = rng.uniform(-np.pi, np.pi, n)
    phi2 = np.angle(np.exp(1j * (phi1 + np.pi + rng.normal(0, 0.2, n))))
    table = EventTable.from_columns(
        {"phi_j1": phi1, "m_j1": rng.lognormal(4, 0.3, n), "phi_j2": phi2}
    )
    write_sample(tmp_path / "angles.h5", Sample(reco=table))
    for flags, expected in (((), "phi_j1"), (("--no-azimuth-frame",), None)):
        out = tmp_path / f"model{len(flags)}"
        assert _fit(tmp_path / "angles.h5", out, *flags) == 0
        config = json.loads((out / "config.json").read_text())["config"]
        assert config["params"]["azimuth_frame"] is (expected is not None)
        azimuth = config["transform"].get("azimuth")
        assert (azimuth or {}).get("reference") == expected
