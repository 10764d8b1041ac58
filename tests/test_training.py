"""Tests for imgrec_lib.training: fit, resume, input checks, evaluate, the schedules."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset, TensorDataset

from imgrec_lib.augment import Augment
from imgrec_lib.checkpoint import CheckpointError, load_checkpoint, load_model
from imgrec_lib.data import as_tensors, classes_of, digits, shapes
from imgrec_lib.models import CourseCNN, LeNet5
from imgrec_lib.training import RECIPES, SCHEDULES, History, evaluate, fit, lr_at, predict_batches


pytestmark = pytest.mark.usefixtures("one_thread")


def bars(n=96, size=8, seed=0):
    """A separable toy problem: class 0 has a bright left half, class 1 a bright right half."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    X = torch.rand(n, 1, size, size, generator=g) * 0.5
    X[y == 0, :, :, : size // 2] += 0.5
    X[y == 1, :, :, size // 2 :] += 0.5
    return TensorDataset(X, y)


def small_cnn(seed=0, num_classes=2):
    torch.manual_seed(seed)
    return CourseCNN(num_classes=num_classes, image_size=8, widths=(4, 8), hidden=16, dropout=0.1)


def test_history_round_trip():
    h = History(train_loss=[1.0, 0.5], train_accuracy=[0.5, 0.75], lr=[1e-3, 1e-4], epoch_seconds=[0.1, 0.2])
    assert len(h) == 2 and History.from_dict(h.as_dict()) == h
    assert History.from_dict({"train_loss": [0.3]}) == History(train_loss=[0.3])


def test_onecycle_matches_pytorch():
    total, peak = 100, 3e-3
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=peak)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=peak, total_steps=total, cycle_momentum=False)
    for step in range(total):
        assert math.isclose(lr_at(step, total, peak, "onecycle"), opt.param_groups[0]["lr"], rel_tol=1e-9), step
        opt.step()
        if step < total - 1:
            sched.step()


def test_cosine_and_constant_schedules():
    assert lr_at(0, 11, 0.1, "cosine") == pytest.approx(0.1)
    assert lr_at(5, 11, 0.1, "cosine") == pytest.approx(0.05)
    assert lr_at(10, 11, 0.1, "cosine") == pytest.approx(0.0)
    assert {lr_at(s, 11, 0.1, "constant") for s in range(11)} == {0.1}
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        lr_at(0, 10, 0.1, "linear")


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_fit_learns_a_separable_problem(schedule):
    net, data = small_cnn(), bars()
    seen = []
    history = fit(net, data, bars(seed=1), epochs=6, lr=1e-2, batch_size=16, schedule=schedule,
                  progress=False, device="cpu", on_epoch_end=lambda epoch, h: seen.append((epoch, len(h))))
    assert seen == [(e, e) for e in range(1, 7)]
    for values in history.as_dict().values():
        assert len(values) == 6
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    assert history.test_accuracy[-1] >= 0.95 and history.train_accuracy[-1] >= 0.9
    assert history.lr[-1] == pytest.approx(lr_at(6 * 6 - 1, 6 * 6, 1e-2, schedule))


def test_same_seed_same_result_and_seed_matters():
    def run(seed):
        net = small_cnn()
        fit(net, bars(), epochs=2, lr=1e-2, batch_size=16, progress=False, device="cpu", seed=seed)
        return torch.cat([p.detach().flatten() for p in net.parameters()])

    first = run(0)
    assert torch.equal(run(0), first)
    assert not torch.equal(run(1), first)  # another shuffle and other dropout masks


def test_checkpoint_each_epoch_and_resume(tmp_path):
    path = tmp_path / "ckpt" / "net.pt"
    net = small_cnn()
    fit(net, bars(), bars(seed=1), epochs=2, lr=1e-2, batch_size=16, progress=False, checkpoint=path)
    saved = load_checkpoint(path)
    assert saved["epoch"] == 2 and len(saved["history"]["test_accuracy"]) == 2
    assert saved["classes"] == ["0", "1"] and tuple(saved["input_shape"]) == (1, 8, 8)
    assert "optimizer_state" in saved and saved["scheduler_state"]["step"] == 2 * 6

    history = fit(small_cnn(seed=5), bars(), bars(seed=1), epochs=3, lr=1e-2, batch_size=16,
                  progress=False, checkpoint=path, resume=True)
    assert len(history) == 3 and len(history.test_accuracy) == 3
    assert history.train_loss[:2] == saved["history"]["train_loss"]  # the first two epochs come from the file
    assert load_checkpoint(path)["epoch"] == 3
    model, _ = load_model(path)
    assert model.config == net.config


class Interrupt(Exception):
    pass


