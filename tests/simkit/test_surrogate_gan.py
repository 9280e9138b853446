"""The conditional WGAN-GP surrogate: its MMD, gradients, files, resume, what it learns."""

import numpy as np
import pytest
import torch
from surrogate_testing import interrupt_after_epoch

from simkit.events import EventTable
from simkit.surrogates import GANSurrogate, load_surrogate
from simkit.surrogates.gan import mass_columns, weighted_mmd2

TINY = {
    "hidden": (16, 16),
    "critic_hidden": (16, 16),
    "batch_size": 128,
    "n_critic": 2,
    "device": "cpu",
}
# what the slow tests train: small networks, many short steps (see BENCHMARKS.md)
SMALL = {
    "hidden": (128, 128),
    "critic_hidden": (128, 128),
    "batch_size": 256,
    "lr": 3e-4,
    "device": "cpu",
}


def _auc(reference, candidate, **kwargs):
    from validation.metrics import two_sample_auc

    return two_sample_auc(reference, candidate, device="cpu", **kwargs).auc


# --------------------------------------------------------------------------- pieces


def test_mmd_is_zero_for_the_same_sample_and_grows_with_a_shift():
    x = torch.randn(800, 2)
    y = torch.randn(800, 2)
    assert float(weighted_mmd2(x, x)) == pytest.approx(0.0, abs=1e-5)
    same = float(weighted_mmd2(x, y))
    shifted = [float(weighted_mmd2(x, y + d)) for d in (0.2, 0.5, 1.0)]
    assert same < shifted[0] < shifted[1] < shifted[2]


def test_weights_make_the_mmd_see_the_weighted_distribution():
    # y ~ N(0,1) weighted by N(0.5,1)/N(0,1) is distributed like x ~ N(0.5, 1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1500, 1, generator=g) + 0.5
    y = torch.randn(1500, 1, generator=g)
    w = torch.exp(0.5 * y[:, 0] - 0.125)
    assert float(weighted_mmd2(x, y, None, w)) < 0.2 * float(weighted_mmd2(x, y))


def test_mass_columns_are_the_invariant_masses():
    columns = ["mjj", "pt_j1", "m_j1", "tau21_j1", "m_j2", "delta_mj", "n_j1", "eta_j1"]
    assert mass_columns(columns) == ["mjj", "m_j1", "m_j2", "delta_mj"]


def _fitted(n=600, epochs=1, condition=True, **kw):
    r = np.random.default_rng(0)
    c = r.uniform(1, 3, n)
    data = np.column_stack([c, r.normal(c, 0.3), r.gamma(4.0, 10.0, n)])
    names = ["mjj", "x", "m_j1"]
    settings = dict(TINY, **kw)
    return GANSurrogate(condition=["mjj"] if condition else (), epochs=epochs, **settings).fit(
        data, names=names
    )


def test_every_gan_parameter_gets_a_gradient():
    gan = _fitted()
    _, objectives, _ = gan._objectives()
    batch = (torch.randn(64, 2), torch.randn(64, 1), torch.ones(64), torch.zeros(64))
    for objective, module in zip(objectives, (gan.net_.critic, gan.net_.generator), strict=True):
        module.zero_grad(set_to_none=True)
        objective.loss(*batch).backward()
        for name, p in module.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), (objective.name, name)


def test_validation_distance_is_deterministic():
    gan = _fitted()
    _, _, val = gan._objectives()
    batch = (torch.randn(300, 2), torch.randn(300, 1), torch.ones(300), torch.zeros(300))
    with torch.no_grad():
        assert float(val(*batch)) == float(val(*batch))


def test_gan_save_load_gives_identical_samples(tmp_path):
    gan = _fitted()
    assert gan._mmd_index() == [1]  # m_j1 is generated; mjj is the condition
    gan.save(tmp_path / "gan")
    again = load_surrogate(tmp_path / "gan", device="cpu")
    assert isinstance(again, GANSurrogate)
    context = np.linspace(1, 3, 400)
    np.testing.assert_array_equal(
        gan.sample(400, context, seed=5).features, again.sample(400, context, seed=5).features
    )
    assert again.get_params()["hidden"] == [16, 16]


