"""The mixed-precision code paths of fit (both batch sources), evaluate and predict_batches, run on the CPU.

On a CUDA GPU ``autocast(device)`` computes the forward pass in bfloat16 (Ampere and newer) or
float16 (older GPUs, whose small gradients need ``torch.amp.GradScaler``). A machine without a GPU
never runs those lines. Here ``amp_dtype`` is patched to return the GPU's dtype for the CPU as well,
so the very same code runs under CPU autocast: half-precision logits, the float32 loss, the scaler's
scale/step/update, its state in the checkpoint and on resume. What this cannot catch is a tensor
left on the wrong device; that needs a real GPU (``make bench`` and the test suite on one).
"""

import warnings

import pytest
import torch

from imgrec_lib import device as dev
from imgrec_lib.checkpoint import load_checkpoint, load_model
from imgrec_lib.training import evaluate, fit, predict_batches
from test_training import bars, small_cnn  # the same toy problem and small CNN

pytestmark = pytest.mark.usefixtures("one_thread")

GPU_DTYPES = [pytest.param(torch.bfloat16, id="bf16"), pytest.param(torch.float16, id="fp16+GradScaler")]


@pytest.fixture(params=GPU_DTYPES)
def half(request, monkeypatch):
    """Make ``autocast("cpu")`` do what ``autocast("cuda")`` does on a GPU with this dtype."""
    monkeypatch.setattr(dev, "amp_dtype", lambda device: request.param)
    return request.param


def test_autocast_computes_in_the_gpu_dtype(half):
    conv = torch.nn.Conv2d(1, 4, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "CUDA is not available ... Disabling autocast"
        with dev.autocast("cpu"):
            out = conv(torch.rand(2, 1, 8, 8))
    assert out.dtype == half and conv.weight.dtype == torch.float32  # weights stay float32
    assert dev.needs_grad_scaler("cpu") is (half == torch.float16)


def test_fit_learns_in_mixed_precision_and_saves_the_scaler(half, tmp_path):
    net = small_cnn()
    history = fit(net, bars(), bars(seed=1), epochs=4, lr=1e-2, batch_size=16, progress=False,
                  device="cpu", checkpoint=tmp_path / "net.pt")
    assert all(torch.isfinite(torch.tensor(history.train_loss)))
    assert history.test_accuracy[-1] > 0.9
    assert all(p.dtype == torch.float32 for p in net.parameters())
    scaler_state = load_checkpoint(tmp_path / "net.pt")["scaler_state"]
    if half == torch.float16:
        assert scaler_state["scale"] > 0 and "_growth_tracker" in scaler_state
    else:
        assert scaler_state == {}  # bf16 has float32's range: no scaler


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("half", [GPU_DTYPES[1]], indirect=True)
def test_fp16_resume_restores_the_grad_scaler(half, tmp_path):
    """A resumed fp16 run continues with the saved loss scale, and ends where a straight run ends."""
    kwargs = dict(epochs=3, lr=1e-2, batch_size=16, progress=False, device="cpu")
    straight = small_cnn()
    fit(straight, bars(), checkpoint=tmp_path / "a.pt", **kwargs)

    def stop_after_two(epoch, history):
        if epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(small_cnn(), bars(), checkpoint=tmp_path / "b.pt", on_epoch_end=stop_after_two, **kwargs)
    fit(resumed := small_cnn(seed=9), bars(), checkpoint=tmp_path / "b.pt", resume=True, **kwargs)
    assert load_checkpoint(tmp_path / "b.pt")["scaler_state"] == load_checkpoint(tmp_path / "a.pt")["scaler_state"]
    for p, q in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-6)


def test_fit_on_device_learns_in_mixed_precision(half, tmp_path):
    train, test = bars(), bars(seed=1)
    net = small_cnn()
    history = fit(net, train, test, epochs=4, lr=1e-2, batch_size=16, on_device=True,
                  device="cpu", progress=False, checkpoint=tmp_path / "fast.pt")
    assert all(torch.isfinite(torch.tensor(history.train_loss)))
    assert history.test_accuracy[-1] > 0.9
    model, _ = load_model(tmp_path / "fast.pt")
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_evaluation_and_predictions_come_back_in_float32(half):
    net = small_cnn()
    fit(net, bars(), epochs=3, lr=1e-2, batch_size=16, progress=False, device="cpu")
    test = bars(seed=1)
    probs, labels = predict_batches(net, test)
    assert probs.dtype == torch.float32 and torch.allclose(probs.sum(dim=1), torch.ones(len(test)), atol=1e-5)
    metrics = evaluate(net, test)
    accuracy = (probs.argmax(dim=1) == labels).float().mean().item()
    assert metrics["accuracy"] == pytest.approx(accuracy)
    assert isinstance(metrics["loss"], float) and metrics["loss"] < 0.7  # ln 2 = 0.69 is a coin toss
    assert evaluate(net, test.tensors) == pytest.approx(metrics, abs=1e-6)  # the tensors-on-device source