def test_resume_gives_the_same_weights_as_not_stopping(tmp_path):
    kwargs = dict(epochs=3, lr=1e-2, batch_size=16, progress=False, device="cpu")
    straight = small_cnn()
    fit(straight, bars(), checkpoint=tmp_path / "a.pt", **kwargs)

    def stop_after_two(epoch, history):
        if epoch == 2:
            raise Interrupt  # like Ctrl-C after the second checkpoint was written

    with pytest.raises(Interrupt):
        fit(small_cnn(), bars(), checkpoint=tmp_path / "b.pt", on_epoch_end=stop_after_two, **kwargs)
    assert load_checkpoint(tmp_path / "b.pt")["epoch"] == 2
    resumed = small_cnn(seed=9)  # its own weights are replaced by the checkpoint's
    history = fit(resumed, bars(), checkpoint=tmp_path / "b.pt", resume=True, **kwargs)
    assert len(history) == 3
    for p, q in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-6)


def test_resume_needs_a_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="needs checkpoint"):
        fit(small_cnn(), bars(), resume=True, progress=False)
    with pytest.raises(ValueError, match="no checkpoint at .*none.pt yet"):
        fit(small_cnn(), bars(), checkpoint=tmp_path / "none.pt", resume=True, progress=False)


def _weights(net):
    return [p.detach().clone() for p in net.state_dict().values()]


def test_bad_input_fails_before_training():
    net = small_cnn()
    before = _weights(net)
    empty = TensorDataset(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="training data set is empty"):
        fit(net, empty, progress=False)
    X, _ = bars()[:]
    with pytest.raises(ValueError, match=r"labels run from 0 to 2.*2 outputs.*num_classes=3"):
        fit(net, TensorDataset(X, torch.arange(len(X)) % 3), progress=False)
    with pytest.raises(ValueError, match=r"labels run from -1"):
        fit(net, bars(), TensorDataset(X, torch.full((len(X),), -1)), progress=False)
    with pytest.raises(ValueError, match="integer class indices"):
        fit(net, TensorDataset(X, torch.zeros(len(X))), progress=False)
    with pytest.raises(ValueError, match=r"cannot take the training images: a batch of shape \(4, 3, 32, 32\)"):
        fit(net, TensorDataset(torch.rand(8, 3, 32, 32), torch.zeros(8, dtype=torch.long)), progress=False)
    with pytest.raises(ValueError, match="unknown schedule"):
        fit(net, bars(), schedule="step", progress=False)
    with pytest.raises(ValueError, match="must be positive, got 1, 0"):
        fit(net, bars(), epochs=1, batch_size=0, progress=False)
    with pytest.raises(ValueError, match=r"torch.float32 weights but got torch.uint8 images.*/ 255"):
        fit(net, TensorDataset((X * 255).byte(), torch.arange(len(X)) % 2), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(net)))  # nothing was trained


def test_a_checkpoint_path_that_cannot_be_written_fails_before_training(tmp_path):
    net = small_cnn()
    before = _weights(net)
    with pytest.raises(CheckpointError, match="is a folder"):
        fit(net, bars(), checkpoint=tmp_path, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(net)))


class HiddenLabels(Dataset):
    """A data set that does not expose its labels, so only the loop can check them."""

    def __init__(self, base):
        self.base = base

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        x, y = self.base[i]
        return x, 7 if i == 50 else int(y)


def test_bad_label_found_during_training():
    with pytest.raises(ValueError, match="labels run from .* to 7"):
        fit(small_cnn(), HiddenLabels(bars()), epochs=1, batch_size=16, progress=False)


def test_evaluate_and_predict_match_a_manual_count():
    net, data = small_cnn(), bars(n=50, seed=3)
    fit(net, bars(), epochs=1, lr=1e-2, batch_size=16, progress=False)
    net.train()
    X, y = data[:]
    metrics = evaluate(net, Subset(data, range(50)), batch_size=16)
    assert net.training  # the mode is restored
    with torch.no_grad():
        logits = net.eval()(X)
    manual_accuracy = sum(int(logits[i].argmax()) == int(y[i]) for i in range(50)) / 50
    assert metrics["accuracy"] == pytest.approx(manual_accuracy)
    assert metrics["loss"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    probs, labels = predict_batches(net, data, batch_size=16)
    assert probs.shape == (50, 2) and torch.equal(labels, y)
    assert torch.allclose(probs.sum(dim=1), torch.ones(50)) and torch.allclose(probs, logits.softmax(dim=1), atol=1e-6)
    with pytest.raises(ValueError, match="empty"):
        evaluate(net, Subset(data, []))


def test_progress_bar_and_epoch_lines(capsys):
    fit(small_cnn(), bars(), bars(seed=1), epochs=2, batch_size=16, progress=True)
    out, err = capsys.readouterr()
    assert "epoch 1/2: train loss" in out and "epoch 2/2" in out and "test loss" in out  # one line an epoch
    assert "training: 100%" in err and err.count("\n") <= 2  # one bar, redrawn in place
    fit(small_cnn(), bars(), epochs=1, batch_size=16, progress=False)
    assert capsys.readouterr() == ("", "")


def test_lenet_on_colour_images():
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.rand(16, 3, 32, 32, generator=g), torch.arange(16) % 4)
    torch.manual_seed(0)
    net = LeNet5(in_channels=3, num_classes=4, image_size=32)
    history = fit(net, data, data, epochs=1, batch_size=8, progress=False)
    assert len(history) == 1 and 0.0 <= history.test_accuracy[0] <= 1.0


