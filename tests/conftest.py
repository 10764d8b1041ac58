"""Shared pytest settings."""

import os

# `make test` runs the files in pytest workers (-n 2) that share the machine's cores: each worker,
# and every program it starts, gets its share of them. More BLAS and OpenMP threads than that spin
# while they wait for a core the other worker holds (figures: benchmarks/HISTORY.md). A thread
# count set by hand is left as it is.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _share = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_name, _share)

import pytest  # noqa: E402
import torch  # noqa: E402


# The files that take minutes, longest first (from `make test`'s --durations): with
# `pytest -n 2 --dist loadfile --no-loadscope-reorder` both workers start on the longest ones and
# the short files fill in at the end, instead of a long file starting last and running alone.
SLOW_FILES_FIRST = ["test_lessons.py", "test_hostile.py", "test_autograde.py", "test_hub.py", "test_browser.py",
                    "test_bench.py", "test_make_targets.py", "test_feedback.py", "test_browser_grading.py",
                    "test_training.py", "test_distributed.py", "test_gpu_check.py"]


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOW_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's tests keep their order


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


@pytest.fixture(autouse=True)
def autograd_left_on():
    """A test that leaves autograd off (e.g. a no_grad block under a patched torch.is_grad_enabled)
    fails itself, instead of every later test of its pytest worker."""
    yield
    if not torch.is_grad_enabled():
        torch.set_grad_enabled(True)
        pytest.fail("this test left autograd off (torch.is_grad_enabled() is False after it)")
