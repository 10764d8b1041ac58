"""Tests for imgrec_lib.widgets: build each widget, move its controls by setting ``.value``, and
check what it computed against PyTorch or the formula."""

import matplotlib

matplotlib.use("Agg")

import datetime  # noqa: E402
import io  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from imgrec_lib import widgets as W  # noqa: E402
from imgrec_lib.inference import Prediction, load_image, predict_tensor  # noqa: E402

CLASSES = [str(i) for i in range(10)]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def tiny_model(in_features=784, num_classes=10):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(in_features, num_classes))


def photo(h=20, w=24):
    return np.random.default_rng(0).random((h, w))


# --------------------------------------------------------------------------- kernels

@pytest.mark.parametrize("preset", list(W.KERNELS))
def test_kernel_explorer_preset_equals_a_direct_conv(preset):
    image = photo()
    explorer = W.kernel_explorer(image)
    explorer.preset.value = preset
    np.testing.assert_allclose(explorer.kernel, W.KERNELS[preset])
    expected = F.conv2d(torch.tensor(image)[None, None], torch.tensor(W.KERNELS[preset], dtype=torch.float64)[None, None],
                        padding=1)[0, 0].numpy()
    np.testing.assert_allclose(explorer.filtered, expected, atol=1e-12)
    assert explorer.filtered.shape == image.shape


def test_kernel_explorer_identity_and_custom_edits():
    image = photo()
    explorer = W.kernel_explorer(image)
    assert explorer.preset.value == "identity"
    np.testing.assert_allclose(explorer.filtered, image)
    explorer.cells[4].value = 2.0  # the centre: now twice the image
    assert explorer.preset.value == "custom"
    np.testing.assert_allclose(explorer.filtered, 2 * image)
    explorer.cells[4].value = 1.0  # back to a known kernel: the preset is named again
    assert explorer.preset.value == "identity"


def test_kernel_explorer_accepts_tensors_uint8_and_the_default_photo():
    rgb = torch.rand(3, 10, 12)
    np.testing.assert_allclose(W.kernel_explorer(rgb).image, rgb.mean(0).numpy(), rtol=1e-6)
    grey = np.full((8, 8), 255, dtype=np.uint8)
    assert W.kernel_explorer(grey).image.max() == 1.0
    assert W.kernel_explorer().image.shape == (256, 256)
    with pytest.raises(ValueError, match="expected an image"):
        W.kernel_explorer(np.zeros(5))


@pytest.mark.parametrize("explorer", [W.kernel_explorer, W.pooling_explorer])
def test_explorers_accept_a_feature_map_that_requires_grad(explorer):
    torch.manual_seed(0)
    feature_map = torch.nn.Conv2d(1, 1, 3)(torch.rand(1, 1, 30, 30))[0, 0]  # requires grad
    assert feature_map.requires_grad
    np.testing.assert_allclose(explorer(feature_map).image, feature_map.detach().numpy(), rtol=1e-6)


# --------------------------------------------------------------------------- stride and padding

@pytest.fixture(scope="module")
def stride_explorer():
    return W.stride_padding_explorer()  # one widget, its sliders moved again and again


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 16), k=st.integers(1, 7), s=st.integers(1, 4), p=st.integers(0, 3))
def test_stride_padding_output_size_matches_conv2d(stride_explorer, n, k, s, p):
    explorer = stride_explorer
    explorer.size.value, explorer.kernel.value, explorer.stride.value, explorer.padding.value = n, k, s, p
    if n + 2 * p >= k:
        expected = F.conv2d(torch.zeros(1, 1, n, n), torch.zeros(1, 1, k, k), stride=s, padding=p).shape[-1]
        assert f"<b>{expected}</b>" in explorer.formula.value
    else:
        expected = 0
        assert "larger than the padded input" in explorer.formula.value
    assert explorer.output_size == expected


# --------------------------------------------------------------------------- pooling

@pytest.mark.parametrize("mode, kernel, stride", [("max", 2, 2), ("average", 3, 1), ("max", 4, 3), ("average", 1, 2)])
def test_pooling_explorer_equals_torch(mode, kernel, stride):
    image = photo(17, 21)
    explorer = W.pooling_explorer(image)
    explorer.mode.value, explorer.kernel.value, explorer.stride.value = mode, kernel, stride
    pool = F.max_pool2d if mode == "max" else F.avg_pool2d
    expected = pool(torch.tensor(image)[None, None], kernel, stride)[0, 0].numpy()
    np.testing.assert_allclose(explorer.pooled, expected)


