"""Detector networks and their training: learn a Gaussian background, flag a shifted
cluster; the VAE's KL term is in the loss; weights count; save/load and resume are exact."""

import numpy as np
import pytest
import torch

from detectors.labels import TrainingSet
from detectors.models import (
    DEFAULT_ARCHITECTURE,
    DEFAULT_SCORE,
    BetaVAE,
    NetworkConfig,
    build_network,
)
from detectors.train import Detector
from simkit.errors import FileFormatError, SimkitError
from simkit.events import EventTable
from simkit.stats import roc_auc

COLUMNS = tuple("abcdef")


def plane_problem(seed: int, n_train=4000, n_test=2000, shift=1.5):
    """Background: a 2-D Gaussian on a random plane in 6-D, plus noise σ = 0.1 in every
    direction. Anomalies: the same, shifted by ``shift`` along a normal of the plane."""
    r = np.random.default_rng(seed)
    basis = np.linalg.qr(r.normal(size=(6, 6)))[0]
    plane, normal = basis[:, :2], basis[:, 2]

    def draw(n, offset):
        z = r.normal(size=(n, 2))
        x = z @ plane.T + 0.1 * r.normal(size=(n, 6)) + offset * normal
        return x.astype(np.float32)

    train = draw(n_train, 0.0)
    background, anomalies = draw(n_test, 0.0), draw(n_test, shift)
    return train, background, anomalies, draw(n_test, 0.0)


#: Eigenvalues of the covariance of the 8 standardized substructure features (m, tau21,
#: tau32, n of both jets) of the reference simulation's QCD in the signal region. The
#: W' → X(500) Y(100) events sit 1.8 off the QCD mean along the second principal axis
#: (QCD σ 1.1 there), little along the others (samples of benchmarks/detectors_vs_pyod.py).
DIJET_EIGENVALUES = np.array([2.64, 1.31, 1.08, 0.98, 0.90, 0.77, 0.17, 0.15])


def dijet_like_problem(seed: int, n_train=2000, n_test=1500, shift=1.8):
    """A Gaussian with the dijet features' eigenvalues on random axes; anomalies: the same,
    shifted by ``shift`` along the second axis — inside the bulk, not off a manifold."""
    r = np.random.default_rng(seed)
    axes = np.linalg.qr(r.normal(size=(8, 8)))[0]

    def draw(n, offset):
        along_axes = r.normal(size=(n, 8)) * np.sqrt(DIJET_EIGENVALUES)
        along_axes[:, 1] -= offset
        return (along_axes @ axes.T).astype(np.float32)

    return draw(n_train, 0.0), draw(n_test, 0.0), draw(n_test, shift)


EIGHT = tuple("abcdefgh")


def training_set(x, weights=None, columns=COLUMNS):
    n = len(x)
    return TrainingSet("all", x, columns, np.ones(n) if weights is None else weights, np.arange(n))


def table(x, columns=COLUMNS):
    n = len(x)
    return EventTable(x, columns, np.ones(n), np.ones(n, bool))


def auc_of(detector, background, anomalies):
    scores = detector.scores(table(np.r_[background, anomalies]))
    labels = np.r_[np.zeros(len(background)), np.ones(len(anomalies))]
    return {name: roc_auc(s, labels) for name, s in scores.items()}


@pytest.mark.parametrize("seed", [0, 2])
def test_ae_and_vae_flag_a_shifted_cluster(seed):
    # The shift is 15 noise σ off the plane, so the Neyman–Pearson AUC is 1.000. Bounds:
    # AE recon ≥ 0.99; VAE recon ≥ 0.99 and VAE total ≥ 0.95 — the KL part is blind to an
    # off-plane shift and adds spread (lowest total over seeds 0-3 when the bound was
    # set: 0.968). Seed 2 is the hardest of those four.
    train, background, anomalies, fresh = plane_problem(seed)
    options = dict(latent=2, hidden=(32, 32), epochs=100, patience=10, device="cpu", seed=seed)
    ae = Detector("ae", **options).fit(training_set(train))
    vae = Detector("vae", **options).fit(training_set(train))
    assert auc_of(ae, background, anomalies)["recon"] >= 0.99
    vae_auc = auc_of(vae, background, anomalies)
    assert vae_auc["recon"] >= 0.99
    assert vae_auc["total"] >= 0.95
    # control: fresh background against background is indistinguishable. σ(AUC) for
    # 2000 vs 2000 events is √((n1+n2+1)/(12 n1 n2)) ≈ 0.009: allow 3σ ≈ 0.03
    assert abs(auc_of(vae, background, fresh)["total"] - 0.5) < 0.03


