"""Predictions on your own image files, top-k probabilities and saliency maps. Lesson 08.

A model trained on MNIST has only ever seen 28x28 grey digits, white on black, each scaled into a
20x20 box and centred in the 28x28 frame. A photograph of a digit drawn on paper is the opposite:
large, dark on light, anywhere in the picture. ``load_image`` closes that gap so that your own
drawing classifies right:

- any PNG or JPEG (grey, 16-bit grey, RGB, RGBA, palette, CMYK, ...) becomes a float32 tensor
  (C, H, W) in [0, 1] with the model's channels and size, keeping the aspect ratio (fit into the
  square, then pad with the colour of the image's border);
- for a 1-channel 28x28 model, ``invert="auto"`` also does MNIST's preprocessing: an image whose
  border is mostly light (dark ink on white paper) is inverted, the paper's grey level is removed,
  the digit is cut out by its bounding box, scaled to fit a 20x20 box (keeping its aspect ratio)
  and placed in the 28x28 frame with its centre of mass at pixel (14, 14), as MNIST's digits
  were (LeCun et al., "The MNIST database"). A 28x28 image is taken to be laid out already and
  is only inverted if needed.

Example::

    net.eval()
    for p in predict_files(net, ["my_seven.png"], classes):
        print(p.path, p.label, f"{p.probability:.1%}")
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .device import eval_mode, model_device

__all__ = [
    "ImageError", "Prediction", "read_image", "load_image", "image_from_bytes", "prepare_image", "predict_tensor",
    "predict_files", "saliency",
]

MNIST_SHAPE = (1, 28, 28)
MNIST_BOX = 20  # MNIST digits are scaled to fit a 20x20 box inside the 28x28 frame


class ImageError(Exception):
    """An image file that cannot be read: missing, empty, not an image, or corrupt. Lesson 08."""


# --------------------------------------------------------------------------- loading images

def read_image(source: str | Path | IO[bytes], channels: int = 1, name: str | None = None) -> np.ndarray:
    """Decode an image file into pixels: float64 (h, w) for ``channels=1`` or (h, w, 3) for
    ``channels=3``, in [0, 1], at the file's own size. Lesson 08.

    The one decoder under ``load_image`` and ``data.image_folder``, so a model sees the same
    picture when it predicts as when it was trained: a photo's EXIF rotation is applied,
    transparent pixels are laid over white paper, 16-bit grey is scaled so that 65535 is white.
    ``source`` is a path or a binary file object; ``name`` (default: the path) is what an
    ``ImageError`` names when the file is not an image, is corrupt, or has colours PIL cannot
    convert.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    if name is None:
        name = str(source) if isinstance(source, (str, Path)) else "the image"
    with _decode(source, name) as img:
        return _to_array(img, channels, name)


