"""The template classifier and the search in one window: hygiene, closure and nulls."""

from __future__ import annotations

import numpy as np
import pytest
from dijet_toy import dijet_sample

import detectors.template as template_module
from detectors.labels import SignalRegion
from detectors.search import SearchConfig, search, search_window
from detectors.template import TemplateClassifier, TemplateClassifierConfig, out_of_fold_auc
from simkit.errors import SimkitError
from simkit.events import EventTable

WINDOW = SignalRegion(low=3300.0, high=3700.0)
FAST = TemplateClassifierConfig(folds=3, ensemble=1, max_iter=60)


def test_every_data_event_is_scored_by_models_that_never_saw_it(monkeypatch):
    """Each event carries a unique id as a feature; record what every model trained on."""
    rng = np.random.default_rng(0)
    n_data, n_template = 300, 900
    ids = np.arange(n_data + n_template, dtype=np.float64)
    data = np.column_stack([ids[:n_data], rng.normal(size=n_data)])
    template = np.column_stack([ids[n_data:], rng.normal(size=n_template)])
    trained_on: list[set] = []
    original = template_module._fit_one

    def recording(x, target, *args):
        trained_on.append(set(x[:, 0].astype(int)))
        return original(x, target, *args)

    monkeypatch.setattr(template_module, "_fit_one", recording)
    config = TemplateClassifierConfig(folds=4, ensemble=2, max_iter=10)
    fit = TemplateClassifier(config, seed=3).fit(data, template)
    assert len(trained_on) == 4 * 2  # fold-major: models 2f and 2f + 1 belong to fold f
    for i in range(n_data):
        fold = fit.data_fold_[i]
        for member in range(2):
            assert i not in trained_on[2 * fold + member]
    for j, fold in enumerate(fit.template_fold_):
        event = n_data + fit.template_rows_[j]
        assert event not in trained_on[2 * fold] and event not in trained_on[2 * fold + 1]
    # every model did train on every other fold's events
    for fold in range(4):
        others = set(np.flatnonzero(fit.data_fold_ != fold))
        assert others <= trained_on[2 * fold]


def test_out_of_fold_auc_of_identical_distributions_is_one_half():
    """A deep tree ensemble memorises its training events; out of fold it must not help.
    Tolerance: 3σ of the Mann–Whitney null spread √((n₁+n₂+1)/(12 n₁ n₂))."""
    rng = np.random.default_rng(1)
    data, template = rng.normal(size=(2000, 3)), rng.normal(size=(8000, 3))
    config = TemplateClassifierConfig(folds=5, ensemble=1, max_leaf_nodes=255, max_iter=100)
    fit = TemplateClassifier(config, seed=2).fit(data, template)
    sigma = np.sqrt((2000 + 8000 + 1) / (12 * 2000 * 8000))
    assert abs(out_of_fold_auc(fit) - 0.5) < 3 * sigma
    # a cut keeping 10 % of the data keeps 10 % of the template, within 3σ (binomial)
    eff = fit.template_efficiency(0.1)
    assert abs(eff.value - 0.1) < 3 * np.sqrt(0.1 * 0.9 / 8000 + 0.1 * 0.9 / 2000)


@pytest.mark.parametrize("classifier", ["hgb", "mlp"])
def test_injected_signal_is_found(classifier):
    """An idealized template and an easy toy signal: the cut must raise Z well above the
    uncut bump hunt and find most of the signal (AUC)."""
    rng = np.random.default_rng(4)
    data = dijet_sample(12000, 120, rng).reco
    template = dijet_sample(40000, 0, rng).reco
    config = SearchConfig(
        classifier=TemplateClassifierConfig(
            classifier=classifier, folds=3, ensemble=1, max_iter=60, epochs=30, device="cpu"
        )
    )
    result = search_window(data, template, WINDOW, config, seed=5)
    assert result.auc > 0.9
    assert result.z_local > 3.0
    assert result.z_local > result.z_local_before_cut + 1.0
    assert result.gate is not None and result.gate["validated"]


def _background_only_z(seeds: range) -> np.ndarray:
    """Local Z (the most significant of two cuts, trials-corrected) of seeded
    background-only searches with a perfect template."""
    zs = []
    for seed in seeds:
        rng = np.random.default_rng(100 + seed)
        data = dijet_sample(12000, 0, rng).reco
        template = dijet_sample(30000, 0, rng).reco
        config = SearchConfig(gate=False, classifier=FAST, efficiencies=(0.1, 0.01))
        zs.append(search_window(data, template, WINDOW, config, seed=seed).z_local)
    return np.array(zs)


def test_background_only_local_z_is_unit_normal():
    """No signal, a perfect template: over 8 seeded pseudo-experiments the window's local
    Z has mean 0 within 3/√8 and a standard deviation within 3σ of 1 (the
    sample standard deviation of 8 normals has relative spread ≈ 1/√14)."""
    zs = _background_only_z(range(8))
    assert abs(zs.mean()) < 3 / np.sqrt(len(zs)), zs
    assert 1 - 3 / np.sqrt(14) < zs.std(ddof=1) < 1 + 3 / np.sqrt(14), zs


