"""Shared pytest settings."""

import pytest
import torch


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a long run (e.g. training to the accuracy bar); skip with -m 'not slow'")


@pytest.fixture
def one_thread(request):
    """Tiny tensors train faster on one thread, and a shared CPU is not oversubscribed."""
    if request.node.get_closest_marker("slow"):
        yield  # the real training run uses every core
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
