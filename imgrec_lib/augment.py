"""Data augmentation on a whole batch on the device: random shifts, rotations and zooms. Lesson 07.

    batch = Augment(shift=2, degrees=10, scale=0.1)(X, generator)   # X: (N, C, H, W)

The network never sees the same image twice: each time a digit comes round it is moved, turned and
zoomed a little. Done on the batch as tensors (one gather, one ``F.grid_sample``), not image by image
in PIL, so it costs little next to the forward pass. ``training.fit(..., augment=Augment(...))``
applies it to every training batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


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