@pytest.mark.slow
def test_background_only_local_z_is_unit_normal_at_40_seeds():
    """As above at 40 other pseudo-experiments: |mean| < 3/√40, std within 1 ± 3/√78."""
    zs = _background_only_z(range(100, 140))
    assert abs(zs.mean()) < 3 / np.sqrt(40), zs
    assert 1 - 3 / np.sqrt(78) < zs.std(ddof=1) < 1 + 3 / np.sqrt(78), zs


def _shifted(table: EventTable, column: str, factor: float) -> EventTable:
    features = table.features.copy()
    features[:, table.index(column)] *= factor
    return EventTable(
        features=features,
        columns=table.columns,
        weights=table.weights,
        passed=table.passed,
        labels=table.labels,
        units=table.units,
    )


def test_the_template_gate_flags_a_mismodelled_template():
    rng = np.random.default_rng(7)
    data = dijet_sample(12000, 0, rng).reco
    template = _shifted(dijet_sample(30000, 0, rng).reco, "m_j1", 1.1)
    config = SearchConfig(classifier=FAST)
    result = search(data, template, [WINDOW], config, template_name="shifted", seed=1)
    gate = result.best.gate
    assert gate is not None and not gate["validated"]
    assert result.trustworthy is False
    assert "NOT TRUSTWORTHY" in result.summary_line()
    assert result.to_dict()["trustworthy"] is False


def test_the_result_keeps_the_metrics_contract(tmp_path):
    rng = np.random.default_rng(8)
    data = dijet_sample(8000, 80, rng).reco
    template = dijet_sample(20000, 0, rng).reco
    result = search(data, template, [WINDOW], SearchConfig(classifier=FAST), template_name="t")
    folder = result.save(tmp_path / "out").parent
    import json

    metrics = json.loads((folder / "metrics.json").read_text())
    for key in ("low", "high", "observed", "expected", "expected_error", "z_local"):
        assert key in metrics["best"]
    assert "z_local_before_cut" in metrics["windows"][0]
    assert metrics["template"] == "t"
    assert "validated" in metrics["gate"]
    assert {"auc", "max_sic"} <= set(metrics)
    for name in ("features", "scores", "spectrum", "roc", "sic"):
        assert (folder / f"{name}.png").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("empty-window", "data events in the window"),
        ("no-column", "the template has no column 'tau21_j1'"),
        ("nan-weight", "non-finite weight"),
        ("template-outside", "template events in the window"),
    ],
)
def test_bad_input_is_one_clear_line(change, message):
    rng = np.random.default_rng(9)
    data = dijet_sample(3000, 0, rng).reco
    template = dijet_sample(6000, 0, rng).reco
    config = SearchConfig(classifier=FAST)
    window = WINDOW
    if change == "empty-window":
        window = SignalRegion(low=6000.0, high=6100.0)
    elif change == "no-column":
        template = template.select([c for c in template.columns if c != "tau21_j1"])
        config = SearchConfig(classifier=FAST, features=("m_j1", "tau21_j1"))
    elif change == "nan-weight":
        w = template.weights.copy()
        w[3] = np.nan
        template = template.with_weights(w)
    elif change == "template-outside":
        template = template.mask(template.column("mjj") < 3000)
    with pytest.raises(SimkitError, match=message) as info:
        search_window(data, template, window, config)
    assert "\n" not in str(info.value)


def test_config_errors_are_clear():
    with pytest.raises(SimkitError, match="unknown classifier"):
        TemplateClassifierConfig(classifier="bdt")
    with pytest.raises(SimkitError, match="at least 2 folds"):
        TemplateClassifierConfig(folds=1)
    with pytest.raises(SimkitError, match="primary efficiency"):
        SearchConfig(efficiencies=(0.1,), primary_efficiency=0.01)
    with pytest.raises(SimkitError, match="distinct numbers in"):
        SearchConfig(efficiencies=(0.1, 1.5))


def test_the_trials_factor_for_the_best_cut_is_calibrated():
    """Šidák over k independent cuts: the corrected Z of the best of k unit-normal Z is
    unit-normal again. 20 000 seeded draws of k = 3: the fraction above 1 and above 2
    agrees with Φ's tail within 3 binomial σ; with a fixed cut nothing is corrected."""
    from types import SimpleNamespace

    from scipy import stats

    from detectors.search import choose_cut

    rng = np.random.default_rng(11)
    effs = (0.1, 0.01, 0.001)
    z = np.array(
        [
            choose_cut(
                [SimpleNamespace(efficiency=e, z_local=v) for e, v in zip(effs, row, strict=True)]
            )[1]
            for row in rng.normal(size=(20000, 3))
        ]
    )
    for level in (1.0, 2.0):
        nominal = stats.norm.sf(level)
        assert abs((z > level).mean() - nominal) < 3 * np.sqrt(nominal * (1 - nominal) / len(z))
    cuts = [
        SimpleNamespace(efficiency=e, z_local=v) for e, v in zip(effs, (0.5, 4.0, 1.0), strict=True)
    ]
    assert choose_cut(cuts, 0.1) == (0.1, 0.5, 1)
    eff, z_best, k = choose_cut(cuts)
    assert (eff, k) == (0.01, 3) and 3.5 < z_best < 4.0
    # beyond float range the asymptotic form takes over, still below the raw Z
    cuts = [
        SimpleNamespace(efficiency=e, z_local=v)
        for e, v in zip(effs, (1.0, 40.0, 1.0), strict=True)
    ]
    assert 39.9 < choose_cut(cuts)[1] < 40.0
