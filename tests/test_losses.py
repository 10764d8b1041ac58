"""imgrec_lib.losses against torch.nn.functional.cross_entropy / mse_loss (float64, autograd)."""

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from imgrec_lib.losses import cross_entropy, cross_entropy_backward, mse, mse_backward

TOL = dict(rtol=1e-6, atol=1e-6)


@given(
    n=st.integers(1, 8),
    k=st.integers(1, 10),
    scale=st.sampled_from([1.0, 10.0, 1000.0]),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=40, deadline=None)
def test_cross_entropy_and_its_gradient_match_torch(n, k, scale, seed):
    rng = np.random.default_rng(seed)
    logits = scale * rng.standard_normal((n, k))
    y = rng.integers(0, k, size=n)
    logits_t = torch.tensor(logits, requires_grad=True)
    loss_t = F.cross_entropy(logits_t, torch.tensor(y))
    loss_t.backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # stable: no overflow for logits ~ 1000
        loss, dlogits = cross_entropy(logits, y), cross_entropy_backward(logits, y)
    assert isinstance(loss, float)
    assert loss == pytest.approx(loss_t.item(), rel=1e-6, abs=1e-6)
    np.testing.assert_allclose(dlogits, logits_t.grad.numpy(), **TOL)


@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=30, deadline=None)
def test_mse_and_its_gradient_match_torch(shape, seed):
    rng = np.random.default_rng(seed)
    pred, target = rng.standard_normal(shape), rng.standard_normal(shape)
    pred_t = torch.tensor(pred, requires_grad=True)
    loss_t = F.mse_loss(pred_t, torch.tensor(target))
    loss_t.backward()
    loss = mse(pred, target)
    assert isinstance(loss, float)
    assert loss == pytest.approx(loss_t.item(), rel=1e-6, abs=1e-6)
    np.testing.assert_allclose(mse_backward(pred, target), pred_t.grad.numpy(), **TOL)


def test_cross_entropy_by_hand():
    # Uniform logits over 4 classes: the loss is log(4) whatever the label.
    assert cross_entropy(np.zeros((3, 4)), np.array([0, 1, 3])) == pytest.approx(np.log(4))
    # A confident right answer costs almost nothing, a confident wrong one a lot.
    logits = np.array([[10.0, 0.0], [10.0, 0.0]])
    assert cross_entropy(logits[:1], np.array([0])) < 1e-4
    assert cross_entropy(logits[:1], np.array([1])) == pytest.approx(10.0, abs=1e-4)


def test_cross_entropy_rejects_bad_labels_and_shapes():
    logits = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"class indices in y must be in \[0, 3\] for 4 classes"):
        cross_entropy(logits, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"must be in \[0, 3\].*from -1"):
        cross_entropy_backward(logits, np.array([0, -1, 1]))
    with pytest.raises(ValueError, match=r"integer class indices y .*got logits \(3, 4\) and y \(3,\) of dtype float64"):
        cross_entropy(logits, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"y of shape \(N,\), got logits \(3, 4\) and y \(2,\)"):
        cross_entropy(logits, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"and y \(3, 4\) of dtype int64: not one-hot vectors"):
        cross_entropy(logits, np.eye(4)[[0, 1, 2]].astype(np.int64))
    with pytest.raises(ValueError, match=r"expected logits of shape \(N, num_classes\) .*got logits \(4,\)"):
        cross_entropy(np.zeros(4), np.array([1]))


def test_mse_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"same shape, got pred \(3, 4\) and target \(3,\)"):
        mse(np.zeros((3, 4)), np.zeros(3))
    with pytest.raises(ValueError, match="same shape"):
        mse_backward(np.zeros((3, 1)), np.zeros(3))
