"""imgrec_lib.normalization against torch.nn.functional.batch_norm / dropout (float64, autograd) and
the numeric gradient; models.ResidualBlock and SmallResNet against their specification."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from imgrec_lib import gradcheck, models
from imgrec_lib.normalization import batchnorm_backward, batchnorm_forward, dropout_backward, dropout_forward

TOL = dict(rtol=1e-9, atol=1e-10)
seeds = st.integers(0, 2**32 - 1)


@st.composite
def bn_cases(draw):
    """x (N, C, H, W) or (N, C) with at least 2 values per channel, per-channel parameters, momentum, eps."""
    four_d = draw(st.booleans())
    n, c = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    shape = (n, c, draw(st.integers(1, 5)), draw(st.integers(1, 5))) if four_d else (n, c)
    if np.prod(shape) // c < 2:
        shape = (n + 1, *shape[1:])
    rng = np.random.default_rng(draw(seeds))
    x = rng.standard_normal(shape) * rng.uniform(0.1, 3.0) + rng.standard_normal()
    return dict(x=x, gamma=rng.standard_normal(c), beta=rng.standard_normal(c), mean=rng.standard_normal(c),
                var=rng.uniform(0.5, 2.0, c), momentum=draw(st.sampled_from([0.1, 0.3, 1.0])),
                eps=draw(st.sampled_from([1e-5, 1e-3])), dout=rng.standard_normal(shape))


@given(case=bn_cases())
@settings(max_examples=40, deadline=None)
def test_batchnorm_train_then_eval_matches_torch(case):
    x, gamma, beta, momentum, eps = case["x"], case["gamma"], case["beta"], case["momentum"], case["eps"]
    mean, var = case["mean"].copy(), case["var"].copy()
    mean_t, var_t = torch.from_numpy(case["mean"].copy()), torch.from_numpy(case["var"].copy())
    g_t, b_t = torch.from_numpy(gamma), torch.from_numpy(beta)
    expected = F.batch_norm(torch.from_numpy(x), mean_t, var_t, g_t, b_t, training=True, momentum=momentum, eps=eps)
    out = batchnorm_forward(x, gamma, beta, mean, var, training=True, momentum=momentum, eps=eps)
    np.testing.assert_allclose(out, expected.numpy(), **TOL)
    np.testing.assert_allclose(mean, mean_t.numpy(), **TOL)  # running statistics updated in place
    np.testing.assert_allclose(var, var_t.numpy(), **TOL)
    # evaluation: the running statistics, unchanged
    x2 = -2 * x + 1
    expected = F.batch_norm(torch.from_numpy(x2), mean_t, var_t, g_t, b_t, training=False, momentum=momentum, eps=eps)
    before = mean.copy(), var.copy()
    out = batchnorm_forward(x2, gamma, beta, mean, var, training=False, momentum=momentum, eps=eps)
    np.testing.assert_allclose(out, expected.numpy(), **TOL)
    assert np.array_equal(mean, before[0]) and np.array_equal(var, before[1])


@given(case=bn_cases())
@settings(max_examples=40, deadline=None)
def test_batchnorm_backward_matches_autograd(case):
    x, gamma, beta, eps, dout = case["x"], case["gamma"], case["beta"], case["eps"], case["dout"]
    x_t, g_t, b_t = (torch.tensor(v, requires_grad=True) for v in (x, gamma, beta))
    F.batch_norm(x_t, None, None, g_t, b_t, training=True, eps=eps).backward(torch.from_numpy(dout))
    dx, dgamma, dbeta = batchnorm_backward(dout, x, gamma, eps)
    scale = max(1.0, float(np.abs(x_t.grad.numpy()).max()))
    np.testing.assert_allclose(dx / scale, x_t.grad.numpy() / scale, rtol=0, atol=1e-9)
    np.testing.assert_allclose(dgamma, g_t.grad.numpy(), **TOL)
    np.testing.assert_allclose(dbeta, b_t.grad.numpy(), **TOL)
    np.testing.assert_allclose(dx.sum(axis=(0, *range(2, x.ndim))), 0, atol=1e-9)  # the mean's term


def test_batchnorm_gradient_check():
    rng = np.random.default_rng(0)
    x, gamma, beta, R = rng.standard_normal((3, 2, 2, 3)), rng.standard_normal(2), rng.standard_normal(2), rng.standard_normal((3, 2, 2, 3))
    loss = lambda _: np.sum(R * batchnorm_forward(x, gamma, beta, np.zeros(2), np.ones(2), training=True))
    dx, dgamma, dbeta = batchnorm_backward(R, x, gamma)
    for param, grad in [(x, dx), (gamma, dgamma), (beta, dbeta)]:
        assert gradcheck.check_gradient(loss, param, grad) < 1e-7


def test_batchnorm_by_hand_and_errors():
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(4, 1, 1, 1)
    mean, var = np.zeros(1), np.ones(1)
    out = batchnorm_forward(x, np.ones(1), np.zeros(1), mean, var)
    np.testing.assert_allclose(out.ravel(), np.array([-3, -1, 1, 3]) / np.sqrt(5 + 4e-5), rtol=1e-12)
    np.testing.assert_allclose([mean[0], var[0]], [0.25, 0.9 + 0.1 * 5 / 3], rtol=1e-12)
    with pytest.raises(ValueError, match="more than one value per channel"):
        batchnorm_forward(np.ones((1, 3)), np.ones(3), np.zeros(3), np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) or \(N, C\)"):
        batchnorm_forward(np.ones((2, 3, 4)), np.ones(3), np.zeros(3), np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="shaped like x"):
        batchnorm_backward(np.ones((2, 3)), np.ones((2, 3, 1, 1)), np.ones(3))


@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=4), p=st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]),
       seed=seeds)
@settings(max_examples=40, deadline=None)
def test_dropout_forward_and_backward(shape, p, seed):
    x = np.random.default_rng(seed).standard_normal(shape) + 3.0  # no zeros: a zero in out means dropped
    out, keep = dropout_forward(x, p, training=True, seed=seed)
    assert keep.dtype == bool and keep.shape == x.shape and np.isfinite(out).all()
    np.testing.assert_array_equal(keep, np.random.default_rng(seed).random(x.shape) >= p)
    if p < 1:
        np.testing.assert_allclose(out, np.where(keep, x / (1 - p), 0.0), rtol=1e-15)
    else:
        assert not out.any()
    # the same rule as torch's dropout: its own mask, read from its output, gives autograd's gradient
    torch.manual_seed(seed)
    x_t = torch.tensor(x, requires_grad=True)
    out_t = F.dropout(x_t, p, training=True)
    dout = np.random.default_rng(seed + 1).standard_normal(shape)
    out_t.backward(torch.from_numpy(dout))
    keep_t = (out_t != 0).detach().numpy()
    np.testing.assert_allclose(dropout_backward(dout, keep_t, p), x_t.grad.numpy(), rtol=1e-15, atol=0)
    if p < 1:
        np.testing.assert_allclose(out_t.detach().numpy(), np.where(keep_t, x / (1 - p), 0.0), rtol=1e-15)


def test_dropout_evaluation_is_the_identity_and_keeps_the_mean():
    x = np.random.default_rng(0).standard_normal((3, 4, 5))
    out, keep = dropout_forward(x, 0.7, training=False, seed=1)
    np.testing.assert_array_equal(out, F.dropout(torch.from_numpy(x), 0.7, training=False).numpy())
    assert keep.all() and out is not x
    big = np.full((400, 500), 2.0)
    assert abs(dropout_forward(big, 0.5, seed=0)[0].mean() - 2.0) < 0.02  # inverted: expected value kept
    with pytest.raises(ValueError, match="probability"):
        dropout_forward(x, 1.5)
    with pytest.raises(ValueError, match="shaped like dout"):
        dropout_backward(np.ones(3), np.ones(4, dtype=bool))


def test_dropout_gradient_check():
    rng = np.random.default_rng(3)
    x, R = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    _, keep = dropout_forward(x, 0.3, seed=2)
    loss = lambda _: np.sum(R * x * keep / 0.7)
    assert gradcheck.check_gradient(loss, x, dropout_backward(R, keep, 0.3)) < 1e-8


# --------------------------------------------------------------------------- the PyTorch blocks (models)

def residual_reference(block: models.ResidualBlock, x: torch.Tensor) -> torch.Tensor:
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), spelled out with F."""
    def bn(h, module):
        return F.batch_norm(h, module.running_mean.clone(), module.running_var.clone(), module.weight, module.bias,
                            training=module.training, eps=module.eps)

    h = torch.relu(bn(F.conv2d(x, block.conv1.weight, stride=block.conv1.stride, padding=1), block.bn1))
    h = bn(F.conv2d(h, block.conv2.weight, padding=1), block.bn2)
    shortcut = x
    if not isinstance(block.shortcut, torch.nn.Identity):
        conv, norm = block.shortcut
        shortcut = bn(F.conv2d(x, conv.weight, stride=conv.stride), norm)
    return torch.relu(h + shortcut)


