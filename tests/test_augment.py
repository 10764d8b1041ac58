"""Tests for imgrec_lib.augment: random shifts, rotations and zooms of a batch, and the printed
digits (scripts/make_printed_digits.py)."""

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from imgrec_lib import augment, inference
from imgrec_lib.augment import Augment, random_affine, random_shift
from imgrec_lib.data import digits

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import make_printed_digits  # noqa: E402


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
    with pytest.raises(AssertionError, match=r"\(N, C, H, W\)"):
        random_shift(torch.rand(3, 28, 28), 2)
    with pytest.raises(AssertionError, match="shift"):
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
    with pytest.raises(AssertionError, match=r"\(N, C, H, W\)"):
        random_affine(torch.rand(3, 28, 28), 10, 0.1)
    with pytest.raises(AssertionError, match="degrees"):
        random_affine(torch.rand(1, 1, 8, 8), -1, 0.1)
    with pytest.raises(AssertionError, match="scale"):
        random_affine(torch.rand(1, 1, 8, 8), 10, 1.0)


def test_augment_shifts_then_rotates_and_zooms_with_one_generator():
    X = torch.rand(6, 1, 12, 12)
    ours = Augment(shift=2, degrees=10, scale=0.1)(X, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    assert torch.equal(ours, random_affine(random_shift(X, 2, g), 10, 0.1, g))
    assert Augment()(X) is X
    with pytest.raises(ValueError, match="0 <= scale < 1"):
        Augment(scale=1.5)


# --------------------------------------------------------------------------- printed digits

def test_printed_digits_are_every_digit_laid_out_like_mnist():
    X, y = augment.printed_digits()
    assert X.shape == (480, 1, 28, 28) and X.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.bincount(y, minlength=10).tolist() == [48] * 10
    assert X.min() >= 0 and X.max() <= 1
    laid_out = sum(inference.is_mnist_layout(x[0].double().numpy()) for x in X)
    assert laid_out == len(X), f"only {laid_out} of {len(X)} in MNIST's 20x20 box around (14, 14)"


def test_printed_digits_file_is_what_the_script_makes():
    """The stored digits are the script's output through today's pipeline (rerun the script when
    the pipeline changes); checked on one face, as the fonts may not be installed."""
    face = "LiberationSerif-Regular.ttf"
    if not (make_printed_digits.FONT_DIR / face).is_file():
        pytest.skip("the Liberation fonts are not installed (apt-get install fonts-liberation)")
    X, _ = augment.printed_digits()
    start = make_printed_digits.FACES.index(face) * 10 * len(make_printed_digits.HEIGHTS)
    for i, height in enumerate(make_printed_digits.HEIGHTS):  # the digit 0 of that face at each size
        x = make_printed_digits.render(0, make_printed_digits.FONT_DIR / face, height)
        made = np.round(inference.preprocess_digit(x) * 255)
        stored = X[start + i, 0].numpy() * 255
        assert np.abs(made - stored).max() <= 1, "printed_digits.npz is stale: rerun scripts/make_printed_digits.py"


def test_a_damaged_printed_digits_file_is_refused(tmp_path):
    damaged = tmp_path / "printed_digits.npz"
    data = bytearray(augment.PRINTED_PATH.read_bytes())
    data[-1] ^= 0xFF
    damaged.write_bytes(bytes(data))
    assert hashlib.sha256(bytes(data)).hexdigest() != augment.PRINTED_SHA256
    with pytest.raises(ValueError, match="make_printed_digits.py"):
        augment.printed_digits(damaged)
    with pytest.raises(ValueError, match="missing"):
        augment.printed_digits(tmp_path / "nothing.npz")


def test_with_printed_digits_keeps_the_training_set_and_adds_the_printed():
    train = digits("train")
    both = augment.with_printed_digits(train)
    X_printed, y_printed = augment.printed_digits()
    assert len(both) == len(train) + len(X_printed) and both.classes == train.classes
    assert torch.equal(both.images[:len(train)], train.images) and torch.equal(both.labels[len(train):], y_printed)
    with pytest.raises(ValueError, match=r"\(1, 28, 28\)"):
        augment.with_printed_digits(torch.utils.data.TensorDataset(torch.rand(4, 3, 32, 32), torch.zeros(4).long()))
