"""Training on several processes at once (data parallelism): join, ask who you are, leave. Appendix.

    torchrun --nproc_per_node=2 -m imgrec_lib train --quiet      # 2 processes on one machine's CPU (gloo)
    torchrun --nproc_per_node=4 -m imgrec_lib train              # 4 GPUs, one process each (NCCL)

``torchrun`` starts N copies of the same program and tells each one its place through environment
variables: ``RANK`` (0..N-1), ``WORLD_SIZE`` (N), ``LOCAL_RANK`` (its number on this machine, which
picks its GPU), ``MASTER_ADDR`` and ``MASTER_PORT`` (where they meet). ``setup`` joins the group;
``training.fit`` then sees an initialised group and wraps the model in ``DistributedDataParallel``,
gives each process its share of the data, and lets only rank 0 print and save. Without torchrun
nothing here does anything: ``rank()`` is 0, ``world_size()`` is 1, and the other helpers return at once.
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist
from torch import nn

from .device import pick_device

TIMEOUT_ENV = "IMGREC_DIST_TIMEOUT"  # seconds a process waits for the others (to join, or in a collective)
DEFAULT_TIMEOUT = 300  # long enough for rank 0 to evaluate and save while the others wait; torch's is 30 min


def launched_by_torchrun() -> bool:
    """True when this process is one of several started by ``torchrun`` (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_initialized() -> bool:
    """True when this process has joined a process group (``setup`` or ``dist.init_process_group``)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's number, 0..world_size()-1; 0 without a process group."""
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    """How many processes train together; 1 without a process group."""
    return dist.get_world_size() if is_initialized() else 1


def is_main() -> bool:
    """True in the one process that prints and writes files (rank 0, or the only process)."""
    return rank() == 0


def setup(device: str | torch.device | None = None) -> torch.device:
    """Join the process group torchrun describes in the environment; return this process's device.

    On CUDA each process takes the GPU of its ``LOCAL_RANK`` and the group talks through NCCL; on
    the CPU through gloo. A process that waits longer than ``IMGREC_DIST_TIMEOUT`` seconds (default
    300) for the others raises instead of hanging.
    """
    device = pick_device(device)
    if device.type == "mps":
        raise ValueError("several processes cannot share Apple's MPS device: pass --device cpu, or train in one process")
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        if device.index >= torch.cuda.device_count():
            raise ValueError(f"process {os.environ.get('RANK')} wants GPU {device.index}, but this machine has "
                             f"{torch.cuda.device_count()}: start at most that many processes per machine")
        torch.cuda.set_device(device)
    seconds = int(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))
    try:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(seconds=seconds))
    except (RuntimeError, ValueError) as err:  # torch's store errors are RuntimeErrors
        raise RuntimeError(f"process {os.environ.get('RANK')} of {os.environ.get('WORLD_SIZE')} could not join the "
                           f"others ({str(err).splitlines()[0]}): start all of them with torchrun; each waits "
                           f"{seconds} s for the rest ({TIMEOUT_ENV})") from err
    return device


def teardown() -> None:
    """Leave the process group (if this process joined one)."""
    if is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every process gets here (no-op in one process)."""
    if is_initialized():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Replace ``tensor`` in place by its sum over all processes, and return it (unchanged in one process)."""
    if is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_buffers(model: nn.Module) -> None:
    """Give every process rank 0's buffers (e.g. BatchNorm's running statistics, which each process
    updates from its own batches), so that all of them evaluate, and rank 0 saves, the same model."""
    if is_initialized():
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)
