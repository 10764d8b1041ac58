"""Tests for imgrec_lib.fast: the fast training path (data as tensors on the device)."""

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import Subset

from imgrec_lib.checkpoint import CheckpointError, load_model
from imgrec_lib.data import as_tensors, classes_of, digits, shapes
from imgrec_lib.fast import evaluate_tensors, fit_fast, random_affine, random_shift
from imgrec_lib.models import CourseCNN
from imgrec_lib.training import evaluate


def tiny_net(seed: int = 0) -> CourseCNN:
    torch.manual_seed(seed)
    return CourseCNN(widths=(8, 16), hidden=32)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: these runs are small, and on a busy machine two threads wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def small_split():
    """400 training and 200 test digits, all ten classes in each."""
    train, test = digits("train"), digits("test")
    return Subset(train, range(0, 4000, 10)), Subset(test, range(0, 1000, 5))


def test_learns_on_a_tiny_split(small_split):
    train, test = small_split
    history = fit_fast(tiny_net(), train, test, epochs=4, batch_size=50, lr=5e-3, device="cpu", progress=False)
    assert len(history) == 4 and len(history.test_accuracy) == 4
    assert history.train_loss[-1] < 0.7 * history.train_loss[0]
    assert history.test_accuracy[-1] > 0.6  # chance is 0.1
    assert all(s > 0 for s in history.epoch_seconds)


def test_deterministic_for_a_seed_on_cpu(small_split):
    train, _ = small_split

    def run(seed):
        net = tiny_net()
        fit_fast(net, Subset(train, range(128)), epochs=1, batch_size=32, device="cpu", seed=seed, progress=False)
        return net.state_dict()

    a, b, other = run(0), run(0), run(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], other[k]) for k in a), "another seed should shuffle differently"


def test_takes_a_pair_of_tensors(small_split):
    train, test = small_split
    X, y = as_tensors(train)
    history = fit_fast(tiny_net(), (X[:64], y[:64]), as_tensors(test), epochs=1, batch_size=32,
                       device="cpu", progress=False)
    assert 0.0 <= history.test_accuracy[0] <= 1.0


def test_evaluate_tensors_agrees_with_evaluate(small_split):
    _, test = small_split
    net = tiny_net().eval()
    X, y = as_tensors(test)
    ours, theirs = evaluate_tensors(net, X, y, batch_size=128), evaluate(net, test, device="cpu")
    assert ours["accuracy"] == pytest.approx(theirs["accuracy"])
    assert ours["loss"] == pytest.approx(theirs["loss"], rel=1e-4)


def test_checkpoint_loads_with_load_model(small_split, tmp_path):
    train, test = small_split
    net = tiny_net()
    path = tmp_path / "fast.pt"
    history = fit_fast(net, Subset(train, range(64)), test, epochs=1, batch_size=32, device="cpu", progress=False,
                       checkpoint=path)
    loaded, checkpoint = load_model(path, device="cpu")
    assert checkpoint["classes"] == [str(d) for d in range(10)]
    assert tuple(checkpoint["input_shape"]) == (1, 28, 28)
    assert checkpoint["history"]["test_accuracy"] == history.test_accuracy
    X, _ = as_tensors(test)
    with torch.no_grad():
        assert torch.allclose(loaded(X[:16]), net.eval()(X[:16]), atol=1e-5)


def test_compile_trains_the_model_and_saves_its_plain_weights(small_split, tmp_path, monkeypatch):
    """compile=True: the compiled module trains the model itself, and the checkpoint holds the
    model's own parameter names (no ``_orig_mod.`` prefix). The CPU compiler would take ~40 s here,
    so the graph is captured by TorchDynamo but run by the "aot_eager" backend."""
    compiled = []
    real_compile = torch.compile

    def quick_compile(model, **kwargs):
        compiled.append(model)
        return real_compile(model, backend="aot_eager", **kwargs)

    monkeypatch.setattr(torch, "compile", quick_compile)
    train, test = small_split
    net = tiny_net()
    before = [p.detach().clone() for p in net.parameters()]
    fit_fast(net, Subset(train, range(64)), Subset(test, range(32)), epochs=1, batch_size=32, device="cpu",
             progress=False, compile=True, checkpoint=tmp_path / "compiled.pt")
    assert compiled == [net]
    assert any(not torch.equal(b, p) for b, p in zip(before, net.parameters()))
    loaded, checkpoint = load_model(tmp_path / "compiled.pt", device="cpu")
    assert list(checkpoint["state_dict"]) == list(net.state_dict())
    X, _ = as_tensors(test)
    with torch.no_grad():
        assert torch.allclose(loaded(X[:16]), net.eval()(X[:16]), atol=1e-5)


def test_random_shift_keeps_shape_and_zero_is_identity():
    X = torch.rand(5, 3, 9, 7)
    assert random_shift(X, 2).shape == X.shape
    assert random_shift(X, 0) is X


