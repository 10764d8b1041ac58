"""Tests for imgrec_lib.inference: image loading in every mode, MNIST-style preprocessing,
the ImageError paths, top-k predictions, batching and saliency."""

import dataclasses
import io
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage

from imgrec_lib.inference import (
    ImageError, Prediction, image_from_bytes, load_image, predict_files, predict_tensor, prepare_image,
    read_image, saliency,
)

EMBEDDED = Path(__file__).resolve().parents[1] / "imgrec_lib" / "embedded" / "mnist_5k.npz"
CLASSES = [str(i) for i in range(10)]


def tiny_model(in_features=784, num_classes=10, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(in_features, num_classes))


def drawing(width=300, height=200, ink=0, paper=255):
    """A dark '7' drawn off-centre on light paper, like a photo of a learner's drawing."""
    img = Image.new("L", (width, height), paper)
    ImageDraw.Draw(img).line([(40, 30), (100, 30), (65, 160)], fill=ink, width=14)
    return img


def centre_of_mass(m):
    ys, xs = torch.meshgrid(torch.arange(m.shape[0]).float(), torch.arange(m.shape[1]).float(),
                            indexing="ij")
    return float((m * ys).sum() / m.sum()), float((m * xs).sum() / m.sum())


def mnist_digits():
    data = np.load(EMBEDDED)
    images, labels = data["test_images"], data["test_labels"]
    return [images[np.flatnonzero(labels == k)[0]] for k in range(10)]  # one of each class


# --------------------------------------------------------------------------- modes and shapes

def save_in_mode(tmp_path, mode, size=(45, 31)):
    """An image of the given PIL mode with a light background and a dark blob."""
    base = Image.new("RGB", size, (250, 240, 230))
    ImageDraw.Draw(base).ellipse([5, 5, size[0] // 2, size[1] // 2], fill=(10, 60, 20))
    suffix = ".jpg" if mode == "CMYK" else ".png"
    if mode == "I;16":
        img = Image.fromarray((np.asarray(base.convert("L"), dtype=np.uint16) * 257))
    else:
        img = base.convert(mode)
    path = tmp_path / f"img_{mode.replace(';', '')}{suffix}"
    img.save(path)
    with Image.open(path) as saved:
        assert saved.mode == mode
    return path


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "LA", "CMYK", "I;16", "1"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 16, 24)])
def test_every_mode_loads_to_the_model_shape_in_0_1(tmp_path, mode, shape):
    x = load_image(save_in_mode(tmp_path, mode), shape)
    assert x.shape == shape and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert float(x.max()) - float(x.min()) > 0.3  # the blob is still there


@settings(max_examples=30, deadline=None)
@given(w=st.integers(1, 90), h=st.integers(1, 90), mode=st.sampled_from(["L", "RGB", "RGBA"]),
       shape=st.sampled_from([(1, 28, 28), (3, 32, 32), (1, 10, 7)]), seed=st.integers(0, 2**16))
def test_any_size_gives_the_model_shape(w, h, mode, shape, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, size=(h, w, 4), dtype=np.uint8)
    img = Image.fromarray(pixels, "RGBA").convert(mode)
    if shape == (1, 28, 28):  # a digit's preprocessing may find no digit in noise: it says so
        try:
            x = prepare_image(img, shape)
        except inference.NoDigitError as e:
            assert str(e).startswith("no digit found in the image: ")
            return
    x = prepare_image(img, shape)
    assert x.shape == shape and x.dtype == torch.float32
    assert torch.isfinite(x).all() and 0.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_rgba_transparency_is_composited_on_white(tmp_path):
    img = Image.new("RGBA", (20, 10), (0, 0, 0, 0))  # black but fully transparent
    img.putpixel((3, 3), (255, 0, 0, 255))
    path = tmp_path / "t.png"
    img.save(path)
    x = load_image(path, (3, 20, 10), invert=False)
    assert torch.allclose(x[:, 0, 0], torch.ones(3))  # transparent -> white paper, not black


def test_16_bit_grey_is_scaled_to_0_1_not_clipped(tmp_path):
    a = np.full((12, 12), 32768, dtype=np.uint16)
    a[:, 6:] = 65535
    path = tmp_path / "g16.png"
    Image.fromarray(a).save(path)
    x = load_image(path, (1, 12, 12), invert=False)
    assert x[0, :, :6].mean().item() == pytest.approx(0.5, abs=0.01)
    assert x[0, :, 6:].mean().item() == pytest.approx(1.0, abs=0.01)


def test_16_bit_grey_is_always_out_of_65535_so_a_dark_image_stays_dark(tmp_path):
    a = np.tile(np.arange(0, 256, 16, dtype=np.uint16), (16, 1))  # 16-bit values 0..240 only
    Image.fromarray(a).save(tmp_path / "dark16.png")
    x = load_image(tmp_path / "dark16.png", (1, 16, 16), invert=False)
    assert float(x.max()) == pytest.approx(240 / 65535, abs=1e-6)  # not stretched to 240 / 255


def test_read_image_gives_the_pixels_at_the_file_size(tmp_path):
    img = Image.new("RGBA", (5, 3), (0, 0, 0, 0))  # transparent, with one red pixel
    img.putpixel((1, 2), (255, 0, 0, 255))
    path = tmp_path / "dot.png"
    img.save(path)
    grey = read_image(path)
    assert grey.shape == (3, 5) and grey.dtype == np.float64
    assert grey[0, 0] == 1.0 and grey[2, 1] == pytest.approx(0.299, abs=1 / 255)  # white paper, PIL's luma of red
    rgb = read_image(path, channels=3)
    assert rgb.shape == (3, 5, 3) and rgb[2, 1].tolist() == [1.0, 0.0, 0.0]
    with open(path, "rb") as f:
        np.testing.assert_array_equal(read_image(f), grey)
    with pytest.raises(ValueError, match="channels must be 1 .* or 3"):
        read_image(path, channels=2)
    with pytest.raises(ImageError, match="upload.png: not an image"):
        read_image(io.BytesIO(b"hello"), name="upload.png")


def test_read_image_turns_a_photo_upright_by_its_exif_orientation(tmp_path):
    img = Image.new("L", (6, 2), 0)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    img.save(tmp_path / "photo.jpg", exif=exif)
    assert read_image(tmp_path / "photo.jpg").shape == (6, 2)


def test_aspect_ratio_is_kept_by_padding(tmp_path):
    img = Image.new("L", (80, 40), 0)
    ImageDraw.Draw(img).ellipse([25, 5, 55, 35], fill=255)  # a circle of diameter 30 px
    path = tmp_path / "wide.png"
    img.save(path)
    x = load_image(path, (1, 32, 32), invert=False)[0]
    ink = torch.nonzero(x > 0.5)
    height, width = (ink.max(0).values - ink.min(0).values + 1).tolist()
    assert abs(height - width) <= 1  # still round, not squashed
    assert float(x[:8].max()) < 0.05 and float(x[-8:].max()) < 0.05  # padded above and below


def test_explicit_invert(tmp_path):
    path = save_in_mode(tmp_path, "RGB")
    plain = load_image(path, (3, 16, 16), invert=False)
    assert torch.allclose(load_image(path, (3, 16, 16), invert=True), 1 - plain, atol=1e-5)
    with pytest.raises(ValueError, match="invert"):
        load_image(path, invert="yes")
    with pytest.raises(ValueError, match="input_shape"):
        load_image(path, (2, 28, 28))


# --------------------------------------------------------------------------- MNIST preprocessing

def test_dark_digit_on_white_is_inverted_and_centred_like_mnist(tmp_path):
    path = tmp_path / "seven.png"
    drawing().save(path)
    m = load_image(path)[0]
    assert m.shape == (28, 28)
    assert float(torch.cat([m[0], m[-1], m[:, 0], m[:, -1]]).max()) < 0.05  # black background
    assert float(m.max()) > 0.9  # white ink
    cy, cx = centre_of_mass(m)
    assert abs(cy - 14) < 0.6 and abs(cx - 14) < 0.6  # where MNIST puts it
    ink = torch.nonzero(m > 0.1)
    height, width = (ink.max(0).values - ink.min(0).values + 1).tolist()
    assert max(height, width) in (20, 21) and min(height, width) <= 21  # the 20x20 box