def test_gan_resume_continues_where_it_stopped(tmp_path, monkeypatch):
    # the generator's noise comes from torch's global RNG, which the checkpoint carries
    full = _fitted(epochs=3, patience=0)
    with monkeypatch.context() as patch:
        interrupt_after_epoch(patch, 1)
        with pytest.raises(KeyboardInterrupt):
            _fitted(epochs=3, patience=0, checkpoint=tmp_path / "ck.pt")
    resumed = _fitted(epochs=3, patience=0, checkpoint=tmp_path / "ck.pt", resume=True)
    assert resumed.train_result_.epochs_run == 3
    for k, v in full.net_.state_dict().items():
        assert torch.equal(v, resumed.net_.state_dict()[k]), k


# --------------------------------------------------------------------------- learning


@pytest.mark.slow
def test_gan_reproduces_a_correlated_gaussian():
    r = np.random.default_rng(1)
    cov = [[1.0, 0.8], [0.8, 1.0]]
    gan = GANSurrogate(epochs=60, **SMALL).fit(r.multivariate_normal([0, 0], cov, 20000))
    s = gan.sample(20000, seed=1).features
    # the GAN goal; the null spread (σ ≈ 0.004) is far below it
    assert _auc(r.multivariate_normal([0, 0], cov, 20000), s) < 0.6


@pytest.mark.slow
def test_gan_reproduces_a_bounded_variable():
    r = np.random.default_rng(2)
    gan = GANSurrogate(epochs=40, **SMALL).fit(r.beta(2.0, 5.0, 20000), names=["tau21"])
    s = gan.sample(20000, seed=1).column("tau21")
    assert (s > 0).all() and (s < 1).all()
    assert _auc(r.beta(2.0, 5.0, 20000), s) < 0.6


@pytest.mark.slow
def test_gan_conditional_sampling_follows_the_condition():
    r = np.random.default_rng(3)
    c = r.uniform(0, 4, 20000)
    gan = GANSurrogate(condition=["c"], epochs=40, **SMALL).fit(
        np.column_stack([c, r.normal(c, 0.5)]), names=["c", "x"]
    )
    low = gan.sample(5000, np.full(5000, 1.0), seed=1).column("x").mean()
    high = gan.sample(5000, np.full(5000, 3.0), seed=1).column("x").mean()
    # true shift 2; statistical error ≈ 0.01; a GAN's bias is allowed 0.3
    assert high - low == pytest.approx(2.0, abs=0.3)


@pytest.mark.slow
def test_gan_weighted_training_reproduces_the_weighted_target():
    r = np.random.default_rng(4)
    x = np.where(r.random(20000) < 0.5, r.normal(-2, 0.5, 20000), r.normal(2, 0.5, 20000))
    table = EventTable.from_columns({"x": x}, weights=np.where(x > 0, 3.0, 1.0))
    gan = GANSurrogate(epochs=40, **SMALL).fit(table)
    right = (gan.sample(20000, seed=1).column("x") > 0).mean()
    # weighted target 0.75 (unweighted 0.5); statistical error ≈ 0.005, GAN bias allowed 0.06
    assert right == pytest.approx(0.75, abs=0.06)


def test_events_come_from_the_generator_weight_average():
    # the shared loop's after_step hook updates the average after every generator step
    gan = _fitted(epochs=2, patience=0)
    steps = int(gan.net_.average_steps)
    batches = 2 * -(-gan.train_result_.n_train // 128)  # two epochs of batches of 128
    assert 0 < steps <= batches // 2 + 1  # one generator step per n_critic = 2 batches
    assert gan.net_.sampler is gan.net_.average
    average = dict(gan.net_.average.named_parameters())
    assert any(not torch.equal(p, average[k]) for k, p in gan.net_.generator.named_parameters())
    assert not any(p.requires_grad for p in gan.net_.average.parameters())


def test_the_mmd_also_watches_the_relative_azimuth():
    # δφ's back-to-back peak is narrow: in the azimuthal frame it joins the masses
    r = np.random.default_rng(1)
    n = 400
    phi1 = r.uniform(-np.pi, np.pi, n)
    phi2 = np.angle(np.exp(1j * (phi1 + np.pi + r.normal(0, 0.1, n))))
    data = np.column_stack([phi1, r.gamma(4.0, 10.0, n), phi2])
    names = ["phi_j1", "m_j1", "phi_j2"]
    gan = GANSurrogate(epochs=1, **TINY).fit(data, names=names)
    assert gan._mmd_index() == [1, 2]
    absolute = GANSurrogate(epochs=1, azimuth_frame=False, **TINY).fit(data, names=names)
    assert absolute._mmd_index() == [1]