def load_image(path: str | Path, input_shape: Sequence[int] = MNIST_SHAPE,
               invert: bool | str = "auto") -> torch.Tensor:
    """Read an image file as a float32 tensor (C, H, W) in [0, 1] for a model. Lesson 08.

    ``input_shape`` is the model's (C, H, W); C is 1 (grey) or 3 (RGB). ``invert``: True or False
    to invert or not; ``"auto"`` does MNIST-style preprocessing for 1-channel 28x28 models (see the
    module docstring) and nothing special for other shapes. Raises ``ImageError`` with a one-line
    message when the file cannot be read.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: the file is empty (0 bytes)")
    return _for_model(read_image(path, _check_shape(input_shape)[0]), input_shape, invert)


def image_from_bytes(data: bytes, input_shape: Sequence[int] = MNIST_SHAPE,
                     invert: bool | str = "auto", name: str = "the upload") -> torch.Tensor:
    """``load_image`` for the bytes of a PNG or JPEG file (an upload widget's content). Lesson 08."""
    if len(data) == 0:
        raise ImageError(f"{name}: the file is empty (0 bytes)")
    return _for_model(read_image(io.BytesIO(data), _check_shape(input_shape)[0], name), input_shape, invert)


def _decode(source, name: str) -> Image.Image:
    """Open and fully decode an image, turning PIL's many exceptions into one ``ImageError``."""
    try:
        img = Image.open(source)
        try:
            img.load()  # Image.open is lazy: decode now so a corrupt file fails here
        except BaseException:
            img.close()
            raise
        return img
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file PIL can read (expected PNG or JPEG)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageError(f"{name}: the image is corrupt or truncated ({reason})") from None


def prepare_image(img: Image.Image, input_shape: Sequence[int] = MNIST_SHAPE,
                  invert: bool | str = "auto", name: str = "the image") -> torch.Tensor:
    """Turn a PIL image into a float32 tensor (C, H, W) in [0, 1]; what ``load_image`` does after
    reading the file (the upload widget uses it on bytes). Lesson 08.

    ``name`` (the file) is what the ``ImageError`` names when PIL cannot convert the image's
    colours (e.g. a LAB TIFF) to grey or RGB."""
    return _for_model(_to_array(img, _check_shape(input_shape)[0], name), input_shape, invert)


def _for_model(x: np.ndarray, input_shape: Sequence[int], invert: bool | str) -> torch.Tensor:
    """Pixels (h, w) or (h, w, 3) in [0, 1] -> float32 (C, H, W) for the model: inverted if
    asked, laid out like MNIST for a 28x28 grey model, else fitted into (H, W) and padded."""
    channels, height, width = _check_shape(input_shape)
    if invert not in (True, False, "auto"):
        raise ValueError(f"invert must be True, False or 'auto', got {invert!r}")
    digit_mode = invert == "auto" and (channels, height, width) == MNIST_SHAPE
    if invert is True or (digit_mode and _border(x).mean() > 0.5):
        x = 1.0 - x
    if digit_mode and x.shape != (height, width):
        return torch.from_numpy(_mnist_centre(x)).unsqueeze(0)
    t = torch.from_numpy(x).float()
    t = t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)
    return _fit_and_pad(t, height, width, pad_value=_border(x).reshape(-1, channels).median(0).values)


def _check_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    if len(input_shape) != 3 or input_shape[0] not in (1, 3) or min(input_shape) < 1:
        raise ValueError(f"expected input_shape (C, H, W) with C = 1 or 3, got {tuple(input_shape)}")
    return int(input_shape[0]), int(input_shape[1]), int(input_shape[2])


