"""imgrec_lib.activations against torch (float64, autograd as the oracle)."""

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from imgrec_lib import activations as act

TOL = dict(rtol=1e-6, atol=1e-6)

ELEMENTWISE = {
    "relu": (act.relu, act.relu_backward, torch.relu),
    "leaky_relu": (act.leaky_relu, act.leaky_relu_backward, F.leaky_relu),
    "sigmoid": (act.sigmoid, act.sigmoid_backward, torch.sigmoid),
    "tanh": (act.tanh, act.tanh_backward, torch.tanh),
}

shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4)
seeds = st.integers(0, 2**32 - 1)
scales = st.sampled_from([1.0, 10.0, 1000.0])


def random_input(shape, seed, scale):
    """Random values of the given scale, with some exact zeros (the kink of relu)."""
    rng = np.random.default_rng(seed)
    x = scale * rng.standard_normal(shape)
    x[rng.random(shape) < 0.1] = 0.0
    return rng, x


@pytest.mark.parametrize("name", list(ELEMENTWISE))
@given(shape=shapes, seed=seeds, scale=scales)
@settings(max_examples=30, deadline=None)
def test_elementwise_forward_and_backward_match_torch(name, shape, seed, scale):
    forward, backward, theirs = ELEMENTWISE[name]
    rng, x = random_input(shape, seed, scale)
    dout = rng.standard_normal(shape)
    xt = torch.tensor(x, requires_grad=True)
    out_t = theirs(xt)
    out_t.backward(torch.tensor(dout))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warnings, even for |x| ~ 1000
        out, dx = forward(x), backward(dout, x)
    np.testing.assert_allclose(out, out_t.detach().numpy(), **TOL)
    np.testing.assert_allclose(dx, xt.grad.numpy(), **TOL)


@given(shape=shapes, seed=seeds, slope=st.floats(0.0, 0.5))
@settings(max_examples=25, deadline=None)
def test_leaky_relu_with_other_slopes(shape, seed, slope):
    rng, x = random_input(shape, seed, 1.0)
    dout = rng.standard_normal(shape)
    xt = torch.tensor(x, requires_grad=True)
    out_t = F.leaky_relu(xt, slope)
    out_t.backward(torch.tensor(dout))
    np.testing.assert_allclose(act.leaky_relu(x, slope), out_t.detach().numpy(), **TOL)
    np.testing.assert_allclose(act.leaky_relu_backward(dout, x, slope), xt.grad.numpy(), **TOL)


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (act.softmax, torch.softmax),
        (act.log_softmax, torch.log_softmax),
        (act.logsumexp, torch.logsumexp),
    ],
    ids=["softmax", "log_softmax", "logsumexp"],
)
@given(shape=shapes, seed=seeds, scale=scales, data=st.data())
@settings(max_examples=30, deadline=None)
def test_softmax_family_matches_torch_and_is_stable(ours, theirs, shape, seed, scale, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    _, x = random_input(shape, seed, scale)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ours(x, axis=axis)
    expected = theirs(torch.tensor(x), axis).numpy()
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, expected, **TOL)


def test_large_logits_do_not_overflow():
    z = np.array([[1000.0, 1000.0, -1000.0], [-1000.0, 0.0, 1000.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p, logp, lse = act.softmax(z), act.log_softmax(z), act.logsumexp(z)
    np.testing.assert_allclose(p, [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]], atol=1e-12)
    np.testing.assert_allclose(lse, [1000.0 + np.log(2.0), 1000.0])
    assert logp[0, 0] == pytest.approx(-np.log(2.0)) and logp[1, 0] == pytest.approx(-2000.0)
    assert act.sigmoid(np.array([-1000.0]))[0] == 0.0 and act.sigmoid(np.array([1000.0]))[0] == 1.0


def test_logsumexp_keepdims_and_minus_infinity():
    z = np.array([[1.0, 2.0], [-np.inf, -np.inf]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        keep, lse = act.logsumexp(z, keepdims=True), act.logsumexp(z)
    assert keep.shape == (2, 1)
    np.testing.assert_allclose(lse, torch.logsumexp(torch.tensor(z), 1).numpy())


def test_softmax_rows_sum_to_one():
    z = np.random.default_rng(0).standard_normal((5, 7))
    np.testing.assert_allclose(act.softmax(z).sum(axis=1), np.ones(5))
    np.testing.assert_allclose(act.softmax(z, axis=0).sum(axis=0), np.ones(7))


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_backward_rejects_dout_of_the_wrong_shape(name):
    _, backward, _ = ELEMENTWISE[name]
    with pytest.raises(ValueError, match=r"expected dout of the same shape as x \(2, 3\), got \(3, 2\)"):
        backward(np.zeros((3, 2)), np.zeros((2, 3)))
