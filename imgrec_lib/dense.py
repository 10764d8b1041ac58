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
    x = np.asarray(x)
    if x.ndim < 1:
        raise ValueError(f"expected x with a batch axis, shape (N, ...), got a scalar {x.shape}")
    return x.reshape(x.shape[0], -1)


def flatten_backward(dout: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Gradient of ``flatten``: reshape dout (N, D) back to the shape of x. Lesson 05."""
    x, dout = np.asarray(x), np.asarray(dout)
    if dout.size != x.size:
        raise ValueError(f"dout of shape {dout.shape} cannot be reshaped to x's shape {x.shape}")
    return dout.reshape(x.shape)


def _check_linear_args(x, w, b=None):
    """Validate x (N, in), w (out, in) and b (out,) or None; return them as arrays."""
    x, w = np.asarray(x), np.asarray(w)
    if x.ndim != 2:
        raise ValueError(f"expected x of shape (N, in_features), got {x.shape}: flatten(x) first")
    if w.ndim != 2:
        raise ValueError(f"expected w of shape (out_features, in_features), got {w.shape}")
    if w.shape[1] != x.shape[1]:
        raise ValueError(
            f"x has {x.shape[1]} features but w expects {w.shape[1]}: "
            f"w must be (out_features, in_features), got x {x.shape}, w {w.shape}"
        )
    if b is not None:
        b = np.asarray(b)
        if b.shape != (w.shape[0],):
            raise ValueError(
                f"expected b of shape (out_features,) = ({w.shape[0]},), got {b.shape}"
            )
    return x, w, b


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """A fully connected layer: ``x @ w.T + b``. Lesson 03.

    x (N, in), w (out, in), b (out,) or None -> (N, out).
    """
    x, w, b = _check_linear_args(x, w, b)
    out = x @ w.T
    if b is not None:
        out = out + b
    return out


def linear_backward(
    dout: np.ndarray, x: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of ``linear``. Lesson 05.

    dout (N, out) is dLoss/dout. Returns (dx, dw, db) shaped like x (N, in), w (out, in) and
    b (out,): dx = dout @ w, dw = dout^T @ x, db = dout summed over the batch.
    """
    x, w, _ = _check_linear_args(x, w)
    dout = np.asarray(dout)
    if dout.shape != (x.shape[0], w.shape[0]):
        raise ValueError(
            f"expected dout of shape (N, out_features) = {(x.shape[0], w.shape[0])}, "
            f"got {dout.shape}"
        )
    return dout @ w, dout.T @ x, dout.sum(axis=0)
