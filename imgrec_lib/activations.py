"""Activation functions from scratch in NumPy, with their backward passes.

Lesson 03 builds the forward passes (and a numerically stable softmax), lesson 05 the backward
passes. Every ``*_backward(dout, x)`` takes the upstream gradient dout and the layer's input x
(same shape) and returns dLoss/dx = dout * f'(x). All functions work element-wise on any shape,
except ``softmax``, ``log_softmax`` and ``logsumexp``, which work along ``axis``.
"""

from __future__ import annotations

import numpy as np


def _check_same_shape(dout: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Backward passes need dout shaped like the layer's input x."""
    dout, x = np.asarray(dout), np.asarray(x)
    if dout.shape != x.shape:
        raise ValueError(f"expected dout of the same shape as x {x.shape}, got {dout.shape}")
    return dout, x


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0). Lesson 03."""
    return np.maximum(x, 0)


def relu_backward(dout: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Gradient of ``relu``: dout where x > 0, else 0 (0 at x = 0, like PyTorch). Lesson 05."""
    dout, x = _check_same_shape(dout, x)
    return dout * (x > 0)


def leaky_relu(x: np.ndarray, negative_slope: float = 0.01) -> np.ndarray:
    """x where x > 0, else negative_slope * x. Lesson 03."""
    x = np.asarray(x)
    return np.where(x > 0, x, negative_slope * x)


def leaky_relu_backward(
    dout: np.ndarray, x: np.ndarray, negative_slope: float = 0.01
) -> np.ndarray:
    """Gradient of ``leaky_relu``: dout where x > 0, else negative_slope * dout. Lesson 05."""
    dout, x = _check_same_shape(dout, x)
    return np.where(x > 0, dout, negative_slope * dout)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), without overflow for large |x|. Lesson 03.

    exp(-x) overflows for x = -1000. With e = exp(-|x|), which is always in (0, 1]:
    sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0 (the same function).
    """
    x = np.asarray(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_backward(dout: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Gradient of ``sigmoid``: dout * s * (1 - s) with s = sigmoid(x). Lesson 05."""
    dout, x = _check_same_shape(dout, x)
    s = sigmoid(x)
    return dout * s * (1 - s)


def tanh(x: np.ndarray) -> np.ndarray:
    """The hyperbolic tangent, (exp(x) - exp(-x)) / (exp(x) + exp(-x)). Lesson 03."""
    return np.tanh(x)


def tanh_backward(dout: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Gradient of ``tanh``: dout * (1 - tanh(x)**2). Lesson 05."""
    dout, x = _check_same_shape(dout, x)
    return dout * (1 - np.tanh(x) ** 2)


def logsumexp(z: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """log(sum(exp(z))) along ``axis``, without overflow. Lesson 03.

    exp(1000) overflows, so subtract the maximum m first:
    log(sum(exp(z))) = m + log(sum(exp(z - m))), and every exp(z - m) is in (0, 1].
    """
    z = np.asarray(z)
    m = np.max(z, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)  # a row of all -inf would give -inf - (-inf) = nan
    with np.errstate(divide="ignore"):  # log(0) = -inf, the right answer for a row of all -inf
        out = m + np.log(np.sum(np.exp(z - m), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(z) / sum(exp(z)) along ``axis`` (by default the last: classes), stable. Lesson 03.

    Subtracting the maximum changes nothing mathematically (it cancels) and keeps exp from
    overflowing for logits like 1000.
    """
    z = np.asarray(z)
    e = np.exp(z - np.max(z, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """log(softmax(z)) along ``axis``, computed as z - logsumexp(z): stable. Lesson 03.

    log(softmax(z)) computed naively gives log(0) = -inf once a probability underflows.
    """
    z = np.asarray(z)
    return z - logsumexp(z, axis=axis, keepdims=True)
