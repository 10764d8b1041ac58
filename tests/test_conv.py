"""imgrec_lib.conv against torch.nn.functional.conv2d (float64, autograd as the oracle)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from imgrec_lib.conv import col2im, conv2d, conv2d_backward, conv2d_naive, conv_output_size, im2col

TOL = dict(rtol=1e-6, atol=1e-6)


@st.composite
def conv_cases(draw):
    """A random convolution: shapes (kernel and input need not be square), stride, padding, bias or
    not, and a seed."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    padding, stride = draw(st.integers(0, 2)), draw(st.integers(1, 3))
    # The input must be at least as large as the kernel once padded.
    h = draw(st.integers(max(1, kh - 2 * padding), 9))
    w = draw(st.integers(max(1, kw - 2 * padding), 9))
    return dict(
        n=draw(st.integers(1, 3)),
        c=draw(st.integers(1, 3)),
        f=draw(st.integers(1, 4)),
        size=(h, w),
        kernel=(kh, kw),
        stride=stride,
        padding=padding,
        bias=draw(st.booleans()),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def make_inputs(case):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal((case["n"], case["c"], *case["size"]))
    w = rng.standard_normal((case["f"], case["c"], *case["kernel"]))
    b = rng.standard_normal(case["f"]) if case["bias"] else None
    return rng, x, w, b


def torch_conv(x, w, b, stride, padding, dout):
    """Forward and backward in PyTorch: (out, dx, dw, db)."""
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True) if b is not None else None
    out = F.conv2d(xt, wt, bt, stride=stride, padding=padding)
    out.backward(torch.tensor(dout))
    db = bt.grad.numpy() if bt is not None else None
    return out.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), db


def test_conv_output_size_examples():
    assert conv_output_size(28, 3) == 26
    assert conv_output_size(28, 3, padding=1) == 28
    assert conv_output_size(32, 5, stride=2, padding=2) == 16
    assert conv_output_size(7, 2, stride=2) == 3  # the last column does not fit a window


@given(size=st.integers(1, 40), k=st.integers(1, 7), s=st.integers(1, 4), p=st.integers(0, 3))
@settings(max_examples=40, deadline=None)
def test_conv_output_size_matches_torch(size, k, s, p):
    if k > size + 2 * p:
        with pytest.raises(ValueError, match="does not fit"):
            conv_output_size(size, k, s, p)
        return
    x, w = torch.zeros(1, 1, size, 1), torch.zeros(1, 1, k, 1)
    out = F.conv2d(x, w, stride=(s, 1), padding=(p, 0))
    assert conv_output_size(size, k, s, p) == out.shape[2]


@given(case=conv_cases())
@settings(max_examples=40, deadline=None)
def test_conv2d_forward_and_backward_match_torch(case):
    rng, x, w, b = make_inputs(case)
    stride, padding = case["stride"], case["padding"]
    out = conv2d(x, w, b, stride=stride, padding=padding)
    dout = rng.standard_normal(out.shape)
    out_t, dx_t, dw_t, db_t = torch_conv(x, w, b, stride, padding, dout)
    np.testing.assert_allclose(out, out_t, **TOL)

    dx, dw, db = conv2d_backward(dout, x, w, stride=stride, padding=padding)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == (w.shape[0],)
    np.testing.assert_allclose(dx, dx_t, **TOL)
    np.testing.assert_allclose(dw, dw_t, **TOL)
    if db_t is not None:
        np.testing.assert_allclose(db, db_t, **TOL)


@given(case=conv_cases())
@settings(max_examples=25, deadline=None)
def test_naive_and_vectorised_agree(case):
    _, x, w, b = make_inputs(case)
    naive = conv2d_naive(x, w, b, stride=case["stride"], padding=case["padding"])
    fast = conv2d(x, w, b, stride=case["stride"], padding=case["padding"])
    assert naive.shape == fast.shape
    np.testing.assert_allclose(naive, fast, **TOL)


