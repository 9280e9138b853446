"""The shared training loop, MLP builder, standardizer and model files."""

import json
import math

import numpy as np
import pytest
import torch

from simkit.errors import FileFormatError, SimkitError, TrainingError
from simkit.nn import (
    Objective,
    Standardizer,
    TrainConfig,
    load_model,
    mlp,
    predict,
    resolve_device,
    save_model,
    train,
)


def _logistic_problem(n=4000, seed=0):
    r = np.random.default_rng(seed)
    x = r.normal(size=(n, 2)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.float32)[:, None]
    return x, y


def _classifier_objective(net):
    def loss(xb, yb):
        return torch.nn.functional.binary_cross_entropy_with_logits(net(xb), yb)

    return Objective(loss, net.parameters())


def test_training_learns_a_separable_problem():
    x, y = _logistic_problem()
    net = mlp(2, 1, hidden=(16, 16))
    result = train(
        net,
        _classifier_objective(net),
        (x, y),
        TrainConfig(epochs=15, batch_size=256, lr=3e-3, progress=False),
    )
    accuracy = ((predict(net, x)[:, 0] > 0) == (y[:, 0] > 0)).mean()
    assert accuracy > 0.95
    assert result.best_epoch >= 0 and result.n_val == 800 and result.n_train == 3200
    assert all(math.isfinite(h["val_loss"]) for h in result.history)


def test_early_stopping_restores_best():
    x, y = _logistic_problem(400)
    y = np.random.default_rng(1).permutation(y)  # pure noise: validation loss won't improve
    net = mlp(2, 1, hidden=(64, 64))
    result = train(
        net,
        _classifier_objective(net),
        (x, y),
        TrainConfig(epochs=200, batch_size=32, lr=1e-2, patience=3, progress=False),
    )
    assert result.stopped_early
    assert result.epochs_run == result.best_epoch + 1 + 3


def test_nan_guard_skips_then_aborts():
    x, y = _logistic_problem(256)
    net = mlp(2, 1, hidden=(4,))
    calls = {"n": 0}

    def sometimes_nan(xb, yb):
        calls["n"] += 1
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xb), yb)
        return loss * float("nan") if calls["n"] % 4 == 0 else loss

    result = train(
        net,
        Objective(sometimes_nan, net.parameters()),
        (x, y),
        TrainConfig(epochs=2, batch_size=32, val_fraction=0, progress=False),
    )
    assert result.skipped_steps == 4  # 16 steps, every 4th non-finite

    def always_nan(xb, yb):
        return net(xb).sum() * float("nan")

    with pytest.raises(TrainingError, match="non-finite"):
        train(
            net,
            Objective(always_nan, net.parameters()),
            (x, y),
            TrainConfig(epochs=5, batch_size=32, max_bad_steps=10, progress=False),
        )


def test_resume_continues_exactly(tmp_path):
    x, y = _logistic_problem(1000)
    config = dict(epochs=6, batch_size=64, lr=3e-3, patience=0, progress=False, seed=3)

    torch.manual_seed(0)
    ref = mlp(2, 1, hidden=(8,))
    train(ref, _classifier_objective(ref), (x, y), TrainConfig(**config))

    class Interrupt(Exception):
        pass

    def stop_after_three(record):
        if record["epoch"] == 2:
            raise Interrupt

    ckpt = str(tmp_path / "ckpt.pt")
    torch.manual_seed(0)
    net = mlp(2, 1, hidden=(8,))
    with pytest.raises(Interrupt):
        train(
            net,
            _classifier_objective(net),
            (x, y),
            TrainConfig(**config, checkpoint=ckpt),
            on_epoch_end=stop_after_three,
        )
    torch.manual_seed(99)  # a fresh model: everything must come from the checkpoint
    resumed = mlp(2, 1, hidden=(8,))
    result = train(
        resumed,
        _classifier_objective(resumed),
        (x, y),
        TrainConfig(**config, checkpoint=ckpt, resume=True),
    )
    assert result.epochs_run == 6
    for a, b in zip(ref.state_dict().values(), resumed.state_dict().values(), strict=False):
        torch.testing.assert_close(a, b)


def test_two_objectives_take_turns():
    x = torch.randn(64, 1)
    a = torch.nn.Parameter(torch.zeros(1))
    b = torch.nn.Parameter(torch.zeros(1))
    holder = torch.nn.Module()
    holder.a, holder.b = a, b
    steps = {"a": 0, "b": 0}

    def loss_a(xb):
        steps["a"] += 1
        return ((a - 1) ** 2).sum()

    def loss_b(xb):
        steps["b"] += 1
        return ((b + 1) ** 2).sum()

    train(
        holder,
        [Objective(loss_a, [a]), Objective(loss_b, [b], every=4, name="b")],
        (x,),
        TrainConfig(epochs=2, batch_size=8, val_fraction=0, progress=False, lr=0.1),
    )
    assert steps == {"a": 16, "b": 4}


def test_standardizer_weighted():
    x = np.array([[0.0], [2.0]])
    s = Standardizer(1).fit(x, np.array([1.0, 3.0]))
    assert float(s.mean) == pytest.approx(1.5)
    assert float(s.std) == pytest.approx(np.sqrt(0.75))
    z = s(torch.tensor([[1.5]]))
    assert float(z) == pytest.approx(0.0)
    torch.testing.assert_close(s.inverse(s(torch.tensor([[3.0]]))), torch.tensor([[3.0]]))


def test_save_load_roundtrip(tmp_path):
    net = mlp(3, 2, hidden=(5,))
    save_model(tmp_path / "m", "test-net", {"hidden": [5]}, net.state_dict())
    document, state = load_model(tmp_path / "m", "test-net")
    assert document["config"] == {"hidden": [5]}
    other = mlp(3, 2, hidden=(5,))
    other.load_state_dict(state)
    x = torch.randn(4, 3)
    torch.testing.assert_close(net(x), other(x))


def test_load_errors(tmp_path):
    net = mlp(3, 2, hidden=(5,))
    save_model(tmp_path / "m", "flow", {}, net.state_dict())
    with pytest.raises(FileFormatError, match="holds a 'flow' model, expected gan"):
        load_model(tmp_path / "m", "gan")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(FileFormatError, match="damaged weights file"):
        load_model(tmp_path / "m", "flow")
    (tmp_path / "m" / "config.json").write_text("{not json")
    with pytest.raises(FileFormatError, match="damaged"):
        load_model(tmp_path / "m", "flow")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"foo": 1}))
    with pytest.raises(FileFormatError, match="not a simkit model"):
        load_model(tmp_path / "other", "flow")
    with pytest.raises(FileFormatError, match="no such model folder"):
        load_model(tmp_path / "none", "flow")


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(SimkitError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(SimkitError, match="no CUDA device"):
            resolve_device("cuda")


def test_bad_config():
    with pytest.raises(SimkitError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(SimkitError, match="validation fraction"):
        TrainConfig(val_fraction=1.0)
