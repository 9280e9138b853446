import numpy as np
import pytest
from conftest import make_sample

from simkit.errors import SimkitError
from simkit.events import EventTable, Sample


def test_from_columns_defaults():
    t = EventTable.from_columns({"x": [1.0, 2.0], "y": [3.0, 4.0]})
    assert t.columns == ("x", "y")
    assert t.features.dtype == np.float32
    np.testing.assert_array_equal(t.weights, [1.0, 1.0])
    assert t.passed.all() and t.labels is None
    np.testing.assert_array_equal(t.column("y"), [3.0, 4.0])


def test_select_reorders_and_keeps_units():
    t = make_sample().reco
    s = t.select(["c", "a"])
    assert s.columns == ("c", "a")
    assert s.units == ("", "GeV")
    np.testing.assert_array_equal(s.column("a"), t.column("a"))


def test_mask_and_passing():
    t = make_sample(50).reco
    p = t.passing()
    assert len(p) == int(t.passed.sum())
    assert p.passed.all()
    np.testing.assert_array_equal(p.weights, t.weights[t.passed])
    np.testing.assert_array_equal(p.labels, t.labels[t.passed])


def test_concatenate_roundtrip():
    t = make_sample(40).reco
    back = EventTable.concatenate([t.mask(slice(0, 10)), t.mask(slice(10, 40))])
    np.testing.assert_array_equal(back.features, t.features)
    np.testing.assert_array_equal(back.weights, t.weights)
    np.testing.assert_array_equal(back.labels, t.labels)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"columns": ("a",)}, "column names"),
        ({"weights": np.ones(3)}, "weights have"),
        ({"passed": np.ones(3, bool)}, "pass mask"),
        ({"columns": ("a", "a")}, "duplicate"),
    ],
)
def test_table_rejects_inconsistent(kwargs, message):
    base = dict(
        features=np.zeros((4, 2)), columns=("a", "b"), weights=np.ones(4), passed=np.ones(4, bool)
    )
    base.update(kwargs)
    with pytest.raises(SimkitError, match=message):
        EventTable(**base)


def test_unknown_column_names_the_choices():
    t = make_sample().reco
    with pytest.raises(SimkitError, match="no column 'mjj'; columns are: a, b, c"):
        t.column("mjj")


def test_sample_levels_must_align():
    s = make_sample(10)
    with pytest.raises(SimkitError, match="row-aligned"):
        Sample(gen=s.gen, reco=s.reco.mask(slice(0, 5)).with_weights(s.gen.weights[:5]))


def test_sample_weights_must_agree():
    s = make_sample(10)
    with pytest.raises(SimkitError, match="different event weights"):
        Sample(gen=s.gen, reco=s.reco.with_weights(np.ones(10)))


def test_sample_mask_and_with_weights():
    s = make_sample(30, scores=True)
    m = s.mask(s.reco.passed)
    assert len(m) == int(s.reco.passed.sum())
    np.testing.assert_array_equal(m.scores["ae"], s.scores["ae"][s.reco.passed])
    w = s.with_weights(np.full(30, 3.0))
    assert (w.gen.weights == 3).all() and (w.reco.weights == 3).all()


def test_sample_level_errors():
    s = Sample(reco=make_sample(5).reco)
    with pytest.raises(SimkitError, match="has no gen level"):
        s.level("gen")
    with pytest.raises(SimkitError, match="unknown level"):
        s.level("parton")
