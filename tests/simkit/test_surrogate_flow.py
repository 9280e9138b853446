"""The conditional spline flow: bijection invariants, a normalized density, what it learns,
saving, resuming."""

import json

import numpy as np
import pytest
import torch
from surrogate_testing import interrupt_after_epoch

from simkit.errors import FileFormatError, SimkitError
from simkit.events import EventTable
from simkit.surrogates import FlowSurrogate, GANSurrogate, load_surrogate
from simkit.surrogates.flow import build_spline_flow

# small and quick: many short steps train a tiny flow faster than a few large ones
TINY = {"n_layers": 2, "hidden": 16, "n_blocks": 1, "batch_size": 256, "lr": 3e-3, "device": "cpu"}


def _auc(reference, candidate, **kwargs):
    from validation.metrics import two_sample_auc

    return two_sample_auc(reference, candidate, device="cpu", **kwargs).auc


def _null_sigma(n_reference, n_candidate):
    # spread of the held-out AUC of identical samples (two_sample_auc tests on halves)
    n1, n2 = n_reference / 2, n_candidate / 2
    return np.sqrt((n1 + n2 + 1) / (12 * n1 * n2))


# --------------------------------------------------------------------------- invariants


@pytest.mark.parametrize("permutation", ["shuffle", "lu", "none"])
def test_flow_is_a_bijection_with_the_autograd_log_det(permutation):
    flow = build_spline_flow(3, 2, n_layers=3, hidden=8, n_blocks=1, permutation=permutation)
    flow = flow.double()
    # random spline parameters, so that the check is not of an identity map
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    u = torch.randn(6, 3, dtype=torch.float64)
    c = torch.randn(6, 2, dtype=torch.float64)
    x, log_det = flow.forward_and_log_det(u, c)
    back = flow.inverse(x, c)
    torch.testing.assert_close(back, u, atol=1e-9, rtol=1e-9)
    for i in range(len(u)):
        jac = torch.autograd.functional.jacobian(
            lambda v, i=i: flow.forward(v[None], c[i : i + 1])[0], u[i]
        )
        expected = float(torch.linalg.slogdet(jac)[1])
        # normflows sums the layers' log-dets in a float32 buffer: 1e-5 is its rounding
        assert float(log_det[i].detach()) == pytest.approx(expected, abs=1e-5)


def test_every_flow_parameter_gets_a_gradient():
    flow = build_spline_flow(4, 1, n_layers=2, hidden=8, n_blocks=1, permutation="lu")
    x, c = torch.randn(64, 4), torch.randn(64, 1)
    (-flow.log_prob(x, c).mean()).backward()
    for name, p in flow.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name


def test_bad_architecture_is_a_clear_error():
    with pytest.raises(SimkitError, match="unknown permutation"):
        build_spline_flow(2, 0, permutation="random")
    with pytest.raises(SimkitError, match="n_bins"):
        build_spline_flow(2, 0, n_bins=1)


# --------------------------------------------------------------------------- density


def test_one_dimensional_density_integrates_to_one():
    # a positive, skewed variable: the log transform's Jacobian must enter the density
    x = np.random.default_rng(0).gamma(3.0, 2.0, 3000)
    flow = FlowSurrogate(epochs=3, **TINY).fit(x, names=["m"])
    assert flow.transform_.kinds_ == ("log",)
    grid = np.linspace(1e-6, 150.0, 300_001)
    integral = np.trapezoid(np.exp(flow.log_prob(grid)), grid)
    # exactly 1 in theory; 1e-3 covers the trapezoid error and the mass beyond the grid
    assert integral == pytest.approx(1.0, abs=1e-3)


def test_conditional_density_integrates_to_one_for_each_context():
    r = np.random.default_rng(1)
    c = r.uniform(0, 4, 3000)
    x = r.normal(c, 0.5)
    flow = FlowSurrogate(condition=["c"], epochs=2, **TINY).fit(
        np.column_stack([c, x]), names=["c", "x"]
    )
    grid = np.linspace(-15, 20, 100_001)
    for context in (0.5, 3.5):
        p = np.exp(flow.log_prob(grid, np.full((len(grid), 1), context)))
        assert np.trapezoid(p, grid) == pytest.approx(1.0, abs=1e-3)


