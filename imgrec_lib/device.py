"""Where the computation runs: device choice, seeding, mixed precision, memory format. Lesson 07.

Plain defaults, nanoGPT style: the fastest device that is there, unless you say otherwise.

    device = pick_device()            # 'cuda' if there is a GPU, else 'mps' (Apple), else 'cpu'
    device = pick_device("cpu")       # or 'cuda', 'cuda:1', 'mps'; the env IMGREC_DEVICE does the same

channels_last memory format is used on CPU and CUDA, where it makes a training epoch cheaper (see
``to_channels_last``).
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch

DEVICE_ENV = "IMGREC_DEVICE"  # e.g. IMGREC_DEVICE=cpu make train


def available_devices() -> list[str]:
    """The device names this machine offers, best first, e.g. ``['cuda:0', 'cuda:1', 'cpu']``."""
    names = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    if torch.backends.mps.is_available():
        names.append("mps")
    return names + ["cpu"]


def pick_device(preferred: str | torch.device | None = None) -> torch.device:
    """Choose the device to compute on. Lesson 07.

    ``preferred`` (or else the environment variable ``IMGREC_DEVICE``) names one: "cuda", "cuda:1",
    "mps" or "cpu". Without either: CUDA if there is a GPU, then Apple's MPS, then the CPU.
    Asking for a device that is not there raises ``ValueError`` naming the ones that are.
    """
    from_env = preferred is None and bool(os.environ.get(DEVICE_ENV))
    if preferred is None:
        preferred = os.environ.get(DEVICE_ENV) or None
    if preferred is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")

    available = available_devices()
    try:
        device = torch.device(str(preferred).strip().lower())
    except RuntimeError:
        raise ValueError(
            f"unknown device {preferred!r}: use one of {', '.join(available)} (or leave it out to pick the best)"
        ) from None
    if device.type == "cuda":
        ok = torch.cuda.is_available() and (device.index is None or device.index < torch.cuda.device_count())
    elif device.type == "mps":
        ok = torch.backends.mps.is_available()
    else:
        ok = device.type == "cpu"
    if not ok:
        raise ValueError(
            f"device {str(preferred)!r} is not available on this machine; available: {', '.join(available)}. "
            + (f"Set {DEVICE_ENV} to one of these, or unset it to pick the best automatically." if from_env
               else "Pass one of these, or leave it out to pick the best automatically.")
        )
    return device


def model_device(model: torch.nn.Module) -> torch.device:
    """The device a model's parameters are on (the CPU for a model without parameters)."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Put ``model`` in eval mode for a ``with`` block, then give every submodule back its own mode. Lesson 07.

        with eval_mode(net), torch.no_grad():
            y_hat = net(X)          # dropout off, BatchNorm uses its running statistics

    The previous train/eval mode of each submodule is restored afterwards, also when the block
    raises (a frozen BatchNorm in a training model stays in eval mode).
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python's ``random``, NumPy and PyTorch (CPU, CUDA and MPS) so a run can be repeated. Lesson 00.

    ``deterministic=True`` also asks PyTorch for deterministic kernels (slower on a GPU; on a CPU the
    default kernels are already repeatable). It only switches that on, never off.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # seeds every device, CUDA and MPS included
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it for determinism
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def _as_device(device: str | torch.device | None) -> torch.device:
    return pick_device(device) if not isinstance(device, torch.device) else device


def amp_dtype(device: str | torch.device | None) -> torch.dtype | None:
    """The low-precision dtype for mixed precision on ``device``: bf16 or fp16 on CUDA, else None."""
    device = _as_device(device)
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: str | torch.device | None) -> contextlib.AbstractContextManager:
    """Mixed precision for the forward pass: ``with autocast(device): y_hat = net(X)``. Lesson 07.

    On CUDA: ``torch.autocast`` in bf16 where the GPU supports it (Ampere and newer), else fp16.
    On CPU and MPS: does nothing (``contextlib.nullcontext()``): CPU autocast is slower here, not faster.
    """
    device = _as_device(device)
    dtype = amp_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def needs_grad_scaler(device: str | torch.device | None) -> bool:
    """True when ``autocast`` uses fp16, whose small gradients need ``torch.amp.GradScaler``. Lesson 07."""
    return amp_dtype(device) == torch.float16


def to_channels_last(x_or_model: torch.Tensor | torch.nn.Module, device: str | torch.device | None):
    """Store a batch (N, C, H, W) or a model's weights in channels_last memory format where it helps.

    channels_last keeps the C values of one pixel next to each other in memory, which suits the
    convolution kernels of oneDNN (CPU) and cuDNN (tensor cores): an epoch of the course CNN takes
    less time (benchmarks/HISTORY.md). On MPS it is left alone. Anything that is not a 4-d tensor
    or a module (e.g. labels) comes back unchanged. Modules change in place.
    """
    device = _as_device(device)
    if device.type not in ("cuda", "cpu"):
        return x_or_model
    if isinstance(x_or_model, torch.nn.Module):
        return x_or_model.to(memory_format=torch.channels_last)
    if isinstance(x_or_model, torch.Tensor) and x_or_model.dim() == 4:
        return x_or_model.contiguous(memory_format=torch.channels_last)
    return x_or_model