@pytest.mark.parametrize("c_in, c_out, stride, size", [(4, 4, 1, 6), (3, 6, 2, 7), (4, 8, 1, 5), (5, 5, 2, 8)])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_residual_block(c_in, c_out, stride, size, mode):
    torch.manual_seed(0)
    block = models.ResidualBlock(c_in, c_out, stride).double()
    with torch.no_grad():
        for p in block.parameters():
            p.normal_()
        for name, buffer in block.named_buffers():
            if "running" in name:
                buffer.uniform_(0.5, 1.5)
    block.train(mode == "train")
    x = torch.randn(3, c_in, size, size, dtype=torch.float64)
    expected = residual_reference(block, x)
    out = block(x)
    assert out.shape == (3, c_out, -(-size // stride), -(-size // stride))
    torch.testing.assert_close(out, expected)
    projection = stride != 1 or c_in != c_out
    assert isinstance(block.shortcut, torch.nn.Identity) != projection
    convs = [m for m in block.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(m.bias is None for m in convs) and len(convs) == 2 + projection


def test_a_zero_residual_branch_is_relu_of_the_identity():
    block = models.ResidualBlock(4, 4).eval()
    with torch.no_grad():
        block.bn2.weight.zero_()
        block.bn2.bias.zero_()
    x = torch.randn(2, 4, 5, 5)
    torch.testing.assert_close(block(x), torch.relu(x))


def test_small_resnet_shapes_and_parameters():
    net = models.SmallResNet(in_channels=3, num_classes=4)
    for size in (32, 28, 17):  # global average pooling: any image size
        assert net(torch.rand(2, 3, size, size)).shape == (2, 4)
    assert models.count_parameters(net) < models.count_parameters(models.CourseCNN(in_channels=3, num_classes=4, image_size=32)) / 5
    assert net.config == dict(in_channels=3, num_classes=4, widths=(16, 32, 64))
    blocks = [m for m in net.features if isinstance(m, models.ResidualBlock)]
    assert [b.conv2.out_channels for b in blocks] == [16, 32, 64] and all(b.conv1.stride == (2, 2) for b in blocks)
    assert net.classifier.in_features == 64
