"""imgrec_lib.distributed and training.fit in a process group: two CPU processes under torchrun (gloo).

Three torchrun runs of `python -m imgrec_lib train --fast --epochs 3` on the embedded digits (each
starts three Pythons that import torch: several seconds a run): one stopped by a Ctrl-C after
epoch 2, its resumption, and one in which rank 1 fails; and one process that waits for a partner
who never comes. Each torchrun worker is ``WORKER``: it runs the module ``imgrec_lib`` as `-m` does,
after wrapping a few library functions to record what its process did (images per epoch,
checkpoint saves, its weights after each epoch) and to fail on purpose when a test asks.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import Subset, TensorDataset

from imgrec_lib import distributed
from imgrec_lib.augment import with_printed_digits
from imgrec_lib.checkpoint import load_checkpoint
from imgrec_lib.data import digits
from imgrec_lib.device import seed_everything
from imgrec_lib.models import CourseCNN
from imgrec_lib.training import RECIPES, batches, fit

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 3
TRAIN = ["train", "--fast", "--epochs", str(EPOCHS), "--quiet", "--checkpoint", "a.pt"]
# `train --data digits` trains on 4,000 digits + 480 printed ones (augment.with_printed_digits): 35 steps
# of 64 images in each of 2 processes, so the global batch stays 128.
PER_PROCESS_IMAGES = 4480 // 128 * 64
TIMEOUT = 180  # seconds; a run takes ~10 s at low load: reaching this means a hang

WORKER = '''\
import json, os, runpy, sys
import torch
from imgrec_lib import training

rank, record = int(os.environ["RANK"]), os.environ["RECORD"]
images, saves = [], []
real_fit, real_batches, real_save, real_lr_at = training.fit, training.batches, training.save_checkpoint, training.lr_at

def batches(*args, drop_last=False, **kwargs):  # drop_last: a training epoch (not the checks or evaluate)
    if drop_last:
        images.append(0)
    for X, y in real_batches(*args, drop_last=drop_last, **kwargs):
        if drop_last:
            images[-1] += len(y)
        yield X, y

def save_checkpoint(*args, **kwargs):
    saves.append(kwargs["epoch"])
    return real_save(*args, **kwargs)

def lr_at(step, *args):
    if rank == 1 and step == int(os.environ.get("FAIL_AT_STEP", -1)):
        raise RuntimeError("rank 1 fails on purpose")
    return real_lr_at(step, *args)

def fit(model, *args, **kwargs):
    def after(epoch, history):
        torch.save(model.state_dict(), f"{record}/rank{rank}.pt")
        if epoch == int(os.environ.get("STOP_AFTER_EPOCH", -1)):
            raise KeyboardInterrupt  # like Ctrl-C just after a checkpoint
    return real_fit(model, *args, on_epoch_end=after, **kwargs)

training.batches, training.save_checkpoint, training.lr_at, training.fit = batches, save_checkpoint, lr_at, fit
try:
    runpy.run_module("imgrec_lib", run_name="__main__", alter_sys=True)  # python -m imgrec_lib
finally:
    with open(f"{record}/rank{rank}.json", "w") as f:
        json.dump({"images": images, "saves": saves}, f)
'''


def environment(**extra: str) -> dict:
    env = dict(os.environ, IMGREC_DEVICE="cpu", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), **extra)
    env.pop("IMGREC_DEBUG", None)
    return env


def torchrun(folder: Path, args: list[str], record: str, **env: str) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node=2 WORKER args` in ``folder``, recording into folder/record."""
    (folder / record).mkdir()
    (folder / "worker.py").write_text(WORKER)
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "worker.py", *args], cwd=folder, env=environment(RECORD=str(folder / record), **env),
                          capture_output=True, text=True, timeout=TIMEOUT)


