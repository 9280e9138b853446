"""Exact resume with a stochastic loss: the checkpoint carries torch's global RNG state."""

import numpy as np
import torch

from simkit.nn import Objective, TrainConfig, mlp, train


def _run(epochs, checkpoint, resume):
    torch.manual_seed(0)
    net = mlp(2, 1, hidden=(16,), dropout=0.3)  # dropout draws from the global RNG
    x = np.random.default_rng(0).normal(size=(512, 2)).astype(np.float32)
    y = (x[:, :1] > 0).astype(np.float32)

    def loss(xb, yb):
        return torch.nn.functional.binary_cross_entropy_with_logits(net(xb), yb)

    config = TrainConfig(
        epochs=epochs,
        batch_size=64,
        patience=0,
        progress=False,
        device="cpu",
        checkpoint=str(checkpoint),
        resume=resume,
    )
    train(net, Objective(loss, net.parameters()), (x, y), config)
    return net


def test_dropout_training_resumes_exactly(tmp_path):
    straight = _run(4, tmp_path / "a.pt", resume=False)
    _run(2, tmp_path / "b.pt", resume=False)
    resumed = _run(4, tmp_path / "b.pt", resume=True)
    for key, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=0)