# --------------------------------------------------------------------------- softmax temperature

def test_softmax_temperature():
    logits = torch.tensor([1.0, 3.0, 0.5, 2.0])
    widget = W.softmax_temperature(logits, classes=["a", "b", "c", "d"])
    np.testing.assert_allclose(widget.probabilities, torch.softmax(logits.double(), 0).numpy(), rtol=1e-12)
    widget.temperature.value = 0.05
    assert widget.probabilities[1] > 0.99
    widget.temperature.value = 30.0
    assert widget.probabilities.max() - widget.probabilities.min() < 0.03
    assert np.argsort(widget.probabilities).tolist() == [2, 0, 3, 1]  # order never changes
    widget.temperature.value = 2.0
    np.testing.assert_allclose(widget.probabilities, torch.softmax(logits.double() / 2, 0).numpy(), rtol=1e-12)
    np.testing.assert_allclose(W.softmax_temperature([1000.0, 0.0]).probabilities, [1.0, 0.0])  # stable
    with pytest.raises(ValueError, match="2 logits but 3"):
        W.softmax_temperature([1.0, 2.0], classes=["a", "b", "c"])


# --------------------------------------------------------------------------- learning rate

def torch_path(optimizer_cls, start, lr, steps, **kwargs):
    """The points a torch optimizer visits on the ravine 0.5 (x^2 + 20 y^2) of lesson 06."""
    p = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = optimizer_cls([p], lr=lr, **kwargs)
    path = [p.detach().clone()]
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * (p[0] ** 2 + 20 * p[1] ** 2)).backward()
        opt.step()
        path.append(p.detach().clone())
    return torch.stack(path).numpy()


def test_learning_rate_explorer_matches_torch_optimizers():
    explorer = W.learning_rate_explorer()
    explorer.lr.value, explorer.steps.value = 0.01, 30
    start = W.SURFACES["ravine"][1]
    np.testing.assert_allclose(explorer.paths["gradient descent"], torch_path(torch.optim.SGD, start, 0.01, 30))
    np.testing.assert_allclose(explorer.paths["momentum"], torch_path(torch.optim.SGD, start, 0.01, 30, momentum=0.9))
    np.testing.assert_allclose(explorer.paths["adam"], torch_path(torch.optim.Adam, start, 0.01, 30), rtol=1e-7)


def test_learning_rate_explorer_speed_and_divergence():
    explorer = W.learning_rate_explorer()
    explorer.lr.value, explorer.steps.value = 0.05, 50
    assert explorer.losses["momentum"] < explorer.losses["gradient descent"]  # momentum runs the ravine
    assert all(len(path) == 51 for path in explorer.paths.values())
    explorer.lr.value = 0.3  # above 2 / 20 (20: the steepest curvature): gradient descent blows up
    assert len(explorer.paths["gradient descent"]) < 51
    assert len(explorer.paths["adam"]) == 51 and np.isfinite(explorer.losses["adam"])
    explorer.surface.value = "rosenbrock"
    explorer.lr.value = 0.001
    start_loss = W.SURFACES["rosenbrock"][0](W.SURFACES["rosenbrock"][1])[0]
    assert all(loss < start_loss for loss in explorer.losses.values())


# --------------------------------------------------------------------------- live curves

def test_live_curves_redraws_every_epoch():
    live = W.LiveCurves()
    history = {"train_loss": [], "test_loss": [], "train_accuracy": [], "test_accuracy": []}
    for epoch in range(1, 4):
        for key in history:
            history[key].append(1.0 / epoch)
        live(epoch, history)
    assert live.epochs_drawn == 3
    assert not plt.get_fignums()  # each figure is closed after drawing


def test_live_curves_as_fit_callback():
    from imgrec_lib.training import fit

    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.rand(32, 1, 28, 28), torch.randint(0, 10, (32,)))
    live = W.LiveCurves()
    history = fit(tiny_model(), data, data, epochs=2, batch_size=16, device="cpu", progress=False,
                  on_epoch_end=live)
    assert live.epochs_drawn == 2 == len(history.train_loss)


# --------------------------------------------------------------------------- your own digit

def png_bytes(img):
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def upload(widget, name, data):
    widget.upload.value = ({"name": name, "type": "image/png", "size": len(data), "content": memoryview(data),
                            "last_modified": datetime.datetime(2024, 1, 1)},)


