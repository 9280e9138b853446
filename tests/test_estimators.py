"""One estimator dialect (issue 14): parameters from ``__init__``, ``fit`` returns self,
learned state ends in ``_``, save/load lose nothing, errors derive from builtins."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.labels import choose
from detectors.template import TemplateClassifier, TemplateClassifierConfig
from detectors.train import HYPERPARAMETERS, Detector
from simkit.errors import NotFittedError, SimkitError, TrainingError
from simkit.events import EventTable
from simkit.surrogates import SURROGATES
from validation.omnifold import OmniFold

ESTIMATORS = [
    lambda: Detector("ae", epochs=3),
    lambda: OmniFold(iterations=2),
    lambda: TemplateClassifier(TemplateClassifierConfig(folds=2)),
    lambda: SURROGATES["flow"](epochs=2),
    lambda: SURROGATES["gan"](epochs=2),
]


NAMES = ["detector", "omnifold", "template", "flow", "gan"]


@pytest.mark.parametrize("make", ESTIMATORS, ids=NAMES)
def test_parameters_come_from_init_and_can_be_set(make):
    estimator = make()
    params = estimator.get_params()
    assert params and not any(name.endswith("_") for name in params)
    rebuilt = type(estimator)(
        **{k: v for k, v in params.items() if k != "model"},
        **({"model": params["model"]} if "model" in params else {}),
    )
    assert rebuilt.get_params() == params
    name = next(iter(params))
    assert estimator.set_params(**{name: params[name]}) is estimator
    with pytest.raises(SimkitError, match="no parameter"):
        estimator.set_params(no_such_parameter=1)


def test_a_detector_reloads_with_every_hyperparameter(tmp_path):
    rng = np.random.default_rng(0)
    table = EventTable.from_columns({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    detector = Detector(
        "ae",
        epochs=2,
        batch_size=64,
        weight_decay=1e-3,
        val_fraction=0.3,
        precision="fp32",
        lr=2e-3,
        patience=1,
        seed=5,
        device="cpu",
    )
    assert detector.fit(choose(table, "all", features=["a", "b"])) is detector
    detector.save(tmp_path / "det")
    loaded = Detector.load(tmp_path / "det")
    for name in HYPERPARAMETERS:
        assert getattr(loaded, name) == getattr(detector, name), name
    # where it runs and how it reports are the loader's choice; the architecture left at
    # None (the model's default) comes back as what it resolved to, as does the score
    runtime = ("device", "progress", "checkpoint", "resume", "latent", "hidden", "score")
    before, after = detector.get_params(), loaded.get_params()
    assert {k: v for k, v in after.items() if k not in runtime} == {
        k: v for k, v in before.items() if k not in runtime
    }
    assert (after["latent"], after["hidden"], after["score"]) == (1, [16], "recon")


def test_errors_derive_from_the_matching_builtins():
    assert issubclass(SimkitError, ValueError)
    assert issubclass(TrainingError, RuntimeError)
    assert issubclass(NotFittedError, AttributeError) and issubclass(NotFittedError, ValueError)
    with pytest.raises(AttributeError, match="not trained yet"):
        Detector("ae").describe()
    with pytest.raises(NotFittedError):
        SURROGATES["flow"]().sample(3)
