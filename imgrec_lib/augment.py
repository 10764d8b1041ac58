"""Data augmentation: random shifts, rotations and zooms of a whole batch on the device, and printed
digits beside the handwritten ones. Lesson 07.

    batch = Augment(shift=2, degrees=10, scale=0.1)(X, generator)   # X: (N, C, H, W)
    train_data = with_printed_digits(digits("train"))               # + 480 printed digits

The network never sees the same image twice: each time a digit comes round it is moved, turned and
zoomed a little. Done on the batch as tensors (one gather, one ``F.grid_sample``), not image by image
in PIL, so it costs little next to the forward pass. ``training.fit(..., augment=Augment(...))``
applies it to every training batch.

MNIST is all handwriting: a model trained on it alone reads a printed 1, whose foot no hand draws,
as a 2. ``with_printed_digits`` adds digits printed in typefaces (scripts/make_printed_digits.py)
to a training set.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .data import TensorImageDataset, as_tensors, classes_of

PRINTED_PATH = Path(__file__).resolve().parent / "embedded" / "printed_digits.npz"
PRINTED_SHA256 = "35413980d646475e063f004b494ab3794823ded9e7368a2bac5e8b23489196d5"


def random_shift(X: torch.Tensor, shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Move each image (N, C, H, W) by its own random offset of -shift..shift pixels in x and y.

    Pixels that move in from outside are 0 (the background of the digits). Done as one gather on
    whatever device ``X`` is on: pad, then read an (H, W) window at a random corner per image.
    ``generator`` draws the offsets (on the CPU, so a seed gives the same shifts on any device).
    Returns a new tensor of the same shape; ``shift=0`` returns ``X`` itself.
    """
    assert X.dim() == 4, f"expected a batch of shape (N, C, H, W), got {tuple(X.shape)}"
    assert shift >= 0, f"shift must be >= 0 pixels, got {shift}"
    if shift == 0:
        return X
    n, c, h, w = X.shape
    padded = F.pad(X, (shift, shift, shift, shift))
    dy, dx = torch.randint(0, 2 * shift + 1, (2, n, 1), generator=generator).to(X.device)
    rows = (dy + torch.arange(h, device=X.device))[:, None, :, None]  # (N, 1, H, 1)
    cols = (dx + torch.arange(w, device=X.device))[:, None, None, :]  # (N, 1, 1, W)
    batch = torch.arange(n, device=X.device)[:, None, None, None]
    channel = torch.arange(c, device=X.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def random_affine(
    X: torch.Tensor, degrees: float, scale: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Rotate each image (N, C, H, W) by its own random angle and zoom it by its own random factor.

    Angles are drawn uniformly from -degrees..degrees, zoom factors from 1-scale..1+scale, about the
    image centre; pixels from outside are 0. One ``F.affine_grid`` + ``F.grid_sample`` (bilinear)
    on the whole batch, on whatever device ``X`` is on; ``generator`` draws on the CPU.
    ``degrees=0`` and ``scale=0`` return ``X`` itself.
    """
    assert X.dim() == 4, f"expected a batch of shape (N, C, H, W), got {tuple(X.shape)}"
    assert degrees >= 0 and 0 <= scale < 1, f"expected degrees >= 0 and 0 <= scale < 1, got {degrees}, {scale}"
    if degrees == 0 and scale == 0:
        return X
    n = len(X)
    u = torch.rand(2, n, generator=generator) * 2 - 1  # uniform in -1..1
    angle = torch.deg2rad(u[0] * degrees)
    zoom = 1 + u[1] * scale
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom  # the grid maps output to input: 1/zoom
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    grid = F.affine_grid(theta.to(X.device, X.dtype), list(X.shape), align_corners=False)
    return F.grid_sample(X, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@dataclass(frozen=True)
class Augment:
    """Shift by up to ``shift`` pixels, then rotate by up to ``degrees`` and zoom by up to ``scale``.

    Called as ``augment(X, generator)`` on a batch (N, C, H, W); returns the changed batch.
    """

    shift: int = 0
    degrees: float = 0.0
    scale: float = 0.0

    def __post_init__(self):
        if self.shift < 0 or self.degrees < 0 or not 0 <= self.scale < 1:
            raise ValueError(f"expected shift >= 0, degrees >= 0 and 0 <= scale < 1, got {self}")

    def __call__(self, X: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return random_affine(random_shift(X, self.shift, generator), self.degrees, self.scale, generator)


def printed_digits(path: str | Path = PRINTED_PATH) -> tuple[torch.Tensor, torch.Tensor]:
    """480 printed digits laid out as MNIST's: 16 Liberation typefaces x 10 digits x 3 print sizes,
    each sent through ``inference.preprocess_digit`` (scripts/make_printed_digits.py made them).
    Returns ``(X float32 (480, 1, 28, 28) in [0, 1], y int64 (480,))``; the file's SHA-256 is checked."""
    path = Path(path)
    data = path.read_bytes() if path.is_file() else b""
    if hashlib.sha256(data).hexdigest() != PRINTED_SHA256:
        raise ValueError(f"{path} is missing or not the expected file: restore it with `git checkout {path}` or "
                         "rebuild it with `python scripts/make_printed_digits.py` and update PRINTED_SHA256")
    with np.load(path) as arrays:
        images, labels = arrays["images"], arrays["labels"]
    return torch.from_numpy(images).float().div_(255.0).unsqueeze(1), torch.from_numpy(labels).long()


def with_printed_digits(train_data: Dataset) -> Dataset:
    """A training set of digits (1, 28, 28), e.g. ``data.digits("train")``, with the 480 printed
    digits of ``printed_digits`` after its own images, as one ``TensorImageDataset`` with the same
    ``.classes``."""
    X, y = as_tensors(train_data)
    X_printed, y_printed = printed_digits()
    if X.shape[1:] != X_printed.shape[1:]:
        raise ValueError(f"printed digits are (1, 28, 28) images; this training set has {tuple(X.shape[1:])}")
    return TensorImageDataset(torch.cat([X, X_printed]), torch.cat([y, y_printed]), classes_of(train_data))
