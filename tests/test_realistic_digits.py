"""Tests for scripts/make_realistic_digits.py (the project's realistic digit set) and the targets
that benchmarks/realistic.py checks over it (issue 14)."""

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import make_realistic_digits as mrd  # noqa: E402
import realistic  # noqa: E402


def picture(category, digit=3, k=0, seed=0):
    rng = np.random.default_rng([seed, mrd.CATEGORIES.index(category), digit, k])
    data, ext = mrd.make_image(category, digit, k, rng)
    return data, ext


@pytest.mark.parametrize("category", mrd.CATEGORIES)
def test_each_category_is_deterministic_and_decodes(category):
    first, ext = picture(category)
    again, _ = picture(category)
    assert first == again, "the same seed must write the same bytes"
    assert picture(category, seed=1)[0] != first
    with Image.open(io.BytesIO(first)) as img:
        assert img.format == {"png": "PNG", "jpg": "JPEG"}[ext]
        size = img.size
    if category == "mnist28":
        assert size == (28, 28)
    if category in ("photos", "lined", "squared", "shadow"):
        assert sorted(size) == [1200, 1600] and ext == "jpg"
    if category == "screenshot":
        assert 1280 <= size[0] <= 1440 and size[0] > size[1] and ext == "png"
    if category == "marker":
        assert ext == "jpg"
    if category == "handshadow":
        assert 1200 <= max(size) <= 4000 and ext == "jpg"


@pytest.mark.parametrize("category", ["screenshot", "marker", "handshadow"])
def test_the_new_categories_vary_from_picture_to_picture(category):
    pictures = [picture(category, digit, k) for digit, k in ((1, 0), (1, 1), (4, 2), (7, 1))]
    assert len({data for data, _ in pictures}) == len(pictures)
    sizes = {Image.open(io.BytesIO(data)).size for data, _ in pictures}
    assert len(sizes) == len(pictures), "each picture has its own size"


def test_the_set_has_every_digit_in_every_category():
    assert len(mrd.CATEGORIES) * 10 * mrd.PER_DIGIT >= 200
    assert set(mrd.STROKES) == set(range(10))


def test_a_photo_is_lit_unevenly():
    data, _ = picture("photos", digit=1, k=2)
    grey = np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=float)
    blocks = grey[:grey.shape[0] // 4 * 4, :grey.shape[1] // 4 * 4].reshape(4, grey.shape[0] // 4, 4, -1)
    paper = np.median(blocks, axis=(1, 3))  # the paper's level in a 4x4 grid of the page
    assert paper.max() - paper.min() > 40, "a phone photo's paper is not one grey"


def grey(category, digit=3, k=0):
    data, _ = picture(category, digit, k)
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=float)


def test_a_cast_shadow_is_hard_edged_and_dark():
    rng = np.random.default_rng(0)
    for _ in range(20):
        light = mrd._cast_shadow(rng, 400, 300, (200, 150), 100)
        assert light.max() == 1.0 and 0.35 - 1e-9 <= light.min() <= 0.7 + 1e-9, "the paper under it at 0.35-0.7"
        steepest = max(np.abs(np.diff(light, axis=0)).max(), np.abs(np.diff(light, axis=1)).max())
        assert steepest > (1 - light.min()) / 12, "its edge goes from light to shadow within a dozen pixels"
        assert light[150, 200] < 1 or light[100:200, 150:250].min() < 1, "it reaches the digit"


def test_the_shadow_category_has_a_shadow_across_the_page():
    x = grey("shadow", digit=7, k=1)
    paper = np.percentile(x, 90)
    shadowed = x < 0.75 * paper
    assert 0.02 < shadowed.mean() < 0.6, "a hand's or a phone's shadow, not the whole page"