# --------------------------------------------------------------------------- learning


def test_conditional_sampling_follows_the_condition():
    r = np.random.default_rng(2)
    c = r.uniform(0, 4, 6000)
    x = r.normal(c, 0.5)
    flow = FlowSurrogate(condition=["c"], epochs=8, **TINY).fit(
        np.column_stack([c, x]), names=["c", "x"]
    )
    low = flow.sample(4000, np.full(4000, 1.0), seed=1)
    high = flow.sample(4000, np.full(4000, 3.0), seed=1)
    assert np.all(low.column("c") == 1.0) and np.all(high.column("c") == 3.0)
    shift = high.column("x").mean() - low.column("x").mean()
    # true shift 2; the statistical error of the difference is 0.5·√(2/4000) ≈ 0.01, the rest
    # of the tolerance is a short training's bias
    assert shift == pytest.approx(2.0, abs=0.25)


def test_weighted_training_reproduces_the_weighted_target():
    # two modes of equal size; weights 3:1 make the weighted target 75 % in the right mode.
    # Standardization cannot absorb that: only a weighted loss moves mass between modes.
    r = np.random.default_rng(3)
    x = np.where(r.random(8000) < 0.5, r.normal(-2, 0.5, 8000), r.normal(2, 0.5, 8000))
    w = np.where(x > 0, 3.0, 1.0)
    table = EventTable.from_columns({"x": x}, weights=w)
    flow = FlowSurrogate(epochs=10, **dict(TINY, hidden=32)).fit(table)
    right = (flow.sample(20000, seed=4).column("x") > 0).mean()
    # statistical error ≈ √(0.75·0.25/ESS) ≈ 0.006 (ESS ≈ 6400 training events) plus
    # 0.003 from 20k samples; 0.04 leaves room for the model, and excludes 0.5 (unweighted)
    assert right == pytest.approx(0.75, abs=0.04)


@pytest.mark.slow
def test_flow_reproduces_a_correlated_gaussian():
    r = np.random.default_rng(5)
    cov = [[1.0, 0.8], [0.8, 1.0]]
    x = r.multivariate_normal([1.0, -1.0], cov, 10000)
    flow = FlowSurrogate(epochs=15, **dict(TINY, n_layers=4, hidden=32)).fit(x)
    s = flow.sample(10000, seed=1).features
    reference = r.multivariate_normal([1.0, -1.0], cov, 10000)
    # bound: 0.5 + 5σ of the null spread (σ ≈ 0.0058 for 5k + 5k held-out events)
    assert _auc(reference, s) < 0.5 + 5 * _null_sigma(10000, 10000)


@pytest.mark.slow
def test_flow_reproduces_a_bounded_variable():
    r = np.random.default_rng(6)
    x = r.beta(2.0, 5.0, 10000)
    flow = FlowSurrogate(epochs=15, **dict(TINY, n_layers=4, hidden=32)).fit(x, names=["tau21"])
    assert flow.transform_.kinds_ == ("logit",)
    s = flow.sample(10000, seed=1).column("tau21")
    assert (s > 0).all() and (s < 1).all()
    assert _auc(r.beta(2.0, 5.0, 10000), s) < 0.5 + 5 * _null_sigma(10000, 10000)


def test_small_flow_gets_a_two_dimensional_gaussian_roughly_right():
    # the default-run version of the slow test above: small and short, looser bound
    r = np.random.default_rng(7)
    cov = [[1.0, 0.8], [0.8, 1.0]]
    x = r.multivariate_normal([0.0, 0.0], cov, 6000)
    flow = FlowSurrogate(epochs=6, **TINY).fit(x)
    s = flow.sample(6000, seed=1).features
    assert np.corrcoef(s.T)[0, 1] == pytest.approx(0.8, abs=0.05)
    # 0.56: ≈ 7σ of the null spread (σ ≈ 0.0075) — a short training is allowed some bias
    assert _auc(r.multivariate_normal([0.0, 0.0], cov, 6000), s, epochs=10) < 0.56


# --------------------------------------------------------------------------- files