def _dijet_like_aucs(model: str, seeds, **options) -> list[float]:
    train, background, anomalies = dijet_like_problem(0)
    options = dict(epochs=40, batch_size=256, device="cpu", **options)
    aucs = []
    for seed in seeds:
        det = Detector(model, seed=seed, **options).fit(training_set(train, columns=EIGHT))
        scores = det.score_events(table(np.r_[background, anomalies], columns=EIGHT))
        aucs.append(roc_auc(scores, np.r_[np.zeros(len(background)), np.ones(len(anomalies))]))
    return aucs


@pytest.mark.parametrize("model", ["ae", "vae"])
def test_default_detectors_are_stable_on_a_dijet_like_anomaly(model):
    # The Neyman–Pearson AUC is Φ(1.8 / √(2·1.31)) = 0.87. With the default architecture
    # (latent 1, hidden 16) and default score (recon) the AE and the VAE reached
    # 0.665–0.688 over detector seeds 0–2 and data seeds 0 and 3 when the bounds were
    # set; the former default (latent 4, 64-64) 0.54–0.66. Bounds: every seed ≥ 0.63
    # (σ(AUC) ≈ 0.011 for 1500 vs 1500 events: 3σ below the lowest seen) and a spread
    # over three seeds ≤ 0.04 on the same events (seen: ≤ 0.019; the former AE: 0.10).
    aucs = _dijet_like_aucs(model, seeds=(0, 1, 2))
    assert min(aucs) >= 0.63, aucs
    assert max(aucs) - min(aucs) <= 0.04, aucs


@pytest.mark.slow
def test_default_ae_beats_the_former_default_on_a_dijet_like_anomaly():
    # the reason for the default (detectors.models.DEFAULT_ARCHITECTURE): with room to
    # reconstruct the bulk (latent 4, 64-64) the AE reconstructs the anomaly too. Seen:
    # mean AUC 0.675 against 0.598 over seeds 0–2; asked: a margin of 0.03
    default = np.mean(_dijet_like_aucs("ae", seeds=(0, 1, 2)))
    former = np.mean(_dijet_like_aucs("ae", seeds=(0, 1, 2), latent=4, hidden=(64, 64)))
    assert default > former + 0.03, (default, former)


def test_default_architecture_and_score():
    for kind, architecture in DEFAULT_ARCHITECTURE.items():
        config = NetworkConfig(kind, 3)
        assert (config.latent, config.hidden) == (architecture["latent"], architecture["hidden"])
    assert NetworkConfig("ae", 3, latent=4, hidden=[32, 32]).hidden == (32, 32)
    train, *_ = plane_problem(0, n_train=200)
    det = Detector("vae", epochs=1, device="cpu").fit(training_set(train))
    assert det.network_config_.latent == DEFAULT_ARCHITECTURE["vae"]["latent"]
    assert det.score_ == DEFAULT_SCORE["vae"] == "recon"
    # a saved detector keeps its architecture whatever the defaults become
    assert det.describe()["network"]["hidden"] == list(DEFAULT_ARCHITECTURE["vae"]["hidden"])


def test_vae_loss_is_recon_plus_beta_kl():
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    w = torch.rand(64) + 0.5
    for beta in (1.0, 0.25):
        vae = build_network(NetworkConfig("vae", 3, latent=2, hidden=(8,), beta=beta))
        with torch.no_grad():  # a posterior far from the prior: a large KL
            vae.encoder[-1].bias.fill_(0.7)
        torch.manual_seed(5)
        loss = vae.loss(x, w)
        torch.manual_seed(5)  # the same reparametrization noise
        recon, kl = vae.terms(x, sample=True)
        assert kl.mean() > 0.1
        expected = ((recon + beta * kl) * w).sum() / w.sum()
        torch.testing.assert_close(loss, expected)
        # and the KL really changes the loss: without it, the loss would be recon alone
        assert abs(float((loss - (recon * w).sum() / w.sum()).detach())) > 0.01


def test_kl_term_shapes_training():
    # With β = 1 the KL keeps the posterior close to the prior; with β = 0 (KL off, as
    # asked) nothing does and the posterior narrows to points: its KL is far larger.
    train, *_ = plane_problem(0, n_train=2000)
    # (When the bound was set: 0.98 nats with β = 1, 9.1 without.)
    kl = {}
    for beta in (1.0, 0.0):
        options = dict(epochs=40, patience=0, batch_size=256, device="cpu")
        det = Detector("vae", latent=2, hidden=(32,), beta=beta, **options)
        det.fit(training_set(train))
        kl[beta] = float(det.scores(table(train))["kl"].mean())
    assert kl[1.0] < 3.0
    assert kl[0.0] > 3 * kl[1.0]


