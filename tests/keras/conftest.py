"""One torch thread while a tests/keras test runs (restored afterwards).

These tests train many tiny models; under ``pytest -n 2`` on a 2-core machine, each worker's
default intra-op threads spin against the other worker's, making small ops 10-30x slower."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
