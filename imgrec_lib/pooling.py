"""Max and average pooling from scratch in NumPy: forward (lesson 02) and backward (lesson 05).

Shapes: x (N, C, H, W) -> (N, C, OH, OW) with OH = (H - KH) // stride + 1, no padding, like
``torch.nn.functional.max_pool2d`` / ``avg_pool2d`` with their defaults. ``kernel_size`` and
``stride`` are an int or an (h, w) pair; ``stride=None`` means stride = kernel_size
(non-overlapping windows, the usual choice). The backward passes compute in floating point
even for integer inputs: an integer array cannot hold dout / 4.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from imgrec_lib.conv import IntOrPair, _as_float, _pair, conv_output_size


def _pool_args(x, kernel_size, stride):
    """Validate pooling arguments; return (x, (KH, KW), (SH, SW), (OH, OW))."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"expected x of shape (N, C, H, W), got {x.shape}")
    kernel = _pair(kernel_size, "kernel_size", 1)
    stride = kernel if stride is None else _pair(stride, "stride", 1)
    height, width = x.shape[2:]
    if kernel[0] > height or kernel[1] > width:
        raise ValueError(
            f"pooling window {kernel} is larger than the input's spatial size {(height, width)}: "
            "use a smaller kernel_size"
        )
    out_size = (
        conv_output_size(height, kernel[0], stride[0]),
        conv_output_size(width, kernel[1], stride[1]),
    )
    return x, kernel, stride, out_size


def _windows(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """A view (N, C, OH, OW, KH, KW) of every pooling window of x (N, C, H, W)."""
    return sliding_window_view(x, kernel, axis=(2, 3))[:, :, :: stride[0], :: stride[1]]


def _check_dout(dout, x, out_size) -> np.ndarray:
    """Check that dout has the shape of the pooling's output (N, C, OH, OW); integers -> float64."""
    dout = _as_float(dout)
    expected = (*x.shape[:2], *out_size)
    if dout.shape != expected:
        raise ValueError(f"expected dout of shape (N, C, OH, OW) = {expected}, got {dout.shape}")
    return dout


def max_pool2d(
    x: np.ndarray, kernel_size: IntOrPair = 2, stride: IntOrPair | None = None
) -> np.ndarray:
    """The largest value in each window. Lesson 02.

    x (N, C, H, W) -> (N, C, OH, OW).
    """
    x, kernel, stride, _ = _pool_args(x, kernel_size, stride)
    return _windows(x, kernel, stride).max(axis=(-2, -1))


def avg_pool2d(
    x: np.ndarray, kernel_size: IntOrPair = 2, stride: IntOrPair | None = None
) -> np.ndarray:
    """The mean of each window. Lesson 02.

    x (N, C, H, W) -> (N, C, OH, OW).
    """
    x, kernel, stride, _ = _pool_args(x, kernel_size, stride)
    return _windows(x, kernel, stride).mean(axis=(-2, -1))


def max_pool2d_backward(
    dout: np.ndarray, x: np.ndarray, kernel_size: IntOrPair = 2, stride: IntOrPair | None = None
) -> np.ndarray:
    """Gradient of ``max_pool2d`` with respect to x. Lesson 05.

    dout (N, C, OH, OW) -> dx (N, C, H, W). Each window's gradient goes to the position of its
    maximum (the first one if several are equal); everything else gets 0. Where windows overlap,
    a position that is the maximum of several windows collects the sum of their gradients.
    """
    x, (kh, kw), (sh, sw), (oh, ow) = _pool_args(x, kernel_size, stride)
    dout = _check_dout(dout, x, (oh, ow))
    n_images, channels = x.shape[:2]
    # Index of the maximum inside each flattened window, shape (N, C, OH, OW).
    windows = _windows(x, (kh, kw), (sh, sw)).reshape(n_images, channels, oh, ow, kh * kw)
    di, dj = np.divmod(windows.argmax(axis=-1), kw)
    # Where that maximum sits in x: window origin + offset inside the window.
    n, c, i, j = np.indices((n_images, channels, oh, ow), sparse=True)
    rows, cols = i * sh + di, j * sw + dj
    dx = np.zeros(x.shape, dtype=np.result_type(dout, x))
    np.add.at(dx, (n, c, rows, cols), dout)  # add.at sums repeated indices; dx[...] += would not
    return dx


def avg_pool2d_backward(
    dout: np.ndarray, x: np.ndarray, kernel_size: IntOrPair = 2, stride: IntOrPair | None = None
) -> np.ndarray:
    """Gradient of ``avg_pool2d`` with respect to x. Lesson 05.

    dout (N, C, OH, OW) -> dx (N, C, H, W). Every position of a window gets dout / (KH * KW);
    overlapping windows add up.
    """
    x, (kh, kw), (sh, sw), (oh, ow) = _pool_args(x, kernel_size, stride)
    dout = _check_dout(dout, x, (oh, ow))
    dx = np.zeros(x.shape, dtype=np.result_type(dout, x))
    share = dout / (kh * kw)
    for i in range(kh):
        for j in range(kw):
            # Offset (i, j) of every window: rows i, i + sh, ..., i + sh * (OH - 1).
            dx[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw] += share
    return dx