@settings(max_examples=30, deadline=None)
@given(shift=st.integers(1, 3), seed=st.integers(0, 2**31 - 1))
def test_random_shift_moves_each_image_within_shift(shift, seed):
    n, size = 16, 11
    X = torch.zeros(n, 2, size, size)
    X[:, :, size // 2, size // 2] = torch.tensor([1.0, 2.0])  # one bright pixel in the centre, both channels
    out = random_shift(X, shift, torch.Generator().manual_seed(seed))
    moved = 0
    for image in out:
        (r, c), = (image[0] == 1.0).nonzero().tolist()  # exactly one bright pixel survives
        assert abs(r - size // 2) <= shift and abs(c - size // 2) <= shift
        assert image[1, r, c] == 2.0 and image.sum() == 3.0  # both channels moved together, nothing else
        moved += (r, c) != (size // 2, size // 2)
    assert moved > 0, "with 16 images, at least one should have moved"


def test_random_shift_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        random_shift(torch.rand(3, 28, 28), 2)
    with pytest.raises(ValueError, match="shift"):
        random_shift(torch.rand(1, 1, 8, 8), -1)


def test_random_affine_keeps_shape_and_zero_is_identity():
    X = torch.rand(5, 3, 9, 7)
    assert random_affine(X, 15, 0.1).shape == X.shape
    assert random_affine(X, 0, 0) is X


def test_random_affine_rotates_each_image_by_its_own_angle():
    size = 21
    X = torch.zeros(64, 1, size, size)
    X[:, :, size // 2, 2:size - 2] = 1.0  # a horizontal bar through the centre
    out = random_affine(X, 45, 0.0, torch.Generator().manual_seed(0))
    rows, cols = torch.meshgrid(torch.arange(size) - size // 2, torch.arange(size) - size // 2, indexing="ij")
    # the angle of each bar from its second moments: 0.5 * atan2(2 Sxy, Sxx - Syy)
    w = out[:, 0]
    sxx, syy, sxy = (w * cols**2).sum((1, 2)), (w * rows**2).sum((1, 2)), (w * cols * rows).sum((1, 2))
    angles = torch.rad2deg(0.5 * torch.atan2(2 * sxy, sxx - syy)).abs()
    assert angles.max() <= 46 and angles.std() > 5, "angles within -45..45 degrees, and not all the same"
    assert out[:, 0, size // 2, size // 2].min() > 0.99  # rotation about the centre keeps the centre


@settings(max_examples=25, deadline=None)
@given(scale=st.floats(0.05, 0.5), seed=st.integers(0, 2**31 - 1))
def test_random_affine_zooms_within_scale(scale, seed):
    size = 31
    X = torch.zeros(32, 1, size, size)
    X[:, :, 10:21, 10:21] = 1.0  # an 11x11 square in the centre
    out = random_affine(X, 0, scale, torch.Generator().manual_seed(seed))
    ratio = out.sum((1, 2, 3)) / X.sum((1, 2, 3))  # the area grows with the square of the zoom
    assert (ratio >= (1 - scale) ** 2 - 0.1).all() and (ratio <= (1 + scale) ** 2 + 0.1).all()
    assert ratio.max() - ratio.min() > 0.05, "each image should get its own zoom"


def test_random_affine_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        random_affine(torch.rand(3, 28, 28), 10, 0.1)
    with pytest.raises(ValueError, match="degrees"):
        random_affine(torch.rand(1, 1, 8, 8), -1, 0.1)
    with pytest.raises(ValueError, match="scale"):
        random_affine(torch.rand(1, 1, 8, 8), 10, 1.0)


def test_bad_input_gives_clear_errors(small_split):
    train, _ = small_split
    X, y = as_tensors(train)
    with pytest.raises(ValueError, match="empty"):
        fit_fast(tiny_net(), Subset(train, []), progress=False, device="cpu")
    with pytest.raises(ValueError, match="labels run from 0 to 9"):
        fit_fast(CourseCNN(num_classes=5, widths=(8,)), train, progress=False, device="cpu")
    with pytest.raises(ValueError, match="cannot take the training images"):
        fit_fast(tiny_net(), (torch.rand(8, 3, 32, 32), torch.zeros(8, dtype=torch.long)), progress=False,
                 device="cpu")
    with pytest.raises(ValueError, match="integer class indices"):
        fit_fast(tiny_net(), (X[:8], y[:8].float()), progress=False, device="cpu")
    with pytest.raises(ValueError, match=r"labels of shape \(8,\)"):
        fit_fast(tiny_net(), (X[:8], y[:7]), progress=False, device="cpu")
    with pytest.raises(ValueError, match="unknown schedule"):
        fit_fast(tiny_net(), train, schedule="linear", progress=False, device="cpu")
    with pytest.raises(ValueError, match="must be positive"):
        fit_fast(tiny_net(), train, epochs=0, progress=False, device="cpu")
    with pytest.raises(ValueError, match=r"images hold integers.*X.float\(\) / 255"):
        fit_fast(tiny_net(), ((X[:8] * 255).byte(), y[:8]), progress=False, device="cpu")
    with pytest.raises(CheckpointError, match="is a folder"):
        fit_fast(tiny_net(), train, progress=False, device="cpu", checkpoint=Path(__file__).parent)


def test_checkpoint_keeps_the_class_names_of_a_subset(tmp_path):
    train = Subset(shapes("train", n=64), range(48))
    net = CourseCNN(num_classes=4, in_channels=3, image_size=32, widths=(4,), hidden=8)
    fit_fast(net, train, epochs=1, batch_size=16, device="cpu", progress=False, checkpoint=tmp_path / "s.pt")
    assert load_model(tmp_path / "s.pt")[1]["classes"] == classes_of(train) == ["circle", "square", "triangle", "cross"]
