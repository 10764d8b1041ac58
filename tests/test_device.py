"""Tests for imgrec_lib.device: device choice, seeding, mixed precision, memory format."""

import contextlib
import random

import numpy as np
import pytest
import torch

from imgrec_lib import device as dev
from imgrec_lib.device import (autocast, available_devices, eval_mode, model_device, needs_grad_scaler, pick_device,
                               seed_everything, to_channels_last)


@pytest.fixture
def no_accelerator(monkeypatch):
    """Pretend the machine has neither CUDA nor MPS, and no IMGREC_DEVICE."""
    monkeypatch.delenv(dev.DEVICE_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_default_order_cuda_then_mps_then_cpu(no_accelerator, monkeypatch):
    assert pick_device() == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device() == torch.device("cuda")
    assert available_devices() == ["cuda:0", "cuda:1", "mps", "cpu"]


def test_argument_and_env_override(no_accelerator, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device(" CUDA:1 ") == torch.device("cuda:1")
    assert pick_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setenv(dev.DEVICE_ENV, "cpu")
    assert pick_device() == torch.device("cpu")
    assert pick_device("cuda") == torch.device("cuda")  # the argument beats the environment


def test_unavailable_device_names_the_available_ones(no_accelerator, monkeypatch):
    for name in ["cuda", "cuda:0", "mps"]:
        with pytest.raises(ValueError, match=r"not available.*available: cpu"):
            pick_device(name)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"'cuda:1' is not available.*cuda:0, cpu"):
        pick_device("cuda:1")
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        pick_device("gpu0")


def test_the_message_names_what_chose_the_device(no_accelerator, monkeypatch):
    with pytest.raises(ValueError, match="Pass one of these, or leave it out") as passed:
        pick_device("cuda")
    assert "IMGREC_DEVICE" not in str(passed.value)  # --device cuda: the environment played no part
    monkeypatch.setenv("IMGREC_DEVICE", "cuda")
    with pytest.raises(ValueError, match="Set IMGREC_DEVICE to one of these, or unset it"):
        pick_device()


def test_env_naming_a_missing_device_says_how_to_fix_it(no_accelerator, monkeypatch):
    monkeypatch.setenv(dev.DEVICE_ENV, "cuda")
    with pytest.raises(ValueError, match=dev.DEVICE_ENV):
        pick_device()


def _draws():
    return random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist(), torch.nn.Linear(4, 2).weight.tolist()


def test_seed_everything_repeats_python_numpy_and_torch():
    seed_everything(123)
    first = _draws()
    seed_everything(123)
    assert _draws() == first
    seed_everything(124)
    second = _draws()
    assert all(a != b for a, b in zip(first, second))


def test_seed_everything_deterministic_flag():
    before = torch.are_deterministic_algorithms_enabled()
    try:
        seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(before)


def test_autocast_is_a_no_op_on_cpu():
    assert isinstance(autocast("cpu"), contextlib.nullcontext)
    assert not needs_grad_scaler("cpu")
    with autocast("cpu"):
        y = torch.nn.Linear(4, 3)(torch.randn(2, 4))
    assert y.dtype == torch.float32


@pytest.mark.parametrize("bf16, dtype, scaler", [(True, torch.bfloat16, False), (False, torch.float16, True)])
def test_cuda_mixed_precision_prefers_bf16(monkeypatch, bf16, dtype, scaler):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    cuda = torch.device("cuda")
    assert dev.amp_dtype(cuda) == dtype
    assert needs_grad_scaler(cuda) is scaler
    assert dev.amp_dtype(torch.device("mps")) is None


def test_to_channels_last_tensor_and_model():
    x = torch.randn(2, 3, 5, 5)
    y = to_channels_last(x, "cpu")
    assert y.is_contiguous(memory_format=torch.channels_last) and torch.equal(x, y)
    labels = torch.arange(4)
    assert to_channels_last(labels, "cpu") is labels
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    assert to_channels_last(net, "cpu") is net
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)
    z = torch.randn(2, 3, 5, 5)
    assert to_channels_last(z, torch.device("mps")) is z  # left alone where it does not help


# --- eval_mode, model_device -------------------------------------------------------------------


def _net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4), torch.nn.Dropout(0.5))


def _modes(model: torch.nn.Module) -> list[bool]:
    return [m.training for m in model.modules()]


@pytest.mark.parametrize("training", [True, False])
def test_eval_mode_puts_every_module_in_eval_and_restores_the_mode(training):
    net = _net().train(training)
    with eval_mode(net) as inside:
        assert inside is net and _modes(net) == [False] * 4
    assert _modes(net) == [training] * 4


def test_eval_mode_restores_the_mode_when_the_block_raises():
    net = _net().train()
    with pytest.raises(RuntimeError, match="boom"), eval_mode(net):
        raise RuntimeError("boom")
    assert _modes(net) == [True] * 4


def test_eval_mode_gives_each_submodule_its_own_mode_back():
    net = _net().train()
    net[1].eval()  # a frozen BatchNorm inside a training model
    with eval_mode(net):
        with eval_mode(net[0]):
            assert _modes(net) == [False] * 4
        assert _modes(net) == [False] * 4  # the inner block does not undo the outer one
    assert _modes(net) == [True, True, False, True]


def test_eval_mode_uses_running_statistics():
    net = _net().train()
    x = torch.randn(8, 4)
    with eval_mode(net), torch.no_grad():
        a, b = net(x), net(x)
    assert torch.equal(a, b)  # no dropout, and BatchNorm's running statistics did not change
    assert torch.equal(net[1].running_mean, torch.zeros(4))


def test_model_device():
    assert model_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert model_device(torch.nn.ReLU()) == torch.device("cpu")  # no parameters: the CPU
