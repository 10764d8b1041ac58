"""Max and average pooling from scratch in NumPy: forward (lesson 02) and backward (lesson 05).

Shapes: x (N, C, H, W) -> (N, C, OH, OW) with OH = (H - kernel_size) // stride + 1: square windows,
no padding, like ``torch.nn.functional.max_pool2d`` / ``avg_pool2d`` with their defaults.
``stride=None`` means stride = kernel_size (windows that tile the input, the usual choice).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from imgrec_lib.conv import conv_output_size


def _output_shape(x: np.ndarray, kernel_size: int, stride: int) -> tuple[int, int, int, int]:
    """(N, C, OH, OW), the shape of the pooling's output; a readable error if the window does not fit."""
    if x.ndim != 4 or kernel_size > min(x.shape[2:]):
        raise ValueError(f"expected x of shape (N, C, H, W) with H and W at least kernel_size = {kernel_size}, "
                         f"got {x.shape}")
    n_images, channels, height, width = x.shape
    return n_images, channels, conv_output_size(height, kernel_size, stride), conv_output_size(width, kernel_size, stride)


def _windows(x: np.ndarray, kernel_size: int, stride: int) -> np.ndarray:
    """Every pooling window of x (N, C, H, W) as a view (N, C, OH, OW, K, K), without a copy."""
    _output_shape(x, kernel_size, stride)
    return sliding_window_view(x, (kernel_size, kernel_size), axis=(2, 3))[:, :, ::stride, ::stride]


def _check_dout(dout: np.ndarray, x: np.ndarray, kernel_size: int, stride: int) -> None:
    """The backward passes need dout shaped like the pooling's output (N, C, OH, OW)."""
    expected = _output_shape(x, kernel_size, stride)
    if dout.shape != expected:
        raise ValueError(f"expected dout of shape (N, C, OH, OW) = {expected}, the output's, got {dout.shape}")


def max_pool2d(x: np.ndarray, kernel_size: int = 2, stride: int | None = None) -> np.ndarray:
    """The largest value in each K x K window: (N, C, H, W) -> (N, C, OH, OW). Lesson 02."""
    stride = kernel_size if stride is None else stride
    return _windows(x, kernel_size, stride).max(axis=(-2, -1))


def avg_pool2d(x: np.ndarray, kernel_size: int = 2, stride: int | None = None) -> np.ndarray:
    """The mean of each K x K window: (N, C, H, W) -> (N, C, OH, OW). Lesson 02."""
    stride = kernel_size if stride is None else stride
    return _windows(x, kernel_size, stride).mean(axis=(-2, -1))


def max_pool2d_backward(dout: np.ndarray, x: np.ndarray, kernel_size: int = 2,
                        stride: int | None = None) -> np.ndarray:
    """Gradient of ``max_pool2d`` with respect to x. Lesson 05.

    dout (N, C, OH, OW) -> dx (N, C, H, W). Each window's gradient goes to one position, that of
    its maximum; where several values tie, the first in row-major order (``argmax``), like PyTorch.
    Everything else gets 0. Where windows overlap, a position that is the maximum of several
    windows collects the sum of their gradients.
    """
    k, s = kernel_size, kernel_size if stride is None else stride
    _check_dout(dout, x, k, s)
    n_images, channels, oh, ow = dout.shape
    # Offset (di, dj) of the first maximum inside each window, each of shape (N, C, OH, OW).
    di, dj = np.divmod(_windows(x, k, s).reshape(n_images, channels, oh, ow, k * k).argmax(axis=-1), k)
    # Where that maximum sits in x: window origin + offset inside the window.
    n, c, i, j = np.indices((n_images, channels, oh, ow), sparse=True)
    dx = np.zeros_like(x, dtype=np.result_type(x, dout))
    np.add.at(dx, (n, c, i * s + di, j * s + dj), dout)  # add.at sums repeated indices; dx[...] += would not
    return dx


def avg_pool2d_backward(dout: np.ndarray, x: np.ndarray, kernel_size: int = 2,
                        stride: int | None = None) -> np.ndarray:
    """Gradient of ``avg_pool2d`` with respect to x. Lesson 05.

    dout (N, C, OH, OW) -> dx (N, C, H, W). Every position of a window gets dout / (K * K);
    overlapping windows add up.
    """
    k, s = kernel_size, kernel_size if stride is None else stride
    _check_dout(dout, x, k, s)
    oh, ow = dout.shape[2:]
    dx = np.zeros_like(x, dtype=np.result_type(x, dout))
    for i in range(k):
        for j in range(k):
            # Offset (i, j) of every window: rows i, i + s, ..., i + s * (OH - 1); the same for columns.
            dx[:, :, i : i + s * oh : s, j : j + s * ow : s] += dout / (k * k)
    return dx
