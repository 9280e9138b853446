"""Label strategies keep exactly the right events; only `truth` reads labels;
tag-and-probe never looks at the probe when selecting."""

from dataclasses import replace

import h5py
import numpy as np
import pytest
from dijet_toy import dijet_sample

from detectors.labels import (
    STRATEGIES,
    SignalRegion,
    TagSelection,
    choose,
    default_features,
    parse_range,
)
from simkit.errors import SimkitError
from simkit.events import EventTable
from simkit.io import read_sample, write_sample


@pytest.fixture
def toy():
    rng = np.random.default_rng(7)
    table = dijet_sample(3000, 300, rng).reco
    passed = rng.random(len(table)) < 0.9  # some events fail the selection
    return replace(table, passed=passed, weights=rng.uniform(0.5, 2.0, len(table)))


def test_all_keeps_every_passing_event(toy):
    chosen = choose(toy, "all")
    np.testing.assert_array_equal(chosen.event_rows, np.flatnonzero(toy.passed))
    assert chosen.columns == default_features(toy.columns)
    assert "mjj" not in chosen.columns and "delta_mj" not in chosen.columns
    np.testing.assert_array_equal(chosen.weights, toy.weights[toy.passed])
    assert chosen.report["kept_events"] == toy.passed.sum()


def test_sideband_keeps_exactly_the_sidebands(toy):
    mjj = toy.column("mjj")
    chosen = choose(toy, "sideband", signal_region=SignalRegion.parse("3300:3700"))
    expected = toy.passed & ((mjj < 3300) | (mjj >= 3700))
    np.testing.assert_array_equal(chosen.event_rows, np.flatnonzero(expected))
    bounded = choose(toy, "sideband", signal_region=SignalRegion.parse("3300:3700", "3000:4200"))
    expected = toy.passed & (((mjj >= 3000) & (mjj < 3300)) | ((mjj >= 3700) & (mjj < 4200)))
    np.testing.assert_array_equal(bounded.event_rows, np.flatnonzero(expected))
    assert bounded.targets is None


def test_signal_region_edges_are_half_open():
    region = SignalRegion.parse("3300:3700")
    values = np.array([3299.99, 3300.0, 3699.99, 3700.0])
    np.testing.assert_array_equal(region.inside(values), [False, True, True, False])
    np.testing.assert_array_equal(region.in_sidebands(values), [True, False, False, True])


def test_cwola_classes_are_signal_region_against_sidebands(toy):
    mjj = toy.column("mjj")
    region = SignalRegion.parse("3300:3700", "2900:4500")
    chosen = choose(toy, "sideband", classes=True, signal_region=region)
    inside = toy.passed & (mjj >= 3300) & (mjj < 3700)
    sidebands = toy.passed & (((mjj >= 2900) & (mjj < 3300)) | ((mjj >= 3700) & (mjj < 4500)))
    np.testing.assert_array_equal(chosen.event_rows, np.flatnonzero(inside | sidebands))
    np.testing.assert_array_equal(chosen.targets, inside[chosen.event_rows])
    report = chosen.report
    # the toy's signal sits at 3500 ± 150: the SR class is signal-rich, the sidebands not
    assert report["signal_fraction_positive_class"] > 5 * report["signal_fraction_negative_class"]


def test_truth_reads_labels(toy):
    background = choose(toy, "truth")
    np.testing.assert_array_equal(
        background.event_rows, np.flatnonzero(toy.passed & (toy.labels == 0))
    )
    assert background.report["signal_fraction"] == 0.0
    both = choose(toy, "truth", classes=True)
    np.testing.assert_array_equal(both.event_rows, np.flatnonzero(toy.passed))
    np.testing.assert_array_equal(both.targets, toy.labels[toy.passed])
    with pytest.raises(SimkitError, match="needs a sample with /labels"):
        choose(replace(toy, labels=None), "truth")


def test_signal_fraction_is_reported(toy):
    chosen = choose(toy, "all")
    signal = toy.labels[toy.passed] == 1
    w = toy.weights[toy.passed]
    assert chosen.report["signal_fraction"] == pytest.approx((w * signal).sum() / w.sum())
    assert chosen.report["signal_events_kept"] == signal.sum()
    assert choose(replace(toy, labels=None), "all").report["signal_fraction"] is None


def test_tag_and_probe_keeps_exactly_the_probes():
    # four events: j1 tags (τ21 > 0.5) in events 0 and 2, j2 tags in events 1 and 2
    columns = {
        "m_j1": [10.0, 20.0, 30.0, 40.0],
        "tau21_j1": [0.8, 0.2, 0.9, 0.3],
        "m_j2": [1.0, 2.0, 3.0, 4.0],
        "tau21_j2": [0.1, 0.7, 0.6, 0.4],
    }
    table = EventTable.from_columns({k: np.array(v) for k, v in columns.items()})
    chosen = choose(table, "tag-and-probe", features=["m", "tau21"], tag="tau21>0.5")
    assert chosen.per_jet and chosen.columns == ("m", "tau21")
    np.testing.assert_array_equal(chosen.event_rows, [0, 2, 1, 2])
    # probes: j2 of events 0, 2 (tagged by j1), then j1 of events 1, 2 (tagged by j2)
    np.testing.assert_allclose(chosen.features, [[1, 0.1], [3, 0.6], [20, 0.2], [30, 0.9]])
    assert chosen.report["kept_events"] == 3 and chosen.report["training_examples"] == 4
    assert chosen.report["both_tagged"] == 1


