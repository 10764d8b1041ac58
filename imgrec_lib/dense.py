"""Flatten and fully connected (linear) layers from scratch in NumPy.

Lesson 03 builds the forward pass, lesson 05 the backward pass. The weight is shaped (out, in), like
``torch.nn.Linear.weight``, so ``linear(x, w, b)`` equals ``torch.nn.functional.linear(x, w, b)``.
"""

from __future__ import annotations

import numpy as np


def flatten(x: np.ndarray) -> np.ndarray:
    """Keep the batch axis, flatten the rest: (N, C, H, W) -> (N, C * H * W). Lesson 03.

    Like ``torch.flatten(x, 1)``; the bridge from convolution layers to dense layers.
    """
    return x.reshape(x.shape[0], -1)


def flatten_backward(dout: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Gradient of ``flatten``: reshape dout (N, D) back to the shape of x. Lesson 05."""
    return dout.reshape(x.shape)


def _check_shapes(x: np.ndarray, w: np.ndarray) -> None:
    """x (N, in) and w (out, in) must agree on in; a readable error if they do not."""
    if x.ndim != 2:
        raise ValueError(f"expected x of shape (N, in_features), got {x.shape}: flatten(x) first")
    if w.ndim != 2 or w.shape[1] != x.shape[1]:
        raise ValueError(f"x has {x.shape[1]} features, so w must be (out_features, {x.shape[1]}), got {w.shape}")


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """A fully connected layer: ``x @ w.T + b``. Lesson 03.

    x (N, in), w (out, in), b (out,) or None -> (N, out).
    """
    _check_shapes(x, w)
    return x @ w.T if b is None else x @ w.T + b


def linear_backward(dout: np.ndarray, x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of ``linear``. Lesson 05.

    dout (N, out) is dLoss/dout. Returns (dx, dw, db) shaped like x (N, in), w (out, in) and
    b (out,): dx = dout @ w, dw = dout^T @ x, db = dout summed over the batch.
    """
    _check_shapes(x, w)
    if dout.shape != (x.shape[0], w.shape[0]):
        raise ValueError(f"expected dout of shape (N, out_features) = {(x.shape[0], w.shape[0])}, got {dout.shape}")
    return dout @ w, dout.T @ x, dout.sum(axis=0)
