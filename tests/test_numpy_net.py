"""Tests for imgrec_lib.numpy_net and the torch-free checkpoint reader (checkpoint.load_checkpoint(path,
as_numpy=True)): PyTorch is the oracle. The reader gives what torch.load(weights_only=True) gives and refuses
what it refuses; the NumPy layers give the trained nets' probabilities; `predict` runs with torch blocked."""

import io
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from imgrec_lib import cli, inference, numpy_net
from imgrec_lib.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from imgrec_lib.data import load_digits_arrays
from imgrec_lib.models import CourseCNN, LeNet5
from imgrec_lib.training import RECIPES

ROOT = Path(__file__).resolve().parents[1]
CLASSES = [str(d) for d in range(10)]

pytestmark = pytest.mark.usefixtures("one_thread")


def trained(net, seed=0, shape=(1, 28, 28)):
    """``net`` after two Adam steps on random images, so that no weight or BatchNorm statistic is at its default."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        F.cross_entropy(net(torch.rand(8, *shape)), torch.arange(8) % net.config["num_classes"]).backward()
        opt.step()
    return net.eval(), opt


NETS = {  # name: (model, input shape)
    "course_cnn": (lambda: CourseCNN(), (1, 28, 28)),
    "course_cnn_fast": (lambda: CourseCNN(**RECIPES["fast"]["model"]), (1, 28, 28)),
    "course_cnn_3_blocks": (lambda: CourseCNN(in_channels=3, num_classes=4, image_size=32, widths=(4, 8, 16),
                                              hidden=16, pool_first=True), (3, 32, 32)),
    "lenet5": (lambda: LeNet5(), (1, 28, 28)),
    "lenet5_colour": (lambda: LeNet5(in_channels=3, num_classes=4, image_size=32), (3, 32, 32)),
}


@pytest.fixture(scope="module", params=list(NETS))
def saved(request, tmp_path_factory):
    """(model in eval mode, its checkpoint file, input shape) for each kind of net the CLI can train."""
    make, shape = NETS[request.param]
    net, opt = trained(make(), shape=shape)
    path = tmp_path_factory.mktemp("ckpt") / f"{request.param}.pt"
    classes = CLASSES[:net.config["num_classes"]]
    save_checkpoint(path, net, opt, classes=classes, input_shape=shape, epoch=2, history={"loss": [1.5, 0.5]})
    return net, path, shape


def assert_same(ours, theirs, where="checkpoint"):
    """NumPy arrays where torch has tensors, everything else equal, containers of the same types."""
    if torch.is_tensor(theirs):
        assert isinstance(ours, np.ndarray), where
        assert ours.shape == tuple(theirs.shape) and ours.dtype == theirs.numpy().dtype, where
        assert np.array_equal(ours, theirs.numpy()), where
    elif isinstance(theirs, dict):
        assert type(ours) is type(theirs) and list(ours) == list(theirs), where
        for key in theirs:
            assert_same(ours[key], theirs[key], f"{where}[{key!r}]")
    elif isinstance(theirs, (list, tuple)):
        kind = tuple if isinstance(theirs, torch.Size) else type(theirs)  # a torch.Size reads back as a tuple
        assert type(ours) is kind and len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_same(a, b, f"{where}[{i}]")
    else:
        assert type(ours) is type(theirs) and ours == theirs, where


# --------------------------------------------------------------------------- reading without torch

def test_the_reader_gives_what_torch_load_gives(saved):
    _, path, _ = saved
    assert_same(load_checkpoint(path, as_numpy=True), torch.load(path, weights_only=True))


def test_the_reader_follows_offsets_strides_shared_storage_and_dtypes(tmp_path):
    """Views of one storage (a transpose, a slice, a column), every dtype torch.save writes, 0-d and empty."""
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    extras = {"transposed": base.t(), "slice": base[1:3, 2:], "column": base[:, 4], "scalar": torch.tensor(2.5),
              "empty": torch.zeros(0, 3), "size": torch.Size([2, 3]), "ordered": {"b": 1, "a": [None, True, "x"]}}
    for dtype in (torch.float64, torch.float16, torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8,
                  torch.bool):
        extras[str(dtype)] = (torch.arange(-3, 9) % 5).to(dtype).reshape(3, 4)[:, ::2]
    ckpt = {"model_name": "lenet5", "model_config": {}, "state_dict": {}, "classes": ["a"], "input_shape": (1, 28, 28),
            "extras": extras}
    torch.save(ckpt, tmp_path / "views.pt")
    assert_same(load_checkpoint(tmp_path / "views.pt", as_numpy=True), torch.load(tmp_path / "views.pt", weights_only=True))


def test_the_repository_checkpoint_reads_the_same(tmp_path):
    path = ROOT / "checkpoints" / "course_cnn.pt"
    if not path.is_file():
        pytest.skip("no checkpoints/course_cnn.pt here (make train writes it)")
    assert_same(load_checkpoint(path, as_numpy=True), torch.load(path, weights_only=True))


def same_error(path) -> tuple[str, str]:
    """The messages of the torch path and of the NumPy path for one bad file."""
    messages = []
    for as_numpy in (False, True):
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path, as_numpy=as_numpy)
        messages.append(str(info.value))
    return messages[0], messages[1]


def test_broken_files_get_the_torch_paths_messages(saved, tmp_path):
    _, good, _ = saved
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.pt"
    text.write_text("these are not weights\n")
    for path in (truncated, text):
        theirs, ours = same_error(path)
        assert "damaged or not a PyTorch checkpoint" in ours and "make train" in ours
        assert ours.split(" (")[0] == theirs.split(" (")[0], (ours, theirs)  # the same words, then each reader's detail

    torch.save(LeNet5().state_dict(), tmp_path / "bare.pt")
    torch.save({"model_name": "lenet5", "classes": CLASSES}, tmp_path / "lacking.pt")
    for name in ("bare.pt", "lacking.pt", "missing.pt"):
        theirs, ours = same_error(tmp_path / name)
        assert ours == theirs
    assert "bare state_dict" in same_error(tmp_path / "bare.pt")[1]


class Remove:
    """Pickles as a call of os.remove: what a malicious checkpoint would do."""

    def __init__(self, victim):
        self.victim = str(victim)

    def __reduce__(self):
        return os.remove, (self.victim,)


def test_a_checkpoint_is_data_never_code(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("still here")
    ckpt = {"model_name": "lenet5", "model_config": {}, "state_dict": {}, "classes": ["a"], "input_shape": (1, 28, 28),
            "extra": Remove(victim)}
    torch.save(ckpt, tmp_path / "evil.pt")
    torch.save(LeNet5(), tmp_path / "module.pt")  # a whole pickled module
    for name in ("evil.pt", "module.pt"):
        theirs, ours = same_error(tmp_path / name)
        assert ours == theirs and "pickled Python objects" in ours
    assert victim.read_text() == "still here"

    with zipfile.ZipFile(tmp_path / "global.pt", "w") as archive:  # a forbidden global in a hand-made pickle
        archive.writestr("archive/data.pkl", pickle.dumps({"model_name": io.StringIO}, protocol=2))
    assert "pickled Python objects" in same_error(tmp_path / "global.pt")[1]


# --------------------------------------------------------------------------- the forward pass

def digits(shape, n=64):
    """n test digits as (N, C, H, W) float32 in [0, 1], resized and repeated to ``shape`` if need be."""
    images = load_digits_arrays("test")[0][::1000 // n][:n].astype(np.float32) / 255
    x = torch.from_numpy(images)[:, None]
    x = F.interpolate(x, size=shape[1:], mode="bilinear") if tuple(x.shape[2:]) != shape[1:] else x
    return x.repeat(1, shape[0], 1, 1).numpy()


def probabilities(logits):
    """Softmax in float64, written out here rather than taken from the library under test."""
    e = np.exp(logits.astype(np.float64) - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_the_numpy_layers_give_pytorchs_probabilities(saved):
    net, path, shape = saved
    numpy_model, ckpt = numpy_net.load_model(path)
    assert numpy_model.name == net.name and numpy_model.config == net.config
    x = np.concatenate([digits(shape), np.random.default_rng(0).random((16, *shape), dtype=np.float32)])
    with torch.no_grad():
        expected = torch.softmax(net(torch.from_numpy(x)), dim=1).numpy()
    assert np.abs(probabilities(numpy_model(x)) - expected).max() < 1e-5
    for i, prediction in enumerate(numpy_net.predict_array(numpy_model, x[:8], ckpt["classes"], top_k=2)):
        assert prediction.label == ckpt["classes"][int(expected[i].argmax())]
        assert prediction.probability == pytest.approx(float(expected[i].max()), abs=1e-5)


def test_the_repository_checkpoint_predicts_the_same(tmp_path):
    path = ROOT / "checkpoints" / "course_cnn.pt"
    if not path.is_file():
        pytest.skip("no checkpoints/course_cnn.pt here (make train writes it)")
    from imgrec_lib.checkpoint import load_model

    net, _ = load_model(path, device="cpu")
    numpy_model, _ = numpy_net.load_model(path)
    x = digits((1, 28, 28), n=200)
    with torch.no_grad():
        expected = torch.softmax(net(torch.from_numpy(x)), dim=1).numpy()
    assert np.abs(probabilities(numpy_model(x)) - expected).max() < 1e-5


def test_weights_that_do_not_fit_are_refused_like_load_model(saved, tmp_path):
    net, path, shape = saved
    ckpt = torch.load(path, weights_only=True)
    c = shape[0]
    other = CourseCNN(in_channels=c, widths=(4, 8), hidden=8) if net.name == "lenet5" else LeNet5(in_channels=c)
    ckpt["state_dict"] = other.state_dict()
    torch.save(ckpt, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=f"do not fit the {type(net).__name__} architecture: .*missing.*"
                                              "another model or settings.*make train"):
        numpy_net.load_model(tmp_path / "other.pt")

    ckpt = torch.load(path, weights_only=True)
    ckpt["state_dict"]["classifier.1.weight"] = ckpt["state_dict"]["classifier.1.weight"][:, :-1]
    ckpt["state_dict"]["extra.weight"] = torch.zeros(1)
    torch.save(ckpt, tmp_path / "reshaped.pt")
    with pytest.raises(CheckpointError, match=r"do not fit .*: x has \d+ features, so w must be"):
        numpy_net.load_model(tmp_path / "reshaped.pt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["state_dict"]["extra.weight"] = torch.zeros(1)
    torch.save(ckpt, tmp_path / "extra.pt")
    with pytest.raises(CheckpointError, match=r"do not fit .*1 unexpected \(e.g. extra.weight\)"):
        numpy_net.load_model(tmp_path / "extra.pt")


def test_a_model_the_numpy_layers_do_not_know_is_left_to_pytorch(tmp_path, capsys):
    ckpt = {"model_name": "resnet", "model_config": {}, "state_dict": {}, "classes": ["a"], "input_shape": (1, 28, 28)}
    torch.save(ckpt, tmp_path / "resnet.pt")
    with pytest.raises(CheckpointError, match="only PyTorch can run"):
        numpy_net.load_model(tmp_path / "resnet.pt")
    image = tmp_path / "digit.png"
    Image.fromarray(load_digits_arrays("test")[0][0]).save(image)
    assert cli.main(["predict", str(image), "--checkpoint", str(tmp_path / "resnet.pt")]) == cli.EXIT_BAD_INPUT
    assert "cannot build" in capsys.readouterr().err  # torch's load_model said so: predict fell back to it


def test_rank_classes_sorts_and_names():
    probabilities = np.array([[0.1, 0.6, 0.3], [0.4, 0.2, 0.4]])
    first, second = inference.rank_classes(probabilities, ["a", "b", "c"], top_k=2, paths=["x.png", None])
    assert first.path == "x.png" and first.top_k == [("b", 0.6), ("c", 0.3)] and first.label == "b"
    assert second.top_k == [("a", 0.4), ("c", 0.4)]  # a tie: the lower class index first
    with pytest.raises(ValueError, match="3 outputs but 2 class names"):
        inference.rank_classes(probabilities, ["a", "b"])
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        inference.rank_classes(probabilities, top_k=0)


@pytest.mark.parametrize("size,to", [((37, 23), (20, 12)), ((9, 14), (28, 40)), ((512, 384), (80, 60)), ((5, 5), (5, 5))])
def test_resizing_without_torch_matches_torchs_antialiased_bilinear(size, to):
    x = np.random.default_rng(sum(size)).random(size, dtype=np.float32)
    expected = F.interpolate(torch.from_numpy(x)[None, None], size=to, mode="bilinear", antialias=True,
                             align_corners=False)[0, 0].numpy()
    assert np.abs(inference._resize(x, *to) - expected).max() < 1e-5


# --------------------------------------------------------------------------- the command line

def test_predict_prints_the_same_with_numpy_and_with_pytorch(saved, tmp_path, capsys):
    net, path, shape = saved
    images = load_digits_arrays("test")[0][::100]
    files = []
    for i, image in enumerate(images):
        files.append(tmp_path / f"d{i}.png")
        Image.fromarray(image if shape[0] == 1 else np.stack([image] * 3, axis=2)).save(files[-1])
    outputs = []
    for device in ("numpy", "cpu"):
        assert cli.main(["predict", *map(str, files), "--top-k", "3", "--checkpoint", str(path),
                         "--device", device]) == cli.EXIT_OK
        outputs.append(capsys.readouterr().out.splitlines())
    assert len(outputs[0]) == len(files)
    for ours, theirs in zip(*outputs):
        ours, theirs = ours.split(": ")[1].split(", "), theirs.split(": ")[1].split(", ")
        assert [item.split()[0] for item in ours] == [item.split()[0] for item in theirs]
        for a, b in zip(ours, theirs):  # the same percentages, give or take the last digit's rounding
            assert abs(float(a.split()[1].rstrip("%")) - float(b.split()[1].rstrip("%"))) <= 0.1


def test_predict_runs_with_torch_blocked(tmp_path):
    """The one subprocess: `python -m imgrec_lib predict` where `import torch` fails, with --show."""
    net, opt = trained(CourseCNN(**RECIPES["fast"]["model"]))
    save_checkpoint(tmp_path / "net.pt", net, opt, classes=CLASSES, input_shape=(1, 28, 28))
    image = tmp_path / "digit.png"
    Image.fromarray(255 - load_digits_arrays("test")[0][0]).resize((90, 90)).save(image)  # dark on light
    script = ("import runpy, sys; sys.modules['torch'] = None; sys.argv = ['imgrec_lib', *sys.argv[1:]]\n"
              "try:\n    runpy.run_module('imgrec_lib', run_name='__main__')\n"
              "finally:\n    print('torch' in sys.modules and sys.modules['torch'] is not None, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", script, "predict", str(image), "--checkpoint",
                             str(tmp_path / "net.pt"), "--show", str(tmp_path / "seen")],
                            capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ,
                                                                                        "IMGREC_DEBUG": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "False"  # nothing imported torch
    x = inference.load_image(image)
    expected = inference.predict_tensor(net, x, CLASSES)
    assert result.stdout.startswith(f"{image}: {expected.label} {expected.probability:.1%}")
    assert (tmp_path / "seen" / "digit.png.seen.png").is_file()
