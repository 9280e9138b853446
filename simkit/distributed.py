"""Data-parallel training under ``torchrun``: one process per CPU slot or GPU.

:func:`simkit.nn.train` calls :func:`context` once. Under ``torchrun`` (``WORLD_SIZE`` >
1 in the environment) it joins the process group — gloo on CPU, nccl on CUDA, each rank
on ``cuda:LOCAL_RANK`` — and training becomes data-parallel:

- every rank holds the same data and draws the same permutation of it each epoch; the
  *global* batch ``k`` is the single-process batch ``k``, and rank ``r`` takes its events
  ``r, r + W, r + 2W, …`` (what :class:`torch.utils.data.DistributedSampler` does to a
  shared permutation, here applied to the single-process permutation and without its
  padding by repeated events). So a run on W ranks with ``batch_size`` B sees the same
  global batches as one process with batch size B;
- the modules are wrapped in one :class:`~torch.nn.parallel.DistributedDataParallel`,
  which averages the gradients over ranks during the backward pass; each rank's loss is
  scaled by ``W × n_rank / n_global`` so that the average is the global batch's mean
  (exact for per-event means; a weighted mean is averaged per rank, which differs at the
  level of the weights' fluctuation between ranks);
- ranks start from rank 0's parameters (DDP broadcasts them) and apply identical
  averaged gradients, so they hold identical parameters after every step; a non-finite
  loss on any rank skips the step on all of them;
- the validation loss is summed over a split of the validation events and all-reduced,
  so every rank takes the same early-stopping decisions;
- only rank 0 writes checkpoints and shows progress; a checkpoint holds every rank's
  global RNG state (a VAE's noise), so ``resume`` continues exactly under torchrun too.

Outside torchrun (or with one process) nothing changes: ``context()`` is a one-rank
context and the loop runs as before.

Launch::

    torchrun --nproc-per-node 2 -m simkit surrogate fit ...      # 2 CPU processes
    torchrun --nproc-per-node 4 -m simkit detect train --device cuda ...   # 4 GPUs
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from simkit.errors import SimkitError

__all__ = ["Context", "context", "rank", "world_size"]


def world_size() -> int:
    """Processes in the job: torch.distributed's when initialized, else torchrun's
    ``WORLD_SIZE``, else 1."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank (0 outside torchrun): rank 0 alone writes outputs."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", "0"))


@dataclass(frozen=True)
class Context:
    """Where this process stands in a data-parallel run (``world == 1``: alone)."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def primary(self) -> bool:
        """Rank 0: writes checkpoints and outputs, shows progress."""
        return self.rank == 0

    # ------------------------------------------------------------------ batches

    def batches(
        self, data: Sequence[torch.Tensor], order: torch.Tensor, size: int
    ) -> Iterator[tuple[tuple[torch.Tensor, ...], float]]:
        """This rank's part of each global batch ``order[k·size:(k+1)·size]``, and the
        factor ``W·n_rank/n_global`` its mean loss is scaled by.

        A last global batch with fewer events than ranks is dropped (every rank must
        take part in every step).
        """
        for start in range(0, len(order), size):
            batch = order[start : start + size]
            if len(batch) < self.world:
                return
            mine = batch[self.rank :: self.world]
            scale = self.world * len(mine) / len(batch)
            yield (
                tuple(t[mine.to(t.device)].to(self.device, non_blocking=True) for t in data),
                scale,
            )

    # ------------------------------------------------------------------ collectives

    def all_finite(self, loss: torch.Tensor) -> bool:
        """Whether the loss is finite on every rank (one agreed answer)."""
        finite = torch.isfinite(loss.detach()).to(self.device, torch.float32).reshape(1)
        if self.active:
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        return bool(finite.item() > 0)

    def sum(self, *values: float) -> list[float]:
        """Element-wise sums over ranks (float64)."""
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.active:
            torch.distributed.all_reduce(tensor)
        return tensor.tolist()

    def gather(self, obj) -> list:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        if not self.active:
            return [obj]
        out: list = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    def wrap(self, modules: Mapping[str, nn.Module], *, partial: bool = False) -> nn.Module | None:
        """One DistributedDataParallel over every module (None when alone): it
        broadcasts rank 0's parameters and buffers now, and averages the gradients in
        each backward pass of a loss computed through it (``ddp(loss, batch)``).

        ``partial``: each step uses only some of the parameters (a GAN's critic step
        leaves the generator alone), so DDP looks for the unused ones every step.
        """
        if not self.active:
            return None
        holder = _Losses(nn.ModuleDict(dict(modules)))
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(
            holder, device_ids=device_ids, find_unused_parameters=partial
        )


class _Losses(nn.Module):
    """Routes a loss through DDP's forward, so that its backward syncs gradients."""

    def __init__(self, modules: nn.ModuleDict) -> None:
        super().__init__()
        self.modules_ = modules

    def forward(self, loss, batch):
        return loss(*batch)


def pin_local_gpu() -> None:
    """Make ``cuda`` (no index) mean this rank's GPU, ``cuda:LOCAL_RANK``, when there is
    one: code that runs before or after the training loop (standardization, sampling,
    scoring) then stays on the rank's own GPU."""
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available() and local < torch.cuda.device_count():
        torch.cuda.set_device(local)


_OWNED = False  # whether this module initialized the process group


def context(device: torch.device) -> Context:
    """This process's :class:`Context`; joins torchrun's process group when launched
    by it (gloo on CPU, nccl on CUDA), once per process."""
    global _OWNED
    world = world_size()
    if world <= 1:
        return Context(device=device)
    if not torch.distributed.is_available():  # pragma: no cover - torch without it
        raise SimkitError("WORLD_SIZE > 1 but this torch has no torch.distributed")
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise SimkitError(
                f"rank with LOCAL_RANK {local} has no GPU (this node has "
                f"{torch.cuda.device_count()}): give --nproc-per-node at most that"
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not torch.distributed.is_initialized():
        missing = [v for v in ("MASTER_ADDR", "MASTER_PORT", "RANK") if v not in os.environ]
        if missing:
            raise SimkitError(
                f"WORLD_SIZE is {world} but {', '.join(missing)} unset: launch with torchrun"
            )
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(
            backend,
            timeout=datetime.timedelta(minutes=30),
            device_id=device if device.type == "cuda" else None,
        )
        _OWNED = True
    return Context(rank=rank(), world=world_size(), device=device)


def shutdown() -> None:
    """Leave the process group if :func:`context` joined it (end of a command)."""
    global _OWNED
    if _OWNED and torch.distributed.is_initialized():
        with contextlib.suppress(Exception):
            torch.distributed.destroy_process_group()
    _OWNED = False
