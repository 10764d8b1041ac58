"""imgrec_lib.dense against torch.nn.functional.linear and torch.flatten (float64, autograd)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from imgrec_lib.dense import flatten, flatten_backward, linear, linear_backward

TOL = dict(rtol=1e-6, atol=1e-6)


@given(
    n=st.integers(1, 5),
    in_features=st.integers(1, 8),
    out_features=st.integers(1, 8),
    bias=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=40, deadline=None)
def test_linear_forward_and_backward_match_torch(n, in_features, out_features, bias, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, in_features))
    w = rng.standard_normal((out_features, in_features))
    b = rng.standard_normal(out_features) if bias else None
    out = linear(x, w, b)
    dout = rng.standard_normal(out.shape)

    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True) if bias else None
    out_t = F.linear(xt, wt, bt)
    out_t.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, out_t.detach().numpy(), **TOL)

    dx, dw, db = linear_backward(dout, x, w)
    np.testing.assert_allclose(dx, xt.grad.numpy(), **TOL)
    np.testing.assert_allclose(dw, wt.grad.numpy(), **TOL)
    if bias:
        np.testing.assert_allclose(db, bt.grad.numpy(), **TOL)
    else:
        np.testing.assert_allclose(db, dout.sum(axis=0), **TOL)


def test_weight_layout_is_that_of_torch_nn_linear():
    layer = torch.nn.Linear(4, 3).double()
    x = np.random.default_rng(0).standard_normal((2, 4))
    out = linear(x, layer.weight.detach().numpy(), layer.bias.detach().numpy())
    np.testing.assert_allclose(out, layer(torch.tensor(x)).detach().numpy(), **TOL)


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=25, deadline=None)
def test_flatten_and_its_backward_match_torch(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    xt = torch.tensor(x, requires_grad=True)
    out_t = torch.flatten(xt, 1) if x.ndim > 1 else xt.reshape(-1, 1)
    out = flatten(x)
    np.testing.assert_array_equal(out, out_t.detach().numpy())
    dout = rng.standard_normal(out.shape)
    out_t.backward(torch.tensor(dout))
    np.testing.assert_array_equal(flatten_backward(dout, x), xt.grad.numpy())


def test_flatten_keeps_the_batch_axis():
    assert flatten(np.zeros((8, 3, 4, 5))).shape == (8, 60)


def test_bad_shapes_raise_helpful_errors():
    x, w, b = np.zeros((2, 4)), np.zeros((3, 4)), np.zeros(3)
    with pytest.raises(ValueError, match=r"expected x of shape \(N, in_features\), got \(2, 1, 4\): flatten"):
        linear(x.reshape(2, 1, 4), w, b)
    with pytest.raises(ValueError, match=r"x has 4 features, so w must be \(out_features, 4\), got \(3, 5\)"):
        linear(x, np.zeros((3, 5)), b)
    with pytest.raises(ValueError, match=r"w must be \(out_features, 4\), got \(4,\)"):
        linear(x, np.zeros(4), b)
    with pytest.raises(ValueError, match=r"expected dout of shape \(N, out_features\) = \(2, 3\)"):
        linear_backward(np.zeros((2, 4)), x, w)
    with pytest.raises(ValueError, match="cannot reshape"):
        flatten_backward(np.zeros((2, 5)), x)
