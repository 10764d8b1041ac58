"""Tests for imgrec_lib.models: shapes, gradients, configs, parameter counts."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from imgrec_lib.models import MODELS, CourseCNN, LeNet5, build_model, count_parameters

SHAPES = [(1, 28), (3, 32)]  # grey digits, colour images


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("channels, size", SHAPES)
def test_output_shape_and_backward(name, channels, size):
    torch.manual_seed(0)
    net = build_model(name, in_channels=channels, num_classes=7, image_size=size)
    x = torch.rand(5, channels, size, size)
    y_hat = net(x)
    assert y_hat.shape == (5, 7) and y_hat.dtype == torch.float32
    torch.nn.functional.cross_entropy(y_hat, torch.arange(5)).backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"no gradient reaches {pname}"


@pytest.mark.parametrize("name", list(MODELS))
def test_build_model_round_trip(name):
    torch.manual_seed(0)
    net = build_model(name, in_channels=3, num_classes=4, image_size=32)
    assert type(net) is MODELS[name] and net.name == name
    copy = build_model(net.name, **net.config)
    assert copy.config == net.config and repr(copy) == repr(net)
    copy.load_state_dict(net.state_dict())  # same architecture: every key and shape fits
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(copy.eval()(x), net.eval()(x))


def test_course_cnn_defaults_and_widths():
    net = CourseCNN()
    assert net.config == dict(in_channels=1, num_classes=10, image_size=28, widths=(32, 64), hidden=128, dropout=0.25)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64] and all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == 2
    assert "Conv2d" in repr(net) and "Dropout(p=0.25" in repr(net)
    deep = CourseCNN(widths=[8, 16, 32])  # 28 -> 14 -> 7 -> 3
    assert deep.config["widths"] == (8, 16, 32)
    assert deep(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_course_cnn_pool_first_reorders_each_block():
    torch.manual_seed(0)
    net = CourseCNN(widths=(8, 16), pool_first=True)
    kinds = [type(m).__name__ for m in net.features]
    assert kinds == ["Conv2d", "MaxPool2d", "BatchNorm2d", "ReLU"] * 2
    assert [type(m).__name__ for m in CourseCNN(widths=(8, 16)).features] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"] * 2
    assert net.config["pool_first"] is True and "pool_first" not in CourseCNN().config  # old configs unchanged
    assert count_parameters(net) == count_parameters(CourseCNN(widths=(8, 16)))  # same weights, other order
    copy = build_model(net.name, **net.config)
    copy.load_state_dict(net.state_dict())
    x = torch.rand(3, 1, 28, 28)
    assert repr(copy) == repr(net) and torch.equal(copy.eval()(x), net.eval()(x))
    # BatchNorm after the pool sees the 14x14 maps: its running mean is the mean of the pooled conv output
    net.train()(x)
    pooled = torch.nn.functional.max_pool2d(net.features[0](x), 2)
    momentum = net.features[2].momentum
    assert torch.allclose(net.features[2].running_mean, momentum * pooled.mean(dim=(0, 2, 3)), atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(size=st.integers(8, 40), channels=st.integers(1, 3), n_widths=st.integers(1, 3), pool_first=st.booleans())
def test_course_cnn_any_image_size(size, channels, n_widths, pool_first):
    if size // 2**n_widths < 1:
        with pytest.raises(ValueError, match="too small"):
            CourseCNN(channels, image_size=size, widths=(4,) * n_widths)
        return
    net = CourseCNN(channels, num_classes=3, image_size=size, widths=(4,) * n_widths, hidden=8, pool_first=pool_first)
    assert net(torch.rand(2, channels, size, size)).shape == (2, 3)


def test_lenet5_layout_and_parameter_count():
    net = LeNet5()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(c.out_channels, c.kernel_size, c.padding) for c in convs] == [(6, (5, 5), (2, 2)), (16, (5, 5), (0, 0))]
    assert [m.out_features for m in linears] == [120, 84, 10]
    # the classic figure for LeNet-5 with plain dense layers: 61,706 on 32x32 (and 28x28 padded) input
    assert count_parameters(net) == 61_706
    assert count_parameters(LeNet5(image_size=32)) == 61_706
    assert count_parameters(LeNet5(in_channels=3, image_size=32)) == 61_706 + 2 * 6 * 25


def test_count_parameters_trainable_only():
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    assert count_parameters(net) == 8 + 3
    net[0].weight.requires_grad_(False)
    assert count_parameters(net) == 5 and count_parameters(net, trainable_only=False) == 11


@pytest.mark.parametrize("net", [CourseCNN(), LeNet5()])
def test_wrong_input_shape_is_a_clear_error(net):
    expected = r"expects a batch of shape \(N, 1, 28, 28\), got \(1, 28, 28\): add the batch"
    with pytest.raises(ValueError, match=expected):
        net(torch.rand(1, 28, 28))
    with pytest.raises(ValueError, match=r"got \(2, 3, 32, 32\): build the model with in_channels=3"):
        net(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"got \(784,\): pass a batch"):
        net(torch.rand(784))


@pytest.mark.parametrize("name", list(MODELS))
def test_input_check_needs_no_square_image_and_passes_autocast(name):
    # The check reads only the batch axis, channels and dtype: a wrong size fails in the first Linear.
    net = build_model(name, in_channels=1, image_size=28)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        net(torch.rand(2, 1, 28, 20))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert net(torch.rand(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("net", [CourseCNN(), LeNet5()])
def test_wrong_input_dtype_is_a_clear_error(net):
    with pytest.raises(ValueError, match=r"float32 weights but got torch.uint8 images: .*x.to\(torch.float32\) / 255"):
        net(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"got torch.float64 images: convert them with x.to\(torch.float32\)$"):
        net(torch.zeros(2, 1, 28, 28, dtype=torch.float64))
    assert net.double()(torch.zeros(2, 1, 28, 28, dtype=torch.float64)).dtype == torch.float64


def test_build_model_errors():
    with pytest.raises(ValueError, match="unknown model 'resnet'.*course_cnn, lenet5"):
        build_model("resnet")
    with pytest.raises(ValueError, match="bad settings for model 'lenet5'"):
        build_model("lenet5", widths=(8,))
    with pytest.raises(ValueError, match="at least 12x12"):
        LeNet5(image_size=11)
    assert LeNet5(image_size=12)(torch.rand(1, 1, 12, 12)).shape == (1, 10)