def test_grey_paper_photo_loses_its_background(tmp_path):
    path = tmp_path / "photo.jpg"
    drawing(ink=40, paper=190).convert("RGB").save(path)  # dim light, grey paper, JPEG noise
    m = load_image(path)[0]
    corners = torch.stack([m[:3, :3], m[:3, -3:], m[-3:, :3], m[-3:, -3:]])
    assert float(corners.max()) < 0.1 and float(m.max()) > 0.8


def test_white_on_black_mnist_file_loads_unchanged(tmp_path):
    digit = mnist_digits()[3]
    path = tmp_path / "three.png"
    Image.fromarray(digit).save(path)
    x = load_image(path)
    assert torch.allclose(x[0], torch.from_numpy(digit).float() / 255, atol=1e-6)


@pytest.mark.parametrize("size", [(5, 5), (28, 28), (100, 80), (1600, 1200)])
def test_a_blank_page_raises_no_digit_found(tmp_path, size):
    path = tmp_path / "blank.png"
    Image.new("L", size, 255).save(path)
    with pytest.raises(inference.NoDigitError, match=r"no digit found in .*blank\.png: the picture looks blank"):
        load_image(path)
    assert load_image(path, (1, 32, 32)).min() == 1.0  # other models get the white picture they asked for


def test_paper_without_a_digit_raises_no_digit_found(tmp_path):
    """A photo of blank paper: uneven light, sensor noise, a speck of dust, JPEG; no digit."""
    rng = np.random.default_rng(0)
    x = np.linspace(0.95, 0.55, 800)[None, :] * np.ones((600, 1)) + rng.normal(0, 0.03, (600, 800))
    x[300:302, 400:402] *= 0.8
    path = tmp_path / "paper.jpg"
    Image.fromarray((x * 255).astype(np.uint8)).save(path, quality=70)
    with pytest.raises(inference.NoDigitError, match="paper.jpg"):
        load_image(path)
    with pytest.raises(inference.NoDigitError, match="upload.jpg"):
        image_from_bytes(path.read_bytes(), name="upload.jpg")


def test_white_ink_on_a_transparent_background_is_read(tmp_path):
    img = Image.new("RGBA", (120, 160), (0, 0, 0, 0))
    ImageDraw.Draw(img).line([(30, 30), (90, 30), (50, 130)], fill=(255, 255, 255, 255), width=9)  # a white 7
    img.save(tmp_path / "seven.png")
    m = load_image(tmp_path / "seven.png")[0]
    assert float(m.max()) > 0.9 and float(m[:3].max()) < 0.05  # the 7, light on dark, in MNIST's box


def test_a_huge_image_says_how_large_it_is_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 40x30 is "huge" here: no need for 300 megapixels
    path = tmp_path / "huge.png"
    Image.new("L", (40, 30), 255).save(path)  # 1,200 pixels: over the limit, under twice it (PIL only warns)
    with pytest.raises(ImageError, match=r"huge\.png is too large: 1,200 pixels, more than the 1,000 this reads .*; "
                                         r"scale it down"):
        load_image(path)
    Image.new("L", (100, 30), 255).save(path)  # over twice the limit: PIL's DecompressionBombError
    with pytest.raises(ImageError, match="scale it down"):
        load_image(path)


def test_digit_drawn_on_paper_gets_the_prediction_of_the_original(tmp_path):
    """A nearest-template model on the ten MNIST originals recognises each one redrawn large,
    dark on white paper, off-centre: what preprocessing is for."""
    originals = [torch.from_numpy(d).float() / 255 for d in mnist_digits()]
    templates = torch.stack([(t - t.mean()).flatten() for t in originals])
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(templates / templates.norm(dim=1, keepdim=True))
    paths = []
    for k, d in enumerate(mnist_digits()):
        big = Image.fromarray(255 - d).resize((28 * 7, 28 * 7), Image.Resampling.BILINEAR)
        paper = Image.new("L", (420, 330), 255)
        paper.paste(big, (20 + 15 * k, 110 - 9 * k))
        paths.append(tmp_path / f"drawn_{k}.png")
        paper.save(paths[-1])
    loaded = torch.stack([load_image(p) for p in paths])
    for k in range(10):  # the centre of mass is rounded to a whole pixel: the best of the shifts by one
        similarity = max(torch.nn.functional.cosine_similarity(loaded[k].roll((dy, dx), (1, 2)).flatten(),
                                                               originals[k].flatten(), dim=0)
                         for dy in (-1, 0, 1) for dx in (-1, 0, 1))
        assert similarity > 0.9, f"digit {k}: cosine similarity {similarity:.2f} with the original"
    on_paper = [p.label for p in predict_files(model, paths, CLASSES)]
    original = [p.label for p in predict_tensor(model, torch.stack(originals)[:, None], CLASSES)]
    assert on_paper == original == CLASSES


# --------------------------------------------------------------------------- errors

def error_files(tmp_path):
    good = tmp_path / "good.png"
    drawing().save(good)
    data = good.read_bytes()
    (tmp_path / "text.png").write_text("this is not a picture\n")
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    corrupt = bytearray(data)
    corrupt[80:120] = np.random.default_rng(0).integers(0, 256, 40, dtype=np.uint8).tobytes()  # pixel data
    (tmp_path / "corrupt.png").write_bytes(bytes(corrupt))
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "folder.png").mkdir()
    return {
        "missing.png": "no such file", "folder.png": "directory", "text.png": "not an image",
        "truncated.png": "truncated", "corrupt.png": "corrupt", "empty.png": "empty",
    }


@pytest.mark.parametrize("name", ["missing.png", "folder.png", "text.png", "truncated.png",
                                  "corrupt.png", "empty.png"])
def test_image_errors_name_the_file_and_the_problem(tmp_path, name):
    problems = error_files(tmp_path)
    with pytest.raises(ImageError) as info:
        load_image(tmp_path / name)
    message = str(info.value)
    assert name in message and problems[name] in message and "\n" not in message


def test_a_mode_pil_cannot_convert_raises_image_error_naming_the_file(tmp_path):
    path = tmp_path / "lab.tif"
    Image.new("RGB", (40, 40)).convert("LAB").save(path)  # PIL opens it but cannot make it grey
    with pytest.raises(ImageError, match=r"lab\.tif: cannot convert its LAB .*save it as a PNG or JPEG"):
        load_image(path)
    with pytest.raises(ImageError, match="upload.tif: cannot convert its LAB"):
        image_from_bytes(path.read_bytes(), name="upload.tif")


def test_predict_files_raises_image_error_for_a_bad_file(tmp_path):
    error_files(tmp_path)
    with pytest.raises(ImageError, match="text.png"):
        predict_files(tiny_model(), [tmp_path / "good.png", tmp_path / "text.png"], CLASSES)


# --------------------------------------------------------------------------- predictions

def test_predict_tensor_top_k_sorted_and_matches_softmax():
    model = tiny_model()
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        probs = torch.softmax(model(x), dim=1)
    predictions = predict_tensor(model, x, CLASSES, top_k=4)
    assert isinstance(predictions, list) and len(predictions) == 5
    for p, row in zip(predictions, probs):
        values = [prob for _, prob in p.top_k]
        assert len(values) == 4 and values == sorted(values, reverse=True) and sum(values) <= 1 + 1e-6
        assert p.label == str(int(row.argmax())) and p.probability == pytest.approx(float(row.max()), rel=1e-5)
        for name, prob in p.top_k:
            assert prob == pytest.approx(float(row[int(name)]), rel=1e-5)
        assert p.path is None


