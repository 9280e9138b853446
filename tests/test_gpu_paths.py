"""The CUDA code paths: bf16 autocast in the shared loop, and each package's models on a GPU.

Marked ``gpu``: skipped where torch sees no CUDA device (CI, the 2-core dev machine);
run on a GPU host with ``pytest -m gpu``. Tolerances as in the CPU tests.
"""

import numpy as np
import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_shared_loop_trains_under_bf16_autocast():
    from simkit.nn import Objective, TrainConfig, mlp, predict, train

    r = np.random.default_rng(0)
    x = r.normal(size=(20000, 2)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.float32)[:, None]
    net = mlp(2, 1, hidden=(32, 32))
    seen = []

    def loss(xb, yb):
        logits = net(xb)
        seen.append(logits.dtype)
        return torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), yb)

    result = train(
        net,
        Objective(loss, net.parameters()),
        (x, y),
        TrainConfig(epochs=10, batch_size=2048, lr=3e-3, device="cuda", progress=False),
    )
    assert result.device.startswith("cuda")
    assert seen[0] == torch.bfloat16  # autocast was on
    accuracy = ((predict(net, x, device="cuda")[:, 0] > 0) == (y[:, 0] > 0)).mean()
    assert accuracy > 0.95


def test_omnifold_gaussian_closes_on_gpu():
    from simkit.generators.toy import gaussian
    from validation.omnifold import OmniFold

    n = 50_000
    sim = gaussian(n, np.random.default_rng(1))
    data = gaussian(n, np.random.default_rng(2), data=True)
    fit = OmniFold(iterations=3, device="cuda", seed=3).fit_samples(sim, data)
    w = fit.weights_
    x = sim.gen.column("x").astype(np.float64)
    mean = np.average(x, weights=w)
    width = np.sqrt(np.average((x - mean) ** 2, weights=w))
    truth = data.truth.column("x").astype(np.float64)
    # statistical error of the unfolded mean ~ sqrt(2)·0.8/sqrt(n·ESS/N) ≈ 0.005; 4σ
    assert abs(mean - truth.mean()) < 0.03
    assert abs(width - truth.std()) < 0.03


def test_flow_fits_and_samples_on_gpu(tmp_path):
    from simkit.events import EventTable
    from simkit.surrogates import FlowSurrogate, load_surrogate

    r = np.random.default_rng(4)
    cov = np.array([[1.0, 0.6], [0.6, 1.0]])
    x = r.multivariate_normal([1.0, -2.0], cov, size=20000)
    table = EventTable.from_columns({"a": x[:, 0], "b": x[:, 1]})
    flow = FlowSurrogate(epochs=8, batch_size=1024, device="cuda", seed=1).fit(table)
    sample = flow.sample(50000, seed=2)
    got = sample.features.astype(np.float64)
    assert np.allclose(got.mean(0), [1.0, -2.0], atol=0.1)
    assert abs(np.corrcoef(got.T)[0, 1] - 0.6) < 0.1
    flow.save(tmp_path / "flow")
    on_cpu = load_surrogate(tmp_path / "flow", device="cpu")
    assert np.isfinite(on_cpu.sample(1000, seed=2).features).all()


def test_gan_trains_on_gpu():
    from simkit.events import EventTable
    from simkit.surrogates import GANSurrogate

    r = np.random.default_rng(5)
    table = EventTable.from_columns({"a": r.normal(size=8000), "b": r.normal(size=8000)})
    gan = GANSurrogate(epochs=3, device="cuda", seed=1).fit(table)
    assert np.isfinite(gan.sample(10000, seed=1).features).all()


def test_vae_flags_shifted_cluster_on_gpu(tmp_path):
    from detectors.labels import choose
    from detectors.train import Detector
    from simkit.events import EventTable
    from simkit.stats import roc_auc

    r = np.random.default_rng(6)
    background = r.normal(size=(20000, 4))
    test_bkg = r.normal(size=(5000, 4))
    test_sig = r.normal(size=(5000, 4)) + 3.0
    train = EventTable.from_columns({f"f{i}": background[:, i] for i in range(4)})
    det = Detector("vae", latent=2, hidden=(32, 32), epochs=30, device="cuda", seed=1)
    det.fit(choose(train, "all"))
    test = np.r_[test_bkg, test_sig]
    table = EventTable.from_columns({f"f{i}": test[:, i] for i in range(4)})
    scores = det.scores(table)
    labels = np.r_[np.zeros(5000), np.ones(5000)]
    assert roc_auc(scores[det.score_names[0]], labels) > 0.95
    det.save(tmp_path / "det")
    cpu = Detector.load(tmp_path / "det")
    cpu.device = "cpu"
    again = cpu.scores(table)
    # the same weights on CPU: scores agree to float32 accuracy (scoring runs in fp32)
    for name in scores:
        np.testing.assert_allclose(again[name], scores[name], rtol=2e-3, atol=2e-3)
