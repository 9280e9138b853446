"""Detector tests: torch on one thread.

The networks here are tiny; a second intra-op thread gains nothing on them and, on a
loaded machine, costs a lot (OpenMP threads spin-waiting for a busy core).
"""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
