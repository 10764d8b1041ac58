"""imgrec_lib.gradcheck: numeric gradients agree with autograd, and a wrong gradient is caught."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from imgrec_lib.activations import relu, relu_backward, sigmoid, sigmoid_backward
from imgrec_lib.conv import conv2d, conv2d_backward
from imgrec_lib.gradcheck import (
    GradientCheckError,
    check_gradient,
    numeric_gradient,
    relative_error,
)
from imgrec_lib.pooling import max_pool2d, max_pool2d_backward


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=25, deadline=None)
def test_numeric_gradient_matches_autograd(shape, seed):
    rng = np.random.default_rng(seed)
    x, r = rng.standard_normal(shape), rng.standard_normal(shape)

    def f(x):
        return np.sum(np.sin(x) * r) + np.sum(x**2) ** 0.5

    xt = torch.tensor(x, requires_grad=True)
    (torch.sum(torch.sin(xt) * torch.tensor(r)) + torch.sum(xt**2) ** 0.5).backward()
    np.testing.assert_allclose(numeric_gradient(f, x), xt.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_numeric_gradient_restores_x_in_place():
    x = np.random.default_rng(0).standard_normal((3, 4))
    before = x.copy()
    seen = []

    def f(arr):
        assert arr is x  # the caller's array, perturbed in place
        seen.append(arr.copy())
        return np.sum(arr**3)

    grad = numeric_gradient(f, x)
    np.testing.assert_array_equal(x, before)
    assert len(seen) == 2 * x.size and not np.array_equal(seen[0], before)
    np.testing.assert_allclose(grad, 3 * before**2, rtol=1e-6, atol=1e-6)


def test_numeric_gradient_restores_x_when_f_raises():
    x = np.ones(3)

    def f(arr):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        numeric_gradient(f, x)
    np.testing.assert_array_equal(x, np.ones(3))


def test_numeric_gradient_rejects_integer_arrays():
    with pytest.raises(ValueError, match="must be a NumPy array of floats"):
        numeric_gradient(lambda x: float(np.sum(x)), np.arange(3))


def test_relative_error():
    a = np.array([1.0, -2.0, 4.0])
    assert relative_error(a, a) == 0.0
    assert relative_error(a, a + np.array([0.0, 0.4, 0.0])) == pytest.approx(0.1)  # 0.4 / 4
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(a, -a) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="different shapes"):
        relative_error(np.zeros(3), np.zeros(4))


def test_check_gradient_passes_for_correct_layers():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 2, 5, 5))
    w = rng.standard_normal((3, 2, 3, 3))
    dout = rng.standard_normal((2, 3, 3, 3))
    dx, dw, _ = conv2d_backward(dout, x, w, stride=2, padding=1)
    assert check_gradient(lambda x: np.sum(conv2d(x, w, stride=2, padding=1) * dout), x, dx) < 1e-6
    assert check_gradient(lambda w: np.sum(conv2d(x, w, stride=2, padding=1) * dout), w, dw) < 1e-6

    dout_pool = rng.standard_normal((2, 2, 2, 2))
    dx_pool = max_pool2d_backward(dout_pool, x)
    check_gradient(lambda x: np.sum(max_pool2d(x) * dout_pool), x, dx_pool)

    v, r = rng.standard_normal(10), rng.standard_normal(10)
    check_gradient(lambda v: np.sum(sigmoid(v) * r), v, sigmoid_backward(r, v))


def test_check_gradient_detects_a_wrong_gradient():
    rng = np.random.default_rng(2)
    x, r = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))

    def wrong_relu_backward(dout, x):
        return dout * (x >= 0) * 0.9  # a slope of 0.9 instead of 1

    f = lambda x: np.sum(relu(x) * r)  # noqa: E731
    check_gradient(f, x, relu_backward(r, x))  # the right one passes
    with pytest.raises(GradientCheckError, match=r"relative error .* > tol .*worst element at index \("):
        check_gradient(f, x, wrong_relu_backward(r, x))
    # Also an AssertionError, so plain `except AssertionError` and pytest treat it as a failure.
    with pytest.raises(AssertionError):
        check_gradient(f, x, wrong_relu_backward(r, x))


def test_check_gradient_names_the_worst_element():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    analytic = 2 * x
    analytic[1, 0] += 0.5  # one wrong entry
    with pytest.raises(GradientCheckError, match=r"index \(1, 0\): analytic 6\.5, numeric 6"):
        check_gradient(lambda x: np.sum(x**2), x, analytic)


def test_check_gradient_rejects_a_gradient_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"shape of x \(3,\), got \(2,\)"):
        check_gradient(lambda x: np.sum(x), np.zeros(3), np.zeros(2))
