"""A small regression trained by simkit.nn.train, alone or under torchrun.

``python -m torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_testing.py OUT``
writes ``OUT/rank{r}.pt``: the parameters after every optimizer step and the history.
:func:`fit` in a plain process is the single-process reference with the same global batch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from simkit.nn import Objective, TrainConfig, mlp, train

N_EVENTS = 768
BATCH = 64  # the global batch: each of W ranks takes BATCH / W events of it


def problem() -> tuple[torch.Tensor, torch.Tensor]:
    """y = x·a + 0.1 noise, 4 features: the same data on every rank."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(N_EVENTS, 4, generator=g)
    a = torch.tensor([1.0, -0.5, 0.25, 2.0])
    y = (x @ a)[:, None] + 0.1 * torch.randn(N_EVENTS, 1, generator=g)
    return x, y


def fit(epochs: int = 6, checkpoint: str | None = None, resume: bool = False) -> dict:
    torch.manual_seed(11)  # the initial weights (DDP gives every rank rank 0's)
    net = mlp(4, 1, hidden=(32, 32))
    steps: list[torch.Tensor] = []

    def snapshot() -> None:
        steps.append(torch.cat([p.detach().flatten() for p in net.parameters()]).clone())

    def loss(x, y):
        return torch.nn.functional.mse_loss(net(x), y)

    config = TrainConfig(
        epochs=epochs,
        batch_size=BATCH,
        lr=1e-2,
        val_fraction=0.25,
        patience=0,
        restore_best=False,
        device="cpu",
        progress=False,
        seed=3,
        checkpoint=checkpoint,
        resume=resume,
    )
    result = train(net, Objective(loss, net.parameters(), after_step=snapshot), problem(), config)
    return {
        "steps": torch.stack(steps) if steps else torch.zeros(0),
        "final": torch.cat([p.detach().flatten() for p in net.parameters()]),
        "history": result.history,
    }


if __name__ == "__main__":
    from simkit import distributed

    out = Path(sys.argv[1])
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    checkpoint = sys.argv[3] if len(sys.argv) > 3 else None
    torch.set_num_threads(1)
    record = fit(epochs, checkpoint, resume=checkpoint is not None)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(record, out / f"rank{distributed.rank()}.pt")
    distributed.shutdown()