def _to_array(img: Image.Image, channels: int, name: str) -> np.ndarray:
    """PIL image of any mode -> float64 array in [0, 1]: (h, w) for grey, (h, w, 3) for RGB,
    turned upright by its EXIF orientation."""
    img = ImageOps.exif_transpose(img)
    if img.mode.startswith("I") or img.mode == "F":  # 16/32-bit integer or float grey
        # Integers / 65535, the white of a 16-bit file, whatever values one image happens to use:
        # a dark 16-bit image stays dark, it is not stretched. Floats / 255, as PIL's convert("L").
        a = np.asarray(img, dtype=np.float64)
        a = np.clip(a / (255.0 if img.mode == "F" else 65535.0), 0.0, 1.0)
        return a if channels == 1 else np.repeat(a[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")  # composite transparent pixels onto white paper
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert("RGB")
    target = "L" if channels == 1 else "RGB"
    try:
        img = img.convert(target)  # CMYK, P, 1, YCbCr, ... convert; a few modes such as LAB do not
    except ValueError as e:
        raise ImageError(f"{name}: cannot convert its {img.mode} colours to {target} ({e}); "
                         "save it as a PNG or JPEG and try again") from None
    return np.asarray(img, dtype=np.float64) / 255.0


def _border(x: np.ndarray) -> torch.Tensor:
    """Pixels on the outer frame of an (h, w) or (h, w, C) array, about 5% of each side wide."""
    h, w = x.shape[:2]
    bh, bw = max(1, h // 20), max(1, w // 20)
    mask = np.ones((h, w), dtype=bool)
    mask[bh:h - bh, bw:w - bw] = False
    return torch.from_numpy(x[mask])


def _resize(t: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize (C, h, w) to (C, height, width), antialiased so thin strokes survive shrinking."""
    if t.shape[1:] == (height, width):
        return t
    return F.interpolate(t[None], size=(height, width), mode="bilinear", antialias=True,
                         align_corners=False)[0]


def _fit_and_pad(t: torch.Tensor, height: int, width: int, pad_value: torch.Tensor) -> torch.Tensor:
    """Resize (C, h, w) to fit into (height, width) keeping the aspect ratio, pad the rest."""
    c, h, w = t.shape
    scale = min(height / h, width / w)
    nh, nw = max(1, min(height, round(h * scale))), max(1, min(width, round(w * scale)))
    out = pad_value.float().reshape(c, 1, 1).expand(c, height, width).clone()
    top, left = (height - nh) // 2, (width - nw) // 2
    out[:, top:top + nh, left:left + nw] = _resize(t, nh, nw)
    return out.clamp(0.0, 1.0).contiguous()


def _mnist_centre(x: np.ndarray) -> np.ndarray:
    """Light-on-dark grey (h, w) -> (28, 28) float32 laid out like MNIST: background removed, the
    digit's bounding box scaled into 20x20 and its centre of mass put in the middle."""
    background = float(_border(x).median())
    out = np.zeros((28, 28), dtype=np.float32)
    if x.max() - background < 0.05:  # a blank picture: nothing to centre
        return out
    x = np.clip((x - background) / (x.max() - background), 0.0, 1.0)  # paper 0, darkest ink 1
    ink = x > 0.2
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    crop = torch.from_numpy(x[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]).float()[None]
    scale = MNIST_BOX / max(crop.shape[1:])
    h, w = max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[2] * scale))
    box = _resize(crop, h, w)[0].clamp(0.0, 1.0).numpy()
    total = box.sum()
    cy = (box.sum(1) * np.arange(h)).sum() / total
    cx = (box.sum(0) * np.arange(w)).sum() / total
    top = int(np.clip(round(14 - cy), 0, 28 - h))  # MNIST puts the centre of mass at pixel (14, 14)
    left = int(np.clip(round(14 - cx), 0, 28 - w))
    out[top:top + h, left:left + w] = box
    return out


# --------------------------------------------------------------------------- predictions

@dataclass
class Prediction:
    """The top-k classes for one image, most probable first. Lesson 08.

    ``top_k`` is a list of (class name, probability); ``label`` and ``probability`` are its first
    entry; ``path`` is the image file (None for a tensor)."""

    path: str | None
    top_k: list[tuple[str, float]]
    label: str = field(init=False)
    probability: float = field(init=False)

    def __post_init__(self) -> None:
        if not self.top_k:
            raise ValueError("a Prediction needs at least one (class, probability) pair")
        self.label, self.probability = self.top_k[0]

    def __str__(self) -> str:
        others = ", ".join(f"{name} {p:.1%}" for name, p in self.top_k[1:])
        where = f"{self.path}: " if self.path is not None else ""
        return f"{where}{self.label} ({self.probability:.1%})" + (f"; then {others}" if others else "")


def _model_input_shape(model: torch.nn.Module) -> tuple[int, int, int]:
    """(C, H, W) from a course model's ``config``; MNIST's (1, 28, 28) otherwise."""
    config = getattr(model, "config", None) or {}
    size = config.get("image_size", 28)
    return (int(config.get("in_channels", 1)), int(size), int(size))


def predict_tensor(model: torch.nn.Module, x: torch.Tensor, classes: Sequence | None = None,
                   top_k: int = 3, device: str | torch.device | None = None
                   ) -> Prediction | list[Prediction]:
    """Top-k predictions for one image (C, H, W) -> a ``Prediction``, or a batch (N, C, H, W) ->
    a list of them. Lesson 08.

    ``classes`` names the model's outputs (None: "0", "1", ...); ``top_k`` is clipped to the
    number of classes. ``device`` None keeps the model where it is; otherwise the model moves there.
    """
    if not torch.is_tensor(x) or x.ndim not in (3, 4):
        got = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise ValueError(f"expected an image (C, H, W) or a batch (N, C, H, W) tensor, got {got}")
    single = x.ndim == 3
    predictions = _predict_batch(model, x[None] if single else x, classes, top_k, device,
                                 paths=[None] * (1 if single else len(x)))
    return predictions[0] if single else predictions


def _predict_batch(model, x, classes, top_k, device, paths) -> list[Prediction]:
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    if device is not None:
        model.to(device)
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    with eval_mode(model), torch.inference_mode():
        logits = model(x.to(model_device(model), dtype))
    if logits.ndim != 2:
        raise ValueError(f"expected the model to return logits (N, num_classes), got {tuple(logits.shape)}")
    num_classes = logits.shape[1]
    names = [str(i) for i in range(num_classes)] if classes is None else [str(c) for c in classes]
    if len(names) != num_classes:
        raise ValueError(f"the model has {num_classes} outputs but {len(names)} class names were given")
    probs = torch.softmax(logits.float(), dim=1).cpu()
    values, indices = probs.topk(min(top_k, num_classes), dim=1)  # sorted, largest first
    return [Prediction(path, [(names[i], float(p)) for p, i in zip(vals.tolist(), idx.tolist())])
            for path, vals, idx in zip(paths, values, indices)]


def predict_files(model: torch.nn.Module, paths: str | Path | Sequence[str | Path],
                  classes: Sequence | None = None, top_k: int = 3,
                  device: str | torch.device | None = None, batch_size: int = 64,
                  input_shape: Sequence[int] | None = None, invert: bool | str = "auto"
                  ) -> list[Prediction]:
    """Load image files and predict them in batches; one ``Prediction`` per file, in order. Lesson 08.

    The model runs in eval mode under ``torch.inference_mode()``. ``input_shape`` (C, H, W) defaults
    to the model's ``config`` (in_channels, image_size), else (1, 28, 28); ``invert`` as in
    ``load_image``. A file that cannot be read raises ``ImageError`` naming it.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    shape = tuple(input_shape) if input_shape is not None else _model_input_shape(model)
    predictions: list[Prediction] = []
    for start in range(0, len(paths), batch_size):
        chunk = [str(p) for p in paths[start:start + batch_size]]
        x = torch.stack([load_image(p, shape, invert) for p in chunk])
        predictions += _predict_batch(model, x, classes, top_k, device, paths=chunk)
    return predictions


def saliency(model: torch.nn.Module, x: torch.Tensor, target: int | None = None) -> torch.Tensor:
    """Saliency map (H, W): |d score / d pixel|, the largest over channels (Simonyan et al. 2014).

    x is one image (C, H, W) or (1, C, H, W); ``target`` is the class whose score (logit) we
    differentiate, by default the predicted one. Which pixels would change the answer most? Lesson 08.
    """
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 3:
        raise ValueError(f"expected one image (C, H, W) or (1, C, H, W), got {tuple(x.shape)}")
    with eval_mode(model), torch.enable_grad():
        x_in = x.detach().to(model_device(model), torch.float32)[None].requires_grad_(True)
        scores = model(x_in)[0]
        if target is None:
            target = int(scores.argmax())
        if not 0 <= target < scores.numel():
            raise ValueError(f"target must be a class index in [0, {scores.numel()}), got {target}")
        (grad,) = torch.autograd.grad(scores[target], x_in)  # no .grad left on the parameters
    return grad[0].abs().amax(dim=0).detach().cpu()