def test_naive_matches_torch_on_a_fixed_example():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 3, 2))
    b = rng.standard_normal(4)
    expected = F.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), stride=2, padding=1)
    out = conv2d_naive(x, w, b, stride=2, padding=1)
    np.testing.assert_allclose(out, expected.numpy(), **TOL)


def test_edge_detector_by_hand():
    # A vertical edge: the difference kernel [-1, 1] responds only where the columns change.
    x = np.zeros((1, 1, 4, 4))
    x[..., 2:] = 1.0
    w = np.array([[[[-1.0, 1.0]]]])
    out = conv2d(x, w)
    np.testing.assert_array_equal(out[0, 0], [[0, 1, 0]] * 4)


@given(case=conv_cases())
@settings(max_examples=25, deadline=None)
def test_im2col_and_col2im_match_torch_unfold_and_fold(case):
    rng, x, w, _ = make_inputs(case)
    kernel, stride, padding = case["kernel"], case["stride"], case["padding"]
    cols = im2col(x, kernel, stride, padding)
    cols_t = F.unfold(torch.tensor(x), kernel, padding=padding, stride=stride).numpy()
    np.testing.assert_allclose(cols, cols_t.reshape(cols.shape), **TOL)
    # col2im is the adjoint of im2col: <im2col(x), c> == <x, col2im(c)> for any c.
    c = rng.standard_normal(cols.shape)
    back = col2im(c, x.shape, kernel, stride, padding)
    assert back.shape == x.shape
    np.testing.assert_allclose(np.sum(cols * c), np.sum(x * back), **TOL)


def test_float32_in_float32_out():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    out = conv2d(x, w, padding=1)
    assert out.dtype == np.float32
    expected = F.conv2d(torch.tensor(x), torch.tensor(w), padding=1).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("fn", [conv2d, conv2d_naive])
def test_bad_shapes_raise_helpful_errors(fn):
    x, w = np.zeros((2, 3, 8, 8)), np.zeros((4, 3, 3, 3))
    with pytest.raises(ValueError, match=r"expected x of shape \(N, C, H, W\) .*got x \(3, 8, 8\)"):
        fn(x[0], w)
    with pytest.raises(ValueError, match=r"w of shape \(F, C, KH, KW\), got x \(2, 3, 8, 8\), w \(3, 3, 3\)"):
        fn(x, w[0])
    with pytest.raises(ValueError, match=r"x has 3 channels but w expects 2: got x \(2, 3, 8, 8\), w \(4, 2, 3, 3\)"):
        fn(x, np.zeros((4, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"expected b of shape \(F,\) = \(4,\), one bias per filter, got \(3,\)"):
        fn(x, w, np.zeros(3))
    with pytest.raises(ValueError, match="kernel of size 9 does not fit an input of size 8"):
        fn(x, np.zeros((4, 3, 9, 3)))
    fn(x, np.zeros((4, 3, 9, 3)), padding=1)  # fits once padded
    with pytest.raises(ValueError, match="need kernel_size >= 1, stride >= 1, padding >= 0, .*stride=0"):
        fn(x, w, stride=0)
    with pytest.raises(ValueError, match="padding >= 0, .*padding=-1"):
        fn(x, w, padding=-1)


def test_backward_rejects_dout_of_the_wrong_shape():
    x, w = np.zeros((2, 3, 8, 8)), np.zeros((4, 3, 3, 3))
    with pytest.raises(ValueError, match=r"expected dout of shape \(N, F, OH, OW\) = \(2, 4, 6, 6\), the output's"):
        conv2d_backward(np.zeros((2, 4, 8, 8)), x, w)


def test_im2col_takes_an_int_or_a_pair_as_kernel_size():
    x = np.arange(32.0).reshape(1, 2, 4, 4)
    np.testing.assert_array_equal(im2col(x, 2), im2col(x, (2, 2)))
    assert im2col(x, (3, 1), stride=1, padding=1).shape == (1, 2 * 3 * 1, 4 * 6)