def test_a_screenshot_has_a_toolbar_of_icons_and_a_typed_digit_on_a_white_page():
    for digit, k in ((2, 0), (8, 1), (5, 2)):
        x = grey("screenshot", digit, k)
        page = np.flatnonzero((x == 255).mean(0) > 0.5)  # the white page's columns
        assert 0.4 < len(page) / x.shape[1] < 0.75
        top_chrome = np.flatnonzero((x == 255).mean(1) < 0.1)
        toolbar = x[:top_chrome[top_chrome < x.shape[0] // 4].max()]
        assert np.abs(np.diff(toolbar, axis=1)).max() > 60, "icons and menu text in the toolbar"
        on_page = x[top_chrome[top_chrome < x.shape[0] // 4].max() + 30:, page[0] + 5:page[-1] - 5] < 100
        rows = np.flatnonzero(on_page.sum(1) > 3)  # the digit's rows (a 2 px cursor has at most 2 per row)
        assert 40 * 0.8 <= rows[-1] - rows[0] + 1 <= 110 * 1.2, "a digit 40-110 px high"


def test_felt_tip_is_thick_translucent_and_darker_where_strokes_overlap():
    from scipy import ndimage
    from skimage.morphology import skeletonize

    for digit, k in ((8, 0), (4, 1), (0, 2), (6, 0)):
        rgb = np.asarray(Image.open(io.BytesIO(picture("marker", digit, k)[0])).convert("RGB"), dtype=float)
        x = rgb.mean(2)
        ink = x < (np.median(x) + x.min()) / 2
        rows = np.flatnonzero(ink.any(1))
        pen = ink.sum() / skeletonize(ink).sum()  # the ink's area over its centre line's length
        assert 0.06 < pen / (rows[-1] - rows[0]) < 0.16, "strokes 7-12% of the digit's height"
        inside = ndimage.binary_erosion(ink, iterations=int(pen / 4))
        assert x[inside].min() < np.median(x[inside]) - 8, "translucent ink: darker where two strokes overlap"


def test_a_hand_or_phone_shadow_comes_from_outside_the_picture_to_the_digit():
    for seed in range(12):
        rng = np.random.default_rng(seed)
        mask = np.asarray(mrd._hand_or_phone_shadow(rng, 800, 600, (400, 300), 60, 500)) > 127
        assert 0.02 < mask.mean() < 0.7
        assert mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any(), "it reaches the edge"
        y, x = np.nonzero(mask)
        assert np.hypot(x - 400, y - 300).min() < 1.3 * 60, "across or near the digit"


def test_a_homography_maps_the_corners():
    src, dst = [(0, 0), (10, 0), (10, 20), (0, 20)], [(3, 4), (15, 2), (17, 30), (1, 25)]
    a, b, c, d, e, f, g, h = mrd._homography(src, dst)
    for (x, y), (u, v) in zip(src, dst):
        w = g * x + h * y + 1
        assert np.allclose([(a * x + b * y + c) / w, (d * x + e * y + f) / w], [u, v])


def test_a_frame_is_drawn_round_the_digit():
    x = grey("framed", digit=1, k=0) < 128
    rows, cols = np.flatnonzero(x.any(1)), np.flatnonzero(x.any(0))
    inside = x[rows[0] + 15:rows[-1] - 15, cols[0] + 15:cols[-1] - 15]
    assert inside.any(), "the digit is inside the frame"
    assert x[rows[0]:rows[0] + 12].sum() > 5 * inside.shape[1] // 4, "the frame's top runs across"


def test_pencil_is_faint():
    for digit, k in ((3, 0), (8, 1), (5, 2)):
        x = grey("pencil", digit, k) / 255
        paper, darkest = np.median(x), np.percentile(x, 0.1)
        assert 0.05 < paper - darkest < 0.4, "a faint grey stroke, 0.15-0.35 darker than the paper"
        assert np.std(x[x > paper - 0.03]) > 0.005, "textured paper, not one flat grey"


def fake_results(accuracies, lowest, photo_ms, seeds, same=True):
    models = {name: {"accuracy": a, "lowest_category": lo, "per_category": {c: lo for c in mrd.CATEGORIES},
                     "mnist_test_accuracy": 0.98, "wrong": []}
              for name, a, lo in zip(("make train", "make train FAST=1"), accuracies, lowest)}
    return ({"images": 240, "categories": list(mrd.CATEGORIES), "models": models, "photo_ms": photo_ms},
            {"runs": [{"seed": i, "test_accuracy": a} for i, a in enumerate(seeds)],
             "same_checkpoint_twice": same, "lowest_accuracy": min(seeds)})


def test_targets_need_both_models_every_category_and_every_seed():
    good = fake_results([0.96, 0.97], [0.9, 0.93], 30.0, [0.975] * 5)
    assert all(realistic.check_targets(*good).values())
    one_weak_category = fake_results([0.96, 0.97], [0.9, 0.867], 30.0, [0.975] * 5)
    assert realistic.check_targets(*one_weak_category)["realistic_95_no_category_below_90"] is False
    slow = fake_results([0.96, 0.97], [0.9, 0.93], 51.0, [0.975] * 5)
    assert realistic.check_targets(*slow)["photo_within_50_ms"] is False
    one_weak_seed = fake_results([0.96, 0.97], [0.9, 0.93], 30.0, [0.975, 0.969, 0.98, 0.98, 0.98], same=False)
    targets = realistic.check_targets(*one_weak_seed)
    assert targets["make_train_97_every_seed"] is False and targets["same_seed_same_checkpoint"] is False
    assert set(realistic.check_targets(None, None).values()) == {None}


def test_results_md_lines_report_each_category():
    met = lambda flag: {True: "met", False: "**not met**", None: "not measured"}[flag]  # noqa: E731
    rows, sections = realistic.results_md_lines(*fake_results([0.96, 0.97], [0.9, 0.867], 30.0, [0.975] * 5), met)
    assert rows[0].endswith("| **not met** |") and "lowest 86.7%" in rows[0]
    assert rows[1].endswith("| met |") and "30.0 ms" in rows[1]
    table = "\n".join(sections)
    assert "| model | MNIST test | all | " + " | ".join(mrd.CATEGORIES) + " |" in table
    assert "| make train FAST=1 | 98.0% | 97.0% |" in table


def test_a_picture_without_a_digit_counts_as_wrong_not_as_a_crash(tmp_path):
    import torch

    from imgrec_lib.checkpoint import save_checkpoint
    from imgrec_lib.models import CourseCNN

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "net.pt", CourseCNN(widths=(4,), hidden=8), classes=[str(i) for i in range(10)],
                    input_shape=(1, 28, 28))
    (tmp_path / "pencil").mkdir()
    Image.new("L", (300, 300), 240).save(tmp_path / "pencil" / "blank.png")
    data, _ = picture("fonts", digit=7)
    (tmp_path / "pencil" / "7.png").write_bytes(data)
    (tmp_path / "labels.csv").write_text("path,label,category\npencil/blank.png,3,pencil\npencil/7.png,7,pencil\n")
    result = realistic.accuracy_by_category(tmp_path / "net.pt", tmp_path)
    assert "pencil/blank.png -> no digit" in result["wrong"]
    assert list(result["per_category"]) == ["pencil"] and result["accuracy"] <= 0.5
