"""Tests for imgrec_lib.plots: every function returns a Figure with the expected axes, and the
confusion matrix counts right."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from imgrec_lib.plots import (  # noqa: E402
    confusion_matrix, plot_confusion_matrix, plot_history, plot_saliency, show_feature_maps,
    show_filters, show_images, show_mistakes,
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def titles(fig):
    return [ax.get_title() for ax in fig.axes]


def small_cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(6 * 14 * 14, 10),
    )


# --------------------------------------------------------------------------- image grids

@pytest.mark.parametrize("images, n", [
    (torch.rand(10, 1, 28, 28), 10),  # grey batch
    (torch.rand(5, 3, 32, 32), 5),  # RGB batch
    (np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8), 3),  # (N, H, W) uint8
    ([torch.rand(3, 8, 8), torch.rand(1, 8, 8), np.zeros((8, 8))], 3),  # a mixed list
    (torch.randn(4, 1, 6, 6) * 3, 4),  # normalised values outside [0, 1]
])
def test_show_images_one_axis_per_image(images, n):
    fig = show_images(images, ncols=4)
    assert isinstance(fig, Figure) and len(fig.axes) == n
    for ax in fig.axes:
        data = np.asarray(ax.images[0].get_array())
        assert data.min() >= 0.0 and data.max() <= 1.0


def test_show_images_titles_and_colours():
    fig = show_images(torch.rand(3, 1, 8, 8), labels=torch.tensor([0, 1, 2]), predictions=[0, 2, 2],
                      classes=["zero", "one", "two"])
    assert titles(fig) == ["zero (zero)", "two (one)", "two (two)"]
    colours = [ax.title.get_color() for ax in fig.axes]
    assert colours[0] == colours[2] != colours[1]
    assert titles(show_images(torch.rand(2, 1, 8, 8), labels=[7, 3])) == ["7", "3"]


def test_show_images_one_colour_image_needs_a_batch_of_one():
    x = torch.rand(3, 8, 10)  # one RGB image (C, H, W)
    assert len(show_images(x).axes) == 3  # read as 3 grey images (N, H, W), as documented
    for images in (x[None], [x]):
        fig = show_images(images)
        assert len(fig.axes) == 1 and fig.axes[0].images[0].get_array().shape == (8, 10, 3)
    assert "x[None]" in show_images.__doc__


def test_show_images_errors():
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        show_images(torch.rand(3, 1, 8, 8), labels=[1, 2])
    with pytest.raises(ValueError, match="expected an image"):
        show_images(torch.rand(2, 5, 8, 8))
    with pytest.raises(ValueError, match="no images"):
        show_images([])


# --------------------------------------------------------------------------- filters and feature maps

def test_show_filters_grey_and_rgb():
    fig = show_filters(torch.randn(6, 1, 3, 3))
    assert len(fig.axes) == 6
    lo, hi = fig.axes[0].images[0].get_clim()
    assert lo == -hi  # one symmetric scale: red positive, blue negative
    assert len(show_filters(torch.nn.Conv2d(3, 4, 5)).axes) == 4  # a module works, RGB
    assert len(show_filters(np.random.randn(100, 8, 3, 3), channel=2, max_filters=10).axes) == 10
    with pytest.raises(ValueError, match="channel"):
        show_filters(np.random.randn(4, 2, 3, 3), channel=5)
    with pytest.raises(ValueError, match=r"\(F, C, KH, KW\)"):
        show_filters(np.random.randn(3, 3))


def test_show_feature_maps_by_name_and_module():
    model = small_cnn()
    x = torch.rand(1, 28, 28)
    fig = show_feature_maps(model, x, "1")
    assert len(fig.axes) == 6
    first = np.asarray(fig.axes[0].images[0].get_array())
    with torch.no_grad():
        expected = torch.relu(model[0](x[None]))[0, 0].numpy()
    np.testing.assert_allclose(first, expected, rtol=1e-5, atol=1e-6)  # it shows the layer's output
    assert len(show_feature_maps(model, x[None], model[2], max_maps=4).axes) == 4
    assert not model._forward_hooks and not model[2]._forward_hooks  # hooks removed


def test_show_feature_maps_errors():
    model = small_cnn()
    with pytest.raises(ValueError, match="no layer named 'conv9'"):
        show_feature_maps(model, torch.rand(1, 28, 28), "conv9")
    with pytest.raises(ValueError, match="pick a layer"):
        show_feature_maps(model, torch.rand(1, 28, 28), "4")  # Linear: (1, 10)
    with pytest.raises(ValueError, match="not used"):
        show_feature_maps(model, torch.rand(1, 28, 28), torch.nn.ReLU())


# --------------------------------------------------------------------------- curves

class FakeHistory:
    def __init__(self):
        self.train_loss, self.test_loss = [2.0, 1.0, 0.5], [2.1, 1.2, 0.7]
        self.train_accuracy, self.test_accuracy = [0.5, 0.8, 0.9], [0.45, 0.75, 0.85]


def test_plot_history_from_object_and_dict():
    fig = plot_history(FakeHistory())
    assert len(fig.axes) == 2
    loss_ax, acc_ax = fig.axes
    assert [list(line.get_ydata()) for line in loss_ax.lines] == [[2.0, 1.0, 0.5], [2.1, 1.2, 0.7]]
    assert list(acc_ax.lines[1].get_xdata()) == [1, 2, 3]
    fig = plot_history({"train_loss": [1.0, 0.5], "train_accuracy": [0.6, 0.7]})  # no test split
    assert len(fig.axes) == 2 and [len(ax.lines) for ax in fig.axes] == [1, 1]


# --------------------------------------------------------------------------- confusion matrix

def test_confusion_matrix_hand_count():
    y_true = [0, 0, 1, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 2, 0, 2, 2]
    expected = np.array([[1, 1, 0],
                         [0, 2, 1],
                         [1, 0, 3]])
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, 3), expected)
    np.testing.assert_array_equal(confusion_matrix(torch.tensor(y_true), torch.tensor(y_pred), 4)[:3, :3], expected)


@settings(max_examples=30, deadline=None)
@given(k=st.integers(1, 6), data=st.data())
def test_confusion_matrix_matches_a_loop(k, data):
    n = data.draw(st.integers(0, 40))
    y_true = np.array(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)), dtype=np.int64)
    y_pred = np.array(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)), dtype=np.int64)
    expected = np.zeros((k, k), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        expected[t, p] += 1
    cm = confusion_matrix(y_true, y_pred, k)
    np.testing.assert_array_equal(cm, expected)
    assert cm.sum() == n and np.trace(cm) == int((y_true == y_pred).sum())


def test_confusion_matrix_errors():
    with pytest.raises(ValueError, match="same length"):
        confusion_matrix([0, 1], [0], 2)
    with pytest.raises(ValueError, match=r"y_pred holds labels outside \[0, 2\)"):
        confusion_matrix([0, 1], [0, 2], 2)


def test_plot_confusion_matrix_counts_and_normalised():
    y_true, y_pred = [0, 0, 1, 1, 1, 2], [0, 1, 1, 1, 2, 2]
    fig = plot_confusion_matrix(y_true, y_pred, ["a", "b", "c"])
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), confusion_matrix(y_true, y_pred, 3))
    assert [t.get_text() for t in ax.texts][:3] == ["1", "1", "0"]
    assert "66.7%" in ax.get_title()
    ax = plot_confusion_matrix(y_true, y_pred, ["a", "b", "c"], normalize=True).axes[0]
    np.testing.assert_allclose(np.asarray(ax.images[0].get_array()).sum(axis=1), [1.0, 1.0, 1.0])


# --------------------------------------------------------------------------- mistakes and saliency

def test_show_mistakes_most_confident_first():
    images = torch.rand(6, 1, 8, 8)
    y_true = torch.tensor([0, 1, 2, 0, 1, 2])
    y_pred = torch.tensor([0, 2, 2, 1, 0, 2])  # mistakes at 1, 3, 4
    probs = torch.full((6, 3), 0.1)
    probs[1, 2], probs[3, 1], probs[4, 0] = 0.6, 0.9, 0.7
    fig = show_mistakes(images, y_true, y_pred, probs=probs, classes=["a", "b", "c"])
    assert titles(fig) == ["b 90% (a)", "a 70% (b)", "c 60% (b)"]
    assert len(show_mistakes(images, y_true, y_pred, max_images=2).axes) == 2
    fig = show_mistakes(images, y_true, y_true)
    assert len(fig.axes) == 1 and fig.axes[0].texts[0].get_text() == "no mistakes"


def test_plot_saliency():
    fig = plot_saliency(torch.rand(1, 28, 28), torch.rand(28, 28))
    assert len(fig.axes) == 2
    assert len(plot_saliency(torch.rand(3, 16, 16), np.random.rand(16, 16)).axes) == 2
    with pytest.raises(ValueError, match="does not match"):
        plot_saliency(torch.rand(1, 28, 28), torch.rand(14, 14))


def test_feature_maps_and_filters_of_the_course_cnn():
    from imgrec_lib.models import CourseCNN

    net = CourseCNN(widths=(8, 16), hidden=16)
    assert len(show_feature_maps(net, torch.rand(1, 28, 28), "features.0").axes) == 8
    assert len(show_feature_maps(net, torch.rand(1, 28, 28), "features.4", max_maps=12).axes) == 12
    assert len(show_filters(net.features[0].weight).axes) == 8
    assert net.training  # left as it was