def test_tag_and_probe_never_looks_at_the_probe(toy):
    rng = np.random.default_rng(3)
    tag = TagSelection.parse("tau21>0.5,m<300")
    for tag_jet, probe_jet in (("j1", "j2"), ("j2", "j1")):
        # scramble every column of the probe jet: the tag decision must not change
        features = toy.features.copy()
        for i, name in enumerate(toy.columns):
            if name.endswith(f"_{probe_jet}"):
                features[:, i] = rng.permutation(features[:, i]) * rng.uniform(0, 3)
        scrambled = replace(toy, features=features)
        np.testing.assert_array_equal(tag.passes(toy, tag_jet), tag.passes(scrambled, tag_jet))
        # and a table holding only the tag jet's columns is enough to select
        only_tag = toy.select([f"tau21_{tag_jet}", f"m_{tag_jet}"])
        np.testing.assert_array_equal(tag.passes(only_tag, tag_jet), tag.passes(toy, tag_jet))
    # the probes that enter training are the scrambled values, picked by unscrambled tags
    chosen = choose(toy, "tag-and-probe", tag=tag)
    n_j1_tags = int((toy.passed & tag.passes(toy, "j1")).sum())
    np.testing.assert_array_equal(
        chosen.features[:n_j1_tags, 0], toy.column("m_j2")[toy.passed & tag.passes(toy, "j1")]
    )


def test_default_tag_rejects_resonance_events(toy):
    chosen = choose(toy, "tag-and-probe")
    assert chosen.columns == ("m", "tau21", "tau32", "n")
    # the toy's signal jets are two-prong (τ21 ≈ 0.3): few signal events get a tag
    all_events = choose(toy, "all").report["signal_fraction"]
    assert chosen.report["signal_fraction"] < all_events / 5


def _same_choice(a, b):
    np.testing.assert_array_equal(a.event_rows, b.event_rows)
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert (a.targets is None) == (b.targets is None)
    if a.targets is not None:
        np.testing.assert_array_equal(a.targets, b.targets)


@pytest.mark.parametrize(
    "strategy, classes",
    [("all", False), ("sideband", False), ("sideband", True), ("tag-and-probe", False)],
)
def test_only_truth_reads_labels(toy, strategy, classes, tmp_path):
    rng = np.random.default_rng(11)
    reference = choose(toy, strategy, classes=classes)
    for labels in (
        None,
        np.ones(len(toy), np.int8),
        rng.integers(0, 2, len(toy)).astype(np.int8),
        1 - toy.labels,
    ):
        _same_choice(reference, choose(replace(toy, labels=labels), strategy, classes=classes))
    # the same from files: one with /labels, one with /labels deleted
    from simkit.events import Sample

    path = tmp_path / "with.h5"
    write_sample(path, Sample(reco=toy))
    stripped = tmp_path / "without.h5"
    stripped.write_bytes(path.read_bytes())
    with h5py.File(stripped, "a") as fh:
        del fh["labels"]
    a = choose(read_sample(path).reco, strategy, classes=classes)
    b = choose(read_sample(stripped).reco, strategy, classes=classes)
    assert read_sample(stripped).reco.labels is None
    _same_choice(a, b)
    assert b.report["signal_fraction"] is None and a.report["signal_fraction"] is not None


def test_truth_depends_on_labels(toy):
    # the control for the test above: truth does change when labels do
    flipped = choose(replace(toy, labels=1 - toy.labels), "truth")
    assert not np.array_equal(flipped.event_rows, choose(toy, "truth").event_rows)


def test_strategies_are_the_documented_four():
    assert STRATEGIES == ("all", "sideband", "tag-and-probe", "truth")


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda t: choose(t, "magic"), "unknown label strategy"),
        (lambda t: choose(t, "all", classes=True), "needs two classes"),
        (lambda t: choose(t, "tag-and-probe", tag="tau21 >> 1"), "cannot read"),
        (lambda t: choose(t, "tag-and-probe", tag="width>1"), "needs column 'width_j1'"),
        (lambda t: choose(t, "tag-and-probe", features=["mjj"]), "missing mjj_j1"),
        (lambda t: choose(t, "all", features=["nope"]), "no column 'nope'"),
        (lambda t: choose(t, "sideband", signal_region=SignalRegion("mjj", 0, 1e9)), "kept no"),
    ],
)
def test_bad_choices_are_clear_errors(toy, call, message):
    with pytest.raises(SimkitError, match=message):
        call(toy)


def test_parse_range():
    assert parse_range("3300:3700", "x") == (3300.0, 3700.0)
    assert parse_range(":4500", "x") == (-np.inf, 4500.0)
    for bad in ("3700:3300", "abc", "1:x", "nan:1"):
        with pytest.raises(SimkitError):
            parse_range(bad, "--signal-region")
    with pytest.raises(SimkitError, match="enclose"):
        SignalRegion.parse("3300:3700", "3400:4000")
    with pytest.raises(SimkitError, match="bounded"):
        SignalRegion.parse(":3700")