def test_fit_on_the_embedded_digits(tmp_path):
    from imgrec_lib.data import digits

    train, test = digits("train"), digits("test")
    torch.manual_seed(0)
    net = CourseCNN(widths=(8, 16), hidden=32)
    history = fit(net, Subset(train, range(512)), Subset(test, range(200)), epochs=3, batch_size=64,
                  progress=False, checkpoint=tmp_path / "digits.pt")
    assert history.test_accuracy[-1] > 0.5  # chance is 0.1
    ckpt = load_checkpoint(tmp_path / "digits.pt")
    assert ckpt["classes"] == [str(d) for d in range(10)] and tuple(ckpt["input_shape"]) == (1, 28, 28)


@pytest.mark.slow
def test_default_recipe_reaches_97_percent_on_the_digits():
    """The promise of lesson 07: the defaults give >= 97% on the embedded test split."""
    from imgrec_lib.data import digits

    torch.manual_seed(0)
    net = CourseCNN()
    history = fit(net, digits("train"), digits("test"), progress=False)
    assert history.test_accuracy[-1] >= 0.97, history.test_accuracy


# The whole data set as tensors on the device (on_device=True, or a pair (X, y)), and augmentation.

def tiny_net(seed: int = 0) -> CourseCNN:
    torch.manual_seed(seed)
    return CourseCNN(widths=(8, 16), hidden=32)


@pytest.fixture(scope="module")
def small_split():
    """400 training and 200 test digits, all ten classes in each."""
    train, test = digits("train"), digits("test")
    return Subset(train, range(0, 4000, 10)), Subset(test, range(0, 1000, 5))


def test_on_device_with_augmentation_learns_a_tiny_split(small_split):
    train, test = small_split
    history = fit(tiny_net(), train, test, epochs=4, batch_size=50, lr=5e-3, device="cpu", progress=False,
                  on_device=True, augment=Augment(shift=2, degrees=10, scale=0.1), label_smoothing=0.1)
    assert len(history) == 4 and len(history.test_accuracy) == 4
    assert history.train_loss[-1] < 0.8 * history.train_loss[0]  # 32 steps on augmented digits: slow but steady
    assert history.test_accuracy[-1] > 0.5  # chance is 0.1
    assert all(s > 0 for s in history.epoch_seconds)


def test_both_batch_sources_give_the_same_weights_without_shuffling_differences(small_split):
    """A DataLoader and tensors on the device draw the same permutation from the same generator, so
    without augmentation and dropout the two sources train to the same weights."""
    train, _ = small_split
    nets = []
    for on_device in (False, True):
        torch.manual_seed(0)
        net = CourseCNN(widths=(8, 16), hidden=32, dropout=0.0)
        fit(net, Subset(train, range(128)), epochs=2, batch_size=32, device="cpu", progress=False, on_device=on_device)
        nets.append(net.state_dict())
    assert all(torch.allclose(nets[0][k], nets[1][k], atol=1e-5) for k in nets[0])


def test_on_device_is_deterministic_for_a_seed_on_cpu(small_split):
    train, _ = small_split

    def run(seed):
        net = tiny_net()
        fit(net, Subset(train, range(128)), epochs=1, batch_size=32, device="cpu", seed=seed, progress=False,
            on_device=True, augment=Augment(shift=2))
        return net.state_dict()

    a, b, other = run(0), run(0), run(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], other[k]) for k in a), "another seed should shuffle differently"


def test_takes_a_pair_of_tensors_and_evaluate_agrees_on_both_kinds(small_split):
    train, test = small_split
    X, y = as_tensors(train)
    net = tiny_net()
    history = fit(net, (X[:64], y[:64]), as_tensors(test), epochs=1, batch_size=32, device="cpu", progress=False)
    ours, theirs = evaluate(net, as_tensors(test), batch_size=128), evaluate(net, test, device="cpu")
    assert ours["accuracy"] == pytest.approx(theirs["accuracy"]) == pytest.approx(history.test_accuracy[0])
    assert ours["loss"] == pytest.approx(theirs["loss"], rel=1e-4)
    probs, labels = predict_batches(net, as_tensors(test))
    assert torch.equal(labels, as_tensors(test)[1]) and probs.shape == (len(test), 10)