def _small_conditional_flow(**kw):
    r = np.random.default_rng(8)
    c = r.uniform(1, 3, 2000)
    data = np.column_stack([c, r.normal(c, 0.3), r.beta(2, 2, 2000)])
    return FlowSurrogate(condition=["c"], epochs=1, **TINY, **kw).fit(data, names=["c", "x", "tau"])


def test_save_load_gives_identical_samples_and_densities(tmp_path):
    flow = _small_conditional_flow()
    flow.save(tmp_path / "flow")
    again = load_surrogate(tmp_path / "flow", device="cpu")
    assert isinstance(again, FlowSurrogate)
    context = np.linspace(1, 3, 500)
    a = flow.sample(500, context, seed=11)
    b = again.sample(500, context, seed=11)
    np.testing.assert_array_equal(a.features, b.features)
    assert a.columns == b.columns == ("c", "x", "tau")
    np.testing.assert_array_equal(flow.log_prob(a), again.log_prob(a))
    c = flow.sample(500, context, seed=12)
    assert not np.array_equal(a.features, c.features)
    document = json.loads((tmp_path / "flow" / "config.json").read_text())
    assert document["kind"] == "surrogate-flow"
    assert document["config"]["transform"]["kinds"] == ["log", "logit"]
    assert "device" not in document["config"]["params"]


def test_chunked_sampling_is_one_stream(tmp_path):
    flow = _small_conditional_flow()
    context = np.linspace(1, 3, 1000)
    chunks = list(flow.iter_sample(1000, context, seed=3, chunk_size=300))
    assert [len(c) for c in chunks] == [300, 300, 300, 100]
    # each chunk takes its own rows of the contexts, in order
    np.testing.assert_array_equal(
        EventTable.concatenate(chunks).column("c"), context.astype(np.float32)
    )
    again = flow.sample(1000, context, seed=3, chunk_size=300)
    np.testing.assert_array_equal(EventTable.concatenate(chunks).features, again.features)


def test_loading_another_kind_or_a_damaged_folder_is_a_clear_error(tmp_path):
    flow = _small_conditional_flow()
    flow.save(tmp_path / "flow")
    with pytest.raises(FileFormatError, match="holds a 'surrogate-flow' model"):
        GANSurrogate.load(tmp_path / "flow")
    (tmp_path / "flow" / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(FileFormatError, match="damaged weights file"):
        load_surrogate(tmp_path / "flow")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"format": "something else"}')
    with pytest.raises(FileFormatError, match="not a simkit model"):
        load_surrogate(tmp_path / "other")


def test_bad_fit_and_sample_inputs_are_clear_errors():
    x = np.random.default_rng(0).normal(size=(100, 2))
    with pytest.raises(SimkitError, match="no column 'mjj'"):
        FlowSurrogate(condition=["mjj"], **TINY).fit(x)
    with pytest.raises(SimkitError, match="every column is a condition"):
        FlowSurrogate(condition=["x0", "x1"], **TINY).fit(x)
    bad = x.copy()
    bad[7, 1] = np.nan
    with pytest.raises(SimkitError, match="'x1' is not finite at row 7"):
        FlowSurrogate(**TINY).fit(bad)
    with pytest.raises(SimkitError, match="not fitted"):
        FlowSurrogate(**TINY).sample(3)
    flow = _small_conditional_flow()
    with pytest.raises(SimkitError, match="conditioned on c: give contexts"):
        flow.sample(3)
    with pytest.raises(SimkitError, match="asked for 3 events but gave 2"):
        flow.sample(3, [1.0, 2.0])


# --------------------------------------------------------------------------- resume


def test_resume_after_an_interruption_continues_where_it_stopped(tmp_path, monkeypatch):
    r = np.random.default_rng(9)
    x = r.multivariate_normal([0, 0], [[1, 0.5], [0.5, 1]], 1500)
    settings = dict(TINY, patience=0, epochs=4)
    full = FlowSurrogate(**settings).fit(x)
    with monkeypatch.context() as patch:
        interrupt_after_epoch(patch, 2)
        with pytest.raises(KeyboardInterrupt):
            FlowSurrogate(checkpoint=tmp_path / "ck.pt", **settings).fit(x)
    resumed = FlowSurrogate(checkpoint=tmp_path / "ck.pt", resume=True, **settings).fit(x)
    assert [h["epoch"] for h in resumed.train_result_.history] == [0, 1, 2, 3]
    # the same weights, bit for bit, and the same validation losses as never interrupted
    for k, v in full.net_.state_dict().items():
        assert torch.equal(v, resumed.net_.state_dict()[k]), k
    assert [h["val_loss"] for h in resumed.train_result_.history] == [
        h["val_loss"] for h in full.train_result_.history
    ]


