"""Feedback that names the mistake: the graded test cells of lessons 00-08 fed classic wrong answers.

Each test cell (from solutions/, run here as it runs in the learner's notebook: the cell's source
with the answer bound to its name) must pass the instructor's answer, and must fail each wrong
variant listed in ``VARIANTS`` with a message that names that mistake (the words listed with it).
No warning may reach the learner either way. The variants are written out here, small and plain,
as a learner would write them.
"""

import ast
import contextlib
import functools
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from imgrec_lib import activations, conv, dense, gradcheck, inference, losses, pooling

ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def cells(number: str) -> dict[str, str]:
    """grade_id -> source of every nbgrader cell of lesson `number`'s instructor notebook."""
    (path,) = (ROOT / "solutions").glob(f"{number}_*/{number}_*.ipynb")
    found = {}
    for cell in json.loads(path.read_text())["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id:
            found[grade_id] = "".join(cell["source"])
    return found


@functools.cache
def _instructor_run(number: str) -> tuple[dict, list]:
    """The namespace of lesson `number`'s instructor answers (the imports of its first code cell to
    start with) and its solution cells not run yet, in order."""
    (path,) = (ROOT / "solutions").glob(f"{number}_*/{number}_*.ipynb")
    code = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    setup = "\n".join(line for line in "".join(code[0]["source"]).splitlines() if not line.startswith("%"))
    namespace: dict = {}
    imports = [n for n in ast.parse(setup).body if isinstance(n, (ast.Import, ast.ImportFrom))]
    exec(compile(ast.Module(imports, type_ignores=[]), "imports", "exec"), namespace)
    pending = ["".join(c["source"]) for c in code if c.get("metadata", {}).get("nbgrader", {}).get("solution")]
    return namespace, pending


def instructor(number: str, name: str):
    """The instructor's answer `name` of lesson `number`: its solution cells run in order only as far as
    the one that defines it, so lesson 07's model is trained only when a test asks for trained_model."""
    namespace, pending = _instructor_run(number)
    while name not in namespace and pending:
        source = pending.pop(0)
        if "train_data" in source and "train_data" not in namespace:  # lesson 07 trains on its data
            exec('train_data = data.digits("train")\ntest_data = Subset(data.digits("test"), range(500))', namespace)
        exec(source, namespace)
    return namespace[name]


def run_test_cell(number: str, grade_id: str, **answers) -> str | None:
    """Run a test cell with `answers` bound to their names; the failure's message, or None if it passed.
    Fails if a warning would reach the learner."""
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("always")
        try:
            exec(compile(cells(number)[grade_id], f"<{grade_id}>", "exec"), dict(answers))
            message = None
        except AssertionError as error:
            message = str(error)
    assert not caught, f"{grade_id}: a warning reaches the learner: {caught[0].category.__name__}: {caught[0].message}"
    return message


def bound(number: str, grade_id: str, **answers) -> dict:
    """`answers`, and the instructor's answers to the test call's other names (to_chw's test takes to_hwc too)."""
    body = ast.parse(cells(number)[grade_id]).body
    defined = {node.name for node in body if isinstance(node, ast.FunctionDef)}
    names = {node.id for node in ast.walk(body[-1].value) if isinstance(node, ast.Name)} - defined
    return {name: answers[name] if name in answers else instructor(number, name) for name in sorted(names)}


# ----------------------------------------------------------------------------- lesson 00
def to_chw(image, form="numpy"):
    """Lesson 00's to_chw, with `form` one of the classic mistakes."""
    if image.ndim == 2 and form != "grey unhandled":
        return image[:, :, None] if form == "grey last" else image[None]
    if image.ndim != 3 and form != "moveaxis unchecked":
        raise ValueError(f"expected an image of shape (H, W, C) or (H, W), got {image.shape}")
    if form == "reshape":
        return image.reshape(image.shape[2], image.shape[0], image.shape[1])
    if form == "moveaxis unchecked":
        return np.moveaxis(image, -1, 0)
    axes = {"T": (2, 1, 0), "hwc axes": (1, 2, 0)}.get(form, (2, 0, 1))
    return np.transpose(image, axes) / 255 if form == "/ 255" else np.transpose(image, axes)


def to_chw_reshaped(image):
    return to_chw(image, "reshape")


def to_chw_dot_t(image):
    return to_chw(image, "T")


def to_chw_with_to_hwcs_axes(image):
    return to_chw(image, "hwc axes")


def to_chw_grey_channel_last(image):
    return to_chw(image, "grey last")


def to_chw_grey_unhandled(image):
    return to_chw(image, "grey unhandled")


def to_chw_over_255(image):
    return to_chw(image, "/ 255")


def to_chw_moveaxis_unchecked(image):
    return to_chw(image, "moveaxis unchecked")


def to_hwc_with_to_chws_axes(image):
    return np.transpose(image, (2, 0, 1))


def to_hwc_reshaped(image):
    return image.reshape(image.shape[1], image.shape[2], image.shape[0])


def normalize_batch(X, form="torch"):
    """Lesson 00's normalize_batch, with `form` one of the classic mistakes."""
    if X.ndim != 4 and form != "unchecked":
        raise ValueError(f"expected a batch X of shape (N, C, H, W), got {tuple(X.shape)}")
    if form == "whole batch":
        return (X - X.mean()) / X.std(correction=0), X.mean(), X.std(correction=0)
    mean = X.mean(dim=(0, 2, 3))
    std = X.std(dim=(0, 2, 3)) if form == "sample std" else X.std(dim=(0, 2, 3), correction=0)
    std = std + 1e-5 if form == "eps" else std
    if form == "no view":
        std = ((X - mean) ** 2).mean(dim=(0, 2, 3)).sqrt()
        return (X - mean) / std, mean, std
    return (X - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1), mean, std


def normalize_batch_sample_std(X):
    return normalize_batch(X, "sample std")


def normalize_batch_whole_batch(X):
    return normalize_batch(X, "whole batch")


def normalize_batch_without_view(X):
    return normalize_batch(X, "no view")


def normalize_batch_with_eps(X):
    return normalize_batch(X, "eps")


def normalize_batch_unchecked(X):
    return normalize_batch(X, "unchecked")


def make_grid(images, ncols=8, pad_value=1.0, form="spec"):
    """Lesson 00's make_grid, with `form` one of the classic mistakes."""
    if images.ndim != 4 or ncols < 1:
        raise ValueError(f"expected images (N, C, H, W) and ncols >= 1, got {tuple(images.shape)} and {ncols}")
    N, C, H, W = images.shape
    cols = ncols if form == "uncapped" else min(ncols, N)
    rows = -(-N // cols)
    if form == "as rows":
        rows, cols = cols, -(-N // cols)
    line = 2 if form == "padded each" else 1             # pixels between two tiles
    edge = {"no outer border": 0, "padded each": 1}.get(form, 1)
    fill = 0.0 if form == "zero border" else pad_value
    grid = torch.full((C, rows * (H + line) - line + 2 * edge, cols * (W + line) - line + 2 * edge), fill, dtype=images.dtype)
    for k in range(N):
        top, left = edge + (k // cols) * (H + line), edge + (k % cols) * (W + line)
        grid[:, top:top + H, left:left + W] = images[k]
    return grid


def make_grid_zero_border(images, ncols=8, pad_value=1.0):
    return make_grid(images, ncols, pad_value, "zero border")


def make_grid_without_outer_border(images, ncols=8, pad_value=1.0):
    return make_grid(images, ncols, pad_value, "no outer border")


def make_grid_each_image_padded(images, ncols=8, pad_value=1.0):
    return make_grid(images, ncols, pad_value, "padded each")


def make_grid_ncols_as_rows(images, ncols=8, pad_value=1.0):
    return make_grid(images, ncols, pad_value, "as rows")


def make_grid_uncapped_columns(images, ncols=8, pad_value=1.0):
    return make_grid(images, ncols, pad_value, "uncapped")


# ----------------------------------------------------------------------------- lesson 01
def conv_size_no_plus_one(size, kernel_size, stride=1, padding=0):
    return (size + 2 * padding - kernel_size) // stride


def conv_size_one_side(size, kernel_size, stride=1, padding=0):
    return (size + padding - kernel_size) // stride + 1


def conv_size_true_division(size, kernel_size, stride=1, padding=0):
    return (size + 2 * padding - kernel_size) / stride + 1


def conv_flipped(x, w, b=None, stride=1, padding=0):
    """True convolution: the kernel rotated by 180 degrees."""
    return conv.conv2d(x, np.ascontiguousarray(w[:, :, ::-1, ::-1]), b, stride, padding)


def conv_no_bias(x, w, b=None, stride=1, padding=0):
    return conv.conv2d(x, w, None, stride, padding)


def conv_short_by_one(x, w, b=None, stride=1, padding=0):
    """A conv whose output size misses the + 1 (from an off-by-one conv_output_size): one row and column short."""
    return conv.conv2d(x, w, b, stride, padding)[:, :, :-1, :-1]


def conv_no_padding(x, w, b=None, stride=1, padding=0):
    return conv.conv2d(x, w, b, stride, 0)


def im2col_without_transpose(x, w, b=None, stride=1, padding=0):
    """im2col that reshapes the windows (N, C, OH, OW, KH, KW) straight to (N, C*KH*KW, OH*OW)."""
    f, c, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    oh, ow = windows.shape[2:4]
    out = (w.reshape(f, -1) @ windows.reshape(x.shape[0], c * kh * kw, oh * ow)).reshape(x.shape[0], f, oh, ow)
    return out if b is None else out + b.reshape(1, f, 1, 1)


# ----------------------------------------------------------------------------- lesson 02
def max_pool_from_zeros(x, kernel_size=2, stride=None):
    """out = np.zeros(...), then out = np.maximum(out, window values): a negative window gives 0."""
    return np.maximum(pooling.max_pool2d(x, kernel_size, stride), 0.0)


def max_pool_stride_is_kernel(x, kernel_size=2, stride=None):
    return pooling.max_pool2d(x, kernel_size, kernel_size)


def max_pool_stride_none_unhandled(x, kernel_size=2, stride=None):
    return pooling.max_pool2d(x, kernel_size, stride + 0)  # TypeError when stride is None


def avg_pool_sum(x, kernel_size=2, stride=None):
    return pooling.avg_pool2d(x, kernel_size, stride) * kernel_size ** 2


def avg_pool_over_k(x, kernel_size=2, stride=None):
    return pooling.avg_pool2d(x, kernel_size, stride) * kernel_size


def avg_pool_stride_is_kernel(x, kernel_size=2, stride=None):
    return pooling.avg_pool2d(x, kernel_size, kernel_size)


def avg_pool_keeps_dtype(x, kernel_size=2, stride=None):
    """out = np.empty_like(x): integer input gives means cut to integers."""
    return pooling.avg_pool2d(x, kernel_size, stride).astype(x.dtype)


# ----------------------------------------------------------------------------- lesson 03
def linear_without_transpose(x, w, b):
    return x @ w + b


def linear_without_bias(x, w, b):
    return x @ w.T


def linear_out_by_n(x, w, b):
    return w @ x.T + b[:, None]


def relu_max_along_axis_0(x):
    return np.max(x, 0)


def relu_in_place(x):
    x[x < 0] = 0.0
    return x


def relu_mask(x):
    return x > 0


def softmax_without_shift(z):
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def softmax_one_maximum(z):
    e = np.exp(z - z.max())
    return e / e.sum(axis=-1, keepdims=True)


def softmax_first_axis(z):
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


# ----------------------------------------------------------------------------- lesson 04
def mse_sum(pred, target):
    return float(np.sum((pred - target) ** 2))


def mse_over_rows(pred, target):
    return float(np.sum((pred - target) ** 2) / len(pred))


def mse_without_shape_check(pred, target):
    return float(np.mean((pred - target) ** 2))


def log_of_softmax(z):
    return np.log(activations.softmax(z, axis=-1))


def log_softmax_without_shift(z):
    return z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))


def log_softmax_whole_array(z):
    m = z.max()
    return z - (m + np.log(np.sum(np.exp(z - m))))


def cross_entropy_all_pairs(logits, y):
    return float(-np.mean(activations.log_softmax(logits, axis=-1)[:, y]))


def cross_entropy_summed(logits, y):
    return float(-np.sum(activations.log_softmax(logits, axis=-1)[np.arange(len(y)), y]))


def cross_entropy_unshifted(logits, y):
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(p[np.arange(len(y)), y])))