def test_predict_tensor_single_image_and_clipped_top_k():
    model = tiny_model(num_classes=3)
    p = predict_tensor(model, torch.rand(1, 28, 28), ["cat", "dog", "owl"], top_k=10)
    assert isinstance(p, Prediction) and len(p.top_k) == 3
    assert sorted(name for name, _ in p.top_k) == ["cat", "dog", "owl"]
    assert sum(prob for _, prob in p.top_k) == pytest.approx(1.0, abs=1e-5)
    assert dataclasses.asdict(p)["label"] == p.label and p.label in str(p)


def test_predict_tensor_rejects_bad_arguments():
    model = tiny_model()
    with pytest.raises(ValueError, match="top_k"):
        predict_tensor(model, torch.rand(1, 28, 28), CLASSES, top_k=0)
    with pytest.raises(ValueError, match="10 outputs but 3 class names"):
        predict_tensor(model, torch.rand(1, 28, 28), ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        predict_tensor(model, torch.rand(28, 28), CLASSES)


def test_eval_mode_is_used_and_training_mode_restored():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.9), torch.nn.Linear(784, 10))
    model.train()
    x = torch.rand(4, 1, 28, 28)
    first = [p.top_k for p in predict_tensor(model, x, CLASSES)]
    second = [p.top_k for p in predict_tensor(model, x, CLASSES)]
    assert first == second  # dropout off: deterministic
    assert model.training


def test_batching_gives_the_same_answers_as_one_at_a_time(tmp_path):
    model = tiny_model()
    rng = np.random.default_rng(0)
    paths = []
    for i in range(7):
        path = tmp_path / f"noise_{i}.png"
        Image.fromarray(rng.integers(0, 256, (20 + i, 30), dtype=np.uint8)).save(path)
        paths.append(path)
    batched = predict_files(model, paths, CLASSES, top_k=3, batch_size=3)
    single = [predict_files(model, p, CLASSES, top_k=3)[0] for p in paths]
    by_tensor = [predict_tensor(model, load_image(p), CLASSES, top_k=3) for p in paths]
    assert [p.path for p in batched] == [str(p) for p in paths]
    for a, b, c in zip(batched, single, by_tensor):
        assert a.path == b.path
        assert [n for n, _ in a.top_k] == [n for n, _ in b.top_k] == [n for n, _ in c.top_k]
        np.testing.assert_allclose([v for _, v in a.top_k], [v for _, v in c.top_k], rtol=1e-5)


def test_predict_files_reads_the_input_shape_from_model_config(tmp_path):
    model = tiny_model(in_features=3 * 16 * 16, num_classes=4)
    model.config = {"in_channels": 3, "image_size": 16}
    path = tmp_path / "c.png"
    Image.new("RGB", (50, 40), (200, 10, 10)).save(path)
    (p,) = predict_files(model, [path], ["a", "b", "c", "d"], top_k=2)
    assert len(p.top_k) == 2 and p.path == str(path)


# --------------------------------------------------------------------------- saliency

def test_saliency_of_a_linear_model_is_its_weights():
    model = tiny_model(in_features=3 * 8 * 8, num_classes=5)
    x = torch.rand(3, 8, 8)
    s = saliency(model, x, target=2)
    expected = model[1].weight[2].detach().abs().reshape(3, 8, 8).amax(dim=0)
    assert s.shape == (8, 8) and torch.allclose(s, expected)
    predicted = int(model(x[None]).argmax())
    assert torch.allclose(saliency(model, x[None]), model[1].weight[predicted].detach().abs().reshape(3, 8, 8).amax(0))
    assert model[1].weight.grad is None  # the parameters are left alone
    with pytest.raises(ValueError, match="target"):
        saliency(model, x, target=5)


# --------------------------------------------------------------------------- with the course's own files

def test_predict_files_with_a_model_loaded_from_a_checkpoint(tmp_path):
    """The lesson 08 path: save a course model, load it back, predict image files (like the CLI)."""
    from imgrec_lib.checkpoint import load_model, save_checkpoint
    from imgrec_lib.models import CourseCNN

    torch.manual_seed(0)
    net = CourseCNN(in_channels=3, num_classes=4, image_size=16, widths=(4,), hidden=8).eval()
    classes = ["circle", "square", "triangle", "star"]
    save_checkpoint(tmp_path / "net.pt", net, classes=classes, input_shape=(3, 16, 16))
    loaded, ckpt = load_model(tmp_path / "net.pt", device="cpu")
    paths = []
    for i, colour in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
        paths.append(tmp_path / f"shape_{i}.png")
        Image.new("RGB", (40, 30), colour).save(paths[-1])
    got = predict_files(loaded, paths, ckpt["classes"], input_shape=ckpt["input_shape"])
    expected = [predict_tensor(net, load_image(p, (3, 16, 16)), classes) for p in paths]
    for a, b in zip(got, expected):
        assert [n for n, _ in a.top_k] == [n for n, _ in b.top_k]
        np.testing.assert_allclose([v for _, v in a.top_k], [v for _, v in b.top_k], rtol=1e-5)
    assert [p.path for p in predict_files(loaded, paths, ckpt["classes"])] == [str(p) for p in paths]  # shape from config


# --------------------------------------------------------------------------- the digit pipeline, step by step

from imgrec_lib import inference  # noqa: E402