def records(folder: Path) -> list[dict]:
    """What each process recorded, with its weights after the last epoch it finished."""
    return [dict(json.loads((folder / f"rank{r}.json").read_text()), weights=torch.load(folder / f"rank{r}.pt"))
            for r in (0, 1)]


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """2 processes train for 3 epochs and get a Ctrl-C after epoch 2: (folder, completed process)."""
    folder = tmp_path_factory.mktemp("ddp")
    return folder, torchrun(folder, TRAIN, "first", STOP_AFTER_EPOCH="2")


@pytest.fixture(scope="module")
def resumed(stopped):
    """The same 2 processes resumed from the checkpoint of epoch 2: (folder, completed process)."""
    folder, _ = stopped
    result = torchrun(folder, TRAIN + ["--resume"], "second")
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, result


# --- without a process group: the helpers do nothing, and the shares of an epoch -----------------


def test_without_torchrun_one_process_does_everything(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.launched_by_torchrun() and not distributed.is_initialized()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    t = torch.tensor([1.0, 2.0])
    assert distributed.all_reduce_sum(t) is t and t.tolist() == [1.0, 2.0]
    distributed.barrier()
    distributed.teardown()
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert distributed.launched_by_torchrun()


@pytest.mark.parametrize("kind", ["tensors", "dataset"])
def test_each_process_takes_a_disjoint_share_of_the_same_permutation(kind):
    n = 103
    X, y = torch.zeros(n, 1, 2, 2), torch.arange(n)  # each label is its image's index
    data = (X, y) if kind == "tensors" else Subset(TensorDataset(X, y), range(n))

    def labels(rank: int = 0, world_size: int = 1, drop_last: bool = False) -> list[int]:
        generator = torch.Generator().manual_seed(7)  # the same seed in every process
        return [int(v) for _, b in batches(data, 8, torch.device("cpu"), generator, drop_last, rank, world_size)
                for v in b]

    one = labels()
    shares = [labels(r, 3) for r in range(3)]
    assert sorted(one) == list(range(n))
    assert sorted(sum(shares, [])) == sorted(one)  # disjoint, and together all of them
    assert all(shares[r] == one[r::3] for r in range(3))  # every third of the one-process order
    assert [len(labels(r, 3, drop_last=True)) for r in range(3)] == [32, 32, 32]  # 34 or 35 each, whole batches


# --- two processes under torchrun ----------------------------------------------------------------


def test_two_processes_train_one_model_and_rank_0_alone_writes_and_prints(stopped):
    folder, result = stopped
    assert result.returncode != 0 and result.stderr.count("interrupted") == 2  # each process stopped
    rank0, rank1 = records(folder / "first")
    assert rank0["images"] == rank1["images"] == [PER_PROCESS_IMAGES] * 2  # half of each epoch each
    assert rank0["saves"] == [1, 2] and rank1["saves"] == []  # one writer
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == ["a.pt", "worker.py"]  # one file, no temp file
    assert same_weights(rank0["weights"], rank1["weights"])  # gradients averaged, BatchNorm statistics of rank 0
    assert same_weights(rank0["weights"], load_checkpoint(folder / "a.pt")["state_dict"])
    assert result.stdout.count("training course_cnn") == 1 and "in 2 processes" in result.stdout  # rank 0 speaks


def test_every_process_resumes_from_the_one_checkpoint(resumed):
    """Had rank 1 not loaded the checkpoint, DDP would still copy rank 0's weights, but its Adam
    state would start from zero and its weights would part from rank 0's at the first step."""
    folder, result = resumed
    rank0, rank1 = records(folder / "second")
    assert rank0["images"] == rank1["images"] == [PER_PROCESS_IMAGES]  # only the missing epoch
    assert rank0["saves"] == [3] and rank1["saves"] == []
    assert same_weights(rank0["weights"], rank1["weights"])
    saved = load_checkpoint(folder / "a.pt")
    assert saved["epoch"] == EPOCHS and len(saved["history"]["test_accuracy"]) == EPOCHS
    assert same_weights(rank0["weights"], saved["state_dict"])
    assert result.stdout.count("test accuracy") == 1


def test_two_processes_reach_the_accuracy_of_one(resumed):
    """The same recipe in one process (here): the two runs differ as two seeds do (BatchNorm sees 64
    images a step instead of 128, augmentation draws other numbers). On the 1,000 test digits one
    image is 0.1 points; 1.5 points (15 images) is about twice the widest gap between one and two
    processes measured over seeds 0-4 (benchmarks/HISTORY.md); a bug that breaks the averaging (each
    process learning alone) or the shares costs more."""
    folder, _ = resumed
    history = load_checkpoint(folder / "a.pt")["history"]
    recipe = RECIPES["fast"]
    seed_everything(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = fit(CourseCNN(**recipe["model"]), with_printed_digits(digits("train")), digits("test"), seed=0, progress=False,
                  **dict(recipe["fit"], epochs=EPOCHS))
    finally:
        torch.set_num_threads(threads)
    assert abs(history["test_accuracy"][-1] - one.test_accuracy[-1]) <= 0.015, (history["test_accuracy"], one.test_accuracy)
    assert history["test_accuracy"][-1] >= 0.95


def test_a_failing_process_ends_the_run_instead_of_hanging(tmp_path):
    """Rank 1 raises at step 5 while rank 0 waits in the all-reduce of that step's gradients: torchrun
    stops the group and exits non-zero (a hang would meet the subprocess timeout)."""
    result = torchrun(tmp_path, TRAIN, "record", FAIL_AT_STEP="5")
    assert result.returncode != 0
    assert "error: rank 1 fails on purpose" in result.stderr
    assert not (tmp_path / "a.pt").exists()


def test_a_process_whose_partner_never_comes_gives_up_after_the_timeout(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = environment(RANK="0", LOCAL_RANK="0", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                      IMGREC_DIST_TIMEOUT="2")
    result = subprocess.run([sys.executable, "-m", "imgrec_lib", *TRAIN], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: process 0 of 2 could not join the others"), lines
    assert "IMGREC_DIST_TIMEOUT" in lines[0]


def test_the_benchmark_reports_one_and_two_processes(tmp_path):
    """benchmarks/bench.py's section ddp as RESULTS.md shows it (its figures come from `make bench`)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("imgrec_bench", ROOT / "benchmarks" / "bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert "ddp" in bench.SECTIONS
    setups = {name: {"processes": p, "threads_per_process": t, "final_accuracy": a, "train_seconds": s, "wall_seconds": w}
              for name, p, t, a, s, w in [("1_process", 1, 2, 0.987, 4.0, 9.0), ("1_process_1_thread", 1, 1, 0.986, 5.0, 10.0),
                                          ("2_processes", 2, 1, 0.99, 3.2, 8.5)]}
    results = {"machine": bench.machine(), "bench_seconds": 1.0,
               "ddp": {"device": "cpu", "backend": "gloo", "seeds": [0, 1, 2], "setups": setups,
                       "speedup_vs_1_process": 4.0 / 3.2, "speedup_vs_1_thread": 5.0 / 3.2, "runs": []}}
    results["targets"] = dict(bench.check_targets(results), **bench.realistic.check_targets(None, None))
    bench.write_results_md(results, tmp_path / "RESULTS.md")
    text = (tmp_path / "RESULTS.md").read_text()
    assert "## Data-parallel training: `torchrun --nproc_per_node=N -m imgrec_lib train --fast` (cpu, gloo" in text
    for row in ("| 1 | 2 | 98.70% | 4.0 | 9.0 |", "| 1 | 1 | 98.60% | 5.0 | 10.0 |", "| 2 | 1 | 99.00% | 3.2 | 8.5 |"):
        assert row in text, row
    assert "Two processes train 1.25x as fast as one with 2 threads, 1.56x as fast as one with one thread" in text
