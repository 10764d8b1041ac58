"""2-D convolution from scratch in NumPy: forward (naive and vectorised) and backward.

Lesson 01 builds the forward pass, lesson 05 the backward pass. Like ``torch.nn.functional.conv2d``
this is a cross-correlation: the kernel is not flipped.

Shapes: x (N, C, H, W) a batch of images, w (F, C, KH, KW) F filters, b (F,) one bias per filter,
out (N, F, OH, OW) with OH = (H + 2 * padding - KH) // stride + 1 (``conv_output_size``).
``stride`` and ``padding`` are ints, the same for height and width. Pass float arrays: in uint8,
200 * 9 wraps around to 8 (scale pixels with ``x / 255`` first).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0) -> int:
    """Length of a convolution's output along one axis. Lesson 01.

    ``(size + 2 * padding - kernel_size) // stride + 1``: how many positions the kernel fits in
    the padded input, moving ``stride`` steps at a time.
    """
    if kernel_size < 1 or stride < 1 or padding < 0:
        raise ValueError(f"need kernel_size >= 1, stride >= 1, padding >= 0, "
                         f"got kernel_size={kernel_size}, stride={stride}, padding={padding}")
    if kernel_size > size + 2 * padding:
        raise ValueError(f"kernel of size {kernel_size} does not fit an input of size {size} padded by "
                         f"{padding}: use a smaller kernel or more padding")
    return (size + 2 * padding - kernel_size) // stride + 1


def _output_shape(x: np.ndarray, w: np.ndarray, b, stride: int, padding: int) -> tuple[int, ...]:
    """(N, F, OH, OW), the shape of the convolution of x with w; a readable error if they do not fit."""
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"expected x of shape (N, C, H, W) and w of shape (F, C, KH, KW), "
                         f"got x {x.shape}, w {w.shape}")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"x has {x.shape[1]} channels but w expects {w.shape[1]}: got x {x.shape}, w {w.shape}")
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(f"expected b of shape (F,) = ({w.shape[0]},), one bias per filter, got {b.shape}")
    oh = conv_output_size(x.shape[2], w.shape[2], stride, padding)
    ow = conv_output_size(x.shape[3], w.shape[3], stride, padding)
    return x.shape[0], w.shape[0], oh, ow


def _pad(x: np.ndarray, padding: int) -> np.ndarray:
    """Zero-pad the two spatial axes of x (N, C, H, W) by ``padding`` on every side."""
    return np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))


def conv2d_naive(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None,
                 stride: int = 1, padding: int = 0) -> np.ndarray:
    """Convolution with explicit loops: clear, and very slow. Lesson 01.

    x (N, C, H, W), w (F, C, KH, KW), b (F,) or None -> (N, F, OH, OW).
    """
    n_images, n_filters, oh, ow = _output_shape(x, w, b, stride, padding)
    kh, kw = w.shape[2:]
    x_padded = _pad(x, padding)
    out = np.zeros((n_images, n_filters, oh, ow), dtype=np.result_type(x, w))
    for n in range(n_images):
        for f in range(n_filters):
            for i in range(oh):
                for j in range(ow):
                    # The patch of all C channels under the kernel at output position (i, j).
                    patch = x_padded[n, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
                    out[n, f, i, j] = np.sum(patch * w[f])
            if b is not None:
                out[n, f] += b[f]
    return out


def im2col(x: np.ndarray, kernel_size: int | tuple[int, int], stride: int = 1, padding: int = 0) -> np.ndarray:
    """Unfold every kernel-sized patch of x into a column. Lesson 01.

    x (N, C, H, W) -> cols (N, C * KH * KW, OH * OW); ``kernel_size`` is K (a K x K kernel) or
    (KH, KW). ``cols[n, :, p]`` is the patch under the kernel at output position p (row-major over
    (OH, OW)), flattened in (C, KH, KW) order, the order of ``w.reshape(F, -1)``. A convolution is
    then one matrix product: ``w.reshape(F, -1) @ cols``. Like ``torch.nn.functional.unfold``.
    """
    kh, kw = (kernel_size, kernel_size) if np.ndim(kernel_size) == 0 else kernel_size
    n_images, channels, height, width = x.shape
    oh, ow = conv_output_size(height, kh, stride, padding), conv_output_size(width, kw, stride, padding)
    # A view (no copy) of shape (N, C, H' - KH + 1, W' - KW + 1, KH, KW): every window of the
    # padded input; keeping every stride-th window gives (N, C, OH, OW, KH, KW).
    windows = sliding_window_view(_pad(x, padding), (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    # Reorder to (N, C, KH, KW, OH, OW); the reshape makes the copy.
    return windows.transpose(0, 1, 4, 5, 2, 3).reshape(n_images, channels * kh * kw, oh * ow)


def col2im(cols: np.ndarray, x_shape: tuple[int, int, int, int], kernel_size: int | tuple[int, int],
           stride: int = 1, padding: int = 0) -> np.ndarray:
    """The adjoint of ``im2col``: add each column back onto the patch it came from. Lesson 05.

    cols (N, C * KH * KW, OH * OW) -> (N, C, H, W) with ``x_shape`` = (N, C, H, W). Where patches
    overlap (stride < kernel) their values are summed, which is what the backward pass needs.
    Like ``torch.nn.functional.fold``.
    """
    kh, kw = (kernel_size, kernel_size) if np.ndim(kernel_size) == 0 else kernel_size
    n_images, channels, height, width = x_shape
    oh, ow = conv_output_size(height, kh, stride, padding), conv_output_size(width, kw, stride, padding)
    cols = cols.reshape(n_images, channels, kh, kw, oh, ow)
    x_padded = np.zeros((n_images, channels, height + 2 * padding, width + 2 * padding), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            # Kernel offset (i, j) touched rows i, i + stride, ..., i + stride * (OH - 1); same for columns.
            x_padded[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride] += cols[:, :, i, j]
    return x_padded[:, :, padding : padding + height, padding : padding + width]


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None,
           stride: int = 1, padding: int = 0) -> np.ndarray:
    """Vectorised convolution: ``im2col`` and one matrix product. Lesson 01.

    x (N, C, H, W), w (F, C, KH, KW), b (F,) or None -> (N, F, OH, OW). Same result as
    ``conv2d_naive`` and ``torch.nn.functional.conv2d``, within 3x of the latter's speed on a CPU.
    """
    out_shape = _output_shape(x, w, b, stride, padding)
    n_filters = w.shape[0]
    cols = im2col(x, w.shape[2:], stride, padding)  # (N, C*KH*KW, OH*OW)
    out = w.reshape(n_filters, -1) @ cols  # (F, C*KH*KW) @ (N, C*KH*KW, OH*OW) -> (N, F, OH*OW)
    out = out.reshape(out_shape)
    if b is not None:
        out += b.reshape(1, n_filters, 1, 1)
    return out


def conv2d_backward(dout: np.ndarray, x: np.ndarray, w: np.ndarray,
                    stride: int = 1, padding: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of a convolution. Lesson 05.

    dout (N, F, OH, OW) is dLoss/dout; x and w as in the forward pass. Returns (dx, dw, db) with the
    shapes of x (N, C, H, W), w (F, C, KH, KW) and b (F,). Since out = w2 @ cols + b:
    dw2 = sum over images of dout @ cols^T, dcols = w2^T @ dout, dx = col2im(dcols),
    db = dout summed over images and positions.
    """
    out_shape = _output_shape(x, w, None, stride, padding)
    if dout.shape != out_shape:
        raise ValueError(f"expected dout of shape (N, F, OH, OW) = {out_shape}, the output's, got {dout.shape}")
    n_images, n_filters, oh, ow = out_shape
    dout = dout.reshape(n_images, n_filters, oh * ow)
    cols = im2col(x, w.shape[2:], stride, padding)  # (N, C*KH*KW, OH*OW)
    db = dout.sum(axis=(0, 2))
    # dw2 = sum over images n of dout[n] @ cols[n]^T: (F, OH*OW) @ (OH*OW, C*KH*KW).
    dw = (dout @ cols.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
    dcols = w.reshape(n_filters, -1).T @ dout  # (C*KH*KW, F) @ (N, F, OH*OW) -> (N, C*KH*KW, OH*OW)
    dx = col2im(dcols, x.shape, w.shape[2:], stride, padding)
    return dx, dw, db
