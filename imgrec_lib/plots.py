"""Figures for the lessons: image grids, filters, feature maps, training curves, the confusion
matrix, the mistakes and saliency maps.

Each function returns the matplotlib ``Figure`` and never calls ``plt.show()``: a notebook shows
it at the end of the cell (end the line with ``;`` to show it once), a script calls ``plt.show()``
or ``fig.savefig(...)``, and a test closes it with ``plt.close(fig)``. No backend is forced.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from .device import eval_mode, model_device

__all__ = [
    "show_images", "show_filters", "show_feature_maps", "plot_history", "confusion_matrix",
    "plot_confusion_matrix", "show_mistakes", "plot_saliency",
]

RIGHT, WRONG = "tab:green", "tab:red"  # title colours for right and wrong predictions


def _numpy(a: Any) -> np.ndarray:
    """A tensor (any device, with or without grad) or array-like as a NumPy array."""
    if torch.is_tensor(a):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _as_picture(img: Any) -> np.ndarray:
    """One image (C, H, W) with C = 1 or 3, (H, W) or (H, W, 3) -> (H, W) or (H, W, 3) in [0, 1]."""
    a = _numpy(img)
    if a.ndim == 3 and a.shape[0] in (1, 3):  # channels first, the PyTorch way
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] != 3):
        raise ValueError(f"expected an image of shape (C, H, W) or (H, W) with C = 1 or 3, got {_numpy(img).shape}")
    if a.dtype == np.uint8:
        return a / 255.0
    a = a.astype(np.float64)
    lo, hi = a.min(), a.max()
    if lo < 0.0 or hi > 1.0:  # e.g. normalised with a mean and std: stretch to [0, 1] for display
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return a


def _image_list(images: Any) -> list[np.ndarray]:
    """(N, C, H, W), (N, H, W) or a list of images -> a list of pictures for ``imshow``."""
    if isinstance(images, (list, tuple)):
        return [_as_picture(img) for img in images]
    a = _numpy(images)
    if a.ndim == 4:
        return [_as_picture(img) for img in a]
    if a.ndim == 3:  # a batch of grey images (N, H, W); one colour image needs x[None]
        return [_as_picture(img) for img in a]
    if a.ndim == 2:
        return [_as_picture(a)]
    raise ValueError(f"expected images of shape (N, C, H, W), (N, H, W) or a list, got {a.shape}")


def _name(value: Any, classes: Sequence | None) -> str:
    """A label (int, tensor element or name) as text, through ``classes`` when given."""
    if torch.is_tensor(value) or isinstance(value, np.generic):
        value = value.item()
    if classes is not None and isinstance(value, (int, np.integer)):
        return str(classes[int(value)])
    return str(value)


def _grid(pictures: list[np.ndarray], titles: Sequence[str] | None = None,
          colors: Sequence[str] | None = None, ncols: int = 8, cmap: str = "gray",
          vrange: tuple[float, float] | None = (0.0, 1.0), size: float = 1.5) -> Figure:
    """One axis per picture, ``ncols`` to a row; the unused cells of the last row are removed."""
    n = len(pictures)
    if n == 0:
        raise ValueError("no images to show")
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, (size + 0.25) * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.remove()
            continue
        vmin, vmax = vrange if vrange is not None else (None, None)
        ax.imshow(pictures[i], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(titles[i], fontsize=9, color=colors[i] if colors is not None else "black")
    fig.tight_layout()
    return fig


def show_images(images: Any, labels: Sequence | None = None, predictions: Sequence | None = None,
                ncols: int = 8, classes: Sequence[str] | None = None) -> Figure:
    """A grid of images (N, C, H, W) (grey or RGB), a tensor, an array or a list. Lesson 00.

    The number of dimensions says what ``images`` is: (N, C, H, W) is N images with C = 1 (grey)
    or 3 (RGB); (N, H, W) is N grey images; (H, W) is one grey image; a list holds one image per
    entry, each (C, H, W), (H, W) or (H, W, 3). So a single colour image ``x`` of shape (3, H, W)
    is read as 3 grey images, one per channel (handy to look at the channels): to show it as one
    colour picture, pass ``x[None]`` (a batch of one) or ``[x]``.

    With ``labels`` each image is titled by its label; with ``predictions`` too, by
    "prediction (label)", green when right and red when wrong. ``classes`` turns indices into names.
    """
    pictures = _image_list(images)
    for what, values in (("labels", labels), ("predictions", predictions)):
        if values is not None and len(values) != len(pictures):
            raise ValueError(f"got {len(pictures)} images but {len(values)} {what}")
    titles = colors = None
    if predictions is not None:
        pred = [_name(p, classes) for p in predictions]
        if labels is not None:
            true = [_name(t, classes) for t in labels]
            titles = [f"{p} ({t})" for p, t in zip(pred, true)]
            colors = [RIGHT if p == t else WRONG for p, t in zip(pred, true)]
        else:
            titles = pred
    elif labels is not None:
        titles = [_name(t, classes) for t in labels]
    return _grid(pictures, titles, colors, ncols=ncols)


def show_filters(weight: Any, channel: int | None = None, max_filters: int = 64, ncols: int = 8) -> Figure:
    """Convolution filters (F, C, KH, KW) (or a ``nn.Conv2d``), one small picture each. Lesson 01.

    RGB filters (C = 3) are shown in colour, scaled together to [0, 1]. Otherwise one input channel
    (``channel``, default 0) is shown on a red-white-blue scale, red positive and blue negative,
    the same scale for all filters so that their strengths compare.
    """
    if isinstance(weight, torch.nn.Conv2d):
        weight = weight.weight
    w = _numpy(weight).astype(np.float64)
    if w.ndim != 4:
        raise ValueError(f"expected conv weights of shape (F, C, KH, KW), got {w.shape}")
    w = w[:max_filters]
    if w.shape[1] == 3 and channel is None:
        lo, hi = w.min(), w.max()
        w = (w - lo) / (hi - lo) if hi > lo else np.full_like(w, 0.5)
        return _grid([np.moveaxis(f, 0, -1) for f in w], [str(i) for i in range(len(w))], ncols=ncols)
    channel = 0 if channel is None else channel
    if not 0 <= channel < w.shape[1]:
        raise ValueError(f"channel must be in [0, {w.shape[1]}), got {channel}")
    limit = float(np.abs(w[:, channel]).max()) or 1.0
    return _grid(list(w[:, channel]), [str(i) for i in range(len(w))], ncols=ncols, cmap="bwr",
                 vrange=(-limit, limit))


def show_feature_maps(model: torch.nn.Module, x: torch.Tensor, layer: str | torch.nn.Module,
                      max_maps: int = 32, ncols: int = 8) -> Figure:
    """What one layer of ``model`` outputs for one image x (C, H, W): one picture per channel of
    its (1, F, H', W') output, caught with a forward hook. ``layer`` is a module or its name in
    ``model.named_modules()`` (e.g. "features.0"). Lesson 08."""
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer not in modules:
            names = ", ".join(repr(n) for n in modules if n)
            raise ValueError(f"model has no layer named {layer!r}; its layers are: {names}")
        layer = modules[layer]
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"expected one image (C, H, W) or (1, C, H, W), got {tuple(x.shape)}")
    caught = {}
    handle = layer.register_forward_hook(lambda module, inputs, output: caught.setdefault("out", output))
    try:
        with eval_mode(model), torch.inference_mode():
            model(x.to(model_device(model)))
    finally:
        handle.remove()
    if "out" not in caught:
        raise ValueError("the layer was not used in the forward pass: is it part of this model?")
    out = caught["out"]
    if out.ndim != 4:
        raise ValueError(f"the layer's output has shape {tuple(out.shape)}; pick a layer whose output "
                         "is (1, F, H, W), a convolution, activation or pooling layer")
    maps = out[0, :max_maps].float().cpu().numpy()
    return _grid(list(maps), [str(i) for i in range(len(maps))], ncols=ncols, cmap="viridis", vrange=None)


def _series(history: Any, key: str) -> list[float]:
    values = history.get(key) if isinstance(history, dict) else getattr(history, key, None)
    return [np.nan if v is None else float(v) for v in (values or [])]


def plot_history(history: Any) -> Figure:
    """Loss and accuracy per epoch, train and test, from a ``History`` (attributes ``train_loss``,
    ``test_loss``, ``train_accuracy``, ``test_accuracy``) or a dict of lists. Two axes. Lesson 07."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, what in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        for split, style in (("train", "o-"), ("test", "s--")):
            values = _series(history, f"{split}_{what}")
            if values:
                ax.plot(range(1, len(values) + 1), values, style, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    ax_loss.set_title("loss")
    ax_acc.set_title("accuracy")
    fig.tight_layout()
    return fig


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int) -> np.ndarray:
    """Counts (num_classes, num_classes): entry [i, j] is how many images of class i were predicted
    as class j; rows are the truth, columns the prediction, the diagonal is right. Lesson 08."""
    t = _numpy(y_true).astype(np.int64).ravel()
    p = _numpy(y_pred).astype(np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {len(t)} and {len(p)}")
    for name, a in (("y_true", t), ("y_pred", p)):
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            raise ValueError(f"{name} holds labels outside [0, {num_classes}): min {a.min()}, max {a.max()}")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def plot_confusion_matrix(y_true: Any, y_pred: Any, classes: Sequence[str], normalize: bool = False) -> Figure:
    """The confusion matrix as a picture with the counts written in (``normalize``: each row as
    fractions of that class, so rare classes read as clearly as common ones). Lesson 08."""
    k = len(classes)
    cm = confusion_matrix(y_true, y_pred, k).astype(np.float64)
    total = cm.sum()
    if normalize:
        rows = cm.sum(axis=1, keepdims=True)
        cm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.5 + 0.5 * k, 1.2 + 0.5 * k))
    ax.imshow(cm, cmap="Blues", vmin=0)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                text = f"{cm[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > 0.6 * cm.max() else "black")
    ax.set_xticks(range(k), [str(c) for c in classes], rotation=45 if k > 10 else 0)
    ax.set_yticks(range(k), [str(c) for c in classes])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    right = np.trace(confusion_matrix(y_true, y_pred, k))
    ax.set_title(f"accuracy {right / total:.1%} of {int(total)}" if total else "no predictions")
    fig.tight_layout()
    return fig