def test_weights_count_in_the_loss():
    ae = build_network(NetworkConfig("ae", 3, latent=1, hidden=(4,)))
    x = torch.randn(5, 3)
    weights = torch.tensor([2.0, 1.0, 1.0, 3.0, 1.0])
    duplicated = torch.repeat_interleave(x, weights.long(), dim=0)
    torch.testing.assert_close(
        ae.loss(x, weights), ae.loss(duplicated, torch.ones(len(duplicated)))
    )


def test_zero_weight_events_are_not_learned():
    # two clusters in the training sample, one with weight 0: the detector must treat
    # that one as anomalous (it learned only the weighted one)
    train, background, anomalies, _ = plane_problem(1, n_train=3000)
    x = np.r_[train, anomalies[:1000]]
    weights = np.r_[np.ones(len(train)), np.zeros(1000)]
    det = Detector("ae", latent=2, hidden=(32, 32), epochs=60, device="cpu", seed=1)
    det.fit(training_set(x, weights))
    assert auc_of(det, background, anomalies[1000:])["recon"] > 0.99


def test_classifier_needs_two_classes():
    train, *_ = plane_problem(0, n_train=100)
    with pytest.raises(SimkitError, match="two classes"):
        Detector("classifier", epochs=1, device="cpu").fit(training_set(train))


def test_unknown_score_and_model_are_clear_errors():
    train, *_ = plane_problem(0, n_train=100)
    with pytest.raises(SimkitError, match="has no score"):
        Detector("ae", score="kl", epochs=1).fit(training_set(train))
    with pytest.raises(SimkitError, match="unknown model"):
        Detector("gan", epochs=1).fit(training_set(train))


def test_save_load_gives_the_same_scores(tmp_path):
    train, background, *_ = plane_problem(3, n_train=1000)
    options = dict(latent=2, hidden=(16,), score="total", epochs=3, device="cpu")
    det = Detector("vae", **options).fit(training_set(train))
    det.save(tmp_path / "det")
    again = Detector.load(tmp_path / "det")
    # a score other than the default travels with the model
    assert again.score_ == "total" and again.columns_ == COLUMNS
    for name, values in det.scores(table(background)).items():
        np.testing.assert_array_equal(again.scores(table(background))[name], values)
    # the standardization travels inside the model
    assert torch.equal(again.network_.standardizer.mean, det.network_.standardizer.mean)
    with pytest.raises(FileFormatError, match="expected detector"):
        from simkit.nn import save_model

        save_model(tmp_path / "other", "flow", {}, {"w": torch.zeros(1)})
        Detector.load(tmp_path / "other")


def test_vae_resume_is_exact(tmp_path):
    # the reparametrization noise comes from torch's global RNG: the checkpoint keeps
    # its state, so 2 + 2 epochs give the same weights as 4 straight
    train, *_ = plane_problem(4, n_train=800)
    common = dict(latent=2, hidden=(16,), batch_size=128, patience=0, device="cpu", seed=3)
    straight = Detector("vae", epochs=4, **common).fit(training_set(train))
    path = tmp_path / "ckpt.pt"
    Detector("vae", epochs=2, checkpoint=path, **common).fit(training_set(train))
    resumed = Detector("vae", epochs=4, checkpoint=path, resume=True, **common)
    resumed.fit(training_set(train))
    for key, value in straight.network_.state_dict().items():
        torch.testing.assert_close(resumed.network_.state_dict()[key], value, rtol=0, atol=0)


def test_fit_leaves_global_rng_alone():
    train, *_ = plane_problem(0, n_train=200)
    torch.manual_seed(42)
    before = torch.rand(1)
    torch.manual_seed(42)
    Detector("vae", latent=1, hidden=(4,), epochs=1, device="cpu").fit(training_set(train))
    assert torch.equal(torch.rand(1), before)


def test_vae_is_a_beta_vae():
    assert isinstance(build_network(NetworkConfig("vae", 2)), BetaVAE)
    with pytest.raises(SimkitError, match="β"):
        NetworkConfig("vae", 2, beta=-1.0)


def test_threads_apply_inside_fit_only():
    train, *_ = plane_problem(0, n_train=200)
    before = torch.get_num_threads()
    seen = []
    det = Detector("ae", latent=1, hidden=(4,), epochs=1, device="cpu", threads=1)
    det.fit(training_set(train))
    det.network_.encoder.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    det.scores(table(train))
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == before