def test_upload_and_classify_png(tmp_path):
    img = Image.new("L", (120, 160), 255)
    ImageDraw.Draw(img).line([(60, 20), (60, 140)], fill=0, width=12)  # a dark "1" on paper
    path = tmp_path / "one.png"
    img.save(path)
    model = tiny_model()
    widget = W.upload_and_classify(model, CLASSES)
    upload(widget, "one.png", path.read_bytes())
    expected = predict_tensor(model, load_image(path), CLASSES)
    assert isinstance(widget.prediction, Prediction) and widget.error is None
    assert widget.prediction.top_k == expected.top_k
    assert torch.equal(widget.input, load_image(path))
    assert widget.preview.value[:4] == b"\x89PNG" and widget.prediction.label in widget.result.value


def test_upload_and_classify_bad_file_and_colour_model():
    widget = W.upload_and_classify(tiny_model(), CLASSES)
    upload(widget, "notes.png", b"not a picture")
    assert widget.prediction is None and "notes.png" in widget.error and "notes.png" in widget.result.value
    upload(widget, "empty.png", b"")
    assert "empty" in widget.error
    model = tiny_model(3 * 16 * 16, 4)
    model.config = {"in_channels": 3, "image_size": 16}  # the input shape comes from the model
    widget = W.upload_and_classify(model, ["a", "b", "c", "d"])
    upload(widget, "red.png", png_bytes(Image.new("RGB", (40, 30), (220, 20, 20))))
    assert widget.input.shape == (3, 16, 16) and len(widget.prediction.top_k) == 3


def test_upload_of_a_blank_page_and_a_full_pad_say_no_digit_was_found():
    widget = W.upload_and_classify(tiny_model(), CLASSES)
    upload(widget, "blank.png", png_bytes(Image.new("L", (400, 300), 245)))
    assert widget.prediction is None and widget.input is None
    assert "no digit found" in widget.error and "no digit found" in widget.result.value
    pad = W.digit_pad(tiny_model(), CLASSES)
    pad.draw(np.ones((14, 14)))  # every cell on
    assert pad.prediction is None and "no digit found" in pad.result.value
    pad.clear.click()
    assert "click cells" in pad.result.value


def test_a_bold_digit_on_the_pad_reaches_the_model_light_on_dark():
    """The pad's ink is light on dark: a 0 drawn three cells wide is a bright ring on black for the
    model, not taken for a sheet of paper on a desk and inverted (a bright background)."""
    pad = W.digit_pad(tiny_model(), CLASSES)
    pixels = np.zeros((14, 14))
    pixels[1:13, 3:11] = 1
    pixels[4:10, 6:8] = 0  # a bold 0: a ring three cells wide around a narrow hole
    pad.draw(pixels)
    seen = pad.input[0].numpy()
    assert seen[0].max() == 0 and seen[:, 0].max() == 0, "the background must stay dark"
    assert seen.max() > 0.9 and seen[14, 14] < seen.max() / 2, "a bright ring around a darker middle"


def test_digit_pad_classifies_what_is_clicked():
    model = tiny_model()
    pad = W.digit_pad(model, CLASSES)
    assert len(pad.cells) == 14 * 14 and pad.prediction is None
    pad.cells[3 * 14 + 2].value = True  # one click: a prediction already
    assert isinstance(pad.prediction, Prediction) and pad.cells[3 * 14 + 2].button_style == "primary"
    pixels = np.zeros((14, 14))
    pixels[2:12, 4] = 1  # a "1" drawn left of centre
    pad.draw(pixels)
    np.testing.assert_array_equal(pad.pixels(), pixels)
    x = pad.input[0]
    assert x.shape == (28, 28) and float(x.max()) > 0.5
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    assert abs(float((x * xs).sum() / x.sum()) - 14) < 1.0  # centred like MNIST
    assert float(x[:, :4].max()) < 0.05  # the background stays black
    assert pad.prediction.top_k == predict_tensor(model, pad.input, CLASSES).top_k
    pad.clear.click()
    assert pad.prediction is None and not pad.pixels().any()


def test_importing_widgets_leaves_the_image_libraries_out():
    """Most lessons import widgets for a plot or an explorer; scikit-image waits for the digit widgets."""
    import subprocess
    import sys

    code = "import sys, imgrec_lib.widgets; print(sorted(m for m in ('skimage', 'imgrec_lib.inference') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