def show_mistakes(images: Any, y_true: Any, y_pred: Any, probs: Any = None,
                  classes: Sequence[str] | None = None, max_images: int = 16, ncols: int = 8) -> Figure:
    """The images the model got wrong, titled "prediction (truth)". With ``probs`` (N, num_classes)
    the most confident mistakes come first and the title shows that confidence. Lesson 08."""
    pictures = _image_list(images)
    t, p = _numpy(y_true).ravel(), _numpy(y_pred).ravel()
    if not len(pictures) == len(t) == len(p):
        raise ValueError(f"got {len(pictures)} images, {len(t)} labels and {len(p)} predictions")
    wrong = np.flatnonzero(t != p)
    confidence = None
    if probs is not None:
        probs = _numpy(probs)
        confidence = probs[np.arange(len(p)), p.astype(np.int64)]
        wrong = wrong[np.argsort(-confidence[wrong], kind="stable")]
    wrong = wrong[:max_images]
    if len(wrong) == 0:
        fig, ax = plt.subplots(figsize=(3, 1))
        ax.text(0.5, 0.5, "no mistakes", ha="center", va="center")
        ax.axis("off")
        return fig
    titles = []
    for i in wrong:
        title = f"{_name(p[i], classes)} ({_name(t[i], classes)})"
        titles.append(title if confidence is None else f"{_name(p[i], classes)} {confidence[i]:.0%} ({_name(t[i], classes)})")
    return _grid([pictures[i] for i in wrong], titles, [WRONG] * len(wrong), ncols=ncols, size=1.7)


def plot_saliency(image: Any, saliency: Any) -> Figure:
    """An image (C, H, W) or (H, W) beside its saliency map (H, W) (from
    ``inference.saliency``): the brighter, the more that pixel sways the score. Lesson 08."""
    picture, s = _as_picture(image), _numpy(saliency).astype(np.float64)
    if s.shape != picture.shape[:2]:
        raise ValueError(f"saliency shape {s.shape} does not match the image's {picture.shape[:2]}")
    fig, (ax_img, ax_sal) = plt.subplots(1, 2, figsize=(6, 3))
    ax_img.imshow(picture, cmap="gray", vmin=0, vmax=1)
    ax_img.set_title("image")
    ax_sal.imshow(s, cmap="hot")
    ax_sal.set_title("saliency |d score / d pixel|")
    for ax in (ax_img, ax_sal):
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig
