"""simkit.nn.cpu_threads: sets torch's CPU threads inside the block, restores them after."""

import pytest
import torch

from simkit.errors import SimkitError
from simkit.nn import cpu_threads


def test_cpu_threads_sets_and_restores():
    before = torch.get_num_threads()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), cpu_threads(1):
        raise RuntimeError("restored on errors too")
    assert torch.get_num_threads() == before
    with cpu_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(SimkitError, match="at least 1"), cpu_threads(0):
        pass