def test_resume_with_another_architecture_is_a_clear_error(tmp_path):
    x = np.random.default_rng(10).normal(size=(500, 2))
    FlowSurrogate(epochs=1, checkpoint=tmp_path / "ck.pt", **TINY).fit(x)
    other = dict(TINY, hidden=8)
    with pytest.raises(FileFormatError, match="another architecture"):
        FlowSurrogate(epochs=2, checkpoint=tmp_path / "ck.pt", resume=True, **other).fit(x)


# --------------------------------------------------------------------------- azimuthal frame


def _dijet_angles(n=800, seed=0):
    r = np.random.default_rng(seed)
    phi1 = r.uniform(-np.pi, np.pi, n)
    phi2 = np.angle(np.exp(1j * (phi1 + np.pi + r.normal(0, 0.15, n))))
    return EventTable(
        features=np.column_stack([phi1, r.lognormal(7, 0.1, n), phi2]).astype(np.float32),
        columns=("phi_j1", "pt_j1", "phi_j2"),
        weights=np.ones(n),
        passed=np.ones(n, bool),
    )


@pytest.mark.parametrize("kind", [FlowSurrogate, GANSurrogate])
def test_surrogates_model_the_second_azimuth_relative_to_the_first(tmp_path, kind):
    settings = TINY if kind is FlowSurrogate else {"hidden": (16,), "critic_hidden": (16,)}
    model = kind(
        epochs=1, seed=1, device="cpu", **{k: v for k, v in settings.items() if k != "device"}
    )
    model.fit(_dijet_angles())
    assert model.azimuth_frame and model.transform_.azimuth_["relative"] == ["phi_j2"]
    model.save(tmp_path / "model")
    document = json.loads((tmp_path / "model" / "config.json").read_text())["config"]
    assert document["params"]["azimuth_frame"] is True
    assert document["transform"]["azimuth"]["reference"] == "phi_j1"
    again = load_surrogate(tmp_path / "model", device="cpu")
    a, b = model.sample(300, seed=2), again.sample(300, seed=2)
    np.testing.assert_array_equal(a.features, b.features)
    assert np.abs(a.features[:, [0, 2]]).max() <= np.pi + 1e-6  # angles stay in range
    if kind is FlowSurrogate:
        np.testing.assert_array_equal(model.log_prob(a), again.log_prob(a))


@pytest.mark.parametrize("kind", [FlowSurrogate, GANSurrogate])
def test_models_saved_before_the_azimuthal_frame_load_as_they_were(tmp_path, kind):
    # a model folder as written before the frame existed: no "azimuth_frame" among the
    # parameters, no "azimuth" in the transform's description; it must load with the
    # absolute angles it was fitted with and give the same events
    settings = TINY if kind is FlowSurrogate else {"hidden": (16,), "critic_hidden": (16,)}
    model = kind(
        epochs=1,
        seed=1,
        azimuth_frame=False,
        device="cpu",
        **{k: v for k, v in settings.items() if k != "device"},
    )
    model.fit(_dijet_angles())
    assert model.transform_.azimuth_ is None
    model.save(tmp_path / "old")
    path = tmp_path / "old" / "config.json"
    document = json.loads(path.read_text())
    del document["config"]["params"]["azimuth_frame"]
    del document["config"]["transform"]["azimuth"]
    path.write_text(json.dumps(document))
    old = load_surrogate(tmp_path / "old", device="cpu")
    assert old.azimuth_frame is False and old.transform_.azimuth_ is None
    np.testing.assert_array_equal(
        old.sample(300, seed=4).features, model.sample(300, seed=4).features
    )
