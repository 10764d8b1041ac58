"""Batch normalisation and dropout from scratch in NumPy: forward and backward. Lesson 09.

Both layers act differently in training and in evaluation, like ``torch.nn.BatchNorm2d`` and
``torch.nn.Dropout`` after ``net.train()`` / ``net.eval()``:

- batch normalisation, training: normalise each channel with the mean and variance of the batch,
  and update the running statistics in place; evaluation: normalise with the running statistics.
- dropout, training: zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``
  ("inverted" dropout, so the expected value is unchanged); evaluation: the identity.

Shapes: x (N, C, H, W) after a convolution or (N, C) after a linear layer; the per-channel
parameters and statistics have shape (C,). Statistics are taken over every axis but the channel
axis 1: (N, H, W), or N alone.
"""

from __future__ import annotations

import numpy as np


def _channel_axes(x: np.ndarray) -> tuple[int, ...]:
    """The axes a channel's statistics are taken over: all but axis 1, e.g. (0, 2, 3) for (N, C, H, W)."""
    if x.ndim not in (2, 4):
        raise ValueError(f"expected x of shape (N, C, H, W) or (N, C), got {x.shape}")
    return (0, *range(2, x.ndim))


def _per_channel(v: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A (C,) vector shaped to broadcast against x: (1, C, 1, 1) for (N, C, H, W), (1, C) for (N, C)."""
    return v.reshape(1, -1, *[1] * (x.ndim - 2))


def batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, running_mean: np.ndarray,
                      running_var: np.ndarray, training: bool = True, momentum: float = 0.1,
                      eps: float = 1e-5) -> np.ndarray:
    """Batch normalisation of x (N, C, H, W) or (N, C), channel by channel. Lesson 09.

    Training: ``x_hat = (x - mean) / sqrt(var + eps)`` with the batch's mean and (biased) variance
    of each channel, then ``gamma * x_hat + beta``; ``running_mean`` and ``running_var`` (C,) are
    updated **in place**, ``r = (1 - momentum) * r + momentum * batch_value``, with the unbiased
    variance (divided by m - 1, m = values per channel) as PyTorch does. Evaluation: the same with
    the running statistics, which stay unchanged. Returns an array shaped like x.
    """
    axes = _channel_axes(x)
    if training:
        m = x.size // x.shape[1]
        if m < 2:
            raise ValueError(f"batch normalisation in training needs more than one value per channel, got x {x.shape}")
        mean, var = x.mean(axis=axes), x.var(axis=axes)
        running_mean *= 1 - momentum
        running_mean += momentum * mean
        running_var *= 1 - momentum
        running_var += momentum * var * m / (m - 1)
    else:
        mean, var = running_mean, running_var
    x_hat = (x - _per_channel(mean, x)) / np.sqrt(_per_channel(var, x) + eps)
    return _per_channel(gamma, x) * x_hat + _per_channel(beta, x)


def batchnorm_backward(dout: np.ndarray, x: np.ndarray, gamma: np.ndarray,
                       eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dx, dgamma, dbeta) of batch normalisation in training mode. Lesson 09.

    dout and x (N, C, H, W) or (N, C); dgamma and dbeta (C,). The batch's mean and variance depend
    on every x of the channel, so dx has two terms more than ``dout * gamma / std``:

        dx = gamma / std * (dout - mean(dout) - x_hat * mean(dout * x_hat)),

    the means taken per channel over the m values of the batch (the derivation: lesson 09).
    """
    axes = _channel_axes(x)
    if dout.shape != x.shape:
        raise ValueError(f"expected dout shaped like x {x.shape}, got {dout.shape}")
    mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    std = np.sqrt(var + eps)
    x_hat = (x - mean) / std
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * x_hat).sum(axis=axes)
    dx_hat_mean = dout.mean(axis=axes, keepdims=True)
    dx = _per_channel(gamma, x) / std * (dout - dx_hat_mean - x_hat * (dout * x_hat).mean(axis=axes, keepdims=True))
    return dx, dgamma, dbeta


def dropout_forward(x: np.ndarray, p: float = 0.5, training: bool = True,
                    seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Inverted dropout of x (any shape); returns ``(out, keep)``. Lesson 09.

    Training: ``keep = rng.random(x.shape) >= p`` (each element kept with probability 1 - p, from
    ``np.random.default_rng(seed)``), ``out = x * keep / (1 - p)``: the kept values are scaled up so
    that the expected value of each element is unchanged and evaluation needs no scaling. ``p = 1``
    drops everything (out is 0). Evaluation: ``out`` is a copy of x and ``keep`` all True.
    """
    if not 0 <= p <= 1:
        raise ValueError(f"p is a probability, expected 0 <= p <= 1, got {p}")
    if not training or p == 0:
        return x.copy(), np.ones(x.shape, dtype=bool)
    keep = np.random.default_rng(seed).random(x.shape) >= p
    if p == 1:
        return np.zeros_like(x), keep
    return x * keep / (1 - p), keep


def dropout_backward(dout: np.ndarray, keep: np.ndarray, p: float = 0.5) -> np.ndarray:
    """Gradient of inverted dropout in training: ``dout * keep / (1 - p)``, shaped like dout. Lesson 09.

    The mask of the forward pass routes the gradient: a dropped element had no effect on the loss,
    a kept one was multiplied by 1 / (1 - p).
    """
    if dout.shape != keep.shape:
        raise ValueError(f"expected the mask shaped like dout {dout.shape}, got {keep.shape}")
    if p == 1:
        return np.zeros_like(dout)
    return dout * keep / (1 - p)
