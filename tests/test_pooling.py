"""imgrec_lib.pooling against torch.nn.functional.max_pool2d / avg_pool2d (float64, autograd)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from imgrec_lib.pooling import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward

TOL = dict(rtol=1e-6, atol=1e-6)


@st.composite
def pool_cases(draw):
    """Random shapes (not only square), kernel_size, stride (an int or None), and a seed."""
    kernel = draw(st.integers(1, 4))
    stride = draw(st.one_of(st.none(), st.integers(1, 4)))
    return dict(
        shape=(
            draw(st.integers(1, 3)),
            draw(st.integers(1, 3)),
            draw(st.integers(kernel, 10)),
            draw(st.integers(kernel, 10)),
        ),
        kernel=kernel,
        stride=stride,
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@pytest.mark.parametrize(
    "ours, ours_backward, theirs",
    [
        (max_pool2d, max_pool2d_backward, F.max_pool2d),
        (avg_pool2d, avg_pool2d_backward, F.avg_pool2d),
    ],
    ids=["max", "avg"],
)
@given(case=pool_cases())
@settings(max_examples=35, deadline=None)
def test_pooling_forward_and_backward_match_torch(ours, ours_backward, theirs, case):
    # Random floats have no ties, so the maximum of each window is unique.
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal(case["shape"])
    kernel, stride = case["kernel"], case["stride"]
    out = ours(x, kernel, stride)
    dout = rng.standard_normal(out.shape)

    xt = torch.tensor(x, requires_grad=True)
    out_t = theirs(xt, kernel, stride)
    out_t.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, out_t.detach().numpy(), **TOL)
    dx = ours_backward(dout, x, kernel, stride)
    assert dx.shape == x.shape
    np.testing.assert_allclose(dx, xt.grad.numpy(), **TOL)


def test_max_pool_by_hand():
    x = np.array(
        [[1.0, 2.0, 5.0, 0.0], [3.0, 4.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.5], [9.0, 0.0, 3.0, 1.0]]
    ).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(max_pool2d(x)[0, 0], [[4.0, 5.0], [9.0, 3.0]])
    np.testing.assert_array_equal(avg_pool2d(x)[0, 0], [[2.5, 1.75], [2.25, 2.125]])
    dx = max_pool2d_backward(np.ones((1, 1, 2, 2)), x)
    expected = np.zeros((4, 4))
    expected[1, 1] = expected[0, 2] = expected[3, 0] = expected[3, 2] = 1.0
    np.testing.assert_array_equal(dx[0, 0], expected)


def test_overlapping_windows_accumulate_the_gradient():
    # With stride 1 the centre value 9 is the maximum of all four 2x2 windows.
    x = np.array([[0.0, 1.0, 0.5], [0.2, 9.0, 0.3], [0.4, 0.6, 0.7]]).reshape(1, 1, 3, 3)
    dx = max_pool2d_backward(np.ones((1, 1, 2, 2)), x, kernel_size=2, stride=1)
    assert dx[0, 0, 1, 1] == 4.0 and dx.sum() == 4.0


@pytest.mark.parametrize("fn", [max_pool2d, avg_pool2d])
def test_bad_shapes_raise_helpful_errors(fn):
    with pytest.raises(ValueError, match=r"expected x of shape \(N, C, H, W\) .*got \(4, 4\)"):
        fn(np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"H and W at least kernel_size = 5, got \(1, 1, 4, 6\)"):
        fn(np.zeros((1, 1, 4, 6)), kernel_size=5)
    with pytest.raises(ValueError, match="stride >= 1"):
        fn(np.zeros((1, 1, 4, 4)), stride=0)


@pytest.mark.parametrize("backward", [max_pool2d_backward, avg_pool2d_backward])
def test_backward_rejects_dout_of_the_wrong_shape(backward):
    with pytest.raises(ValueError, match=r"expected dout of shape \(N, C, OH, OW\) = \(1, 2, 2, 2\), the output's"):
        backward(np.zeros((1, 2, 3, 3)), np.zeros((1, 2, 4, 4)))


@given(case=pool_cases())
@settings(max_examples=30, deadline=None)
def test_ties_send_the_gradient_to_the_first_maximum_like_torch(case):
    # Values from {0, 1, 2}: most windows hold their maximum more than once.
    rng = np.random.default_rng(case["seed"])
    x = rng.integers(0, 3, case["shape"]).astype(np.float64)
    kernel, stride = case["kernel"], case["stride"]
    dout = rng.standard_normal(max_pool2d(x, kernel, stride).shape)
    xt = torch.tensor(x, requires_grad=True)
    F.max_pool2d(xt, kernel, stride).backward(torch.tensor(dout))
    np.testing.assert_allclose(max_pool2d_backward(dout, x, kernel, stride), xt.grad.numpy(), **TOL)
    assert max_pool2d_backward(np.ones((1, 1, 1, 1)), np.ones((1, 1, 2, 2)))[0, 0].tolist() == [[1, 0], [0, 0]]
