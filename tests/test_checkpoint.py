"""Tests for imgrec_lib.checkpoint: round trip, damaged files, wrong architectures, interrupted saves."""

import os

import numpy as np
import pytest
import torch

from imgrec_lib.checkpoint import CheckpointError, check_writable, load_checkpoint, load_model, save_checkpoint
from imgrec_lib.models import CourseCNN, LeNet5

CLASSES = [str(d) for d in range(10)]


pytestmark = pytest.mark.usefixtures("one_thread")


def _trained_cnn(seed=0):
    """A small CourseCNN after one optimizer step, so BatchNorm statistics are not the defaults."""
    torch.manual_seed(seed)
    net = CourseCNN(widths=(4, 8), hidden=16)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8)
    torch.nn.functional.cross_entropy(net(x), y).backward()
    opt.step()
    return net, opt


def _save(path, net, opt=None, **extra):
    return save_checkpoint(path, net, opt, classes=CLASSES, input_shape=(1, 28, 28), **extra)


def test_round_trip_same_outputs(tmp_path):
    net, opt = _trained_cnn()
    path = _save(tmp_path / "sub" / "cnn.pt", net, opt, epoch=3, history={"train_loss": [1.0, 0.5]},
                 metrics={"test_accuracy": 0.9})
    assert path == tmp_path / "sub" / "cnn.pt" and path.is_file()
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    loaded, ckpt = load_model(path, device="cpu")
    assert type(loaded) is CourseCNN and not loaded.training
    assert loaded.config == net.config and loaded.config["widths"] == (4, 8)
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(loaded(x), net.eval()(x))
    assert ckpt["model_name"] == "course_cnn" and ckpt["classes"] == CLASSES
    assert tuple(ckpt["input_shape"]) == (1, 28, 28)
    assert ckpt["epoch"] == 3 and ckpt["history"] == {"train_loss": [1.0, 0.5]}
    assert ckpt["metrics"]["test_accuracy"] == 0.9
    fresh = torch.optim.Adam(loaded.parameters())
    fresh.load_state_dict(ckpt["optimizer_state"])  # the optimizer state fits the rebuilt model
    assert fresh.state_dict()["state"][0]["step"] == 1
    assert os.listdir(path.parent) == ["cnn.pt"]  # no temporary file left behind


def test_lenet_round_trip_and_overwrite(tmp_path):
    path = tmp_path / "net.pt"
    _save(path, _trained_cnn()[0])
    torch.manual_seed(1)
    lenet = LeNet5(in_channels=3, num_classes=4, image_size=32)
    save_checkpoint(path, lenet, classes=["a", "b", "c", "d"], input_shape=(3, 32, 32))
    loaded, ckpt = load_model(path)
    assert type(loaded) is LeNet5 and "optimizer_state" not in ckpt
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(loaded(x.to(next(loaded.parameters()).device)).cpu(), lenet.eval()(x))


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"nowhere\.pt does not exist.*make train.*--checkpoint"):
        load_checkpoint(tmp_path / "nowhere.pt")
    with pytest.raises(CheckpointError, match="is a folder"):
        load_model(tmp_path)


def test_truncated_file(tmp_path):
    path = _save(tmp_path / "cnn.pt", _trained_cnn()[0])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*cnn\.pt.*damaged.*make train"):
        load_model(path)


def test_text_file(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("these are not weights\n")
    with pytest.raises(CheckpointError, match=r"notes\.pt.*not a PyTorch checkpoint"):
        load_checkpoint(path)


def test_plain_state_dict_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(LeNet5().state_dict(), path)
    with pytest.raises(CheckpointError, match="not an imgrec checkpoint.*bare state_dict"):
        load_model(path)


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(LeNet5(), path)  # a whole pickled module: weights_only refuses it
    with pytest.raises(CheckpointError, match="cannot read checkpoint.*pickled Python objects"):
        load_checkpoint(path)


def test_weights_of_another_architecture(tmp_path):
    path = _save(tmp_path / "cnn.pt", _trained_cnn()[0])
    ckpt = torch.load(path, weights_only=True)
    ckpt["model_config"]["widths"] = (8, 16)  # the stored config no longer matches the weights
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=r"do not fit the CourseCNN.*of another shape.*another model"):
        load_model(path)

    ckpt["model_config"]["widths"] = (4, 8)
    ckpt["state_dict"] = LeNet5().state_dict()  # LeNet weights labelled as a CourseCNN
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=r"\d+ missing.*\d+ unexpected") as info:
        load_model(path)
    assert len(str(info.value)) < 600  # a summary, not PyTorch's full listing

    ckpt["model_name"] = "resnet"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="cannot build.*unknown model 'resnet'"):
        load_model(path)


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "cnn.pt"
    old_net, _ = _trained_cnn(seed=0)
    _save(path, old_net, epoch=1)
    real_save = torch.save

    def save_half_then_fail(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.seek(0)
        f.truncate(100)  # half-written...
        raise OSError("disk full")  # ...and then the crash

    monkeypatch.setattr(torch, "save", save_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        _save(path, _trained_cnn(seed=1)[0], epoch=2)
    monkeypatch.undo()

    assert os.listdir(tmp_path) == ["cnn.pt"]  # the temporary file is gone
    loaded, ckpt = load_model(path)
    assert ckpt["epoch"] == 1
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(loaded(x.to(next(loaded.parameters()).device)).cpu(), old_net.eval()(x))


def test_only_library_models_can_be_saved(tmp_path):
    with pytest.raises(CheckpointError, match="needs a model from imgrec_lib.models"):
        save_checkpoint(tmp_path / "x.pt", torch.nn.Linear(2, 2), classes=["a", "b"], input_shape=(2,))
    assert not (tmp_path / "x.pt").exists()


def test_numpy_values_are_saved_as_plain_python(tmp_path):
    """An np.logspace learning rate or labels.max() + 1 must not make the file unreadable."""
    net, _ = _trained_cnn()
    opt = torch.optim.AdamW(net.parameters(), lr=np.float64(3e-3))
    path = _save(tmp_path / "np.pt", net, opt, epoch=np.int64(2), metrics={"test_accuracy": np.float32(0.9)},
                 history={"lr": [np.float64(1e-3)]}, confusion=np.eye(2, dtype=np.int64))
    ckpt = load_checkpoint(path)
    assert ckpt["epoch"] == 2 and type(ckpt["epoch"]) is int
    assert type(ckpt["metrics"]["test_accuracy"]) is float and type(ckpt["history"]["lr"][0]) is float
    assert torch.equal(ckpt["confusion"], torch.eye(2, dtype=torch.int64))
    assert ckpt["optimizer_state"]["param_groups"][0]["lr"] == pytest.approx(3e-3)


class Custom:
    pass


def test_a_file_that_would_not_load_back_is_not_saved(tmp_path):
    net, opt = _trained_cnn()
    path = _save(tmp_path / "good.pt", net, opt, epoch=4)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match="would not load back.*previous checkpoint is unchanged"):
        _save(path, net, opt, note=Custom())
    assert path.read_bytes() == before and load_checkpoint(path)["epoch"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.pt"]  # no temporary file left


def test_a_path_that_cannot_be_written_is_a_clear_error(tmp_path):
    net, _ = _trained_cnn()
    with pytest.raises(CheckpointError, match="is a folder: give a file name"):
        _save(tmp_path, net)
    (tmp_path / "afile").write_text("not a folder")
    with pytest.raises(CheckpointError, match="cannot make its folder"):
        _save(tmp_path / "afile" / "net.pt", net)
    with pytest.raises(CheckpointError, match="is a folder"):
        check_writable(tmp_path)
