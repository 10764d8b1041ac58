"""imgrec_lib.pooling against torch.nn.functional.max_pool2d / avg_pool2d (float64, autograd)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from imgrec_lib.pooling import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward

TOL = dict(rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "backward, at_the_peak",
    [(max_pool2d_backward, 4 * 200), (avg_pool2d_backward, 4 * 50)],
    ids=["max", "avg"],
)
def test_backward_of_integer_inputs_is_computed_in_floating_point(backward, at_the_peak):
    x = np.zeros((1, 1, 4, 4), np.uint8)
    x[0, 0, 1, 1] = 9  # the maximum of the 4 overlapping 2x2 windows (stride 1) around it
    dout = np.full((1, 1, 3, 3), 200, np.uint8)
    dx = backward(dout, x, 2, 1)
    assert dx.dtype == np.float64
    assert dx[0, 0, 1, 1] == at_the_peak  # 800 would wrap around to 32 in uint8; 200 / 4 needs floats
    np.testing.assert_allclose(dx, backward(dout.astype(float), x.astype(float), 2, 1))


@st.composite
def pool_cases(draw):
    """Random shapes, kernel_size and stride (int, pair or None), and a seed."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kernel = kh if kh == kw and draw(st.booleans()) else (kh, kw)
    stride = draw(
        st.one_of(st.none(), st.integers(1, 4), st.tuples(st.integers(1, 4), st.integers(1, 4)))
    )
    return dict(
        shape=(
            draw(st.integers(1, 3)),
            draw(st.integers(1, 3)),
            draw(st.integers(kh, 10)),
            draw(st.integers(kw, 10)),
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
    with pytest.raises(ValueError, match=r"expected x of shape \(N, C, H, W\), got \(4, 4\)"):
        fn(np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"pooling window \(5, 5\) is larger than the input"):
        fn(np.zeros((1, 1, 4, 4)), kernel_size=5)
    with pytest.raises(ValueError, match="stride must be at least 1"):
        fn(np.zeros((1, 1, 4, 4)), stride=0)


@pytest.mark.parametrize("backward", [max_pool2d_backward, avg_pool2d_backward])
def test_backward_rejects_dout_of_the_wrong_shape(backward):
    with pytest.raises(ValueError, match=r"expected dout of shape \(N, C, OH, OW\) = \(1, 2, 2, 2\)"):
        backward(np.zeros((1, 2, 3, 3)), np.zeros((1, 2, 4, 4)))
