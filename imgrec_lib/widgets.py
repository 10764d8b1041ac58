"""Sliders and buttons for the lessons (ipywidgets 8): move a control, see the effect.

Each function returns the widget; show it by ending a notebook cell with it. Every widget keeps
what it computed as plain attributes (``explorer.filtered``, ``explorer.output_size``, ...), so a
test or a curious learner can set a control's ``.value`` and read the result. Pictures are drawn
with matplotlib into an ``Output`` widget.

- ``kernel_explorer(image)``: a 3x3 kernel (presets or your own numbers) on a photograph. Lesson 01.
- ``stride_padding_explorer()``: the output-size formula and the windows it counts. Lesson 01.
- ``pooling_explorer(image)``: max and average pooling with any window and stride. Lesson 02.
- ``softmax_temperature(logits)``: how temperature sharpens or flattens softmax. Lesson 03.
- ``learning_rate_explorer()``: gradient descent, momentum and Adam on a loss surface. Lesson 06.
- ``LiveCurves``: loss and accuracy redrawn after every epoch of ``fit``. Lesson 07.
- ``upload_and_classify(model, classes)`` and ``digit_pad(model, classes)``: classify your own
  digit, uploaded as a PNG/JPEG or clicked on a grid. Lesson 08. (A free-hand drawing canvas
  needs ``ipycanvas``, which is not a dependency; the grid of toggle buttons needs nothing more.)
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from IPython.display import clear_output, display
from PIL import Image, ImageFilter

from . import optim
from .plots import plot_history

if TYPE_CHECKING:  # imported where used: its image libraries take ~0.4 s, and most lessons need none
    from . import inference

__all__ = [
    "KERNELS", "SURFACES", "kernel_explorer", "stride_padding_explorer", "pooling_explorer",
    "softmax_temperature", "learning_rate_explorer", "LiveCurves", "upload_and_classify", "digit_pad",
    "KernelExplorer", "StridePaddingExplorer", "PoolingExplorer", "SoftmaxTemperature",
    "LearningRateExplorer", "UploadClassifier", "DigitPad",
]


def _show(out: widgets.Output, fig) -> None:
    """Replace what ``out`` shows by ``fig``, then free the figure."""
    with out:
        clear_output(wait=True)
        display(fig)
    plt.close(fig)


def _show_before_after(out: widgets.Output, image: np.ndarray, title: str, result: np.ndarray, result_title: str,
                       vmax: float | None = None) -> None:
    """Show a grey image in [0, 1] beside what a layer made of it, in grey from 0 to ``vmax`` (None: the
    result's own range, as a filtered image can leave [0, 1])."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.5))
    for ax, a, text, top in ((axes[0], image, title, 1), (axes[1], result, result_title, vmax)):
        ax.imshow(a, cmap="gray", vmin=None if top is None else 0, vmax=top)
        ax.set_title(text)
        ax.axis("off")
    fig.tight_layout()
    _show(out, fig)


def _grey_image(image: Any) -> np.ndarray:
    """A photograph as a grey float (H, W) array in [0, 1]; None: scikit-image's camera man."""
    if image is None:
        from skimage import data
        image = data.camera()[::2, ::2]  # 256x256 keeps every redraw quick
    a = image.detach().cpu().numpy() if torch.is_tensor(image) else np.asarray(image)
    eight_bit = a.dtype == np.uint8  # a's dtype: a tensor that requires grad cannot be np.asarray'd
    if a.ndim == 3 and a.shape[0] in (1, 3):  # (C, H, W)
        a = a.mean(axis=0)
    elif a.ndim == 3 and a.shape[-1] in (3, 4):  # (H, W, 3) as loaded from a file
        a = a[..., :3].mean(axis=-1)
    if a.ndim != 2:
        raise ValueError(f"expected an image of shape (H, W), (C, H, W) or (H, W, 3), got {a.shape}")
    a = a.astype(np.float64)
    return a / 255.0 if eight_bit or a.max() > 1.0 else a


# --------------------------------------------------------------------------- lesson 01: kernels

KERNELS = {
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "blur": [[1 / 16, 2 / 16, 1 / 16], [2 / 16, 4 / 16, 2 / 16], [1 / 16, 2 / 16, 1 / 16]],
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "sobel x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "sobel y": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "edge": [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]],
}


class KernelExplorer(widgets.VBox):
    """Pick or type a 3x3 kernel and see the photograph filtered by it. Lesson 01.

    ``preset`` (Dropdown) and ``cells`` (nine FloatText, row by row) are the controls; ``kernel``
    is the 3x3 array now in use and ``filtered`` the (H, W) result of cross-correlating the image
    with it, zero padding 1 so the size stays (as ``torch.nn.functional.conv2d`` computes it)."""

    def __init__(self, image: Any = None):
        self.image = _grey_image(image)
        self.preset = widgets.Dropdown(options=list(KERNELS) + ["custom"], value="identity",
                                       description="kernel")
        self.cells = [widgets.FloatText(value=0.0, step=0.5, layout=widgets.Layout(width="70px"))
                      for _ in range(9)]
        self.out = widgets.Output()
        self._setting = False  # True while a preset fills the nine cells
        self.preset.observe(self._on_preset, names="value")
        for cell in self.cells:
            cell.observe(self._on_cell, names="value")
        grid = widgets.GridBox(self.cells, layout=widgets.Layout(grid_template_columns="repeat(3, 75px)"))
        super().__init__([widgets.HBox([self.preset, grid]), self.out])
        self._on_preset()

    @property
    def kernel(self) -> np.ndarray:
        return np.array([c.value for c in self.cells], dtype=np.float64).reshape(3, 3)

    def _on_preset(self, change=None) -> None:
        if self.preset.value == "custom":
            return
        self._setting = True
        for cell, v in zip(self.cells, np.ravel(KERNELS[self.preset.value])):
            cell.value = float(v)
        self._setting = False
        self.update()

    def _on_cell(self, change) -> None:
        if self._setting:
            return
        match = [name for name, k in KERNELS.items() if np.allclose(k, self.kernel)]
        self._setting = True  # naming the preset must not overwrite the cells
        self.preset.value = match[0] if match else "custom"
        self._setting = False
        self.update()

    def update(self) -> None:
        x = torch.from_numpy(self.image)[None, None]
        k = torch.from_numpy(self.kernel)[None, None]
        self.filtered = F.conv2d(x, k, padding=1)[0, 0].numpy()
        _show_before_after(self.out, self.image, "input", self.filtered, f"filtered: {self.preset.value}")


def kernel_explorer(image: Any = None) -> KernelExplorer:
    """A 3x3 kernel on a grey photograph (H, W) or (C, H, W); None uses scikit-image's camera
    man. Choose a preset (identity, blur, sharpen, Sobel x/y, edge) or type numbers. Lesson 01."""
    return KernelExplorer(image)


class _Explorer(widgets.VBox):
    """Controls above a figure (``self.out``) that ``update`` draws again whenever one of them changes."""

    def _start(self, header: widgets.Widget, controls: Sequence[widgets.Widget]) -> None:
        self.out = widgets.Output()
        for control in controls:
            control.observe(lambda change: self.update(), names="value")
        super().__init__([header, self.out])
        self.update()


# --------------------------------------------------------------------------- lesson 01: stride, padding

class StridePaddingExplorer(_Explorer):
    """Sliders ``size``, ``kernel``, ``stride``, ``padding``; ``output_size`` is
    floor((size + 2 padding - kernel) / stride) + 1, shown in ``formula`` with the numbers filled
    in, and the drawing shows where the windows of the first output row fall. Lesson 01."""

    def __init__(self, size: int = 7, kernel: int = 3, stride: int = 1, padding: int = 0):
        self.size = widgets.IntSlider(value=size, min=1, max=16, description="input size")
        self.kernel = widgets.IntSlider(value=kernel, min=1, max=7, description="kernel size")
        self.stride = widgets.IntSlider(value=stride, min=1, max=4, description="stride")
        self.padding = widgets.IntSlider(value=padding, min=0, max=3, description="padding")
        self.formula = widgets.HTML()
        controls = [self.size, self.kernel, self.stride, self.padding]
        self._start(widgets.HBox([widgets.VBox(controls), self.formula]), controls)

    def update(self) -> None:
        n, k, s, p = self.size.value, self.kernel.value, self.stride.value, self.padding.value
        fits = n + 2 * p >= k
        self.output_size = (n + 2 * p - k) // s + 1 if fits else 0
        self.formula.value = (
            f"<p>output = &lfloor;(n + 2p &minus; k) / s&rfloor; + 1 = "
            f"&lfloor;({n} + 2&middot;{p} &minus; {k}) / {s}&rfloor; + 1 = <b>{self.output_size}</b></p>"
            f"<p>a {n}&times;{n} input gives a <b>{self.output_size}&times;{self.output_size}</b> output</p>"
            if fits else f"<p>the kernel ({k}) is larger than the padded input ({n + 2 * p}): no output</p>"
        )
        _show(self.out, self._draw(n, k, s, p))

    def _draw(self, n: int, k: int, s: int, p: int):
        total = n + 2 * p
        cells = np.full((total, total), 0.85)  # grey: padding
        cells[p:p + n, p:p + n] = 1.0  # white: the input
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.imshow(cells, cmap="gray", vmin=0, vmax=1, extent=(0, total, total, 0))
        ax.set_xticks(range(total + 1))
        ax.set_yticks(range(total + 1))
        ax.grid(color="0.6", lw=0.5)
        ax.tick_params(length=0, labelbottom=False, labelleft=False)
        colors = plt.cm.tab10.colors
        for col in range(self.output_size):  # the windows of the first output row, the first one filled
            inset = 0.08 + 0.12 * (col % 3)  # staggered so that overlapping windows stay apart
            ax.add_patch(plt.Rectangle((col * s + inset, inset), k - 2 * inset, k - 2 * inset,
                                       fill=col == 0, alpha=0.3 if col == 0 else 1.0,
                                       edgecolor=colors[col % 10], facecolor=colors[0], lw=2))
        ax.set_title(f"padded input {total}x{total} (grey: padding); windows of output row 0", fontsize=9)
        return fig


def stride_padding_explorer() -> StridePaddingExplorer:
    """Move input size, kernel size, stride and padding; read the output size. Lesson 01."""
    return StridePaddingExplorer()


# --------------------------------------------------------------------------- lesson 02: pooling

class PoolingExplorer(_Explorer):
    """``mode`` (max or average), ``kernel`` and ``stride`` sliders; ``pooled`` is the result
    (H', W') of ``torch.nn.functional.max_pool2d`` / ``avg_pool2d`` on the image. Lesson 02."""

    def __init__(self, image: Any = None):
        self.image = _grey_image(image)
        limit = min(8, *self.image.shape)
        self.mode = widgets.ToggleButtons(options=["max", "average"], value="max")
        self.kernel = widgets.IntSlider(value=min(2, limit), min=1, max=limit, description="kernel")
        self.stride = widgets.IntSlider(value=min(2, limit), min=1, max=limit, description="stride")
        self._start(widgets.HBox([self.mode, self.kernel, self.stride]), [self.mode, self.kernel, self.stride])

    def update(self) -> None:
        x = torch.from_numpy(self.image)[None, None]
        pool = F.max_pool2d if self.mode.value == "max" else F.avg_pool2d
        self.pooled = pool(x, self.kernel.value, self.stride.value)[0, 0].numpy()
        (h, w), (ph, pw) = self.image.shape, self.pooled.shape
        _show_before_after(self.out, self.image, f"input {h}x{w}", self.pooled, f"{self.mode.value} pool: {ph}x{pw}",
                           vmax=1)


def pooling_explorer(image: Any = None) -> PoolingExplorer:
    """Max and average pooling of a grey image (None: the camera man) with a chosen window and
    stride: how much survives downsampling? Lesson 02."""
    return PoolingExplorer(image)


# --------------------------------------------------------------------------- lesson 03: softmax

class SoftmaxTemperature(_Explorer):
    """A ``temperature`` slider (log scale); ``probabilities`` = softmax(logits / T). Lesson 03."""

    def __init__(self, logits: Any, classes: Sequence[str] | None = None):
        z = logits.detach().cpu().numpy() if torch.is_tensor(logits) else np.asarray(logits)
        self.logits = z.astype(np.float64).ravel()
        if self.logits.size < 2:
            raise ValueError(f"expected a vector of at least 2 logits, got shape {np.shape(z)}")
        self.classes = [str(c) for c in classes] if classes is not None else [str(i) for i in range(self.logits.size)]
        if len(self.classes) != self.logits.size:
            raise ValueError(f"got {self.logits.size} logits but {len(self.classes)} class names")
        self.temperature = widgets.FloatLogSlider(value=1.0, base=10, min=-1.5, max=1.5, step=0.05,
                                                  description="temperature")
        self._start(self.temperature, [self.temperature])

    def update(self) -> None:
        z = self.logits / self.temperature.value
        e = np.exp(z - z.max())  # subtract the max: no overflow (lesson 03)
        self.probabilities = e / e.sum()
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.bar(self.classes, self.probabilities, color="tab:blue")
        ax.set_ylim(0, 1)
        ax.set_ylabel("probability")
        ax.set_title(f"softmax(logits / {self.temperature.value:.2f})")
        fig.tight_layout()
        _show(self.out, fig)


def softmax_temperature(logits: Any, classes: Sequence[str] | None = None) -> SoftmaxTemperature:
    """Softmax of ``logits`` (K,) divided by a temperature: low T picks the largest, high T
    spreads the probability evenly. Lesson 03."""
    return SoftmaxTemperature(logits, classes)


# --------------------------------------------------------------------------- lesson 06: learning rate

def _ravine(p):  # lesson 06's ravine (section 2): a long narrow valley, 20 times steeper across than along
    x, y = p
    return 0.5 * (x ** 2 + 20 * y ** 2), np.array([x, 20 * y])


def _rosenbrock(p):  # a curved valley with its minimum at (1, 1)
    x, y = p
    return (1 - x) ** 2 + 10 * (y - x ** 2) ** 2, np.array([-2 * (1 - x) - 40 * x * (y - x ** 2), 20 * (y - x ** 2)])


# name: (loss and gradient, start, plot limits (xmin, xmax, ymin, ymax))
SURFACES = {
    "ravine": (_ravine, (-4.5, 1.0), (-5, 5, -2, 2)),
    "rosenbrock": (_rosenbrock, (-1.5, 2.0), (-2, 2, -1, 3)),
}


def _descend(surface, start, optimizer: str, lr: float, steps: int) -> np.ndarray:
    """The points (steps + 1, 2) that one optimizer of ``optim`` visits (lesson 06's steps, with
    their default momentum and betas); stops early once it blows up."""
    p = np.array(start, dtype=np.float64)  # updated in place by the optim steps
    velocities, state = [], {}  # the memory of momentum and of Adam
    path = [p.copy()]
    for _ in range(steps):
        _, g = surface(p)
        if optimizer == "gradient descent":
            optim.sgd_step([p], [g], lr)
        elif optimizer == "momentum":
            optim.sgd_momentum_step([p], [g], velocities, lr)
        else:
            optim.adam_step([p], [g], state, lr)
        if not np.all(np.isfinite(p)) or np.abs(p).max() > 1e3:  # diverged: stop drawing
            break
        path.append(p.copy())
    return np.array(path)


class LearningRateExplorer(_Explorer):
    """``lr`` (log slider), ``steps`` and ``surface`` controls; ``paths`` maps each optimizer
    ("gradient descent", "momentum", "adam") to the (steps + 1, 2) points it visits (fewer if
    it diverged) and ``losses`` to the loss at its last point. Lesson 06."""

    OPTIMIZERS = ("gradient descent", "momentum", "adam")

    def __init__(self, lr: float = 0.05, steps: int = 50):
        self.lr = widgets.FloatLogSlider(value=lr, base=10, min=-4, max=0, step=0.1, description="lr",
                                         readout_format=".4f")
        self.steps = widgets.IntSlider(value=steps, min=1, max=300, description="steps")
        self.surface = widgets.Dropdown(options=list(SURFACES), value="ravine", description="surface")
        self._start(widgets.HBox([self.lr, self.steps, self.surface]), [self.lr, self.steps, self.surface])

    def update(self) -> None:
        f, start, (x0, x1, y0, y1) = SURFACES[self.surface.value]
        self.paths = {name: _descend(f, start, name, self.lr.value, self.steps.value) for name in self.OPTIMIZERS}
        self.losses = {name: float(f(path[-1])[0]) for name, path in self.paths.items()}
        xs, ys = np.meshgrid(np.linspace(x0, x1, 120), np.linspace(y0, y1, 120))
        zs = f((xs, ys))[0]
        fig, (ax, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
        ax.contour(xs, ys, np.log1p(zs), levels=25, cmap="Greys", linewidths=0.6)
        for name, path in self.paths.items():
            diverged = len(path) <= self.steps.value
            ax.plot(path[:, 0], path[:, 1], ".-", ms=3, label=name + (" (diverged)" if diverged else ""))
            ax_loss.semilogy([f(q)[0] + 1e-12 for q in path], label=name)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_title(f"{self.surface.value}, lr = {self.lr.value:.4g}")
        ax.legend(fontsize=8)
        ax_loss.set_xlabel("step")
        ax_loss.set_ylabel("loss")
        ax_loss.legend(fontsize=8)
        fig.tight_layout()
        _show(self.out, fig)


def learning_rate_explorer() -> LearningRateExplorer:
    """Gradient descent, momentum and Adam side by side on a 2-D loss surface; move the learning
    rate and watch each one crawl, converge, oscillate or diverge. Lesson 06."""
    return LearningRateExplorer()


# --------------------------------------------------------------------------- lesson 07: live curves

class LiveCurves(widgets.Output):
    """Loss and accuracy curves redrawn after each epoch of training. Lesson 07.

        live = LiveCurves()
        display(live)
        history = fit(net, train_data, test_data, on_epoch_end=live)

    ``fit`` calls it as ``on_epoch_end(epoch, history)``; ``epochs_drawn`` counts the redraws."""

    def __init__(self):
        super().__init__()
        self.epochs_drawn = 0

    def __call__(self, epoch: int, history: Any) -> None:
        self.on_epoch_end(epoch, history)

    def on_epoch_end(self, epoch: int, history: Any) -> None:
        fig = plot_history(history)
        fig.suptitle(f"after epoch {epoch}", fontsize=10)
        _show(self, fig)
        self.epochs_drawn += 1


# --------------------------------------------------------------------------- lesson 08: your own digit

def _png(x: torch.Tensor, scale: int = 4) -> bytes:
    """A (C, H, W) tensor in [0, 1] as PNG bytes, enlarged ``scale`` times, for ``widgets.Image``."""
    a = (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    img = Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a)
    img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def _ranking_html(prediction: inference.Prediction) -> str:
    rows = "".join(f"<tr><td>{name}</td><td>{p:.1%}</td>"
                   f"<td><div style='background:#4c72b0;height:10px;width:{p * 150:.0f}px'></div></td></tr>"
                   for name, p in prediction.top_k)
    return f"<p>it looks like a <b>{prediction.label}</b></p><table>{rows}</table>"


class UploadClassifier(widgets.VBox):
    """An upload button: the model classifies the image you choose. ``upload`` is the FileUpload,
    ``input`` the (C, H, W) tensor the model saw (also shown), ``prediction`` its answer and
    ``error`` the message when the file could not be read. Lesson 08."""

    def __init__(self, model: torch.nn.Module, classes: Sequence[str], input_shape: Sequence[int] | None = None,
                 top_k: int = 3):
        from . import inference

        self.model, self.classes, self.top_k = model, list(classes), top_k
        self.input_shape = tuple(input_shape) if input_shape is not None else inference._model_input_shape(model)
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="image")
        self.preview = widgets.Image(format="png", layout=widgets.Layout(width="112px", height="112px"))
        self.result = widgets.HTML("<p>upload a PNG or JPEG of a digit (dark on white paper is fine)</p>")
        self.input = self.prediction = self.error = None
        self.upload.observe(self._on_upload, names="value")
        super().__init__([self.upload, widgets.HBox([self.preview, self.result])])

    def _on_upload(self, change) -> None:
        if not self.upload.value:
            return
        file = self.upload.value[-1]
        self.classify(bytes(file["content"]), file.get("name", "the upload"))

    def classify(self, data: bytes, name: str = "the upload") -> inference.Prediction | None:
        """Classify the bytes of an image file; what an upload does."""
        from . import inference

        try:
            self.input = inference.image_from_bytes(data, self.input_shape, name=name)
        except (inference.ImageError, inference.NoDigitError) as e:  # not an image; no digit in it
            self.input, self.prediction, self.error = None, None, str(e)
            self.result.value = f"<p style='color:#c44e52'>{e}</p>"
            return None
        self.error = None
        self.prediction = inference.predict_tensor(self.model, self.input, self.classes, top_k=self.top_k)
        self.preview.value = _png(self.input)
        self.result.value = _ranking_html(self.prediction)
        return self.prediction


def upload_and_classify(model: torch.nn.Module, classes: Sequence[str],
                        input_shape: Sequence[int] | None = None) -> UploadClassifier:
    """Upload a photo or scan of a digit and see the model's top 3, with the 28x28 picture it was
    turned into (``inference.load_image``'s preprocessing). Lesson 08."""
    return UploadClassifier(model, classes, input_shape)


def pad_to_mnist(pixels: np.ndarray) -> np.ndarray:
    """A drawing pad's cells (grid, grid), 1 where on -> the (28, 28) the model sees. The pad's ink is
    light on dark and there is no paper, light or ruling to undo, so only the pipeline's last steps run
    (inference.crop_digit, normalise_strokes, mnist_layout): cells enlarged and softened a little like
    a pen stroke, the digit cut out, given MNIST's pen and laid out like MNIST. (The whole pipeline
    would have to guess which way round the picture is, and takes a broad light digit for a page.)"""
    from . import inference

    grid = pixels.shape[0]
    img = Image.fromarray((np.asarray(pixels) * 255).astype(np.uint8)).resize((grid * 8, grid * 8),
                                                                              Image.Resampling.NEAREST)
    ink = np.asarray(img.filter(ImageFilter.GaussianBlur(radius=3)), dtype=np.float32) / 255
    crop = inference.crop_digit(ink, ink > 0.5)
    return inference.mnist_layout(inference.normalise_strokes(crop))


class DigitPad(widgets.VBox):
    """A ``grid`` x ``grid`` pad of toggle buttons to click a digit on; every click re-classifies.
    ``cells`` are the buttons (row by row), ``input`` the (1, 28, 28) tensor the model saw,
    ``prediction`` its answer (None on an empty pad). Lesson 08."""

    def __init__(self, model: torch.nn.Module, classes: Sequence[str], grid: int = 14, top_k: int = 3):
        self.model, self.classes, self.grid, self.top_k = model, list(classes), grid, top_k
        button = widgets.Layout(width="20px", height="20px", padding="0", margin="0")
        self.cells = [widgets.ToggleButton(value=False, layout=button, button_style="") for _ in range(grid * grid)]
        self.clear = widgets.Button(description="clear")
        self.preview = widgets.Image(format="png", layout=widgets.Layout(width="112px", height="112px"))
        self.result = widgets.HTML("<p>click cells to draw a digit</p>")
        self.input = self.prediction = None
        self._clearing = False
        for cell in self.cells:
            cell.observe(self._on_cell, names="value")
        self.clear.on_click(lambda _: self.reset())
        pad = widgets.GridBox(self.cells, layout=widgets.Layout(grid_template_columns=f"repeat({grid}, 20px)",
                                                                grid_gap="0px"))
        super().__init__([widgets.HBox([pad, widgets.VBox([self.clear, self.preview, self.result])])])

    def pixels(self) -> np.ndarray:
        """The pad as a (grid, grid) array, 1 where a cell is on."""
        return np.array([c.value for c in self.cells], dtype=np.float64).reshape(self.grid, self.grid)

    def draw(self, pixels: Any) -> None:
        """Set the whole pad from a (grid, grid) array of 0/1 (classifies once)."""
        pixels = np.asarray(pixels).reshape(self.grid, self.grid)
        self._clearing = True
        for cell, v in zip(self.cells, pixels.ravel()):
            cell.value = bool(v)
        self._clearing = False
        self.update()

    def reset(self) -> None:
        self.draw(np.zeros((self.grid, self.grid)))

    def _on_cell(self, change) -> None:
        change["owner"].button_style = "primary" if change["new"] else ""
        if not self._clearing:
            self.update()

    def update(self) -> None:
        pixels = self.pixels()
        if not pixels.any():
            self.input, self.prediction = None, None
            self.result.value = "<p>click cells to draw a digit</p>"
            return
        if pixels.all():
            self.input, self.prediction = None, None
            self.result.value = "<p>no digit found: the pad is full; clear some cells</p>"
            return
        self.input = torch.from_numpy(pad_to_mnist(pixels))[None]
        from . import inference

        self.prediction = inference.predict_tensor(self.model, self.input, self.classes, top_k=self.top_k)
        self.preview.value = _png(self.input)
        self.result.value = _ranking_html(self.prediction)


def digit_pad(model: torch.nn.Module, classes: Sequence[str], grid: int = 14) -> DigitPad:
    """Click a digit on a 14x14 pad and watch the model's guess change with every cell. Lesson 08."""
    return DigitPad(model, classes, grid)