def photo_of_a_seven(size=(480, 360), gradient=0.6, rules=0, shadow=False, pen=10, seed=0):
    """A grey 'photo' (h, w) in [0, 1]: paper lit unevenly (brightness falling by ``gradient`` from
    left to right), ruled lines every ``rules`` px (0: none), a dark band along the top edge
    (``shadow``), a dark '7' drawn with a ``pen`` px pen, sensor noise. Also the mask of the 7."""
    w, h = size
    paper = Image.new("L", size, 0)
    draw = ImageDraw.Draw(paper)
    for y in range(rules // 2, h, rules) if rules else ():
        draw.line([(0, y), (w, y)], fill=110, width=3)  # printed lines: lighter than the pen
    seven = Image.new("L", size, 0)
    ImageDraw.Draw(seven).line([(190, 110), (300, 110), (230, 270)], fill=255, width=pen)
    digit = np.asarray(seven) > 127
    darkness = np.maximum(np.asarray(paper) / 255 * 0.5, digit * 0.85)  # how much light each pixel takes
    light = np.linspace(1.0, 1.0 - gradient, w)[None, :] * np.ones((h, 1))
    if shadow:
        light[:40] *= 0.45
    x = light * (1 - darkness) + np.random.default_rng(seed).normal(0, 0.02, (h, w))
    return np.clip(x, 0, 1), digit


def test_a_lighting_gradient_is_flattened():
    x, digit = photo_of_a_seven(gradient=0.6)
    # the dark end of the paper is darker than a light pen: one threshold for the whole picture fails
    assert x[:, -20:][~digit[:, -20:]].mean() < 0.5
    ink = inference.flatten_background(x)
    paper = ~ndimage.binary_dilation(digit, iterations=4)
    light_end, dark_end = ink[:, :60][paper[:, :60]].mean(), ink[:, -60:][paper[:, -60:]].mean()
    assert light_end < 0.1 and dark_end < 0.1, f"paper should be about 0 at both ends: {light_end:.2f}, {dark_end:.2f}"
    assert np.median(ink[digit]) > 0.7, "the pen should stand out"
    mask = inference.ink_mask(ink)
    assert mask[paper].mean() < 0.005 and mask[digit].mean() > 0.95


def test_ruled_lines_are_removed_and_the_pen_crossing_them_stays():
    x, digit = photo_of_a_seven(gradient=0.3, rules=40)
    ink = inference.flatten_background(x)
    line_rows = np.arange(20, x.shape[0], 40)
    assert ink[line_rows][:, :150].mean() > 0.2  # the lines are there before
    clean = inference.remove_lines(ink)
    assert clean[line_rows][:, :150].max() < 0.15, "left of the digit, nothing of the lines should remain"
    assert np.median(clean[digit]) > 0.5, "the 7 should survive, also where it crosses a line"
    mask = inference.ink_mask(clean)
    assert (mask & ~ndimage.binary_dilation(digit, iterations=3)).sum() < 0.02 * digit.sum()


def test_the_crop_holds_the_digit_not_a_shadow_or_specks():
    x, digit = photo_of_a_seven(gradient=0.2, shadow=True)
    x[300, 40] = x[50, 400] = 0.0  # two specks of dirt
    steps = inference.digit_steps(x)
    kept = steps["digit"]
    rows, cols = np.flatnonzero(kept.any(1)), np.flatnonzero(kept.any(0))
    true_rows, true_cols = np.flatnonzero(digit.any(1)), np.flatnonzero(digit.any(0))
    assert abs(rows[0] - true_rows[0]) <= 3 and abs(rows[-1] - true_rows[-1]) <= 3
    assert abs(cols[0] - true_cols[0]) <= 3 and abs(cols[-1] - true_cols[-1]) <= 3


def test_the_steps_come_in_order_and_end_in_mnist_layout():
    x, _ = photo_of_a_seven(rules=40, shadow=True)
    steps = inference.digit_steps(x)
    assert list(steps) == ["picture", "ink", "no_lines", "page", "mask", "digit", "crop", "strokes", "mnist"]
    m = torch.from_numpy(steps["mnist"])
    assert m.shape == (28, 28) and float(m.max()) > 0.9
    cy, cx = centre_of_mass(m)
    assert abs(cy - 14) < 0.6 and abs(cx - 14) < 0.6
    assert np.array_equal(inference.preprocess_digit(x), steps["mnist"])


def photo_on_a_desk(angle=5.0, desk=0.25, pen=4, size=(512, 384)):
    """``photo_of_a_seven`` turned by ``angle`` degrees as a phone held slightly askew sees it: a
    strip and wedges of dark desk (grey level ``desk``) along the picture's edges, more ink than the
    thin 7. Also where the 7 is."""
    x, digit = photo_of_a_seven(size=size, gradient=0.3, pen=pen)
    w, h = size
    small = (round(w * 0.96), round(h * 0.96))  # the page a little smaller than the picture: desk all round
    pictures = []
    for page, fill in ((x * 255, desk * 255), (digit * 255.0, 0)):
        turned = Image.fromarray(page.astype(np.uint8)).rotate(angle, resample=Image.Resampling.BILINEAR,
                                                               fillcolor=int(fill)).resize(small)
        canvas = Image.new("L", size, int(fill))
        canvas.paste(turned, ((w - small[0]) // 2, (h - small[1]) // 2))
        pictures.append(np.asarray(canvas, dtype=np.float64) / 255)
    return pictures[0], pictures[1] > 0.5


@pytest.mark.parametrize("angle", [-6.0, -2.0, 2.0, 4.0])
def test_the_desk_at_the_edge_of_a_photo_is_not_the_digit(angle):
    x, digit = photo_on_a_desk(angle)
    wedge = (x < 0.3) & ~ndimage.binary_dilation(digit, iterations=4)
    assert wedge[0].any() and wedge.sum() > 2 * digit.sum(), "the desk shows, and it is larger than the 7"
    steps = inference.digit_steps(x)
    kept = steps["digit"]
    assert (kept & digit).sum() > 0.5 * digit.sum(), "the 7 is kept"
    assert (kept & ~ndimage.binary_dilation(digit, iterations=4)).sum() < 0.05 * kept.sum(), "and nothing else"
    rows, cols = np.flatnonzero(kept.any(1)), np.flatnonzero(kept.any(0))
    true_rows, true_cols = np.flatnonzero(digit.any(1)), np.flatnonzero(digit.any(0))
    assert abs(rows[0] - true_rows[0]) <= 3 and abs(rows[-1] - true_rows[-1]) <= 3
    assert abs(cols[0] - true_cols[0]) <= 3 and abs(cols[-1] - true_cols[-1]) <= 3
    assert (steps["mask"] & wedge).sum() < 0.005 * wedge.sum(), \
        "the desk is gone before the ink is thresholded (at most specks where pixels straddle the page's edge)"


@pytest.mark.parametrize("stroke", ["1", "4", "7"])
def test_a_long_stroke_near_the_edge_of_a_tight_crop_is_kept(stroke):
    """A digit cropped with 8 pixels to spare: its stem (1, 4) or bar (7) runs along almost the
    whole picture, like a ruled line, but stops short of the edges: it is not a line."""
    h, w = 320, 200
    paper = Image.new("L", (w, h), 250)
    draw = ImageDraw.Draw(paper)
    shapes = {"1": [[(60, 60), (130, 8), (130, h - 8)]],
              "4": [[(140, h - 8), (140, 8), (8, 210), (w - 8, 210)]],
              "7": [[(8, 12), (w - 8, 12), (70, h - 8)]]}
    for line in shapes[stroke]:
        draw.line(line, fill=20, width=9)
    x = np.asarray(paper, dtype=np.float64) / 255
    ink = inference.flatten_background(x)
    assert np.array_equal(inference.remove_lines(ink) > 0.3, ink > 0.3), "nothing of the digit is taken away"
    kept = inference.digit_steps(x)["digit"]
    rows, cols = np.flatnonzero(kept.any(1)), np.flatnonzero(kept.any(0))
    assert rows[0] <= 12 and rows[-1] >= h - 12 and cols[-1] - cols[0] >= 60


@pytest.mark.parametrize("pen", [2, 4, 30])
def test_thin_and_bold_pens_come_out_with_mnist_strokes(pen):
    """A hair-thin pen on a large page would shrink to a faint trace, a felt tip to a blob: both
    arrive with MNIST's stroke width (about 2.8 px) and full brightness."""
    x, _ = photo_of_a_seven(size=(1200, 900) if pen < 10 else (480, 360), gradient=0.2, pen=pen)
    m = inference.preprocess_digit(x)
    assert m.max() > 0.95
    width = inference.stroke_width(m > 0.5)
    assert 2.0 <= width <= 4.0, f"pen {pen}px: strokes {width:.1f} px wide at 28x28"


def test_a_28x28_dark_on_light_digit_is_inverted():
    digit = mnist_digits()[2]
    original = digit.astype(np.float64) / 255
    m = inference.preprocess_digit(1.0 - original)
    assert not inference.is_dark_on_light(original) and inference.is_dark_on_light(1.0 - original)
    assert float(np.concatenate([m[0], m[-1], m[:, 0], m[:, -1]]).max()) < 0.05  # black background
    similarity = np.dot(m.ravel(), original.ravel()) / (np.linalg.norm(m) * np.linalg.norm(original))
    assert similarity > 0.8, f"cosine similarity {similarity:.2f} with the original"


def test_a_28x28_digit_filling_the_frame_is_laid_out_again():
    big = Image.fromarray(mnist_digits()[0]).crop((4, 4, 24, 24)).resize((28, 28))  # a 0 touching every edge
    x = np.asarray(big, dtype=np.float64) / 255
    assert not inference.is_mnist_layout(x)
    m = inference.preprocess_digit(x)
    rows, cols = np.flatnonzero(m.max(1) > 0.1), np.flatnonzero(m.max(0) > 0.1)
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= 21  # back in the 20x20 box
    assert float(np.concatenate([m[0], m[-1], m[:, 0], m[:, -1]]).max()) < 0.05


def test_mnist_digits_pass_unchanged():
    images = np.load(EMBEDDED)["test_images"][:300].astype(np.float64) / 255
    laid_out = [x for x in images if inference.is_mnist_layout(x)]
    assert len(laid_out) >= 0.97 * len(images)
    for x in laid_out:
        assert np.array_equal(inference.preprocess_digit(x), x.astype(np.float32))


def test_the_upload_path_and_the_file_path_agree(tmp_path):
    """The widget (bytes) and the CLI (a file) go through the same pipeline."""
    x, _ = photo_of_a_seven(rules=40)
    path = tmp_path / "photo.jpg"
    Image.fromarray((x * 255).astype(np.uint8)).save(path, quality=80)
    assert torch.equal(load_image(path), image_from_bytes(path.read_bytes()))


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_but_not_below_min_side(tmp_path):
    path = tmp_path / "big.jpg"
    Image.new("L", (1600, 1200), 200).save(path)
    assert read_image(path).shape == (1200, 1600)
    small = read_image(path, min_side=512)
    assert small.shape == (600, 800)  # JPEG's 1/2 scale: 1/4 would be 400 px, under 512


def test_save_seen_writes_the_model_input_enlarged(tmp_path):
    x = torch.rand(1, 28, 28)
    inference.save_seen(x, tmp_path / "seen.png", zoom=4)
    with Image.open(tmp_path / "seen.png") as img:
        back = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255)
    assert back.shape == (112, 112)
    assert torch.allclose(back[::4, ::4], x[0], atol=1 / 255)
    with pytest.raises(ValueError, match="C, H, W"):
        inference.save_seen(torch.rand(28, 28), tmp_path / "bad.png")


def shadow_over_a_seven(darkness=0.5, angle=30.0):
    """``photo_of_a_seven`` with the hard-edged shadow of a phone over the left of the page (the
    paper under it at ``1 - darkness`` of its light), its straight edge turned by ``angle`` degrees
    from the vertical and crossing the 7. Also the 7's mask and the shadow's edge, away from the 7."""
    x, digit = photo_of_a_seven(gradient=0.2)
    y, x_ = np.mgrid[0:360, 0:480]
    t = np.radians(angle)
    band = (x_ - 215) * np.cos(t) + (y - 180) * np.sin(t) < 0
    x = x * np.where(band, 1 - darkness, 1.0)
    edge = band ^ ndimage.binary_erosion(band, iterations=2)
    return x, digit, edge & ~ndimage.binary_dilation(digit, iterations=6)


@pytest.mark.parametrize("darkness, angle", [(0.35, 30.0), (0.65, 60.0), (0.5, 45.0), (0.6, -40.0)])
def test_a_hard_shadow_edge_leaves_no_ink(darkness, angle):
    """The paper's light is estimated by a grey closing: under the shadow it is the shadow's light,
    and the shadow's edge is paper, not a long stroke of ink (at most a speck where the pixels
    straddle it)."""
    x, digit, edge = shadow_over_a_seven(darkness, angle)
    near_edge = ndimage.binary_dilation(edge, iterations=8) & ~ndimage.binary_dilation(digit, iterations=6)
    assert near_edge.sum() > 10000, "the shadow's edge runs a long way across the paper"
    steps = inference.digit_steps(x)
    assert steps["mask"][near_edge].mean() < 0.02, "the shadow's edge is paper, not ink"
    assert steps["mask"][digit].mean() > 0.9, "the 7 is ink, in the shadow and out of it"
    assert not (steps["digit"] & ~digit).any(), "and only the 7 is kept"


@pytest.mark.parametrize("frame", ["box", "circle"])
def test_a_frame_drawn_round_the_digit_is_dropped(frame):
    """A box (with a gap at a corner, as a hand draws it) or a circle round a 7 in the same pen:
    the 7 is kept, the frame is not."""
    paper = Image.new("L", (480, 400), 245)
    draw = ImageDraw.Draw(paper)
    draw.line([(190, 120), (290, 120), (230, 280)], fill=30, width=8)
    if frame == "box":
        draw.line([(120, 62), (360, 60), (362, 340), (118, 342), (121, 75)], fill=30, width=8)
    else:
        draw.ellipse([90, 40, 390, 360], outline=30, width=8)
    x = np.asarray(paper, dtype=np.float64) / 255
    kept = inference.digit_steps(x)["digit"]
    rows, cols = np.flatnonzero(kept.any(1)), np.flatnonzero(kept.any(0))
    assert 110 <= rows[0] and rows[-1] <= 290 and 180 <= cols[0] and cols[-1] <= 300, "only the 7"


def test_a_zero_is_not_a_frame():
    paper = Image.new("L", (400, 400), 245)
    ImageDraw.Draw(paper).ellipse([120, 60, 280, 340], outline=30, width=10)
    kept = inference.digit_steps(np.asarray(paper, dtype=np.float64) / 255)["digit"]
    assert kept.sum() > 1000, "a 0 holds nothing: it is the digit"


@pytest.mark.parametrize("contrast", [0.15, 0.25])
def test_a_faint_pencil_digit_is_found(contrast):
    """A 7 in grainy pencil only ``contrast`` darker than textured paper is a digit, not 'no digit
    found'; the same paper without it still has none."""
    rng = np.random.default_rng(0)
    seven = Image.new("L", (400, 400), 0)
    ImageDraw.Draw(seven).line([(130, 100), (270, 100), (180, 310)], fill=255, width=4)
    strokes = np.asarray(seven, dtype=np.float64) / 255 * np.clip(rng.normal(0.8, 0.25, (400, 400)), 0, 1)
    paper = 0.92 + 0.03 * ndimage.gaussian_filter(rng.normal(0, 1, (400, 400)), 1.2)
    x = paper * (1 - contrast * strokes)
    steps = inference.digit_steps(x)
    assert inference.has_digit(steps), "a faint but coherent stroke is a digit"
    rows = np.flatnonzero(steps["digit"].any(1))
    assert rows[0] <= 105 and rows[-1] >= 300, "the whole 7"
    assert not inference.has_digit(inference.digit_steps(paper)), "textured paper alone is blank"


def hand_over_a_seven(finger=24, darkness=0.5, cover=False):
    """``photo_of_a_seven`` (480x360) with the hard-edged shadow of a hand reaching in from the
    left: an arm, a palm and four fingers ``finger`` px wide, narrower than the closing's k (40 px
    here) and ending in round tips, all short of the 7; with ``cover`` the shadow covers most of the
    page, the 7 in it, and the lit paper is only a strip along the right. Also the 7's mask and the
    shadow's mask."""
    x, digit = photo_of_a_seven(gradient=0.1)
    y, x_ = np.mgrid[0:360, 0:480].astype(float)
    if cover:
        shadow = x_ < 400
        for top in (40, 130, 220, 310):  # lit gaps between the fingers reach in from the right
            shadow &= ~((np.abs(y - top) < 6) & (x_ > 330))
    else:
        shadow = (np.abs(y - 180) < 50) & (x_ < 60) | (np.hypot(x_ - 60, y - 180) < 70)
        for top in np.linspace(100, 260, 4):  # four fingers towards the 7, round at the tip
            reach = np.clip(x_, 60, 150)
            shadow |= np.hypot(x_ - reach, y - top) < finger / 2
    return x * np.where(shadow, 1 - darkness, 1.0), digit, shadow


@pytest.mark.parametrize("finger", [24, 32])
def test_the_fingers_of_a_hand_s_shadow_are_not_ink(finger):
    """A finger of a shadow narrower than the grey closing's size (but at least half of it), and
    its round tip, join the palm: the closing by reconstruction keeps them as shadowed paper, not as strokes."""
    x, digit, shadow = hand_over_a_seven(finger)
    steps = inference.digit_steps(x)
    fingers = shadow & ~ndimage.binary_dilation(digit, iterations=6)
    assert steps["mask"][fingers].mean() < 0.01, "the fingers are paper"
    assert steps["mask"][digit].mean() > 0.9
    assert not (steps["digit"] & ~ndimage.binary_dilation(digit, iterations=2)).any(), "only the 7 is kept"


def test_a_shadow_over_most_of_the_page_keeps_it_dark_on_light():
    """Under a shadow covering most of the page the median pixel is the shadow's: the lit paper
    along the border, not the 7, is what is light."""
    x, digit, shadow = hand_over_a_seven(cover=True, darkness=0.55)
    assert shadow.mean() > 0.6
    assert inference.lit_beside_a_shadow(x) and inference.is_dark_on_light(x)
    steps = inference.digit_steps(x)
    assert steps["mask"][digit].mean() > 0.9
    assert not (steps["digit"] & ~ndimage.binary_dilation(digit, iterations=2)).any(), "only the 7 is kept"
    for gradient in (0.1, 0.6):  # a dark ground lit unevenly: its lighter part lies along the border
        light_seven = 1.0 - photo_of_a_seven(gradient=gradient)[0]
        assert not inference.is_dark_on_light(light_seven), "a light 7 on a dark ground is ink"


def test_a_hard_shadow_edge_leaves_not_even_a_thin_line():
    """The paper's light is estimated on a copy 1/4 the size: the pixels just inside a hard edge
    take the dark side's light, not a mix of both sides."""
    x, digit, edge = shadow_over_a_seven(0.6, 0.0)
    near_edge = ndimage.binary_dilation(edge, iterations=4) & ~ndimage.binary_dilation(digit, iterations=6)
    ink = inference.flatten_background(x)
    assert np.percentile(ink[near_edge], 99) < 0.1, "no line of ink along the edge"
    assert np.median(ink[digit]) > 0.6


@pytest.mark.parametrize("contrast", [0.12, 0.15])
def test_a_faint_pencil_stroke_stays_one_piece(contrast):
    """Grainy pencil only 0.12-0.15 darker than the paper: smoothed over a pen's width before the
    threshold, the 7 is one piece, not specks of graphite."""
    rng = np.random.default_rng(1)
    seven = Image.new("L", (400, 400), 0)
    ImageDraw.Draw(seven).line([(130, 100), (270, 100), (180, 310)], fill=255, width=4)
    stroke = np.asarray(seven) > 127
    grain = np.clip(rng.normal(0.8, 0.25, (400, 400)), 0, 1)
    paper = 0.92 + 0.03 * ndimage.gaussian_filter(rng.normal(0, 1, (400, 400)), 1.2)
    x = paper * (1 - contrast * stroke * grain)
    steps = inference.digit_steps(x)
    assert ndimage.label(steps["digit"], structure=np.ones((3, 3)))[1] == 1, "one piece"
    rows = np.flatnonzero(steps["digit"].any(1))
    assert rows[0] <= 105 and rows[-1] >= 300 and steps["digit"][stroke].mean() > 0.7, "the whole 7"
    assert inference.has_digit(steps)


def test_faint_printed_lines_are_no_pencil():
    """Squared paper on a desk (the realistic set's desk/1_2.jpg): once the desk is gone the page
    is faint, and the faint mask of its grid is a net that reaches the border; it is not taken
    for pencil, so ``remove_desk`` does not take the 1 away with the grid."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import make_realistic_digits
    rng = np.random.default_rng([0, make_realistic_digits.CATEGORIES.index("desk"), 1, 2])
    data, _ = make_realistic_digits.make_image("desk", 1, 2, rng)
    steps = inference.digit_steps(inference.read_image(io.BytesIO(data), min_side=inference.WORK_SIDE))
    assert inference.has_digit(steps)
    rows, cols = np.flatnonzero(steps["digit"].any(1)), np.flatnonzero(steps["digit"].any(0))
    h, w = steps["digit"].shape
    assert rows[-1] - rows[0] > 0.2 * h and cols[-1] - cols[0] < 0.2 * w, "the 1, tall and thin"


def test_a_frame_among_thousands_of_specks_is_dropped_quickly():
    """Dirt or noise makes thousands of specks: only the large components are looked at as frames,
    so keep_digit still drops the box round the 7 and takes well under a second (about 2 s when
    every speck was checked against every other)."""
    import time
    paper = Image.new("L", (480, 400), 245)
    draw = ImageDraw.Draw(paper)
    draw.line([(190, 120), (290, 120), (230, 280)], fill=30, width=8)
    draw.line([(120, 62), (360, 60), (362, 340), (118, 342), (121, 75)], fill=30, width=8)
    x = np.asarray(paper, dtype=np.float64) / 255
    rng = np.random.default_rng(0)
    x[rng.integers(2, 398, 3000), rng.integers(2, 478, 3000)] = 0.1
    mask = inference.ink_mask(inference.flatten_background(x))
    assert ndimage.label(mask, structure=np.ones((3, 3)))[1] > 2000
    start = time.perf_counter()
    kept = inference.keep_digit(mask)
    assert time.perf_counter() - start < 1.0
    rows, cols = np.flatnonzero(kept.any(1)), np.flatnonzero(kept.any(0))
    assert 110 <= rows[0] and rows[-1] <= 290 and 180 <= cols[0] and cols[-1] <= 300, "only the 7"


def test_a_bold_dark_grey_digit_wider_than_the_closing_keeps_its_ink():
    """A 7 in ordinary black (0.1, not 0) with strokes 60 px wide on a 480 px picture, wider than
    the grey closing's k (40 px here): the paper's light under it is the paper's around it, not
    the ink's own, so its inside is ink. A hard shadow (0.6 dark) over the left of the page is
    still paper."""
    paper = Image.new("L", (480, 480), 0)
    ImageDraw.Draw(paper).line([(110, 100), (370, 100), (200, 400)], fill=255, width=60)
    digit = np.asarray(paper) > 0
    shadow = np.mgrid[0:480, 0:480][1] < 150
    x = np.where(digit, 0.1, 0.9) * np.where(shadow, 0.4, 1.0)
    steps = inference.digit_steps(x)
    assert steps["mask"][ndimage.binary_erosion(digit, iterations=3)].mean() > 0.95, "the whole stroke is ink"
    shadowed_paper = shadow & ~ndimage.binary_dilation(digit, iterations=6)
    assert steps["mask"][shadowed_paper].mean() < 0.01, "the shadow is paper"


def test_a_dot_or_scribble_beside_the_digit_is_left_out_and_a_5s_bar_is_kept():
    """A dot or a small scribble beside the digit, apart from it, is not part of it: it would
    shrink the digit in the 28x28 and pull its centre of mass aside. A 5's bar written apart,
    just above its body, is part of the 5."""
    paper = Image.new("L", (480, 480), 245)
    draw = ImageDraw.Draw(paper)
    draw.line([(200, 110), (200, 370)], fill=30, width=9)             # a 1
    draw.ellipse([296, 200, 318, 222], fill=30)                        # a dot beside it
    draw.line([(296, 330), (316, 318), (308, 345), (331, 335)], fill=30, width=6)  # a scribble
    x = np.asarray(paper, dtype=np.float64) / 255
    kept = inference.keep_digit(inference.ink_mask(inference.flatten_background(x)))
    cols = np.flatnonzero(kept.any(0))
    assert cols[0] >= 185 and cols[-1] <= 215, "only the 1"

    five = Image.new("L", (480, 480), 245)
    draw = ImageDraw.Draw(five)
    draw.line([(180, 190), (180, 250), (260, 250), (280, 300), (260, 350), (180, 350)], fill=30, width=9)
    draw.line([(190, 170), (290, 170)], fill=30, width=9)              # the bar, 10 px above the body
    x = np.asarray(five, dtype=np.float64) / 255
    kept = inference.keep_digit(inference.ink_mask(inference.flatten_background(x)))
    rows = np.flatnonzero(kept.any(1))
    assert rows[0] <= 170, "the 5's bar is kept"


def test_a_toolbar_s_row_of_icons_is_not_the_digit():
    """A screenshot: a grey window, a toolbar with a row of filled icons, a white page with a typed
    digit only a little taller than the icons and with less ink than each. The icons stand in a row
    of pieces alike, the digit alone: the crop holds the digit."""
    shot = Image.new("L", (1300, 820), 230)
    draw = ImageDraw.Draw(shot)
    draw.rectangle([0, 0, 1300, 64], fill=245)                          # the toolbar
    for left in range(24, 560, 46):
        draw.rectangle([left, 20, left + 25, 45], fill=95)             # its icons, 26 px
    draw.rectangle([330, 90, 970, 820], fill=255)                       # the page
    draw.line([(600, 300), (632, 300), (610, 350)], fill=0, width=4)    # a 7, 50 px tall
    x = np.asarray(shot, dtype=np.float64) / 255
    steps = inference.digit_steps(inference._shrink(x, inference.WORK_SIDE))
    scale = steps["digit"].shape[1] / 1300
    rows, cols = np.flatnonzero(steps["digit"].any(1)) / scale, np.flatnonzero(steps["digit"].any(0)) / scale
    assert 290 <= rows[0] and rows[-1] <= 360 and 590 <= cols[0] and cols[-1] <= 645, "the 7, not an icon"
    assert inference.has_digit(steps)


def test_specks_too_small_for_a_digit_are_not_called_blank(tmp_path):
    """A picture whose only marks are a few specks says so, not that nothing stands out."""
    x = np.full((600, 800), 0.95)
    x[300:303, 200:203] = x[100:103, 600:603] = 0.1
    path = tmp_path / "specks.png"
    Image.fromarray((x * 255).astype(np.uint8)).save(path)
    with pytest.raises(inference.NoDigitError, match="too small or too faint for a digit"):
        load_image(path)


def test_a_thick_dark_blue_felt_tip_stroke_is_solid_not_hollow():
    """A felt-tip 0 in dark blue: its strokes 40 px wide on a 480 px picture, wider than half the
    grey closing's k (40 px here), and in grey only about a quarter of the paper's light, near the
    darkest a shadow can be, with a JPEG's noise on it. It is a stroke, narrow and inside the
    picture, not a broad shadow: its whole width is ink, not a hollow rim."""
    rng = np.random.default_rng(0)
    paper = Image.new("L", (480, 480), 0)
    ImageDraw.Draw(paper).ellipse([130, 60, 350, 420], outline=255, width=40)
    ImageDraw.Draw(paper).line([(150, 130), (200, 90)], fill=255, width=56)  # where the pen went over twice
    digit = np.asarray(paper) > 0
    x = np.where(digit, 0.26, 0.95) * 0.95 + rng.normal(0, 0.015, digit.shape)
    steps = inference.digit_steps(np.clip(x, 0, 1))
    core = ndimage.binary_erosion(digit, iterations=4)
    assert steps["mask"][core].mean() > 0.97, "the whole stroke is ink"
    assert steps["mask"][~ndimage.binary_dilation(digit, iterations=4)].mean() < 0.01, "the paper is not"


def test_a_page_on_a_darker_desk_is_dark_ink_on_light_paper():
    """A phone photo of a sheet lying on a grey desk that fills most of the picture: the median
    pixel is the desk's, darker than the middle of the picture's range, yet the light part is a
    sheet with the digit on it, not light ink. The 7 on it is the digit, the sheet is paper."""
    desk = Image.new("L", (384, 512), 80)
    draw = ImageDraw.Draw(desk)
    draw.polygon([(120, 150), (290, 140), (300, 380), (110, 390)], fill=235)   # the sheet, a little askew
    draw.line([(160, 210), (245, 205), (195, 330)], fill=25, width=6)         # a 7 on it
    seven = np.zeros((512, 384), dtype=bool)
    seven[200:340, 150:255] = True
    x = np.clip(np.asarray(desk, dtype=np.float64) / 255 + np.random.default_rng(0).normal(0, 0.02, (512, 384)), 0, 1)
    assert np.median(x) - x.min() < x.max() - np.median(x), "the desk's median is nearer the dark end"
    assert inference.a_page_on_a_desk(x) and inference.is_dark_on_light(x)
    steps = inference.digit_steps(x)
    assert steps["digit"].any() and not (steps["digit"] & ~seven).any(), "only the 7 is kept"
    for light_seven in (1.0 - photo_of_a_seven(gradient=0.1)[0], 1.0 - photo_of_a_seven(pen=40)[0]):
        assert not inference.a_page_on_a_desk(light_seven), "a light 7 on a dark ground is no sheet"
    pad = Image.new("L", (14, 14), 0)  # the drawing pad's 2: a broad light pen on black, enlarged and blurred
    ImageDraw.Draw(pad).line([(4, 2), (10, 3), (10, 6), (4, 11), (12, 11)], fill=255, width=2)
    two = pad.resize((112, 112), Image.Resampling.NEAREST).filter(ImageFilter.GaussianBlur(radius=3))
    assert not inference.is_dark_on_light(np.asarray(two, dtype=np.float64) / 255), "a broad light 2 is no sheet"


def test_a_finger_s_faint_shadow_larger_than_the_digit_is_not_the_digit():
    """The shadow of a finger reaching onto the page: a wedge narrower than the closing, so it
    reads as ink, and covering more of the page than the thin 7, but faint (the paper under it
    keeps 60% of its light; the pen keeps 15%). The digit is the piece with the most ink."""
    x, digit = photo_of_a_seven(gradient=0.1, pen=5)
    wedge = Image.new("L", (480, 360), 0)
    ImageDraw.Draw(wedge).polygon([(392, 318), (466, 296), (470, 330), (396, 336)], fill=255)  # away from the 7
    finger = np.asarray(wedge) > 0
    x = x * np.where(finger, 0.6, 1.0)
    steps = inference.digit_steps(x)
    assert steps["mask"][finger].mean() > 0.5 and steps["mask"][finger].sum() > steps["mask"][digit].sum(), \
        "the wedge reads as ink, more of it than the 7"
    assert steps["digit"][digit].mean() > 0.9 and not steps["digit"][finger].any(), "the 7 is kept, not the wedge"


@pytest.mark.parametrize("finger", [12, 16, 20])
def test_fingers_a_third_of_the_closing_wide_joined_to_the_palm_leave_no_ink(finger):
    """Fingers of a hand's shadow only a third of the grey closing's k wide (40 px here), the ones
    that join the palm: the closing by reconstruction puts all of them back, tips included, so no
    part of them is left in the ink map as a stroke would be."""
    x, digit, shadow = hand_over_a_seven(finger)
    y, x_ = np.mgrid[0:360, 0:480]
    joined = shadow & (x_ > 80) & (x_ < 140) & ((np.abs(y - 153) < finger / 2 - 2) | (np.abs(y - 207) < finger / 2 - 2))
    ink = inference.flatten_background(x)
    assert np.percentile(ink[joined], 90) < 0.1, "the fingers are paper in the shadow's light"
    assert np.median(ink[digit]) > 0.6


def test_a_hand_s_shadow_biting_into_a_page_on_a_desk_keeps_it_dark_on_light():
    """A sheet on a dark desk that fills most of the photo, and the shadow of a hand or a phone
    biting into the sheet from its edge, over the 7's foot: the lit part of the sheet is far from
    convex, yet the sheet in light and in shadow together is one. Dark ink on light paper: the 7
    on it is the digit."""
    desk = Image.new("L", (384, 512), 70)
    draw = ImageDraw.Draw(desk)
    draw.polygon([(110, 120), (290, 110), (300, 400), (100, 410)], fill=230)  # the sheet, a little askew
    draw.line([(150, 160), (245, 155), (195, 280)], fill=25, width=6)         # a 7 near its top
    seven = np.zeros((512, 384), dtype=bool)
    seven[150:290, 140:255] = True
    shadow = Image.new("L", (384, 512), 0)
    ImageDraw.Draw(shadow).rectangle([160, 230, 250, 512], fill=255)          # a phone's shadow, from below
    x = np.asarray(desk, dtype=np.float64) / 255 * np.where(np.asarray(shadow) > 0, 0.5, 1.0)
    x = np.clip(x + np.random.default_rng(0).normal(0, 0.02, x.shape), 0, 1)
    assert np.median(x) - x.min() < x.max() - np.median(x), "the desk's median is nearer the dark end"
    assert inference.a_page_on_a_desk(x) and inference.is_dark_on_light(x)
    steps = inference.digit_steps(x)
    assert steps["digit"].any() and not (steps["digit"] & ~seven).any(), "only the 7 is kept"
    for stroke, width in (([(7, 2), (7, 12)], 2), ([(3, 2), (11, 2), (6, 12)], 4)):  # the pad's broad 1 and 7
        pad = Image.new("L", (14, 14), 0)
        ImageDraw.Draw(pad).line(stroke, fill=255, width=width)
        light = pad.resize((112, 112), Image.Resampling.NEAREST).filter(ImageFilter.GaussianBlur(radius=3))
        assert not inference.is_dark_on_light(np.asarray(light, dtype=np.float64) / 255), \
            "the blurred rim of a light stroke is no shadow on a page"


def screenshot(chrome=45, surround=200, cursor=True, stem=False):
    """A screenshot (820x1300) of an app with a dark title bar and toolbar (grey level ``chrome``):
    light menu words and hollow light icons on it, a ``surround``, a white page with a thin typed 0
    (60 px tall) and, with ``cursor``, a text cursor just after it that reaches past its top and its
    bottom; with ``stem``, a bar as far from the 0 that does not (a 4's stem written apart from the
    rest). Also where the 0 is."""
    shot = Image.new("L", (1300, 820), surround)
    draw = ImageDraw.Draw(shot)
    draw.rectangle([0, 0, 1300, 110], fill=chrome)                           # title bar, menu, toolbar
    for i, left in enumerate(range(20, 700, 70)):
        draw.rectangle([left, 40, left + 40, 50], fill=225)                   # a menu word
        side = (20, 28, 36)[i % 3]
        draw.rectangle([left, 66, left + side, 66 + side], outline=225, width=3)  # hollow icons, not alike
    draw.rectangle([330, 130, 970, 830], fill=255, outline=150)               # the page
    draw.ellipse([600, 300, 636, 360], outline=20, width=4)                   # the 0
    if cursor:
        draw.line([(641, 292), (641, 368)], fill=0, width=2)
    if stem:
        draw.line([(641, 310), (641, 350)], fill=20, width=4)
    zero = np.zeros((820, 1300), dtype=bool)
    zero[298:363, 598:639] = True
    return np.asarray(shot, dtype=np.float64) / 255, zero


def kept_in_full_size(steps, shape):
    """The kept digit's mask brought back to the full size of the picture."""
    return np.asarray(Image.fromarray(steps["digit"]).resize(shape[::-1], Image.Resampling.NEAREST))


def test_a_dark_title_bar_and_toolbar_are_not_the_digit():
    """The dark bar at the top of a dark-themed app's window is as much ink as a desk, but its light
    menu words and icons cut it into pieces, some of them not reaching the border: they go with the
    bar, and the 0 on the page is the digit."""
    x, zero = screenshot(cursor=False)
    steps = inference.digit_steps(inference._shrink(x, inference.WORK_SIDE))
    assert inference.ink_mask(steps["no_lines"])[:20].any(), "the bar reads as ink"
    kept = kept_in_full_size(steps, x.shape)
    assert kept.any() and not (kept & ~ndimage.binary_dilation(zero, iterations=4)).any(), "only the 0 is kept"


def test_a_text_cursor_beside_a_typed_digit_is_not_kept():
    """A text cursor after a typed digit: a thin upright bar beside it that reaches past its top and
    its bottom (it spans the line). It is not part of the digit; a stroke as near that does not reach
    past both ends of the digit (a 4's stem written apart) is."""
    x, zero = screenshot(chrome=236, surround=255)
    kept = kept_in_full_size(inference.digit_steps(inference._shrink(x, inference.WORK_SIDE)), x.shape)
    assert kept[zero].any() and not kept[:, 639:].any(), "the 0 without the cursor"
    x, zero = screenshot(chrome=236, surround=255, cursor=False, stem=True)
    kept = kept_in_full_size(inference.digit_steps(inference._shrink(x, inference.WORK_SIDE)), x.shape)
    assert kept[zero].any() and kept[:, 639:].any(), "the stem stays with the rest"


def test_the_grey_strip_between_a_toolbar_and_the_page_is_not_the_digit():
    """A screenshot with a light toolbar, a grey surround and a white page below it: between the
    toolbar and the page's top edge lies a strip of grey, too thin for the paper's estimate to
    follow, a long faint line in the ink map with more ink than a thin typed 0. A piece that flat
    is a line, not a digit: the 0 is kept, not the strip."""
    x, zero = screenshot(chrome=236, surround=170, cursor=False)
    steps = inference.digit_steps(inference._shrink(x, inference.WORK_SIDE))
    strip = inference.ink_mask(steps["page"])[:55]
    assert strip.sum() > steps["mask"][110:150, 225:255].sum(), "the strip reads as more ink than the 0"
    kept = kept_in_full_size(steps, x.shape)
    assert kept.any() and not (kept & ~ndimage.binary_dilation(zero, iterations=4)).any(), "only the 0 is kept"


def test_a_light_digit_on_a_dark_mode_page_is_light_ink():
    """A dark-mode app: a light 0 typed on a dark page, the window inside a lighter grey desktop.
    The desktop along the border is the light part above Otsu's threshold, as lit paper beside a
    shadow would be; but the 0 is far brighter than it, and lit paper is the lightest thing in a
    photo. So the picture is light ink on a dark ground, and the 0 keeps its hole (taken as paper,
    it would come out as the outlines of its two edges)."""
    shot = Image.new("L", (1280, 800), 80)                             # the desktop
    draw = ImageDraw.Draw(shot)
    draw.rectangle([60, 40, 1220, 760], fill=45)                        # the window: title bar, menu
    for left in range(90, 600, 70):
        draw.rectangle([left, 70, left + 40, 80], fill=200)             # menu words
    draw.rectangle([80, 110, 1200, 740], fill=30)                       # the dark page
    draw.ellipse([150, 150, 230, 278], outline=220, width=10)           # a light 0
    x = np.asarray(shot, dtype=np.float64) / 255
    zero = np.zeros(x.shape, dtype=bool)
    zero[148:281, 148:233] = True
    assert not inference.is_dark_on_light(inference._shrink(x, inference.WORK_SIDE))
    steps = inference.digit_steps(x)
    kept = kept_in_full_size(steps, x.shape)
    assert kept.any() and not (kept & ~ndimage.binary_dilation(zero, iterations=4)).any(), "only the 0 is kept"
    assert ndimage.label(steps["mnist"] < 0.3)[1] == 2, "a 0 with its hole: the ground outside and the hole"


def test_the_words_of_a_menu_row_are_not_the_digit():
    """An app's menu row, shrunk until each word's letters run together: five dark blocks of
    different widths side by side on one line, each holding more ink than a thin typed 7. They
    are words in a line (``_rows`` does not find them: they are not alike), not the digit."""
    shot = Image.new("L", (1300, 820), 255)
    draw = ImageDraw.Draw(shot)
    draw.rectangle([0, 0, 1300, 30], fill=236)                          # a light title bar
    left = 30
    for width in (24, 40, 60, 90, 130):                                 # the menu's words
        draw.rectangle([left, 45, left + width, 57], fill=70)
        left += width + 30
    draw.line([(600, 300), (630, 300), (612, 345)], fill=20, width=3)   # a thin typed 7
    x = np.asarray(shot, dtype=np.float64) / 255
    seven = np.zeros(x.shape, dtype=bool)
    seven[296:350, 596:636] = True
    steps = inference.digit_steps(inference._shrink(x, inference.WORK_SIDE))
    kept = kept_in_full_size(steps, x.shape)
    assert inference.has_digit(steps)
    assert kept[seven].any() and not (kept & ~ndimage.binary_dilation(seven, iterations=4)).any(), "only the 7 is kept"