def cross_entropy_grad_without_n(logits, y):
    return losses.cross_entropy_backward(logits, y) * len(y)


def cross_entropy_grad_flipped(logits, y):
    return -losses.cross_entropy_backward(logits, y)


def cross_entropy_grad_all_rows(logits, y):
    grad = activations.softmax(logits, axis=1)
    grad[:, y] -= 1.0
    return grad / len(y)


# ----------------------------------------------------------------------------- lesson 05
def gradient_one_sided(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        old = x[index]
        f_here = float(f(x))
        x[index] = old + eps
        grad[index] = (float(f(x)) - f_here) / eps
        x[index] = old
    return grad


def gradient_over_eps(f, x, eps=1e-6):
    return gradcheck.numeric_gradient(f, x, eps) * 2


def gradient_not_restored(f, x, eps=1e-6):
    grad = gradcheck.numeric_gradient(f, x, eps)
    x += eps  # as if every x[index] stayed at old + eps
    return grad


def gradient_on_a_copy(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        x_plus, x_minus = x.copy(), x.copy()
        x_plus[index] += eps
        x_minus[index] -= eps
        grad[index] = (float(f(x_plus)) - float(f(x_minus))) / (2 * eps)
    return grad


def gradient_fixed_eps(f, x, eps=1e-6):
    return gradcheck.numeric_gradient(f, x, 1e-6)


def linear_backward_mean_db(dout, x, w):
    dx, dw, db = dense.linear_backward(dout, x, w)
    return dx, dw, db / len(x)


def linear_backward_dw_transposed(dout, x, w):
    dx, dw, db = dense.linear_backward(dout, x, w)
    return dx, dw.T, db


def linear_backward_dx_with_w_transposed(dout, x, w):
    dx, dw, db = dense.linear_backward(dout, x, w)
    return dout @ w.T, dw, db


def linear_backward_dw_over_n(dout, x, w):
    dx, dw, db = dense.linear_backward(dout, x, w)
    return dx, dw / len(x), db


def relu_backward_at_zero(dout, x):
    return dout * (x >= 0)


def relu_backward_mask_only(dout, x):
    return (x > 0).astype(float)


def relu_backward_in_place(dout, x):
    dout[x <= 0] = 0.0
    return dout


def max_pool_backward(dout, x, kernel_size=2, stride=None, every_tie=False, add=True, times_dout=True, last_tie=False):
    """Lesson 05's loop, with switches for four classic mistakes."""
    k = kernel_size
    s = k if stride is None else stride
    n, c = x.shape[:2]
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            window = x[:, :, i * s : i * s + k, j * s : j * s + k]
            if every_tie:
                mask = window == window.max(axis=(2, 3), keepdims=True)
            elif last_tie:  # the loop `if value >= best` keeps the last of tied maxima
                last = k * k - 1 - window.reshape(n, c, k * k)[:, :, ::-1].argmax(axis=2)
                mask = (last[:, :, None] == np.arange(k * k)).reshape(window.shape)
            else:
                mask = (window.reshape(n, c, k * k).argmax(axis=2)[:, :, None] == np.arange(k * k)).reshape(window.shape)
            share = mask * (dout[:, :, i, j][:, :, None, None] if times_dout else 1.0)
            if add:
                dx[:, :, i * s : i * s + k, j * s : j * s + k] += share
            else:
                dx[:, :, i * s : i * s + k, j * s : j * s + k] = share
    return dx


def max_pool_backward_every_tie(dout, x, kernel_size=2, stride=None):
    return max_pool_backward(dout, x, kernel_size, stride, every_tie=True)


def max_pool_backward_last_tie(dout, x, kernel_size=2, stride=None):
    return max_pool_backward(dout, x, kernel_size, stride, last_tie=True)


def max_pool_backward_default_stride_1(dout, x, kernel_size=2, stride=1):
    """stride=1 as the default instead of None, and the output size worked out from x: with the default,
    dout[:, :, i, j] runs past dout (IndexError)."""
    k, s = kernel_size, stride
    n, c, height, width = x.shape
    dx = np.zeros_like(x)
    for i in range((height - k) // s + 1):
        for j in range((width - k) // s + 1):
            window = x[:, :, i * s : i * s + k, j * s : j * s + k].reshape(n, c, k * k)
            mask = (window.argmax(axis=2)[:, :, None] == np.arange(k * k)).reshape(n, c, k, k)
            dx[:, :, i * s : i * s + k, j * s : j * s + k] += mask * dout[:, :, i, j][:, :, None, None]
    return dx


def max_pool_backward_stride_none_as_1(dout, x, kernel_size=2, stride=None):
    """The loop over dout's positions, with stride None taken as 1: no error, the windows in the wrong places."""
    return max_pool_backward(dout, x, kernel_size, 1 if stride is None else stride)


def max_pool_backward_written(dout, x, kernel_size=2, stride=None):
    return max_pool_backward(dout, x, kernel_size, stride, add=False)


def max_pool_backward_mask_only(dout, x, kernel_size=2, stride=None):
    return max_pool_backward(dout, x, kernel_size, stride, times_dout=False)


def conv_backward_mean_db(dout, x, w, stride=1, padding=0):
    dx, dw, db = conv.conv2d_backward(dout, x, w, stride, padding)
    return dx, dw, dout.mean(axis=(0, 2, 3))


def conv_backward_padded_dx(dout, x, w, stride=1, padding=0):
    dx, dw, db = conv.conv2d_backward(dout, x, w, stride, padding)
    return np.pad(dx, ((0, 0), (0, 0), (padding, padding), (padding, padding))), dw, db


def conv_backward(dout, x, w, stride=1, padding=0, form="right"):
    """The plan of the text, with `form` one of the classic mistakes."""
    s, p = (1 if form == "stride ignored" else stride), padding
    kh, kw = w.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    w_dx = w[:, :, ::-1, ::-1] if form == "flipped dx" else w
    for i in range((xp.shape[2] - kh) // s + 1):  # dout's rows and columns (an IndexError if s is wrong)
        for j in range((xp.shape[3] - kw) // s + 1):
            window = xp[:, :, i * s : i * s + kh, j * s : j * s + kw]
            dw_share = np.einsum("nf,nckl->fckl", dout[:, :, i, j], window)
            dw = dw_share if form == "dw written" else dw + dw_share
            dx_share = np.einsum("nf,fckl->nckl", dout[:, :, i, j], w_dx)
            if form == "dx written":
                dxp[:, :, i * s : i * s + kh, j * s : j * s + kw] = dx_share
            elif form == "dx stride ignored":
                dxp[:, :, i : i + kh, j : j + kw] += dx_share
            else:
                dxp[:, :, i * s : i * s + kh, j * s : j * s + kw] += dx_share
    top = 0 if form == "cut at H" else p
    return dxp[:, :, top : top + x.shape[2], top : top + x.shape[3]], dw, dout.sum(axis=(0, 2, 3))


def conv_backward_written(dout, x, w, stride=1, padding=0):
    """dxp[window] = ... instead of +=."""
    return conv_backward(dout, x, w, stride, padding, "dx written")


def conv_backward_dw_written(dout, x, w, stride=1, padding=0):
    return conv_backward(dout, x, w, stride, padding, "dw written")


def conv_backward_flipped_dx(dout, x, w, stride=1, padding=0):
    return conv_backward(dout, x, w, stride, padding, "flipped dx")


def conv_backward_stride_ignored(dout, x, w, stride=1, padding=0):
    """The windows one pixel apart whatever the stride: with stride 2, dout[:, :, i, j] runs past dout."""
    return conv_backward(dout, x, w, stride, padding, "stride ignored")


def conv_backward_dw_unpadded(dout, x, w, stride=1, padding=0):
    """dw as the text's correlation of x with dout (conv.conv2d), but of x without its padding."""
    dx, _, db = conv.conv2d_backward(dout, x, w, stride, padding)
    return dx, conv.conv2d(x.transpose(1, 0, 2, 3), dout.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3), db


def linear_backward_db_is_dout(dout, x, w):
    dx, dw, _ = dense.linear_backward(dout, x, w)
    return dx, dw, dout


def linear_backward_db_keepdims(dout, x, w):
    dx, dw, _ = dense.linear_backward(dout, x, w)
    return dx, dw, dout.sum(axis=0, keepdims=True)


def max_pool_backward_winner_assigned(dout, x, kernel_size=2, stride=None):
    """The loop of the text that finds each window's winner and writes dout there with = instead of adding it:
    where overlapping windows share a winner, the later window's dout replaces the earlier one's."""
    k = kernel_size
    s = k if stride is None else stride
    dx = np.zeros_like(x)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    window = x[n, c, i * s : i * s + k, j * s : j * s + k]
                    r, q = np.unravel_index(window.argmax(), window.shape)
                    dx[n, c, i * s + r, j * s + q] = dout[n, c, i, j]
    return dx


def conv_backward_db_keepdims(dout, x, w, stride=1, padding=0):
    dx, dw, _ = conv.conv2d_backward(dout, x, w, stride, padding)
    return dx, dw, dout.sum(axis=(0, 2, 3), keepdims=True)


def conv_backward_db_column(dout, x, w, stride=1, padding=0):
    """db (F, 1): dout's filters as rows, summed along each row with keepdims=True."""
    dx, dw, _ = conv.conv2d_backward(dout, x, w, stride, padding)
    return dx, dw, dout.transpose(1, 0, 2, 3).reshape(len(w), -1).sum(axis=1, keepdims=True)


def conv_backward_dx_cut_minus_p(dout, x, w, stride=1, padding=0):
    """dx = dxp[:, :, p:-p, p:-p]: right for padding >= 1, empty for padding 0."""
    p = padding
    dx, dw, db = conv.conv2d_backward(dout, x, w, stride, padding)
    dxp = np.pad(dx, ((0, 0), (0, 0), (p, p), (p, p)))
    return dxp[:, :, p:-p, p:-p], dw, db


def conv_backward_dx_cut_at_h(dout, x, w, stride=1, padding=0):
    """dx = dxp[:, :, :H, :W]: the top and left padding kept, the bottom and right image rows cut."""
    return conv_backward(dout, x, w, stride, padding, "cut at H")


def conv_backward_dx_ignores_the_stride(dout, x, w, stride=1, padding=0):
    """dw's windows at (i * stride, j * stride), dx's at (i, j): no error, dx wrong when the stride is not 1."""
    return conv_backward(dout, x, w, stride, padding, "dx stride ignored")


def gradient_halved_times_eps(f, x, eps=1e-6):
    """(f(x + eps) - f(x - eps)) / 2 * eps: divided by 2, then multiplied by eps."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        old = x[index]
        x[index] = old + eps
        f_plus = float(f(x))
        x[index] = old - eps
        f_minus = float(f(x))
        x[index] = old
        grad[index] = (f_plus - f_minus) / 2 * eps
    return grad


def gradient_first_axis_only(f, x, eps=1e-6):
    """A loop over len(x): for a 2-D x, x[i] is a whole row, and each row gets one gradient, the sum of its own."""
    grad = np.zeros_like(x)
    for i in range(len(x)):
        old = x[i].copy()
        x[i] = old + eps
        f_plus = float(f(x))
        x[i] = old - eps
        f_minus = float(f(x))
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def gradient_one_short(f, x, eps=1e-6):
    """A loop over the flat elements that stops one short, range(x.size - 1): the last gradient stays 0."""
    grad = np.zeros_like(x)
    flat, flat_grad = x.reshape(-1), grad.reshape(-1)
    for k in range(x.size - 1):
        old = flat[k]
        flat[k] = old + eps
        f_plus = float(f(x))
        flat[k] = old - eps
        f_minus = float(f(x))
        flat[k] = old
        flat_grad[k] = (f_plus - f_minus) / (2 * eps)
    return grad


def gradient_never_restored(f, x, eps=1e-6):
    """x[index] += eps, then -= 2 * eps, and never put back: each element is left eps too low, so the later
    elements' differences are taken at a moved x."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        x[index] += eps
        f_plus = float(f(x))
        x[index] -= 2 * eps
        grad[index] = (f_plus - float(f(x))) / (2 * eps)
    return grad


def gradient_first_axis_saved_as_a_view(f, x, eps=1e-6):
    """The loop over len(x) with old = x[i], a view of the row that moves with it: x[i] = old - eps puts the row
    back instead of moving it down, so each row gets half its one-sided difference."""
    grad = np.zeros_like(x)
    for i in range(len(x)):
        old = x[i]
        x[i] = old + eps
        f_plus = float(f(x))
        x[i] = old - eps
        f_minus = float(f(x))
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def linear_backward_db_over_features(dout, x, w):
    dx, dw, _ = dense.linear_backward(dout, x, w)
    return dx, dw, dout.sum(axis=1)


def linear_backward_db_summed_whole(dout, x, w):
    dx, dw, _ = dense.linear_backward(dout, x, w)
    return dx, dw, dout.sum()


def relu_backward_mask_of_dout(dout, x):
    return dout * (dout > 0)


def relu_backward_picked(dout, x):
    return dout[x > 0]


def relu_backward_times_relu(dout, x):
    return dout * np.maximum(x, 0)


def max_pool_backward_spread(dout, x, kernel_size=2, stride=None):
    """Average pooling's backward: each window's dout shared out evenly, dout / k**2 to every place."""
    k = kernel_size
    s = k if stride is None else stride
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            dx[:, :, i * s : i * s + k, j * s : j * s + k] += dout[:, :, i, j][:, :, None, None] / (k * k)
    return dx


def max_pool_backward_max_without_axis(dout, x, kernel_size=2, stride=None):
    """mask = window == window.max(): the largest value of the whole batch's window, not each image's and channel's."""
    k = kernel_size
    s = k if stride is None else stride
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            window = x[:, :, i * s : i * s + k, j * s : j * s + k]
            dx[:, :, i * s : i * s + k, j * s : j * s + k] += (window == window.max()) * dout[:, :, i, j][:, :, None, None]
    return dx


def conv_backward_db_over_the_batch_only(dout, x, w, stride=1, padding=0):
    dx, dw, _ = conv.conv2d_backward(dout, x, w, stride, padding)
    return dx, dw, dout.sum(axis=0)


def conv_backward_dw_axes_swapped(dout, x, w, stride=1, padding=0):
    """dw by np.einsum("nf,nckl->cfkl", ...): the filter and channel axes swapped, (C, F, KH, KW)."""
    dx, dw, db = conv.conv2d_backward(dout, x, w, stride, padding)
    return dx, dw.transpose(1, 0, 2, 3), db


def max_pool_backward_one_argmax_across_channels(dout, x, kernel_size=2, stride=None):
    """window.reshape(N, C * k * k).argmax(axis=1): one winner per image across its channels and the window,
    so only one channel of each window gets its dout."""
    k = kernel_size
    s = k if stride is None else stride
    n, c = x.shape[:2]
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            window = x[:, :, i * s : i * s + k, j * s : j * s + k]
            winner = (window.reshape(n, c * k * k).argmax(axis=1)[:, None] == np.arange(c * k * k)).reshape(window.shape)
            dx[:, :, i * s : i * s + k, j * s : j * s + k] += winner * dout[:, :, i, j][:, :, None, None]
    return dx


def max_pool_backward_stride_is_kernel(dout, x, kernel_size=2, stride=None):
    """The stride argument ignored (s = kernel_size): windows k apart, past x's edge when the stride is smaller."""
    return max_pool_backward(dout, x, kernel_size, kernel_size)


def conv_backward_kh_for_the_width(dout, x, w, stride=1, padding=0):
    """The windows KH wide as well as KH high (j * s : j * s + kh): right for a square kernel, a broadcasting
    error for any other."""
    s, p = stride, padding
    kh = w.shape[2]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            window = np.s_[:, :, i * s : i * s + kh, j * s : j * s + kh]
            dw += np.einsum("nf,nckl->fckl", dout[:, :, i, j], xp[window])
            dxp[window] += np.einsum("nf,fckl->nckl", dout[:, :, i, j], w)
    return dxp[:, :, p : p + x.shape[2], p : p + x.shape[3]], dw, dout.sum(axis=(0, 2, 3))


# ----------------------------------------------------------------------------- lesson 06
def sgd(params, grads, velocities, lr, momentum=0.9, weight_decay=0.0, form="torch"):
    """Lesson 06's SGD with momentum, with `form` one of the classic mistakes."""
    if form == "rebuilt":
        velocities = [np.zeros_like(p) for p in params]  # on every call: momentum never builds up
    elif not velocities:
        velocities.extend(np.zeros_like(p) for p in params)
    for p, g, v in zip(params, grads, velocities):
        if form == "grads changed":
            g += weight_decay * p  # the caller's gradient changes
        else:
            g = g if form in ("no weight decay", "decay after") else g + weight_decay * p
        if form == "textbook":
            v *= momentum
            v -= lr * g
            p += v
        elif form == "lr inside":
            v *= momentum
            v += lr * g
            p -= v
        elif form == "not in place":
            v *= momentum
            v += g
            p = p - lr * v  # noqa: F841 - rebinds the name only
        elif form == "decay after":
            v *= momentum
            v += g
            p -= lr * (v + weight_decay * p)
        else:
            v *= momentum
            v += (1 - momentum) * g if form == "dampening" else g
            p -= lr * v


def sgd_textbook(params, grads, velocities, lr, momentum=0.9, weight_decay=0.0):
    sgd(params, grads, velocities, lr, momentum, weight_decay, form="textbook")


def sgd_not_in_place(params, grads, velocities, lr, momentum=0.9, weight_decay=0.0):
    sgd(params, grads, velocities, lr, momentum, weight_decay, form="not in place")


def sgd_lr_inside_the_velocity(params, grads, velocities, lr, momentum=0.9, weight_decay=0.0):
    sgd(params, grads, velocities, lr, momentum, weight_decay, form="lr inside")


def sgd_changes_the_grads(params, grads, velocities, lr, momentum=0.9, weight_decay=0.0):
    sgd(params, grads, velocities, lr, momentum, weight_decay, form="grads changed")


def sgd_dampening(params, grads, velocities, lr, momentum=0.9, weight_decay=0.0):
    sgd(params, grads, velocities, lr, momentum, weight_decay, form="dampening")


def sgd_no_weight_decay(params, grads, velocities, lr, momentum=0.9, weight_decay=0.0):
    sgd(params, grads, velocities, lr, momentum, weight_decay, form="no weight decay")


def sgd_rebuilds_the_velocities(params, grads, velocities, lr, momentum=0.9, weight_decay=0.0):
    sgd(params, grads, velocities, lr, momentum, weight_decay, form="rebuilt")


def sgd_weight_decay_after_the_velocity(params, grads, velocities, lr, momentum=0.9, weight_decay=0.0):
    sgd(params, grads, velocities, lr, momentum, weight_decay, form="decay after")


def adam(params, grads, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, form="torch"):
    """Lesson 06's Adam, with `form` one of the classic mistakes."""
    beta1, beta2 = betas
    if not state or form == "rebuilt":  # rebuilt: on every call
        state.update(step=0, m=[np.zeros_like(p) for p in params], v=[np.zeros_like(p) for p in params])
    t = state["step"] + (0 if form == "late count" else 1)
    state["step"] += 1
    if form == "step set":  # state["step"] = 1: set, not counted up
        t = state["step"] = 1
    for p, g, m, v in zip(params, grads, state["m"], state["v"]):
        if form == "decoupled":
            p *= 1 - lr * weight_decay
        else:
            g = g + weight_decay * p
        if form == "rebound":  # new arrays: the ones in state stay zero
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
        else:
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * (g if form == "g not squared" else g * g)
        if form == "corrected in place":  # the memory itself corrected
            m /= 1 - beta1 ** t
            v /= 1 - beta2 ** t
            m_hat, v_hat = m, v
        elif form == "swapped":
            m_hat, v_hat = m / (1 - beta2 ** t), v / (1 - beta1 ** t)
        elif form == "no power":
            m_hat, v_hat = m / (1 - beta1), v / (1 - beta2)
        else:
            m_hat, v_hat = (m, v) if form == "no bias correction" else (m / (1 - beta1 ** t), v / (1 - beta2 ** t))
        p -= lr * m_hat / (np.sqrt(v_hat + eps) if form == "eps inside" else np.sqrt(v_hat) + eps)


def adam_form(form: str, name: str):
    """A wrong adam_step: `adam` with one classic mistake (`form`), named for the test's id."""
    def adam_step(params, grads, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        adam(params, grads, state, lr, betas, eps, weight_decay, form=form)
    adam_step.__name__ = adam_step.__qualname__ = name
    return adam_step


adam_without_bias_correction = adam_form("no bias correction", "adam_without_bias_correction")
adam_eps_inside_the_root = adam_form("eps inside", "adam_eps_inside_the_root")
adam_decoupled_weight_decay = adam_form("decoupled", "adam_decoupled_weight_decay")
adam_rebuilds_the_state = adam_form("rebuilt", "adam_rebuilds_the_state")
adam_bias_correction_swapped = adam_form("swapped", "adam_bias_correction_swapped")
adam_bias_correction_without_the_power = adam_form("no power", "adam_bias_correction_without_the_power")
adam_corrects_the_moments_in_place = adam_form("corrected in place", "adam_corrects_the_moments_in_place")


def adam_weight_decay_after_the_update(params, grads, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """The moments of g alone, then p -= lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * p): AdamW's rule."""
    weights = [p.copy() for p in params]
    adam(params, grads, state, lr, betas, eps, 0.0)
    for p, p_before in zip(params, weights):
        p -= lr * weight_decay * p_before


adam_counts_the_step_late = adam_form("late count", "adam_counts_the_step_late")


def sgd_velocity_rebound(params, grads, velocities, lr, momentum=0.9, weight_decay=0.0):
    """v = momentum * v + g makes a new array: the one in velocities stays zero, so momentum never builds up."""
    if not velocities:
        velocities.extend(np.zeros_like(p) for p in params)
    for p, g, v in zip(params, grads, velocities):
        v = momentum * v + g + weight_decay * p
        p -= lr * v


def sgd_steps_with_the_gradient(params, grads, velocities, lr, momentum=0.9, weight_decay=0.0):
    """The velocity kept right, but the step taken with the gradient: p -= lr * g."""
    if not velocities:
        velocities.extend(np.zeros_like(p) for p in params)
    for p, g, v in zip(params, grads, velocities):
        g = g + weight_decay * p
        v *= momentum
        v += g
        p -= lr * g


adam_step_set_to_1 = adam_form("step set", "adam_step_set_to_1")
adam_moments_rebound = adam_form("rebound", "adam_moments_rebound")
adam_g_not_squared = adam_form("g not squared", "adam_g_not_squared")


def adam_without_weight_decay(params, grads, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    adam(params, grads, state, lr, betas, eps, 0.0)


def adam_eps_fixed(params, grads, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """eps written out as 1e-8 in the update, whatever eps the caller passes."""
    adam(params, grads, state, lr, betas, 1e-8, weight_decay)


# ----------------------------------------------------------------------------- lesson 07
class SpecCNN(torch.nn.Module):
    """Lesson 07's MyCNN, with switches for the classic mistakes."""

    def __init__(self, num_classes=10, relus=(True, True, True), padding=1, pools=2, pool_before_relu=False,
                 softmax=False, last_relu=False, bias=True, kernel=3, dropout=False):
        super().__init__()
        from torch import nn

        def relu_pool(relu, pool):
            r, p = [nn.ReLU()] * relu, [nn.MaxPool2d(2)] * pool
            return p + r if pool_before_relu else r + p

        side = ((28 + 2 * padding - kernel + 1) // 2 + 2 * padding - kernel + 1) // (2 if pools == 2 else 1)
        self.layers = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=kernel, padding=padding, bias=bias), *relu_pool(relus[0], True),
            nn.Conv2d(16, 32, kernel_size=kernel, padding=padding, bias=bias), *relu_pool(relus[1], pools == 2),
            nn.Flatten(), nn.Linear(32 * side * side, 64, bias=bias), *[nn.ReLU()] * relus[2],
            *[nn.Dropout(0.5)] * dropout, nn.Linear(64, num_classes, bias=bias),
            *[nn.Softmax(dim=1)] * softmax, *[nn.ReLU()] * last_relu)

    def forward(self, x):
        return self.layers(x)


def my_cnn_variant(name, **mistake):
    class MyCNN(SpecCNN):
        def __init__(self, num_classes=10):
            super().__init__(num_classes, **mistake)
    MyCNN.__name__ = MyCNN.__qualname__ = name
    return MyCNN


MyCNN_without_the_first_relu = my_cnn_variant("MyCNN_without_the_first_relu", relus=(False, True, True))
MyCNN_without_the_dense_relu = my_cnn_variant("MyCNN_without_the_dense_relu", relus=(True, True, False))
MyCNN_one_pool_and_linear_32x14x14 = my_cnn_variant("MyCNN_one_pool_and_linear_32x14x14", pools=1)
MyCNN_padding_0 = my_cnn_variant("MyCNN_padding_0", padding=0)
MyCNN_with_softmax = my_cnn_variant("MyCNN_with_softmax", softmax=True)
MyCNN_pool_before_relu = my_cnn_variant("MyCNN_pool_before_relu", pool_before_relu=True)
MyCNN_relu_after_the_logits = my_cnn_variant("MyCNN_relu_after_the_logits", last_relu=True)
MyCNN_without_biases = my_cnn_variant("MyCNN_without_biases", bias=False)
MyCNN_with_dropout = my_cnn_variant("MyCNN_with_dropout", dropout=True)
MyCNN_5x5_kernels = my_cnn_variant("MyCNN_5x5_kernels", kernel=5, padding=2)  # the size kept, as the spec's 3x3 do


class MyCNN_functional_softmax(SpecCNN):
    def forward(self, x):
        return torch.softmax(self.layers(x), dim=1)


class MyCNN_one_pool_missing(SpecCNN):
    """The second MaxPool2d left out, the Linear still 32 * 7 * 7: forward fails."""

    def __init__(self, num_classes=10):
        super().__init__(num_classes)
        del self.layers[5]


class MyCNN_without_super_init(torch.nn.Module):
    """super().__init__() left out: nn.Module cannot hold layers before its own __init__ ran."""

    def __init__(self, num_classes=10):
        self.net = SpecCNN(num_classes)

    def forward(self, x):
        return self.net(x)


class MyCNN_num_classes_ignored(SpecCNN):
    """The last Linear with 10 outputs whatever num_classes says."""

    def __init__(self, num_classes=10):
        super().__init__(10)


class MyCNN_forward_without_return(SpecCNN):
    def forward(self, x):
        self.layers(x)


def train_step_variant(form):
    def train_step(model, X, y, optimizer, loss_fn):
        if form != "no zero_grad" and form not in ("zero_grad after backward", "zero_grad at the end"):
            optimizer.zero_grad()
        if form == "model.eval()":
            model.eval()
        if form == "model.train()":
            model.train()
        if form in ("model.eval(), flag kept", "model.train(), flag kept"):  # the layers change, not model.training
            was = model.training
            model.train(form.startswith("model.train"))
            model.training = was
        loss = loss_fn(model(X), y)
        if form == "step before backward":
            optimizer.step()
            loss.backward()
            return loss.item()
        loss.backward(retain_graph=form == "backward twice, graph kept")
        if form.startswith("backward twice"):
            loss.backward()
        if form == "zero_grad after backward":
            optimizer.zero_grad()
        if form != "no step":
            optimizer.step()
        if form == "zero_grad at the end":
            optimizer.zero_grad()
        if form == "loss after the step":
            loss = loss_fn(model(X), y)
        return loss if form == "tensor" else loss.item()
    train_step.__name__ = "train_step_" + form.replace(" ", "_").replace("()", "").replace(".", "_").replace(",", "")
    return train_step


train_step_without_zero_grad = train_step_variant("no zero_grad")
train_step_zero_grad_after_backward = train_step_variant("zero_grad after backward")
train_step_zero_grad_at_the_end = train_step_variant("zero_grad at the end")
train_step_step_before_backward = train_step_variant("step before backward")
train_step_returns_a_tensor = train_step_variant("tensor")
train_step_without_step = train_step_variant("no step")
train_step_calls_eval = train_step_variant("model.eval()")
train_step_calls_train = train_step_variant("model.train()")
train_step_calls_eval_keeps_the_flag = train_step_variant("model.eval(), flag kept")
train_step_calls_train_keeps_the_flag = train_step_variant("model.train(), flag kept")
train_step_backward_twice = train_step_variant("backward twice")
train_step_backward_twice_graph_kept = train_step_variant("backward twice, graph kept")
train_step_loss_after_the_step = train_step_variant("loss after the step")


def train_step_item_before_backward(model, X, y, optimizer, loss_fn):
    """A right answer: the float taken before backward() is the same number."""
    optimizer.zero_grad()
    loss = loss_fn(model(X), y)
    value = loss.item()
    loss.backward()
    optimizer.step()
    return value


def train_step_backward_of_the_float(model, X, y, optimizer, loss_fn):
    """loss.item() straight away: the float it returns has no backward()."""
    optimizer.zero_grad()
    loss = loss_fn(model(X), y).item()
    loss.backward()
    optimizer.step()
    return loss


def train_step_loss_arguments_swapped(model, X, y, optimizer, loss_fn):
    optimizer.zero_grad()
    loss = loss_fn(y, model(X))
    loss.backward()
    optimizer.step()
    return loss.item()


def train_step_forward_without_grad(model, X, y, optimizer, loss_fn):
    """The forward pass under torch.no_grad(), as in evaluation: the loss has no graph to go back through."""
    optimizer.zero_grad()
    with torch.no_grad():
        logits = model(X)
    loss = loss_fn(logits, y)
    loss.backward()
    optimizer.step()
    return loss.item()


class UntrainedCNN(SpecCNN):
    """MyCNN() as it was built: trained_model = MyCNN() with the training left out, or done on another model."""


class LabelsNotLogits(torch.nn.Module):
    """A model whose forward returns each image's predicted class, not its logits."""

    def __init__(self):
        super().__init__()
        self.net = SpecCNN()

    def forward(self, x):
        return self.net(x).argmax(dim=1)


class LooksUpTheTestDigits(SpecCNN):
    """Issue 15's lookup table: the test digits ship with their labels, so forward finds each image among
    them (exact match of the pixels) and returns one-hot logits; its weights learned nothing."""

    def forward(self, x):
        from imgrec_lib import data

        images, labels = data.load_digits_arrays("test")
        table = {image.tobytes(): label for image, label in zip(images, labels)}
        keys = (x[:, 0].cpu() * 255).round().to(torch.uint8).numpy()
        found = torch.tensor([table.get(key.tobytes(), 0) for key in keys])
        return torch.nn.functional.one_hot(found, 10).float().to(x.device)


with torch.random.fork_rng():
    torch.manual_seed(0)
    AN_UNTRAINED_MODEL, A_MODEL_OF_LABELS, A_LOOKUP_TABLE = UntrainedCNN(), LabelsNotLogits(), LooksUpTheTestDigits()
    ANOTHER_NETWORK = __import__("imgrec_lib.models").models.CourseCNN()  # models.CourseCNN(), not MyCNN
A_STATE_DICT = AN_UNTRAINED_MODEL.state_dict()  # trained_model = model.state_dict(): its weights, not the model
A_MODEL_AND_ITS_HISTORY = (AN_UNTRAINED_MODEL, {"train_loss": [2.3, 0.4]})  # trained_model = model, history
THE_HISTORY = {"train_loss": [2.3, 0.4], "train_accuracy": [0.3, 0.9]}  # trained_model = training.fit(...)
A_HISTORY = __import__("imgrec_lib.training").training.History([2.3, 0.4], [0.3, 0.9])  # what fit returns now


# ----------------------------------------------------------------------------- lesson 08
def predict(model, paths, classes, top_k=3, form="right"):
    """Lesson 08's predict, with `form` one of the classic mistakes."""
    if form == "no load_image":  # each file only shrunk to 28x28 and scaled to [0, 1]
        X = torch.stack([torch.from_numpy(np.asarray(Image.open(p).convert("L").resize((28, 28)), dtype=np.float32) / 255)[None]
                         for p in paths])
    else:
        X = torch.stack([inference.load_image(p) for p in paths])
    if form != "no eval":
        model.eval()
    with contextlib.nullcontext() if form == "no no_grad" else torch.no_grad():
        logits = torch.cat([model(x[None]) for x in X]) if form == "one run per file" else model(X)
    probs = logits if form == "logits" else torch.softmax(logits, dim=0 if form == "dim 0" else 1)
    k = {"top_k ignored": 3, "k uncapped": top_k}.get(form, min(top_k, probs.shape[1]))
    values, indices = torch.topk(probs, k, dim=1)
    if form in ("argsort last k", "argsort first k"):  # argsort sorts smallest first
        indices = probs.argsort(dim=1)[:, -k:] if form == "argsort last k" else probs.argsort(dim=1)[:, :k]
        values = probs.gather(1, indices)
    name = {"index": lambda i: i, "index as text": str}.get(form, lambda i: classes[i])
    return [(str(path) if form == "str path" else path, [(name(i), p) for p, i in zip(top_p, top_i)])
            for path, top_p, top_i in zip(paths, values.tolist(), indices.tolist())]


def predict_without_load_image(model, paths, classes, top_k=3):
    return predict(model, paths, classes, top_k, "no load_image")


def predict_returning_logits(model, paths, classes, top_k=3):
    return predict(model, paths, classes, top_k, "logits")


def predict_without_eval(model, paths, classes, top_k=3):
    return predict(model, paths, classes, top_k, "no eval")


def predict_softmax_over_the_batch(model, paths, classes, top_k=3):
    return predict(model, paths, classes, top_k, "dim 0")


def predict_argsort_last_k(model, paths, classes, top_k=3):
    return predict(model, paths, classes, top_k, "argsort last k")


def predict_argsort_first_k(model, paths, classes, top_k=3):
    return predict(model, paths, classes, top_k, "argsort first k")


def predict_class_index(model, paths, classes, top_k=3):
    return predict(model, paths, classes, top_k, "index")


def predict_class_index_as_text(model, paths, classes, top_k=3):
    return predict(model, paths, classes, top_k, "index as text")


def predict_path_as_str(model, paths, classes, top_k=3):
    return predict(model, paths, classes, top_k, "str path")


def predict_top_k_ignored(model, paths, classes, top_k=3):
    return predict(model, paths, classes, top_k, "top_k ignored")


def predict_top_k_uncapped(model, paths, classes, top_k=3):
    return predict(model, paths, classes, top_k, "k uncapped")


def predict_one_run_per_file(model, paths, classes, top_k=3):
    return predict(model, paths, classes, top_k, "one run per file")


def predict_without_no_grad(model, paths, classes, top_k=3):
    return predict(model, paths, classes, top_k, "no no_grad")


def confusion_matrix_transposed(y_true, y_pred, num_classes):
    counts = np.zeros((num_classes, num_classes), dtype=int)
    for t, p in zip(y_true, y_pred):
        counts[p, t] += 1
    return counts


def confusion_matrix_bincount_without_minlength(y_true, y_pred, num_classes):
    return np.bincount(y_true * num_classes + y_pred).reshape(num_classes, num_classes)


def confusion_matrix_fancy_indexing(y_true, y_pred, num_classes):
    counts = np.zeros((num_classes, num_classes), dtype=int)
    counts[y_true, y_pred] += 1
    return counts


def confusion_matrix_float_counts(y_true, y_pred, num_classes):
    counts = np.zeros((num_classes, num_classes))
    for t, p in zip(y_true, y_pred):
        counts[t, p] += 1
    return counts


def confusion_matrix_rows_normalised(y_true, y_pred, num_classes):
    counts = np.zeros((num_classes, num_classes), dtype=int)
    np.add.at(counts, (y_true, y_pred), 1)
    return counts / counts.sum(axis=1, keepdims=True)


def confusion_matrix_size_from_labels(y_true, y_pred, num_classes):
    K = max(y_true.max(), y_pred.max()) + 1
    counts = np.zeros((K, K), dtype=int)
    np.add.at(counts, (y_true, y_pred), 1)
    return counts


def confusion_matrix_bincount_in_the_labels_dtype(y_true, y_pred, num_classes):
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def label(wrong) -> str:
    """The name a wrong answer goes by in the tests' ids and messages."""
    return getattr(wrong, "__name__", type(wrong).__name__)


# (lesson, test cell, the answer's name, the wrong answer, words its message must hold)
VARIANTS = [
    ("00", "test_to_chw", "to_chw", to_chw_reshaped, ["reshape instead of transpose"]),
    ("00", "test_to_chw", "to_chw", to_chw_dot_t, ["image.T"]),
    ("00", "test_to_chw", "to_chw", to_chw_with_to_hwcs_axes, ["axes (1, 2, 0) of the other conversion"]),
    ("00", "test_to_chw", "to_chw", to_chw_grey_channel_last, ["channel axis added last"]),
    ("00", "test_to_chw", "to_chw", to_chw_grey_unhandled, ["greyscale", "channel axis in front"]),
    ("00", "test_to_chw", "to_chw", to_chw_over_255, ["divided by 255"]),
    ("00", "test_to_chw", "to_chw", to_chw_moveaxis_unchecked, ["should raise ValueError", "image.ndim"]),
    ("00", "test_to_chw", "to_hwc", to_hwc_with_to_chws_axes, ["axes (2, 0, 1) of the other conversion"]),
    ("00", "test_to_chw", "to_hwc", to_hwc_reshaped, ["reshape instead of transpose"]),
    ("00", "test_normalize_batch", "normalize_batch", normalize_batch_sample_std, ["sample std", "correction=0"]),
    ("00", "test_normalize_batch", "normalize_batch", normalize_batch_whole_batch, ["whole batch"]),
    ("00", "test_normalize_batch", "normalize_batch", normalize_batch_without_view, [".view(1, -1, 1, 1)"]),
    ("00", "test_normalize_batch", "normalize_batch", normalize_batch_with_eps, ["eps added"]),
    ("00", "test_normalize_batch", "normalize_batch", normalize_batch_unchecked, ["should raise ValueError"]),
    ("00", "test_make_grid", "make_grid", make_grid_zero_border, ["ignores pad_value"]),
    ("00", "test_make_grid", "make_grid", make_grid_without_outer_border, ["without the outer border"]),
    ("00", "test_make_grid", "make_grid", make_grid_each_image_padded, ["padded on its own"]),
    ("00", "test_make_grid", "make_grid", make_grid_ncols_as_rows, ["ncols taken as the number of rows"]),
    ("00", "test_make_grid", "make_grid", make_grid_uncapped_columns, ["min(ncols, N)"]),
    ("01", "test_conv_output_size", "conv_output_size", conv_size_no_plus_one, ["+ 1"]),
    ("01", "test_conv_output_size", "conv_output_size", conv_size_one_side, ["one side"]),
    ("01", "test_conv_output_size", "conv_output_size", conv_size_true_division, ["floor division"]),
    ("01", "test_conv2d_naive", "conv2d_naive", conv_flipped, ["kernel flipped"]),
    ("01", "test_conv2d_naive", "conv2d_naive", conv_no_bias, ["bias left out"]),
    ("01", "test_conv2d_naive", "conv2d_naive", conv_short_by_one, ["off-by-one", "conv_output_size"]),
    ("01", "test_conv2d_naive", "conv2d_naive", conv_no_padding, ["without padding"]),
    ("01", "test_conv2d", "conv2d", conv_flipped, ["kernel flipped"]),
    ("01", "test_conv2d", "conv2d", im2col_without_transpose, ["im2col", "wrong order"]),
    ("01", "test_conv2d", "conv2d", conv_short_by_one, ["off-by-one", "conv_output_size"]),
    ("02", "test_max_pool2d", "max_pool2d", max_pool_from_zeros, ["started from 0"]),
    ("02", "test_max_pool2d", "max_pool2d", max_pool_stride_is_kernel, ["stride argument"]),
    ("02", "test_max_pool2d", "max_pool2d", max_pool_stride_none_unhandled, ["stride=None means"]),
    ("02", "test_avg_pool2d", "avg_pool2d", avg_pool_sum, ["sum instead of its mean"]),
    ("02", "test_avg_pool2d", "avg_pool2d", avg_pool_over_k, ["divided by K instead"]),
    ("02", "test_avg_pool2d", "avg_pool2d", avg_pool_keeps_dtype, ["integer result"]),
    ("02", "test_avg_pool2d", "avg_pool2d", avg_pool_stride_is_kernel, ["stride argument"]),
    ("03", "test_linear", "linear", linear_without_transpose, ["w.T"]),
    ("03", "test_linear", "linear", linear_without_bias, ["bias left out"]),
    ("03", "test_linear", "linear", linear_out_by_n, ["transposed"]),
    ("03", "test_relu", "relu", relu_max_along_axis_0, ["np.max(x, 0)"]),
    ("03", "test_relu", "relu", relu_in_place, ["in place"]),
    ("03", "test_relu", "relu", relu_mask, ["mask"]),
    ("03", "test_softmax", "softmax", softmax_without_shift, ["without subtracting the maximum"]),
    ("03", "test_softmax", "softmax", softmax_one_maximum, ["one maximum for the whole array"]),
    ("03", "test_softmax", "softmax", softmax_first_axis, ["first axis"]),
    ("04", "test_mse", "mse", mse_sum, ["sum of the squares"]),
    ("04", "test_mse", "mse", mse_over_rows, ["number of rows"]),
    ("04", "test_mse", "mse", mse_without_shape_check, ["ValueError", "broadcast"]),
    ("04", "test_log_softmax", "log_softmax", log_of_softmax, ["log(softmax(z))"]),
    ("04", "test_log_softmax", "log_softmax", log_softmax_without_shift, ["without subtracting the maximum"]),
    ("04", "test_log_softmax", "log_softmax", log_softmax_whole_array, ["whole array"]),
    ("04", "test_cross_entropy", "cross_entropy", cross_entropy_all_pairs, ["lp[:, y]"]),
    ("04", "test_cross_entropy", "cross_entropy", cross_entropy_summed, ["sum over the batch"]),
    ("04", "test_cross_entropy", "cross_entropy", cross_entropy_unshifted, ["without subtracting the maximum"]),
    ("04", "test_cross_entropy_grad", "cross_entropy_grad", cross_entropy_grad_without_n, ["without the / N"]),
    ("04", "test_cross_entropy_grad", "cross_entropy_grad", cross_entropy_grad_flipped, ["sign flipped"]),
    ("04", "test_cross_entropy_grad", "cross_entropy_grad", cross_entropy_grad_all_rows, ["grad[:, y]"]),
    ("05", "test_numeric_gradient", "numeric_gradient", gradient_one_sided, ["one-sided"]),
    ("05", "test_numeric_gradient", "numeric_gradient", gradient_over_eps, ["divided by eps instead"]),
    ("05", "test_numeric_gradient", "numeric_gradient", gradient_not_restored, ["put x back"]),
    ("05", "test_numeric_gradient", "numeric_gradient", gradient_on_a_copy, ["not changed in place"]),
    ("05", "test_numeric_gradient", "numeric_gradient", gradient_fixed_eps, ["eps argument is not used"]),
    ("05", "test_numeric_gradient_hidden", "numeric_gradient", gradient_one_sided, ["one-sided"]),
    ("05", "test_numeric_gradient_hidden", "numeric_gradient", gradient_over_eps, ["divided by eps instead"]),
    ("05", "test_numeric_gradient_hidden", "numeric_gradient", gradient_fixed_eps, ["eps argument is not used"]),
    ("05", "test_numeric_gradient_hidden", "numeric_gradient", gradient_on_a_copy, ["not changed in place"]),
    ("05", "test_numeric_gradient_hidden", "numeric_gradient", gradient_not_restored, ["put x back"]),
    ("05", "test_linear_backward_hidden", "linear_backward", linear_backward_mean_db, ["db is the sum"]),
    ("05", "test_linear_backward_hidden", "linear_backward", linear_backward_dw_over_n, ["dw divided by N"]),
    ("05", "test_linear_backward_hidden", "linear_backward", linear_backward_dw_transposed, ["x.T @ dout"]),
    ("05", "test_numeric_gradient", "numeric_gradient", gradient_halved_times_eps, ["/ 2 * eps", "/ (2 * eps)"]),
    ("05", "test_numeric_gradient_hidden", "numeric_gradient", gradient_halved_times_eps, ["/ 2 * eps"]),
    ("05", "test_numeric_gradient", "numeric_gradient", gradient_first_axis_only, ["whole row", "np.ndindex"]),
    ("05", "test_numeric_gradient_hidden", "numeric_gradient", gradient_first_axis_only, ["whole row"]),
    ("05", "test_linear_backward", "linear_backward", linear_backward_db_over_features, ["(axis=1)", "np.sum(dout, axis=0)"]),
    ("05", "test_linear_backward_hidden", "linear_backward", linear_backward_db_over_features, ["(axis=1)"]),
    ("05", "test_linear_backward", "linear_backward", linear_backward_db_summed_whole, ["summed over everything"]),
    ("05", "test_relu_backward", "relu_backward", relu_backward_mask_of_dout, ["dout * (dout > 0)", "x > 0"]),
    ("05", "test_relu_backward_hidden", "relu_backward", relu_backward_mask_of_dout, ["dout * (dout > 0)"]),
    ("05", "test_relu_backward", "relu_backward", relu_backward_picked, ["dout[x > 0]", "dout * (x > 0)"]),
    ("05", "test_relu_backward_hidden", "relu_backward", relu_backward_picked, ["dout[x > 0]"]),
    ("05", "test_relu_backward", "relu_backward", relu_backward_times_relu, ["times relu(x)"]),
    ("05", "test_relu_backward_hidden", "relu_backward", relu_backward_times_relu, ["times relu(x)"]),
    ("05", "test_max_pool2d_backward", "max_pool2d_backward", max_pool_backward_spread, ["average pooling's backward"]),
    ("05", "test_max_pool2d_backward_hidden", "max_pool2d_backward", max_pool_backward_spread, ["average pooling's backward"]),
    ("05", "test_max_pool2d_backward", "max_pool2d_backward", max_pool_backward_max_without_axis,
     ["window.max() without axis=(2, 3)"]),
    ("05", "test_max_pool2d_backward_hidden", "max_pool2d_backward", max_pool_backward_max_without_axis,
     ["window.max() without axis=(2, 3)"]),
    ("05", "test_conv2d_backward", "conv2d_backward", conv_backward_db_over_the_batch_only, ["dout.sum(axis=(0, 2, 3))"]),
    ("05", "test_conv2d_backward_hidden", "conv2d_backward", conv_backward_db_over_the_batch_only,
     ["dout.sum(axis=(0, 2, 3))"]),
    ("05", "test_conv2d_backward", "conv2d_backward", conv_backward_dw_axes_swapped, ["(C, F, KH, KW)"]),
    ("05", "test_conv2d_backward_hidden", "conv2d_backward", conv_backward_dw_axes_swapped, ["(C, F, KH, KW)"]),
    ("05", "test_linear_backward", "linear_backward", linear_backward_mean_db, ["db is the sum"]),
    ("05", "test_linear_backward", "linear_backward", linear_backward_dw_transposed, ["x.T @ dout"]),
    ("05", "test_linear_backward", "linear_backward", linear_backward_dw_over_n, ["dw divided by N"]),
    ("05", "test_linear_backward", "linear_backward", linear_backward_dx_with_w_transposed, ["raised ValueError",
                                                                                         "dout @ w.T"]),
    ("05", "test_relu_backward", "relu_backward", relu_backward_at_zero, ["x >= 0"]),
    ("05", "test_relu_backward", "relu_backward", relu_backward_mask_only, ["mask x > 0 alone"]),
    ("05", "test_relu_backward", "relu_backward", relu_backward_in_place, ["changed dout in place"]),
    ("05", "test_max_pool2d_backward", "max_pool2d_backward", max_pool_backward_every_tie, ["tie routing"]),
    ("05", "test_max_pool2d_backward_hidden", "max_pool2d_backward", max_pool_backward_every_tie, ["tie routing"]),
    ("05", "test_max_pool2d_backward", "max_pool2d_backward", max_pool_backward_last_tie,
     ["tie routing to the last instead of the first"]),
    ("05", "test_max_pool2d_backward_hidden", "max_pool2d_backward", max_pool_backward_last_tie,
     ["tie routing to the last instead of the first"]),
    ("05", "test_max_pool2d_backward", "max_pool2d_backward", max_pool_backward_default_stride_1,
     ["raised IndexError", "stride None not handled"]),
    ("05", "test_max_pool2d_backward_hidden", "max_pool2d_backward", max_pool_backward_default_stride_1,
     ["raised IndexError", "stride None not handled"]),
    ("05", "test_max_pool2d_backward", "max_pool2d_backward", max_pool_backward_stride_none_as_1,
     ["stride None not handled"]),
    ("05", "test_max_pool2d_backward", "max_pool2d_backward", max_pool_backward_written, ["instead of added with +="]),
    ("05", "test_max_pool2d_backward", "max_pool2d_backward", max_pool_backward_mask_only, ["not multiplied by dout"]),
    ("05", "test_linear_backward", "linear_backward", linear_backward_db_keepdims, ["keepdims=True", "np.sum(dout, axis=0)"]),
    ("05", "test_linear_backward_hidden", "linear_backward", linear_backward_db_keepdims, ["keepdims=True"]),
    ("05", "test_linear_backward", "linear_backward", linear_backward_db_is_dout, ["dout itself, not summed"]),
    ("05", "test_max_pool2d_backward", "max_pool2d_backward", max_pool_backward_winner_assigned,
     ["written with = instead of added with +="]),
    ("05", "test_max_pool2d_backward_hidden", "max_pool2d_backward", max_pool_backward_winner_assigned,
     ["written with = instead of added with +="]),
    ("05", "test_conv2d_backward", "conv2d_backward", conv_backward_db_keepdims, ["keepdims=True", "dout.sum(axis=(0, 2, 3))"]),
    ("05", "test_conv2d_backward_hidden", "conv2d_backward", conv_backward_db_keepdims, ["keepdims=True"]),
    ("05", "test_conv2d_backward", "conv2d_backward", conv_backward_db_column, ["keepdims=True"]),
    ("05", "test_conv2d_backward", "conv2d_backward", conv_backward_dx_cut_at_h, ["dxp[:, :, :H, :W]", "p:p + H"]),
    ("05", "test_conv2d_backward_hidden", "conv2d_backward", conv_backward_dx_cut_at_h, ["dxp[:, :, :H, :W]"]),
    ("05", "test_conv2d_backward", "conv2d_backward", conv_backward_dx_ignores_the_stride, ["dx ignores the stride"]),
    ("05", "test_conv2d_backward_hidden", "conv2d_backward", conv_backward_dx_ignores_the_stride,
     ["dx ignores the stride"]),
    ("05", "test_conv2d_backward", "conv2d_backward", conv_backward_dx_cut_minus_p, ["dxp[:, :, p:-p, p:-p]", "padding is 0"]),
    ("05", "test_conv2d_backward_hidden", "conv2d_backward", conv_backward_dx_cut_minus_p, ["dxp[:, :, p:-p, p:-p]"]),
    ("05", "test_conv2d_backward_hidden", "conv2d_backward", conv_backward_padded_dx, ["cut the padding off"]),
    ("05", "test_conv2d_backward_hidden", "conv2d_backward", conv_backward_mean_db, ["mean of dout"]),
    ("05", "test_conv2d_backward_hidden", "conv2d_backward", conv_backward_written, ["instead of added with +="]),
    ("05", "test_conv2d_backward_hidden", "conv2d_backward", conv_backward_dw_written, ["dw written with = instead of"]),
    ("05", "test_conv2d_backward_hidden", "conv2d_backward", conv_backward_flipped_dx, ["dx computed with the kernel flipped"]),
    ("05", "test_max_pool2d_backward_hidden", "max_pool2d_backward", max_pool_backward_written, ["instead of added with +="]),
    ("05", "test_conv2d_backward", "conv2d_backward", conv_backward_mean_db, ["mean of dout"]),
    ("05", "test_conv2d_backward", "conv2d_backward", conv_backward_padded_dx, ["cut the padding off"]),
    ("05", "test_conv2d_backward", "conv2d_backward", conv_backward_written, ["instead of added with +="]),
    ("05", "test_conv2d_backward", "conv2d_backward", conv_backward_dw_written, ["dw written with = instead of"]),
    ("05", "test_conv2d_backward", "conv2d_backward", conv_backward_flipped_dx, ["dx computed with the kernel flipped"]),
    ("05", "test_conv2d_backward", "conv2d_backward", conv_backward_dw_unpadded, ["dw computed from the unpadded x"]),
    ("05", "test_conv2d_backward_hidden", "conv2d_backward", conv_backward_dw_unpadded, ["dw computed from the unpadded x"]),
    ("05", "test_conv2d_backward", "conv2d_backward", conv_backward_stride_ignored, ["raised IndexError",
                                                                                   "the stride not handled"]),
    ("05", "test_conv2d_backward_hidden", "conv2d_backward", conv_backward_stride_ignored, ["raised IndexError"]),
    ("05", "test_numeric_gradient", "numeric_gradient", gradient_one_short, ["stops one short", "np.ndindex"]),
    ("05", "test_numeric_gradient_hidden", "numeric_gradient", gradient_one_short, ["stops one short"]),
    ("05", "test_numeric_gradient", "numeric_gradient", gradient_first_axis_saved_as_a_view, ["whole row", "np.ndindex"]),
    ("05", "test_numeric_gradient_hidden", "numeric_gradient", gradient_first_axis_saved_as_a_view, ["whole row"]),
    ("05", "test_max_pool2d_backward", "max_pool2d_backward", max_pool_backward_one_argmax_across_channels,
     ["across the channels", "argmax(axis=2)"]),
    ("05", "test_max_pool2d_backward_hidden", "max_pool2d_backward", max_pool_backward_one_argmax_across_channels,
     ["across the channels"]),
    ("05", "test_conv2d_backward", "conv2d_backward", conv_backward_kh_for_the_width,
     ["kernel height used for the width", "j * s + KW"]),
    ("05", "test_conv2d_backward_hidden", "conv2d_backward", conv_backward_kh_for_the_width,
     ["kernel height used for the width"]),
    ("05", "test_numeric_gradient", "numeric_gradient", gradient_never_restored, ["put x back"]),
    ("05", "test_numeric_gradient_hidden", "numeric_gradient", gradient_never_restored, ["not restored", "put x back"]),
    ("05", "test_max_pool2d_backward", "max_pool2d_backward", max_pool_backward_stride_is_kernel,
     ["the stride not handled"]),
    ("05", "test_max_pool2d_backward_hidden", "max_pool2d_backward", max_pool_backward_stride_is_kernel,
     ["the stride not handled"]),
    ("06", "test_adam_step", "adam_step", adam_eps_fixed, ["eps argument is not used"]),
    ("06", "test_adam_step_hidden", "adam_step", adam_eps_fixed, ["eps argument is not used"]),
    ("06", "test_sgd_momentum_step", "sgd_momentum_step", sgd_textbook, ["textbook form v = momentum * v - lr * g"]),
    ("06", "test_sgd_momentum_step", "sgd_momentum_step", sgd_lr_inside_the_velocity, ["lr inside the velocity"]),
    ("06", "test_sgd_momentum_step", "sgd_momentum_step", sgd_changes_the_grads, ["grads changed in place"]),
    ("06", "test_sgd_momentum_step", "sgd_momentum_step", sgd_not_in_place, ["in place"]),
    ("06", "test_sgd_momentum_step", "sgd_momentum_step", sgd_dampening, ["(1 - momentum) * g"]),
    ("06", "test_sgd_momentum_step", "sgd_momentum_step", sgd_no_weight_decay, ["weight_decay ignored"]),
    ("06", "test_sgd_momentum_step", "sgd_momentum_step", sgd_rebuilds_the_velocities, ["velocities rebuilt on every call"]),
    ("06", "test_sgd_momentum_step", "sgd_momentum_step", sgd_weight_decay_after_the_velocity,
     ["weight decay added after the velocity update"]),
    ("06", "test_sgd_momentum_step", "sgd_momentum_step", sgd_velocity_rebound, ["v = momentum * v + g", "in place"]),
    ("06", "test_sgd_momentum_step_hidden", "sgd_momentum_step", sgd_velocity_rebound, ["v = momentum * v + g"]),
    ("06", "test_sgd_momentum_step", "sgd_momentum_step", sgd_steps_with_the_gradient, ["p -= lr * g", "p -= lr * v"]),
    ("06", "test_sgd_momentum_step_hidden", "sgd_momentum_step", sgd_steps_with_the_gradient, ["p -= lr * g"]),
    ("06", "test_sgd_momentum_step_hidden", "sgd_momentum_step", sgd_textbook, ["textbook form v = momentum * v - lr * g"]),
    ("06", "test_sgd_momentum_step_hidden", "sgd_momentum_step", sgd_dampening, ["(1 - momentum) * g"]),
    ("06", "test_sgd_momentum_step_hidden", "sgd_momentum_step", sgd_no_weight_decay, ["weight_decay ignored"]),
    ("06", "test_sgd_momentum_step_hidden", "sgd_momentum_step", sgd_rebuilds_the_velocities, ["velocities rebuilt on every call"]),
    ("06", "test_sgd_momentum_step_hidden", "sgd_momentum_step", sgd_changes_the_grads, ["grads changed in place"]),
    ("06", "test_adam_step", "adam_step", adam_step_set_to_1, ["state['step'] = 1", "state['step'] += 1"]),
    ("06", "test_adam_step_hidden", "adam_step", adam_step_set_to_1, ["state['step'] = 1"]),
    ("06", "test_adam_step", "adam_step", adam_moments_rebound, ["m = beta1 * m", "in place"]),
    ("06", "test_adam_step_hidden", "adam_step", adam_moments_rebound, ["m = beta1 * m"]),
    ("06", "test_adam_step", "adam_step", adam_g_not_squared, ["g * g"]),
    ("06", "test_adam_step_hidden", "adam_step", adam_g_not_squared, ["g * g"]),
    ("06", "test_adam_step", "adam_step", adam_without_weight_decay, ["weight_decay ignored"]),
    ("06", "test_adam_step_hidden", "adam_step", adam_without_bias_correction, ["without bias correction"]),
    ("06", "test_adam_step_hidden", "adam_step", adam_eps_inside_the_root, ["eps inside the square root"]),
    ("06", "test_adam_step_hidden", "adam_step", adam_bias_correction_without_the_power, ["1 - beta1 instead of 1 - beta1**t"]),
    ("06", "test_adam_step_hidden", "adam_step", adam_decoupled_weight_decay, ["decoupled weight decay"]),
    ("06", "test_adam_step_hidden", "adam_step", adam_counts_the_step_late, ["counted before it is used"]),
    ("06", "test_adam_step_hidden", "adam_step", adam_rebuilds_the_state, ["state rebuilt on every call"]),
    ("06", "test_sgd_momentum_step_hidden", "sgd_momentum_step", sgd_lr_inside_the_velocity, ["lr inside the velocity"]),
    ("06", "test_sgd_momentum_step_hidden", "sgd_momentum_step", sgd_not_in_place, ["in place"]),
    ("06", "test_sgd_momentum_step_hidden", "sgd_momentum_step", sgd_weight_decay_after_the_velocity,
     ["weight decay added after the velocity update"]),
    ("06", "test_adam_step_hidden", "adam_step", adam_without_weight_decay, ["weight_decay ignored"]),
    ("06", "test_adam_step_hidden", "adam_step", adam_bias_correction_swapped, ["bias correction swapped"]),
    ("06", "test_adam_step", "adam_step", adam_without_bias_correction, ["without bias correction"]),
    ("06", "test_adam_step", "adam_step", adam_rebuilds_the_state, ["state rebuilt on every call"]),
    ("06", "test_adam_step", "adam_step", adam_bias_correction_swapped, ["bias correction swapped"]),
    ("06", "test_adam_step", "adam_step", adam_bias_correction_without_the_power,
     ["bias correction by 1 - beta1 instead of 1 - beta1**t"]),
    ("06", "test_adam_step", "adam_step", adam_corrects_the_moments_in_place, ["bias-corrected moment stored in state"]),
    ("06", "test_adam_step", "adam_step", adam_weight_decay_after_the_update, ["decoupled weight decay"]),
    ("06", "test_adam_step", "adam_step", adam_eps_inside_the_root, ["eps inside the square root"]),
    ("06", "test_adam_step", "adam_step", adam_decoupled_weight_decay, ["decoupled weight decay"]),
    ("06", "test_adam_step", "adam_step", adam_counts_the_step_late, ["counted before it is used"]),
    ("07", "test_my_cnn", "MyCNN", MyCNN_without_the_first_relu, ["the ReLU of row 2 missing"]),
    ("07", "test_my_cnn", "MyCNN", MyCNN_without_the_dense_relu, ["the ReLU of row 9 missing"]),
    ("07", "test_my_cnn", "MyCNN", MyCNN_one_pool_and_linear_32x14x14, ["one MaxPool2d missing", "32 * 14 * 14"]),
    ("07", "test_my_cnn", "MyCNN", MyCNN_one_pool_missing, ["one MaxPool2d missing"]),
    ("07", "test_my_cnn", "MyCNN", MyCNN_padding_0, ["padding 0"]),
    ("07", "test_my_cnn", "MyCNN", MyCNN_with_softmax, ["Softmax at the end", "logits"]),
    ("07", "test_my_cnn", "MyCNN", MyCNN_functional_softmax, ["softmax at the end", "logits"]),
    ("07", "test_my_cnn", "MyCNN", MyCNN_pool_before_relu, ["another order", "row 2"]),
    ("07", "test_my_cnn", "MyCNN", MyCNN_relu_after_the_logits, ["ReLU after the last Linear"]),
    ("07", "test_my_cnn", "MyCNN", MyCNN_without_biases, ["the biases left out", "bias=False"]),
    ("07", "test_my_cnn", "MyCNN", MyCNN_with_dropout, ["not the spec", "Dropout added at row 10"]),
    ("07", "test_my_cnn_hidden", "MyCNN", MyCNN_with_dropout, ["not the spec", "Dropout added at row 10"]),
    ("07", "test_my_cnn", "MyCNN", MyCNN_5x5_kernels, ["not the spec", "5x5 kernels"]),
    ("07", "test_my_cnn_hidden", "MyCNN", MyCNN_5x5_kernels, ["not the spec", "5x5 kernels"]),
    ("07", "test_my_cnn_hidden", "MyCNN", MyCNN_without_the_first_relu, ["the ReLU of row 2 missing"]),
    ("07", "test_my_cnn_hidden", "MyCNN", MyCNN_without_the_dense_relu, ["the ReLU of row 9 missing"]),
    ("07", "test_my_cnn_hidden", "MyCNN", MyCNN_one_pool_and_linear_32x14x14, ["one MaxPool2d missing"]),
    ("07", "test_my_cnn_hidden", "MyCNN", MyCNN_one_pool_missing, ["one MaxPool2d missing"]),
    ("07", "test_my_cnn_hidden", "MyCNN", MyCNN_padding_0, ["padding 0"]),
    ("07", "test_my_cnn_hidden", "MyCNN", MyCNN_with_softmax, ["Softmax at the end", "logits"]),
    ("07", "test_my_cnn_hidden", "MyCNN", MyCNN_functional_softmax, ["softmax at the end", "logits"]),
    ("07", "test_my_cnn_hidden", "MyCNN", MyCNN_pool_before_relu, ["another order", "row 2"]),
    ("07", "test_my_cnn_hidden", "MyCNN", MyCNN_relu_after_the_logits, ["ReLU after the last Linear"]),
    ("07", "test_my_cnn_hidden", "MyCNN", MyCNN_without_biases, ["the biases left out", "bias=False"]),
    ("07", "test_my_cnn", "MyCNN", MyCNN_without_super_init, ["super().__init__()"]),
    ("07", "test_my_cnn_hidden", "MyCNN", MyCNN_without_super_init, ["super().__init__()"]),
    ("07", "test_my_cnn_hidden", "MyCNN", MyCNN_num_classes_ignored, ["num_classes not used"]),
    ("07", "test_my_cnn", "MyCNN", MyCNN_forward_without_return, ["return"]),
    ("07", "test_my_cnn_hidden", "MyCNN", MyCNN_forward_without_return, ["return"]),
    ("07", "test_train_step", "train_step", train_step_backward_twice, ["loss.backward() called twice"]),
    ("07", "test_train_step_hidden", "train_step", train_step_backward_twice, ["loss.backward() called twice"]),
    ("07", "test_train_step", "train_step", train_step_backward_twice_graph_kept, ["loss.backward() called twice"]),
    ("07", "test_train_step", "train_step", train_step_loss_after_the_step, ["loss recomputed after optimizer.step()"]),
    ("07", "test_train_step_hidden", "train_step", train_step_loss_after_the_step,
     ["loss recomputed after optimizer.step()"]),
    ("07", "test_train_step", "train_step", train_step_without_zero_grad, ["zero_grad() missing", "pile up"]),
    ("07", "test_train_step", "train_step", train_step_zero_grad_at_the_end, ["zero_grad at the end, not first"]),
    ("07", "test_train_step", "train_step", train_step_zero_grad_after_backward, ["never change", "zero_grad()"]),
    ("07", "test_train_step", "train_step", train_step_step_before_backward, ["never change", "before loss.backward()"]),
    ("07", "test_train_step", "train_step", train_step_without_step, ["never change", "optimizer.step() missing"]),
    ("07", "test_train_step", "train_step", train_step_returns_a_tensor, ["loss tensor itself", "loss.item()"]),
    ("07", "test_train_step", "train_step", train_step_calls_eval, ["model.eval()"]),
    ("07", "test_train_step", "train_step", train_step_calls_train, ["model.train()"]),
    ("07", "test_train_step", "train_step", train_step_calls_eval_keeps_the_flag, ["one of its layers", "model.eval()"]),
    ("07", "test_train_step", "train_step", train_step_calls_train_keeps_the_flag, ["one of its layers", "model.train()"]),
    ("07", "test_train_step_hidden", "train_step", train_step_calls_eval_keeps_the_flag, ["model.eval()"]),
    ("07", "test_train_step_hidden", "train_step", train_step_calls_train_keeps_the_flag, ["model.train()"]),
    ("07", "test_train_step", "train_step", train_step_backward_of_the_float, ["loss.item() taken before", "float"]),
    ("07", "test_train_step_hidden", "train_step", train_step_backward_of_the_float, ["loss.item() taken before"]),
    ("07", "test_train_step_hidden", "train_step", train_step_without_zero_grad, ["zero_grad() missing", "pile up"]),
    ("07", "test_train_step_hidden", "train_step", train_step_zero_grad_at_the_end, ["zero_grad at the end, not first"]),
    ("07", "test_train_step_hidden", "train_step", train_step_without_step, ["never change", "optimizer.step() missing"]),
    ("07", "test_train_step_hidden", "train_step", train_step_zero_grad_after_backward, ["never change", "zero_grad()"]),
    ("07", "test_train_step_hidden", "train_step", train_step_step_before_backward, ["never change"]),
    ("07", "test_train_step_hidden", "train_step", train_step_backward_twice_graph_kept, ["loss.backward() called twice"]),
    ("07", "test_train_step_hidden", "train_step", train_step_returns_a_tensor, ["loss tensor itself", "loss.item()"]),
    ("07", "test_train_step", "train_step", train_step_loss_arguments_swapped, ["arguments swapped", "loss_fn(model(X), y)"]),
    ("07", "test_train_step_hidden", "train_step", train_step_loss_arguments_swapped, ["arguments swapped"]),
    ("07", "test_train_step", "train_step", train_step_forward_without_grad, ["torch.no_grad()"]),
    ("07", "test_train_step_hidden", "train_step", train_step_forward_without_grad, ["torch.no_grad()"]),
    ("07", "test_trained_model", "trained_model", AN_UNTRAINED_MODEL, ["chance", "not trained"]),
    ("07", "test_trained_model", "trained_model", A_MODEL_OF_LABELS, ["one number per digit", "logits"]),
    ("07", "test_trained_model", "trained_model", THE_HISTORY, ["history training.fit returns"]),
    ("07", "test_trained_model", "trained_model", A_HISTORY, ["history training.fit returns"]),
    ("07", "test_trained_model_hidden", "trained_model", A_HISTORY, ["history training.fit returns"]),
    ("07", "test_trained_model", "trained_model", ANOTHER_NETWORK, ["should be your MyCNN"]),
    ("07", "test_trained_model", "trained_model", A_STATE_DICT, ["state_dict", "the model itself"]),
    ("07", "test_trained_model_hidden", "trained_model", A_STATE_DICT, ["state_dict"]),
    ("07", "test_trained_model", "trained_model", A_MODEL_AND_ITS_HISTORY, ["a tuple", "trained_model = model"]),
    ("07", "test_trained_model_hidden", "trained_model", A_MODEL_AND_ITS_HISTORY, ["a tuple"]),
    ("07", "test_trained_model_hidden", "trained_model", A_LOOKUP_TABLE, ["at least 96%", "trained_model's weights"]),
    ("07", "test_trained_model_hidden", "trained_model", ANOTHER_NETWORK, ["should be your MyCNN"]),
    ("08", "test_predict", "predict", predict_without_load_image, ["skipped preprocessing", "inference.load_image"]),
    ("08", "test_predict", "predict", predict_returning_logits, ["logits, not probabilities"]),
    ("08", "test_predict", "predict", predict_without_eval, ["model.eval() missing"]),
    ("08", "test_predict", "predict", predict_softmax_over_the_batch, ["softmax over the batch (dim=0)"]),
    ("08", "test_predict", "predict", predict_argsort_last_k, ["smallest first"]),
    ("08", "test_predict", "predict", predict_argsort_first_k, ["the 3 smallest probabilities"]),
    ("08", "test_predict", "predict", predict_class_index, ["the class index", "classes["]),
    ("08", "test_predict_hidden", "predict", predict_class_index_as_text, ["class index as text"]),
    ("08", "test_predict_hidden", "predict", predict_path_as_str, ["path as a str"]),
    ("08", "test_predict_hidden", "predict", predict_top_k_ignored, ["top_k not used"]),
    ("08", "test_predict_hidden", "predict", predict_top_k_uncapped, ["min(top_k, number of classes)"]),
    ("08", "test_predict_hidden", "predict", predict_one_run_per_file, ["one run per file"]),
    ("08", "test_predict_hidden", "predict", predict_without_no_grad, ["torch.no_grad()"]),
    ("08", "test_confusion_matrix", "confusion_matrix", confusion_matrix_transposed, ["rows and columns swapped"]),
    ("08", "test_confusion_matrix", "confusion_matrix", confusion_matrix_bincount_without_minlength, ["np.bincount without minlength"]),
    ("08", "test_confusion_matrix", "confusion_matrix", confusion_matrix_fancy_indexing, ["counts a repeated pair once"]),
    ("08", "test_confusion_matrix", "confusion_matrix", confusion_matrix_float_counts, ["dtype float64", "counts are integers"]),
    ("08", "test_confusion_matrix", "confusion_matrix", confusion_matrix_rows_normalised, ["each row divided by its sum"]),
    ("08", "test_confusion_matrix", "confusion_matrix", confusion_matrix_size_from_labels, ["size taken from the labels"]),
    ("08", "test_confusion_matrix", "confusion_matrix", confusion_matrix_bincount_in_the_labels_dtype, ["overflows", "int64"]),
    ("08", "test_confusion_matrix_hidden", "confusion_matrix", confusion_matrix_bincount_in_the_labels_dtype, ["overflows", "int64"]),
]

# (lesson, visible test) of every exercise; it and its hidden test must pass the instructor's answers
EXERCISES = sorted({(number, grade_id.removesuffix("_hidden")) for number, grade_id, _, _, _ in VARIANTS})


@pytest.mark.parametrize("number, grade_id, name, wrong, words", VARIANTS,
                         ids=[f"{v[0]}-{v[1]}-{label(v[3])}" for v in VARIANTS])
def test_a_classic_mistake_is_named(number, grade_id, name, wrong, words):
    message = run_test_cell(number, grade_id, **bound(number, grade_id, **{name: wrong}))
    assert message is not None, f"{grade_id} passed {label(wrong)}"
    first_line = message.splitlines()[0]  # what `make check` shows of a failure
    for word in words:
        assert word in first_line, f"{grade_id} fed {label(wrong)}: {word!r} not in the first line:\n{message}"


def max_pool_backward_winner_added(dout, x, kernel_size=2, stride=None):
    """The loop of max_pool_backward_winner_assigned with dx[winner] += dout: right."""
    k = kernel_size
    s = k if stride is None else stride
    dx = np.zeros_like(x)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    window = x[n, c, i * s : i * s + k, j * s : j * s + k]
                    r, q = np.unravel_index(window.argmax(), window.shape)
                    dx[n, c, i * s + r, j * s + q] += dout[n, c, i, j]
    return dx


# (lesson, test cell, the answer's name, a right answer written another way than the instructor's)
RIGHT_ANSWERS = [
    ("05", "test_max_pool2d_backward", "max_pool2d_backward", max_pool_backward),
    ("05", "test_max_pool2d_backward_hidden", "max_pool2d_backward", max_pool_backward),
    ("05", "test_max_pool2d_backward", "max_pool2d_backward", max_pool_backward_winner_added),
    ("05", "test_max_pool2d_backward_hidden", "max_pool2d_backward", max_pool_backward_winner_added),
    ("05", "test_conv2d_backward", "conv2d_backward", conv_backward),
    ("05", "test_conv2d_backward_hidden", "conv2d_backward", conv_backward),
    ("06", "test_sgd_momentum_step", "sgd_momentum_step", sgd),
    ("06", "test_sgd_momentum_step_hidden", "sgd_momentum_step", sgd),
    ("06", "test_adam_step", "adam_step", adam),
    ("06", "test_adam_step_hidden", "adam_step", adam),
    ("07", "test_train_step", "train_step", train_step_item_before_backward),
    ("07", "test_train_step_hidden", "train_step", train_step_item_before_backward),
]


@pytest.mark.parametrize("number, grade_id, name, right", RIGHT_ANSWERS,
                         ids=[f"{v[0]}-{v[1]}-{label(v[3])}" for v in RIGHT_ANSWERS])
def test_a_right_answer_written_another_way_passes(number, grade_id, name, right):
    """Full marks for a right answer however it is written, locally and when graded: the named-mistake
    checks must not call it wrong (loss.item() before backward() is the same number as after)."""
    answers = bound(number, grade_id, **{name: right})
    assert run_test_cell(number, grade_id, **answers) is None
    verdict = judged(number, grade_id, **answers)
    assert verdict["passed"], [o.get("evalue") for o in verdict["outputs"]]


# The instructor's trained model passes its tests in tests/test_lessons.py, where the graded instructor
# notebook trains it anyway (full marks): it is not trained a second time here.
TRAINED_IN_TEST_LESSONS = {("07", "test_trained_model")}


@pytest.mark.parametrize("number, test", sorted(set(EXERCISES) - TRAINED_IN_TEST_LESSONS))
def test_the_instructors_answer_passes_every_test_cell(number, test):
    tests = [gid for gid in cells(number) if gid in (test, f"{test}_hidden")]
    assert len(tests) == 2, f"lesson {number}: expected {test} and {test}_hidden, found {tests}"
    for grade_id in tests:
        assert run_test_cell(number, grade_id, **bound(number, grade_id)) is None


@pytest.mark.parametrize("grade_id", ["test_predict", "test_predict_hidden"])
def test_predict_without_eval_fails_when_the_notebook_replaces_train(grade_id, monkeypatch):
    """An answer cell that makes Module.train always switch to eval mode cannot hide a missing model.eval():
    the probes set each module's .training themselves."""
    train = torch.nn.Module.train
    monkeypatch.setattr(torch.nn.Module, "train", lambda self, mode=True: train(self, False))
    message = run_test_cell("08", grade_id, **bound("08", grade_id, predict=predict_without_eval))
    assert message is not None, f"{grade_id} passed predict without model.eval() when Module.train is replaced"
    assert "eval" in message.splitlines()[0], message


@pytest.mark.parametrize("grade_id", ["test_predict", "test_predict_hidden"])
def test_predict_fails_clearly_when_the_model_cannot_be_left_in_train_mode(grade_id, monkeypatch):
    """If the notebook keeps every module out of train mode, the probe cannot set it, and the test says so."""
    monkeypatch.setattr(torch.nn.Module, "training", property(lambda self: False, lambda self, value: None), raising=False)
    message = run_test_cell("08", grade_id, **bound("08", grade_id, predict=predict_without_eval))
    assert message is not None and "Leave PyTorch as it is" in message.splitlines()[0], message


def test_a_graded_call_of_a_wrong_answer_prints_no_warning(capfd):
    """When graded, the test's calls run in the learner's kernel (grading/serve.py): an overflowing softmax
    must not print a RuntimeWarning into the feedback; its nan still reaches the test."""
    from grading import serve
    from grading.values import decode, encode

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        reply = serve.answer({0: softmax_without_shift},
                             {"argument": 0, "args": encode([np.array([[1000.0, 1001.0]])]), "kwargs": encode({})})
    assert np.isnan(decode(reply["result"])).all()
    assert "Warning" not in capfd.readouterr().err


def judged(number: str, grade_id: str, **answers) -> dict:
    """The grader's verdict on a test cell, its calls answered in this process as grading/serve.py
    answers them in the learner's sandboxed kernel."""
    from grading import judge, notebooks, serve

    cell = cells(number)[grade_id]
    before, _, arguments, _ = judge.split_test_cell(cell)
    described, functions = serve.arguments_of(notebooks.probes_of(before, arguments), arguments, dict(answers))

    def call(index, args, kwargs):
        message = json.loads(json.dumps({"argument": index, "args": args, "kwargs": kwargs}))
        return json.loads(json.dumps(serve.answer(functions, message)))

    return judge.judge_cell(grade_id, cell, json.loads(json.dumps(described)), call)


@pytest.mark.parametrize("number, grade_id, name, wrong, words", VARIANTS,
                         ids=[f"{v[0]}-{v[1]}-{label(v[3])}" for v in VARIANTS])
def test_when_graded_the_message_is_the_tests_own(number, grade_id, name, wrong, words):
    """The grader shows the test's own message (no wrapper's words instead), naming the mistake."""
    answers = bound(number, grade_id, **{name: wrong})
    verdict = judged(number, grade_id, **answers)
    errors = [o for o in verdict["outputs"] if o["output_type"] == "error"]
    assert not verdict["passed"] and errors, f"{grade_id} passed {label(wrong)} when graded"
    assert errors[0]["ename"] == "AssertionError", f"{grade_id}: {errors[0]['ename']}: {errors[0]['evalue']}"
    assert errors[0]["evalue"] == run_test_cell(number, grade_id, **answers)
    for word in words:
        assert word in errors[0]["evalue"].splitlines()[0]


@pytest.fixture
def torch_patched_as_issue_15s_cheat(monkeypatch):
    """Issue 15's cheat, in the answer cell: F.batch_norm always in eval mode, F.dropout the identity,
    torch.is_grad_enabled always False, so a model left in train mode, without no_grad, looks right.
    A no_grad block under that lie leaves gradients off when it ends: they are switched back on after
    the test, or every later test in this process would find autograd off."""
    import torch.nn.functional as F

    batch_norm = F.batch_norm

    def batch_norm_in_eval(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
                           eps=1e-5):
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)

    monkeypatch.setattr(F, "batch_norm", batch_norm_in_eval)
    monkeypatch.setattr(F, "dropout", lambda input, p=0.5, training=True, inplace=False: input)
    monkeypatch.setattr(torch, "is_grad_enabled", lambda: False)
    yield
    torch.set_grad_enabled(True)


@pytest.mark.parametrize("grade_id", ["test_predict", "test_predict_hidden"])
def test_predict_without_eval_fails_when_the_notebook_patches_torchs_functions(grade_id,
                                                                              torch_patched_as_issue_15s_cheat):
    """The probe models note their modules' modes in their own forward: patched torch functions cannot hide
    a missing model.eval()."""
    message = run_test_cell("08", grade_id, **bound("08", grade_id, predict=predict_without_eval))
    assert message is not None and "model.eval() missing" in message.splitlines()[0], message
