"""simkit.nn.train under torchrun: 2 CPU processes with gloo (DistributedDataParallel)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ddp_testing import fit

from simkit.nn import cpu_threads

SCRIPT = Path(__file__).resolve().parents[1] / "ddp_testing.py"


def environment(scratch: Path) -> dict:
    """One thread per rank; torchrun's own temporary folders go to ``scratch`` (it leaves
    them behind in TMPDIR)."""
    scratch.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(scratch)}


def torchrun(out: Path, *args: str, processes: int = 2) -> list[dict]:
    env = environment(out.with_name(out.name + ".tmp"))
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         f"--nproc-per-node={processes}", str(SCRIPT), str(out), *args],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(processes)]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    return torchrun(tmp_path_factory.mktemp("ddp"))


def test_ranks_hold_identical_parameters_after_every_step(two_ranks):
    rank0, rank1 = two_ranks
    assert rank0["steps"].shape[0] == 6 * 9  # 6 epochs × 576 training events / 64
    assert torch.equal(rank0["steps"], rank1["steps"])  # bit for bit, every step
    for a, b in zip(rank0["history"], rank1["history"], strict=True):  # same decisions
        assert (a["train_loss"], a["val_loss"]) == (b["train_loss"], b["val_loss"])


def test_training_converges(two_ranks):
    """The validation MSE of y = x·a + noise (variance 5.3 untrained, noise floor 0.01)
    falls below 0.1 in 6 epochs, a tenth of the first epoch's or less."""
    history = two_ranks[0]["history"]
    assert history[-1]["val_loss"] < min(0.1, 0.1 * history[0]["val_loss"])
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_matches_one_process_with_the_same_global_batch(two_ranks):
    """Two ranks × 32 events average their gradients into the one-process gradient of
    the same 64 events; only the order of float32 sums differs (measured: 1.2e-7 in the
    parameters, 2e-7 in the losses after 54 Adam steps). Tolerance: 1e-5 in every
    parameter (of size ~0.1–1) and 1e-6 relative in the losses."""
    with cpu_threads(1):
        alone = fit()
    ranks = two_ranks[0]
    assert alone["steps"].shape == ranks["steps"].shape
    assert (alone["steps"] - ranks["steps"]).abs().max() < 1e-5
    for a, b in zip(alone["history"], ranks["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-6)


@pytest.mark.slow
def test_resume_under_torchrun_continues_exactly(tmp_path):
    """3 epochs with a checkpoint, then --resume to 6 epochs: the parameters of an
    uninterrupted 6-epoch run, bit for bit; rank 0 alone wrote the checkpoint."""
    whole = torchrun(tmp_path / "whole")
    checkpoint = tmp_path / "ckpt" / "checkpoint.pt"
    torchrun(tmp_path / "first", "3", str(checkpoint))
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["checkpoint.pt"]
    resumed = torchrun(tmp_path / "resumed", "6", str(checkpoint))
    for r in range(2):
        assert torch.equal(resumed[r]["final"], whole[r]["final"])


@pytest.mark.slow
def test_a_command_under_torchrun_writes_from_rank_0_only(tmp_path, tmp_path_factory):
    """`torchrun -m simkit detect train`: rank 0 writes the model folder and talks; the
    other rank trains alongside into a scratch folder it removes."""
    from dijet_toy import dijet_sample

    from simkit.io import write_sample

    write_sample(tmp_path / "train.h5", dijet_sample(3000, 0, np.random.default_rng(3)))
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         "-m", "simkit", "detect", "train", "--input", str(tmp_path / "train.h5"),
         "--model", "vae", "--epochs", "2", "--device", "cpu", "-o", str(tmp_path / "det")],
        capture_output=True, text=True, env=environment(tmp_path_factory.mktemp("scratch")),
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained vae") == 1  # one rank talks
    assert (tmp_path / "det" / "model.safetensors").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["det", "train.h5"]