def test_on_device_checkpoint_loads_with_load_model_and_keeps_class_names(small_split, tmp_path):
    train, test = small_split
    net = tiny_net()
    path = tmp_path / "fast.pt"
    history = fit(net, Subset(train, range(64)), test, epochs=1, batch_size=32, device="cpu", progress=False,
                  checkpoint=path, on_device=True)
    loaded, checkpoint = load_model(path, device="cpu")
    assert checkpoint["classes"] == [str(d) for d in range(10)]
    assert tuple(checkpoint["input_shape"]) == (1, 28, 28)
    assert checkpoint["history"]["test_accuracy"] == history.test_accuracy
    X, _ = as_tensors(test)
    with torch.no_grad():
        assert torch.allclose(loaded(X[:16]), net.eval()(X[:16]), atol=1e-5)

    shapes_train = Subset(shapes("train", n=64), range(48))
    net = CourseCNN(num_classes=4, in_channels=3, image_size=32, widths=(4,), hidden=8)
    fit(net, shapes_train, epochs=1, batch_size=16, device="cpu", progress=False, checkpoint=tmp_path / "s.pt",
        on_device=True)
    assert load_model(tmp_path / "s.pt")[1]["classes"] == classes_of(shapes_train) == ["circle", "square", "triangle", "cross"]


def test_on_device_resume_gives_the_same_weights_as_not_stopping(small_split, tmp_path):
    train, _ = small_split
    kwargs = dict(epochs=3, batch_size=32, device="cpu", progress=False, on_device=True, augment=Augment(shift=1))
    straight = tiny_net()
    fit(straight, Subset(train, range(96)), checkpoint=tmp_path / "a.pt", **kwargs)

    def stop_after_one(epoch, history):
        if epoch == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(tiny_net(), Subset(train, range(96)), checkpoint=tmp_path / "b.pt", on_epoch_end=stop_after_one, **kwargs)
    fit(resumed := tiny_net(seed=5), Subset(train, range(96)), checkpoint=tmp_path / "b.pt", resume=True, **kwargs)
    for p, q in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-6)


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
    fit(net, Subset(train, range(64)), Subset(test, range(32)), epochs=1, batch_size=32, device="cpu",
        progress=False, compile=True, checkpoint=tmp_path / "compiled.pt", on_device=True)
    assert compiled == [net]
    assert any(not torch.equal(b, p) for b, p in zip(before, net.parameters()))
    loaded, checkpoint = load_model(tmp_path / "compiled.pt", device="cpu")
    assert list(checkpoint["state_dict"]) == list(net.state_dict())
    X, _ = as_tensors(test)
    with torch.no_grad():
        assert torch.allclose(loaded(X[:16]), net.eval()(X[:16]), atol=1e-5)


def test_tensor_input_gives_clear_errors(small_split):
    train, _ = small_split
    X, y = as_tensors(train)
    with pytest.raises(ValueError, match="empty"):
        fit(tiny_net(), Subset(train, []), progress=False, device="cpu", on_device=True)
    with pytest.raises(ValueError, match="empty"):
        fit(tiny_net(), (X[:0], y[:0]), progress=False, device="cpu")
    with pytest.raises(ValueError, match="labels run from 0 to 9"):
        fit(CourseCNN(num_classes=5, widths=(8,)), train, progress=False, device="cpu", on_device=True)
    with pytest.raises(ValueError, match="cannot take the training images"):
        fit(tiny_net(), (torch.rand(8, 3, 32, 32), torch.zeros(8, dtype=torch.long)), progress=False, device="cpu")
    with pytest.raises(ValueError, match="integer class indices"):
        fit(tiny_net(), (X[:8], y[:8].float()), progress=False, device="cpu")
    with pytest.raises(ValueError, match=r"labels of shape \(8,\)"):
        fit(tiny_net(), (X[:8], y[:7]), progress=False, device="cpu")
    with pytest.raises(ValueError, match=r"images hold integers.*X.float\(\) / 255"):
        fit(tiny_net(), ((X[:8] * 255).byte(), y[:8]), progress=False, device="cpu")
    with pytest.raises(ValueError, match="a Dataset or a pair"):
        fit(tiny_net(), (X[:8], y[:8], y[:8]), progress=False, device="cpu")


def test_the_recipes_are_plain_data_fit_and_the_model_accept():
    assert set(RECIPES) == {"default", "fast"}
    for recipe in RECIPES.values():
        net = CourseCNN(**recipe["model"])
        history = fit(net, bars(n=32, size=28), epochs=1, progress=False, device="cpu",
                      **{k: v for k, v in recipe["fit"].items() if k != "epochs"})
        assert len(history) == 1
    assert RECIPES["fast"]["fit"]["on_device"] and RECIPES["fast"]["fit"]["augment"] == Augment(2, 10.0, 0.1)
