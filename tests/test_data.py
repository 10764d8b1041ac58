"""Tests for imgrec_lib.data: the embedded digits, shapes, torchvision sets, image folders."""

import hashlib
import re
import shutil
import socket
import struct
import time
import zlib
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch.utils.data import Subset, TensorDataset

from imgrec_lib import data
from imgrec_lib.data import DataError
from imgrec_lib.inference import load_image

LAYOUT = re.escape("root/<class name>/<image files>")


# --- the embedded digits ------------------------------------------------------------------------


def test_embedded_file_has_the_recorded_checksum():
    assert hashlib.sha256(data.EMBEDDED_PATH.read_bytes()).hexdigest() == data.EMBEDDED_SHA256


@pytest.mark.parametrize("split, n", [("train", 4000), ("test", 1000)])
def test_load_digits_arrays_shapes_dtypes_and_stratification(split, n):
    images, labels = data.load_digits_arrays(split)
    assert images.shape == (n, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (n,) and labels.dtype == np.int64
    assert np.array_equal(np.bincount(labels, minlength=10), np.full(10, n // 10))
    assert images.max() == 255 and images.min() == 0
    assert not np.array_equal(labels[:20], np.sort(labels[:20]))  # shuffled, not sorted by label


def test_train_and_test_digits_do_not_overlap():
    train, _ = data.load_digits_arrays("train")
    test, _ = data.load_digits_arrays("test")
    train_set = {image.tobytes() for image in train}
    assert len(train_set) == len(train)
    assert not any(image.tobytes() in train_set for image in test)


def test_load_digits_arrays_is_fast():
    data._verified.clear()  # include the checksum
    start = time.perf_counter()
    data.load_digits_arrays("train")
    assert time.perf_counter() - start < 1.0


def test_checksum_is_computed_once_per_file(monkeypatch):
    data.load_digits_arrays("train")

    def no_hashing(*args):
        raise AssertionError("the checksum was computed again")

    monkeypatch.setattr(data.hashlib, "sha256", no_hashing)
    images, _ = data.load_digits_arrays("test")
    assert len(images) == 1000


def test_an_altered_copy_fails_the_checksum(tmp_path):
    raw = bytearray(data.EMBEDDED_PATH.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    altered = tmp_path / "mnist_5k.npz"
    altered.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="SHA-256") as info:
        data.load_digits_arrays("train", path=altered)
    message = str(info.value)
    assert "git checkout imgrec_lib/embedded/mnist_5k.npz" in message
    assert "scripts/make_embedded_digits.py" in message and "Reinstall" in message


def test_an_unaltered_copy_loads(tmp_path):
    copy = tmp_path / "copy.npz"
    shutil.copyfile(data.EMBEDDED_PATH, copy)
    images, labels = data.load_digits_arrays("test", path=copy)
    expected_images, expected_labels = data.load_digits_arrays("test")
    assert np.array_equal(images, expected_images) and np.array_equal(labels, expected_labels)


def test_a_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match="missing.*git checkout"):
        data.load_digits_arrays("train", path=tmp_path / "nothing.npz")


@pytest.mark.parametrize("fn", [data.load_digits_arrays, data.digits, data.shapes])
def test_bad_split(fn):
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'validation'"):
        fn("validation")


def test_digits_dataset():
    train = data.digits("train")
    images, labels = data.load_digits_arrays("train")
    assert len(train) == 4000 and train.classes == [str(d) for d in range(10)]
    assert train.images.shape == (4000, 1, 28, 28) and train.images.dtype == torch.float32
    assert train.labels.dtype == torch.int64
    assert train.images.min() == 0.0 and train.images.max() == 1.0
    image, label = train[7]
    assert image.shape == (1, 28, 28) and isinstance(label, int) and label == labels[7]
    assert torch.allclose(image[0], torch.from_numpy(images[7]).float() / 255)
    assert len(data.digits("test")) == 1000


def test_digits_transform_is_applied():
    flipped = data.digits("test", transform=lambda x: x.flip(-1))
    plain = data.digits("test")
    assert torch.equal(flipped[3][0], plain[3][0].flip(-1))


# --- coloured shapes ----------------------------------------------------------------------------


def test_shapes_shapes_dtypes_ranges_and_balance():
    train, test = data.shapes("train"), data.shapes("test")
    assert (len(train), len(test)) == (2000, 500)
    assert train.classes == ["circle", "square", "triangle", "cross"]
    assert train.images.shape == (2000, 3, 32, 32) and train.images.dtype == torch.float32
    assert 0.0 <= train.images.min() and train.images.max() <= 1.0
    assert torch.equal(train.labels.bincount(), torch.full((4,), 500))
    image, label = test[0]
    assert image.shape == (3, 32, 32) and isinstance(label, int)
    small = data.shapes("test", n=10, size=16)
    assert small.images.shape == (10, 3, 16, 16)


def test_shapes_are_deterministic_and_splits_differ():
    a, b = data.shapes("train", n=200, seed=3), data.shapes("train", n=200, seed=3)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, data.shapes("train", n=200, seed=4).images)
    test = data.shapes("test", n=200, seed=3)
    train_set = {image.numpy().tobytes() for image in a.images}
    assert not any(image.numpy().tobytes() in train_set for image in test.images)


def _shape_area(images: torch.Tensor) -> torch.Tensor:
    """Fraction of pixels in the shape: its colour has a channel >= 0.35, the background <= 0.25."""
    return (images.amax(dim=1) > 0.3).float().mean(dim=(1, 2))


def test_each_image_holds_one_shape_whose_area_fits_its_class():
    ds = data.shapes("train", n=800)
    area = _shape_area(ds.images)
    assert area.min() > 0.03 and area.max() < 0.75  # a shape, not an empty or a full image
    mean = torch.stack([area[ds.labels == k].mean() for k in range(4)])
    # Areas in units of r^2: circle pi 0.9^2, square 1.36^2, triangle 3 sqrt(3) / 4, cross 2.16 - 0.36.
    expected = torch.tensor([np.pi * 0.81, 1.36**2, 3 * np.sqrt(3) / 4, 1.8], dtype=torch.float32)
    assert torch.allclose(mean / mean[0], expected / expected[0], atol=0.05)


def test_shapes_is_fast():
    start = time.perf_counter()
    data.shapes("train", n=2000)
    data.shapes("test", n=500)
    assert time.perf_counter() - start < 1.0


def test_shapes_rejects_bad_sizes():
    with pytest.raises(ValueError, match="n >= 1 and size >= 8"):
        data.shapes(n=0)
    with pytest.raises(ValueError, match="size=4"):
        data.shapes(size=4)


# --- torchvision data sets ----------------------------------------------------------------------


def _write_idx(path, array):
    """Write a uint8 array in MNIST's IDX format (big-endian header: magic 0x08NN, then dims)."""
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


def _fake_mnist(root, folder="MNIST", n_train=5, n_test=3):
    """Tiny fake MNIST files where torchvision looks for them: <root>/<folder>/raw/<name>."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, n in [("train", n_train), ("t10k", n_test)]:
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        arrays[prefix] = images, labels
    return arrays


@pytest.fixture
def no_download(monkeypatch):
    """Make every torchvision download fail at once, as it does without a network."""
    seen_timeouts = []

    def mnist_download(self):
        seen_timeouts.append(socket.getdefaulttimeout())
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    def cifar_download(self):
        seen_timeouts.append(socket.getdefaulttimeout())
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", mnist_download)
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", cifar_download)
    return seen_timeouts


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10"])
def test_no_local_files_and_no_network(tmp_path, no_download, name):
    before = socket.getdefaulttimeout()
    with pytest.raises(DataError, match=f"the {name} data set could not be found under") as info:
        data.torchvision_dataset(name, root=tmp_path, timeout=2.5)
    message = str(info.value)
    assert "download failed" in message and str(tmp_path) in message
    assert "get_dataset('digits')" in message and "no download" in message
    assert no_download == [2.5]  # the timeout was set for the download ...
    assert socket.getdefaulttimeout() == before  # ... and restored afterwards


@pytest.mark.parametrize("name, where", [("mnist", "MNIST/raw"), ("fashion-mnist", "FashionMNIST/raw"),
                                         ("cifar10", "cifar-10-batches-py")])
def test_no_local_files_and_download_false(tmp_path, no_download, name, where):
    with pytest.raises(DataError, match="download=False") as info:
        data.torchvision_dataset(name, root=tmp_path, download=False)
    assert str(tmp_path / where) in str(info.value)  # says where to put the files by hand
    assert no_download == []  # no download was tried


def test_torchvision_dataset_bad_arguments(tmp_path):
    with pytest.raises(DataError, match="choose one of.*mnist.*fashion-mnist.*cifar10"):
        data.torchvision_dataset("svhn", root=tmp_path)
    with pytest.raises(ValueError, match="split"):
        data.torchvision_dataset("mnist", split="val", root=tmp_path)


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_local_files_are_used_without_downloading(tmp_path, monkeypatch, name, folder):
    arrays = _fake_mnist(tmp_path, folder)
    monkeypatch.setattr(torchvision.datasets.MNIST, "download",
                        lambda self: pytest.fail("downloaded although the files were there"))
    for split, prefix, n in [("train", "train", 5), ("test", "t10k", 3)]:
        ds = data.torchvision_dataset(name, split, root=tmp_path)
        images, labels = arrays[prefix]
        assert len(ds) == n
        image, label = ds[1]
        assert image.shape == (1, 28, 28) and image.dtype == torch.float32 and type(image) is torch.Tensor
        assert torch.allclose(image[0], torch.from_numpy(images[1]).float() / 255)
        assert isinstance(label, int) and label == labels[1]
    expected = data.DIGIT_CLASSES if name == "mnist" else torchvision.datasets.FashionMNIST.classes
    assert data.classes_of(ds) == expected


# --- your own images ----------------------------------------------------------------------------


def _save(path, array, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)


@pytest.fixture
def folder(tmp_path):
    """cat/: grey, RGB, RGBA, 16-bit grey PNGs; dog/: a JPEG; plus a hidden folder to ignore."""
    root = tmp_path / "pets"
    _save(root / "cat" / "grey.png", np.full((20, 30), 100, np.uint8))
    _save(root / "cat" / "rgb.png", np.dstack([np.full((40, 40), c, np.uint8) for c in (255, 0, 0)]))
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., 3] = 0  # fully transparent: laid over white
    _save(root / "cat" / "rgba.png", rgba)
    _save(root / "cat" / "sixteen.png", np.full((28, 28), 128 * 257, np.uint16))
    _save(root / "dog" / "photo.jpg", np.full((50, 50, 3), 200, np.uint8), quality=95)
    _save(root / ".ipynb_checkpoints" / "old.png", np.zeros((8, 8), np.uint8))
    return root


def test_image_folder_reads_every_kind_of_image(folder):
    ds = data.image_folder(folder)
    assert ds.classes == ["cat", "dog"] and data.classes_of(ds) == ["cat", "dog"]
    items = {path.split("/")[-1]: ds[i] for i, (path, _) in enumerate(ds.samples)}
    assert set(items) == {"grey.png", "rgb.png", "rgba.png", "sixteen.png", "photo.jpg"}
    for image, label in items.values():
        assert image.shape == (1, 28, 28) and image.dtype == torch.float32 and type(image) is torch.Tensor
        assert isinstance(label, int)
        assert 0.0 <= image.min() and image.max() <= 1.0
    tol = 2 / 255
    assert items["grey.png"][0].sub(100 / 255).abs().max() < tol
    assert items["rgb.png"][0].sub(0.299).abs().max() < tol  # PIL's luma of pure red
    assert items["rgba.png"][0].min() > 1 - tol  # transparent -> white
    assert items["sixteen.png"][0].sub(128 / 255).abs().max() < tol  # scaled, not clipped to 1
    assert items["photo.jpg"][0].sub(200 / 255).abs().max() < tol
    assert items["photo.jpg"][1] == 1 and items["grey.png"][1] == 0


def test_image_folder_pickles_for_spawned_workers_and_keeps_its_classes(folder):
    import pickle

    ds = pickle.loads(pickle.dumps(data.image_folder(folder)))  # what a spawned DataLoader worker gets
    assert ds.classes == ["cat", "dog"] and len(ds) == 5 and ds[0][0].shape == (1, 28, 28)


def test_importing_data_and_training_leaves_torchvision_and_the_image_libraries_unimported():
    """A lesson's set-up cell imports `data` and `training`; torchvision (~1.5 s) and scikit-image
    (~0.5 s) wait until a torchvision set, a folder or an image file needs them."""
    import subprocess
    import sys

    code = ("import sys; from imgrec_lib import data, training; data.digits('test'); "
            "print(sorted(m for m in ('torchvision', 'skimage', 'imgrec_lib.inference') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_image_folder_colour_and_size(folder):
    ds = data.image_folder(folder, image_size=32, channels=3)
    X, y = data.as_tensors(ds)
    assert X.shape == (5, 3, 32, 32) and X.dtype == torch.float32 and y.tolist() == [0, 0, 0, 0, 1]
    red = ds[[p.endswith("rgb.png") for p, _ in ds.samples].index(True)][0]
    assert torch.allclose(red.mean(dim=(1, 2)), torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)
    with pytest.raises(ValueError, match="channels must be 1 .* or 3"):
        data.image_folder(folder, channels=2)


def test_image_folder_reports_unreadable_files_by_name(folder):
    png = (folder / "cat" / "grey.png").read_bytes()
    (folder / "dog" / "truncated.png").write_bytes(png[: len(png) // 2])
    (folder / "dog" / "notes.png").write_text("not an image at all")
    ds = data.image_folder(folder)  # the layout is fine: files are read later
    assert len(ds) == 7
    for name in ["truncated.png", "notes.png"]:
        index = [p.endswith(name) for p, _ in ds.samples].index(True)
        with pytest.raises(DataError, match=f"could not read the image .*{name}.*Delete or replace"):
            ds[index]


def _png_chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def test_image_folder_reports_a_decompression_bomb_by_name(folder):
    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)  # claims 30000x30000 grey pixels
    bomb = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IEND", b"")
    (folder / "dog" / "bomb.png").write_bytes(bomb)  # 57 bytes
    ds = data.image_folder(folder)
    index = [p.endswith("bomb.png") for p, _ in ds.samples].index(True)
    with pytest.raises(DataError, match="could not read the image .*bomb.png.*decompression bomb.*Delete or replace"):
        ds[index]


def test_image_folder_reads_16_bit_images_as_load_image_does(tmp_path):
    root = tmp_path / "sixteen"
    a = np.tile(np.arange(0, 65536, 2340, dtype=np.uint16)[:28], (28, 1))  # the whole 16-bit range
    _save(root / "a" / "wide.png", a)
    _save(root / "a" / "dark.png", np.minimum(a, 255))  # 16-bit values 0..255 only: a dark image
    ds = data.image_folder(root)
    for i, (path, _) in enumerate(ds.samples):
        expected = load_image(path, (1, 28, 28), invert=False)
        torch.testing.assert_close(ds[i][0], expected, rtol=0, atol=1e-6)  # one decoder: the same pixels
    assert ds[[p.endswith("dark.png") for p, _ in ds.samples].index(True)][0].max() < 0.01


def test_image_folder_layout_errors(tmp_path):
    with pytest.raises(DataError, match=f"no folder .*nowhere.*{LAYOUT}"):
        data.image_folder(tmp_path / "nowhere")
    a_file = tmp_path / "x.png"
    _save(a_file, np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match=f"is a file, not a folder.*{LAYOUT}"):
        data.image_folder(a_file)
    flat = tmp_path / "flat"
    _save(flat / "a.png", np.zeros((8, 8), np.uint8))  # images but no class sub-folders
    with pytest.raises(DataError, match=f"no class sub-folders in .*flat.*{LAYOUT}"):
        data.image_folder(flat)
    empty = tmp_path / "empty"
    (empty / "cats").mkdir(parents=True)
    (empty / "cats" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=f"no images in .*empty.*cats.*\\.png.*{LAYOUT}"):
        data.image_folder(empty)


# --- get_dataset, classes_of, as_tensors --------------------------------------------------------


def test_get_dataset_by_name(tmp_path, folder):
    assert len(data.get_dataset("digits", "test")) == 1000
    assert len(data.get_dataset("Digits")) == 4000
    shapes = data.get_dataset("shapes", "test", n=8, size=16)
    assert shapes.images.shape == (8, 3, 16, 16)
    _fake_mnist(tmp_path / "data")
    assert len(data.get_dataset("mnist", "test", root=tmp_path / "data")) == 3
    assert data.get_dataset(folder).classes == ["cat", "dog"]
    assert data.get_dataset(str(folder), "test", channels=3)[0][0].shape == (3, 28, 28)


def test_get_dataset_with_train_and_test_folders(tmp_path):
    for split, n in [("train", 3), ("test", 1)]:
        for i in range(n):
            _save(tmp_path / "split" / split / "blob" / f"{i}.png", np.zeros((8, 8), np.uint8))
    assert len(data.get_dataset(tmp_path / "split", "train")) == 3
    assert len(data.get_dataset(tmp_path / "split", "test")) == 1


def test_get_dataset_a_path_is_a_folder_even_if_named_like_a_data_set(tmp_path, monkeypatch):
    _save(tmp_path / "digits" / "seven" / "7.png", np.zeros((8, 8), np.uint8))
    monkeypatch.chdir(tmp_path)
    assert data.get_dataset(Path("digits")).classes == ["seven"]
    assert data.get_dataset("./digits").classes == ["seven"]
    assert len(data.get_dataset("digits")) == 4000


def test_get_dataset_unknown_name(tmp_path):
    choices = "'digits', 'shapes', 'mnist', 'fashion-mnist', 'cifar10'"
    with pytest.raises(DataError, match=f"unknown data set 'imagenet'.*{choices}.*folder"):
        data.get_dataset("imagenet")
    with pytest.raises(DataError, match=f"unknown data set.*{LAYOUT}"):
        data.get_dataset(tmp_path / "missing_folder")


def test_classes_of():
    digits = data.digits("test")
    assert data.classes_of(digits) == [str(d) for d in range(10)]
    assert data.classes_of(Subset(Subset(digits, [0, 1, 2]), [1])) == data.DIGIT_CLASSES
    named = Subset(digits, [0, 1])
    named.classes = ["a", "b"]  # a Subset's own names win over those of the data set it wraps
    assert data.classes_of(Subset(named, [0])) == ["a", "b"]
    numbered = data.TensorImageDataset(torch.zeros(2, 1, 4, 4), torch.zeros(2), classes=[3, 7])
    assert data.classes_of(numbered) == ["3", "7"]  # names are strings, as a checkpoint keeps them
    plain = TensorDataset(torch.zeros(2, 1, 4, 4), torch.zeros(2))
    assert data.classes_of(Subset(plain, [0]), num_classes=3) == ["0", "1", "2"]
    with pytest.raises(DataError, match="TensorDataset has no .classes"):
        data.classes_of(plain)


def test_as_tensors():
    digits = data.digits("test")
    X, y = data.as_tensors(digits)
    assert X is digits.images and y is digits.labels  # no copy
    X, y = data.as_tensors(Subset(digits, [5, 2, 9]))
    assert torch.equal(X, digits.images[[5, 2, 9]]) and y.tolist() == digits.labels[[5, 2, 9]].tolist()
    shapes = data.shapes("test", n=6, size=12, transform=lambda x: 1 - x)  # read item by item
    X, y = data.as_tensors(shapes)
    assert X.shape == (6, 3, 12, 12) and X.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.allclose(X, 1 - shapes.images) and torch.equal(y, shapes.labels)
    with pytest.raises(DataError, match="empty"):
        data.as_tensors(Subset(shapes, []))
