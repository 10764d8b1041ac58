"""Predictions on your own image files, top-k probabilities and saliency maps. Lesson 08.

A model trained on MNIST has only ever seen 28x28 grey digits, white on black, each scaled into a
20x20 box and centred in the 28x28 frame. A photograph of a digit drawn on paper is the opposite:
large, dark on light, anywhere in the picture. ``load_image`` closes that gap so that your own
drawing classifies right:

- any PNG or JPEG (grey, 16-bit grey, RGB, RGBA, palette, CMYK, ...) becomes a float32 tensor
  (C, H, W) in [0, 1] with the model's channels and size, keeping the aspect ratio (fit into the
  square, then pad with the colour of the image's border);
- for a 1-channel 28x28 model, ``invert="auto"`` turns any picture of one digit into what MNIST's
  digits look like (``preprocess_digit``), in small steps that lesson 08 shows one by one
  (``digit_steps``): the uneven light of a phone photo and the shadow of a hand or a phone are
  flattened (``flatten_background``), ruled lines and grids are taken away (``remove_lines``), so
  is the strip of desk along the edges of a photo taken at an angle (``remove_desk``), ink is told
  from paper by a threshold chosen for this picture (``ink_mask``, Otsu's method; faint pencil is
  smoothed first), the digit is
  its largest connected component and the pieces near it, not a frame drawn round it
  (``keep_digit``), it is cut out (``crop_digit``), a pen too thin or too bold is redrawn with
  MNIST's (``normalise_strokes``), and it is scaled into a 20x20
  box with its centre of mass at pixel (14, 14) (``mnist_layout``, as in LeCun et al., "The MNIST
  database"). Dark ink on light paper or light on dark, either works; a 28x28 digit already laid
  out like MNIST passes unchanged. A picture without a digit (a blank page) raises
  ``NoDigitError``. ``python -m imgrec_lib predict --show DIR`` saves what the model saw.

All of that is NumPy, SciPy, scikit-image and PIL (``load_pixels`` gives the model's input as an
array); PyTorch is imported only by the functions that take or give tensors, so that
``python -m imgrec_lib predict`` can start without it (``imgrec_lib.numpy_net``).

Example::

    net.eval()
    for p in predict_files(net, ["my_seven.png"], classes):
        print(p.path, p.label, f"{p.probability:.1%}")
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage
from skimage import filters, morphology

if TYPE_CHECKING:
    import torch

__all__ = [
    "ImageError", "NoDigitError", "Prediction", "read_image", "load_pixels", "load_image", "image_from_bytes",
    "prepare_image", "predict_tensor", "rank_classes", "predict_files", "saliency", "save_seen", "preprocess_digit",
    "digit_steps", "has_digit", "is_mnist_layout", "is_dark_on_light", "lit_beside_a_shadow", "a_page_on_a_desk",
    "flatten_background", "remove_lines", "line_levels", "remove_desk", "along_border", "ink_mask", "faint_ink_mask",
    "keep_digit", "crop_digit", "stroke_width",
    "normalise_strokes", "mnist_layout",
]

MNIST_SHAPE = (1, 28, 28)
MNIST_BOX = 20  # MNIST digits are scaled to fit a 20x20 box inside the 28x28 frame
MNIST_PEN = 2.8  # MNIST's median stroke width in pixels (ink area / centre-line length, at 28x28)
WORK_SIDE = 512  # photos are shrunk to this longer side first: plenty for one digit, and fast
SHADOW_K = 8  # a closing this wide (a picture of 384 px or more): k/2 is wider than a pen, narrower than a finger
NET = 8  # more holes than this in the ink mask: a net of printed lines, not a digit (which has at most 2)
MIN_INK = 0.2  # a digit's strokes take at least this much of the paper's light (0: paper, 1: black) ...
FAINT_INK = 0.1  # ... or this much, faint pencil, when they hang together over 10% of the picture's side
ROW = 4  # this many pieces alike side by side on a line: a toolbar's icons or a line of print, not a digit
DESK_INK = 0.2  # ink this dark joined to the desk is the desk's (paper's noise, a ruled line's remains: fainter)
FLAT = 8  # a piece this many times as wide as it is tall is a line (an edge, an underline), not a digit
MARK = 0.3  # a piece beside the digit under this share of its ink, farther than this share of its size: a mark


class ImageError(Exception):
    """An image file that cannot be read: missing, empty, not an image, corrupt, or too large. Lesson 08."""


class NoDigitError(ValueError):
    """A picture with no digit in it: blank, or only marks too faint to be a pen's. Lesson 08."""


# --------------------------------------------------------------------------- loading images

def read_image(source: str | Path | IO[bytes], channels: int = 1, name: str | None = None,
               min_side: int | None = None) -> np.ndarray:
    """Decode an image file into pixels: float64 (h, w) for ``channels=1`` or (h, w, 3) for
    ``channels=3``, in [0, 1], at the file's own size. Lesson 08.

    The one decoder under ``load_image`` and ``data.image_folder``, so a model sees the same
    picture when it predicts as when it was trained: a photo's EXIF rotation is applied,
    transparent pixels are laid over white paper (black paper when what is drawn is light: white
    ink), 16-bit grey is scaled so that 65535 is white.
    ``source`` is a path or a binary file object; ``name`` (default: the path) is what an
    ``ImageError`` names when the file is not an image, is corrupt, or has colours PIL cannot
    convert, or is larger than PIL's guard against decompression bombs (``Image.MAX_IMAGE_PIXELS``,
    89 megapixels). ``min_side`` lets a large JPEG be decoded at 1/2, 1/4 or 1/8 of its size (JPEG's own
    scaling, several times faster than decoding it whole) as long as its longer side stays at least
    ``min_side`` pixels: what the digit pipeline does with a phone photo.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    if name is None:
        name = str(source) if isinstance(source, (str, Path)) else "the image"
    with _decode(source, name, min_side) as img:
        return _to_array(img, channels, name)


def load_image(path: str | Path, input_shape: Sequence[int] = MNIST_SHAPE,
               invert: bool | str = "auto") -> torch.Tensor:
    """Read an image file as a float32 tensor (C, H, W) in [0, 1] for a model. Lesson 08.

    ``input_shape`` is the model's (C, H, W); C is 1 (grey) or 3 (RGB). ``invert``: True or False
    to invert or not; ``"auto"`` does MNIST-style preprocessing for 1-channel 28x28 models (see the
    module docstring) and nothing special for other shapes. Raises ``ImageError`` with a one-line
    message when the file cannot be read, ``NoDigitError`` (a ``ValueError``) when the MNIST-style
    preprocessing finds no digit in it.
    """
    import torch

    return torch.from_numpy(load_pixels(path, input_shape, invert))


def load_pixels(path: str | Path, input_shape: Sequence[int] = MNIST_SHAPE,
                invert: bool | str = "auto") -> np.ndarray:
    """``load_image`` as a NumPy array: float32 (C, H, W) in [0, 1]. Lesson 08."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: the file is empty (0 bytes)")
    x = read_image(path, _check_shape(input_shape)[0], min_side=_work_side(input_shape, invert))
    return _for_model(x, input_shape, invert, str(path))


def image_from_bytes(data: bytes, input_shape: Sequence[int] = MNIST_SHAPE,
                     invert: bool | str = "auto", name: str = "the upload") -> torch.Tensor:
    """``load_image`` for the bytes of a PNG or JPEG file (an upload widget's content). Lesson 08."""
    import torch

    if len(data) == 0:
        raise ImageError(f"{name}: the file is empty (0 bytes)")
    x = read_image(io.BytesIO(data), _check_shape(input_shape)[0], name, min_side=_work_side(input_shape, invert))
    return torch.from_numpy(_for_model(x, input_shape, invert, name))


def _decode(source, name: str, min_side: int | None = None) -> Image.Image:
    """Open and fully decode an image, turning PIL's many exceptions into one ``ImageError``."""
    try:
        with warnings.catch_warnings():  # PIL only warns between its limit and twice that: refuse them all
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(source)
        try:
            if min_side is not None and img.format == "JPEG" and img.mode in ("L", "RGB"):
                w, h = img.size
                keep = min_side / max(w, h)  # draft keeps at least this fraction of each side
                img.draft(img.mode, (max(1, int(np.ceil(w * keep))), max(1, int(np.ceil(h * keep)))))
            img.load()  # Image.open is lazy: decode now so a corrupt file fails here
        except BaseException:
            img.close()
            raise
        return img
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file PIL can read (expected PNG or JPEG)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        size = f": {int(pixels.group(1)):,} pixels" if pixels else ""
        raise ImageError(f"{name} is too large{size}, more than the {Image.MAX_IMAGE_PIXELS or 0:,} this reads (PIL's "
                         "guard against decompression bombs); scale it down, e.g. to 2000 pixels on its longer "
                         "side, and try again") from None
    except (OSError, SyntaxError, ValueError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageError(f"{name}: the image is corrupt or truncated ({reason})") from None


def prepare_image(img: Image.Image, input_shape: Sequence[int] = MNIST_SHAPE,
                  invert: bool | str = "auto", name: str = "the image") -> torch.Tensor:
    """Turn a PIL image into a float32 tensor (C, H, W) in [0, 1]; what ``load_image`` does after
    reading the file (the upload widget uses it on bytes). Lesson 08.

    ``name`` (the file) is what the ``ImageError`` names when PIL cannot convert the image's
    colours (e.g. a LAB TIFF) to grey or RGB."""
    import torch

    return torch.from_numpy(_for_model(_to_array(img, _check_shape(input_shape)[0], name), input_shape, invert, name))


def _for_model(x: np.ndarray, input_shape: Sequence[int], invert: bool | str, name: str = "the image") -> np.ndarray:
    """Pixels (h, w) or (h, w, 3) in [0, 1] -> float32 (C, H, W) for the model: inverted if
    asked, laid out like MNIST for a 28x28 grey model (``NoDigitError`` naming ``name`` when
    there is no digit), else fitted into (H, W) and padded with the border's median colour."""
    channels, height, width = _check_shape(input_shape)
    if invert not in (True, False, "auto"):
        raise ValueError(f"invert must be True, False or 'auto', got {invert!r}")
    if invert == "auto" and (channels, height, width) == MNIST_SHAPE:
        try:
            return preprocess_digit(x)[None]
        except NoDigitError as e:
            raise NoDigitError(str(e).replace("no digit found:", f"no digit found in {name}:", 1)) from None
    if invert is True:
        x = 1.0 - x
    pixels = x[None] if x.ndim == 2 else x.transpose(2, 0, 1)
    paper = np.quantile(_border(x).reshape(-1, channels), 0.5, axis=0, method="lower")  # a pixel's colour, not a mean
    return _fit_and_pad(pixels.astype(np.float32), height, width, pad_value=paper)


def _work_side(input_shape: Sequence[int], invert: bool | str) -> int | None:
    """How large a picture the digit pipeline works on (None: the model needs the whole picture)."""
    return WORK_SIDE if invert == "auto" and tuple(input_shape) == MNIST_SHAPE else None


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
        rgba = img.convert("RGBA")  # composite transparent pixels onto paper: white, or black under light ink
        a = np.asarray(rgba)
        seen = a[..., 3] > 127
        light = seen.any() and np.median(a[..., :3][seen].mean(axis=1)) > 127
        paper = Image.new("RGBA", rgba.size, (0, 0, 0, 255) if light else (255, 255, 255, 255))
        img = Image.alpha_composite(paper, rgba).convert("RGB")
    target = "L" if channels == 1 else "RGB"
    try:
        img = img.convert(target)  # CMYK, P, 1, YCbCr, ... convert; a few modes such as LAB do not
    except ValueError as e:
        raise ImageError(f"{name}: cannot convert its {img.mode} colours to {target} ({e}); "
                         "save it as a PNG or JPEG and try again") from None
    return np.asarray(img, dtype=np.float64) / 255.0


def _border(x: np.ndarray) -> np.ndarray:
    """Pixels on the outer frame of an (h, w) or (h, w, C) array, about 5% of each side wide."""
    h, w = x.shape[:2]
    bh, bw = max(1, h // 20), max(1, w // 20)
    mask = np.ones((h, w), dtype=bool)
    mask[bh:h - bh, bw:w - bw] = False
    return x[mask]


def _resize(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a grey picture (h, w) to float32 (height, width), antialiased so thin strokes survive
    shrinking: PIL's bilinear filter, widened to the scale when it shrinks (the same arithmetic as
    ``torch.nn.functional.interpolate(..., mode="bilinear", antialias=True)``)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.shape == (height, width):
        return x
    return np.array(Image.fromarray(x).resize((width, height), Image.Resampling.BILINEAR))


def _fit_and_pad(x: np.ndarray, height: int, width: int, pad_value: np.ndarray) -> np.ndarray:
    """Resize (C, h, w) to fit into (height, width) keeping the aspect ratio, pad the rest with
    ``pad_value`` (C,)."""
    c, h, w = x.shape
    scale = min(height / h, width / w)
    nh, nw = max(1, min(height, round(h * scale))), max(1, min(width, round(w * scale)))
    out = np.empty((c, height, width), dtype=np.float32)
    out[:] = np.reshape(pad_value, (c, 1, 1))
    top, left = (height - nh) // 2, (width - nw) // 2
    out[:, top:top + nh, left:left + nw] = [_resize(channel, nh, nw) for channel in x]
    return np.clip(out, 0.0, 1.0)


# --------------------------------------------------------------------------- a photo -> MNIST's layout
# Each step is a small function that lesson 08 shows as a figure; ``digit_steps`` runs them all.

def is_dark_on_light(x: np.ndarray) -> bool:
    """True when the picture is dark ink on light paper, False for light on dark like MNIST: the
    paper (the median pixel) sits nearer the light end of the picture's range; or, in a picture
    of 100 pixels or more, the light part lies along the border (``lit_beside_a_shadow``) or is a
    page with marks on it lying on a darker desk (``a_page_on_a_desk``). Lesson 08."""
    step = max(1, min(x.shape) // 128)  # every pixel of a small picture, a sample of a large one
    sample = x[::step, ::step]
    median = float(np.median(sample))
    if median - float(x.min()) >= float(x.max()) - median:
        return True
    return min(x.shape) >= 100 and (lit_beside_a_shadow(sample) or a_page_on_a_desk(sample))


def lit_beside_a_shadow(x: np.ndarray) -> bool:
    """Whether the light part of a picture (above Otsu's threshold) is paper lit beside a shadow
    that covers most of the page, not light ink on a dark ground: at least half of it lies along
    the picture's border (``along_border``), where a digit's strokes at most touch it, and its
    median is nearer the brightest pixel than the threshold: paper lit evenly, not a dark ground
    lit unevenly with light ink brighter than any of it, nor a dark-mode app's page with a light
    digit typed on it inside a lighter desktop (the digit, a small share of the picture, is far
    brighter than the desktop along the border; lit paper is the lightest thing in a photo). Lesson 08."""
    if x.max() <= x.min():
        return False
    threshold = float(filters.threshold_otsu(x))
    light = x > threshold
    lit = along_border(light)
    if lit.sum() < 0.5 * light.sum():
        return False
    median = float(np.median(x[lit]))
    return median - threshold >= float(x.max()) - median


def a_page_on_a_desk(x: np.ndarray, marks: float = 0.2, solid: float = 0.8) -> bool:
    """Whether the light part of a picture is a sheet of paper with dark marks on it, lying on a
    darker desk that fills most of the picture (``_sheet_with_marks``). The light part is what lies
    above Otsu's threshold; failing that, above the lower of multi-Otsu's two thresholds (three
    levels: the desk, the page in a shadow, the lit page), when the middle level is broad as a
    shadow is (a disk as wide as the sheet's fits in it; the blurred rim of a light stroke is
    narrow). A hand's or a phone's shadow biting into the sheet from its edge leaves the lit part of
    it far from convex; the page in light and in shadow together is a quadrilateral again. Lesson 08."""
    if x.max() <= x.min():
        return False
    if _sheet_with_marks(x, float(filters.threshold_otsu(x)), marks, solid):
        return True
    try:
        lower, upper = (float(t) for t in filters.threshold_multiotsu(x, classes=3))
    except ValueError:  # fewer than three grey levels: no shadow on the page
        return False
    middle = (x > lower) & (x <= upper)
    if not (ndimage.distance_transform_edt(middle) >= max(x.shape) / 20).any():
        return False  # the middle level is no broad shadow, only the blurred rim of light strokes
    return _sheet_with_marks(x, lower, marks, solid)


def _sheet_with_marks(x: np.ndarray, threshold: float, marks: float, solid: float) -> bool:
    """Whether the part of a picture above ``threshold`` is a sheet with marks on it: most of it is
    broad (a disk a tenth of the picture's longer side fits in it), and the dark pixels it holds
    (the digit; what a closing by that disk fills) are under ``marks`` of it; the sheet with its
    marks is about convex (a quadrilateral seen at an angle: it fills at least ``solid`` of its
    convex hull); and, as in ``lit_beside_a_shadow``, the sheet's median is nearer the brightest
    pixels than the threshold (an even sheet, not a dark ground lit unevenly). A light digit on a
    dark ground, even drawn with a broad pen, is strokes, far from convex; the hollows of a bold
    light 0 or 8 would be more of it than a digit on a page is."""
    light = x > threshold
    radius = max(x.shape) / 20
    core = ndimage.distance_transform_edt(light) >= radius  # where a disk of that radius fits
    if not core.any():
        return False
    sheet = light & (ndimage.distance_transform_edt(~core) <= radius)  # all the disks that fit
    if sheet.sum() < 0.5 * light.sum():
        return False
    median = float(np.median(x[sheet]))
    if median - threshold < float(np.percentile(x, 99)) - median:  # a dark ground lit unevenly, light ink on it
        return False
    closed = ndimage.distance_transform_edt(ndimage.distance_transform_edt(~sheet) <= radius) > radius  # a closing
    held = closed & ~light  # the sheet's marks, also where they touch a shadow over part of it
    if not held.any() or held.sum() > marks * sheet.sum():
        return False
    return closed.sum() >= solid * morphology.convex_hull_image(closed).sum()


def flatten_background(x: np.ndarray) -> np.ndarray:
    """Grey (h, w) in [0, 1] of either polarity -> an ink map: paper 0, ink up to 1. Lesson 08.

    A phone photo is lit unevenly: one corner of the paper can be darker than the ink in another.
    So the paper's brightness is estimated at every pixel and each pixel is divided by it: what
    remains is how much darker than its own paper the pixel is. The estimate is a grey closing of
    size k, a maximum filter that wipes out every dark stroke thinner than k (the pen), then a
    minimum filter as wide that brings the edge of a wide dark area (a hand's shadow) back where
    it was, smoothed by a Gaussian blur (sigma k/4) wherever that makes it no lighter (the blur
    would carry the light paper's level a little way into a shadow). A hand's fingers thinner
    than k are put back by a closing by reconstruction (``_paper_light``), and a hard step in the
    estimate stays sharp at full size (``_sharp_steps``). So the paper in a shadow is divided by
    the shadow's own light, and a shadow's hard edge leaves no ink behind. A stroke wider than k
    (a bold font, a felt-tip pen) survives the closing; where the estimate is darker than any
    shadow, the paper around it is used (``_paper_past_ink``). Pictures under 100
    pixels (a 28x28 digit) have one paper level, the median of their border.
    """
    dark_on_light = is_dark_on_light(x)
    if not dark_on_light:
        x = 1.0 - x  # the same arithmetic for both: paper light, ink dark
    h, w = x.shape
    if min(h, w) < 100:
        paper = np.full_like(x, max(float(np.median(_border(x))), 1e-3))
    else:  # on a copy 1/4 the size, each pixel the mean of 4x4 (noise averages out, and the
        # maximum filter would pick up noise): the paper's light changes slowly, and it is 16x less work
        small = x[:h - h % 4, :w - w % 4].reshape(h // 4, 4, w // 4, 4).mean(axis=(1, 3))
        k = max(3, max(small.shape) // 12)  # wider than any pen stroke
        closed = _paper_past_ink(_paper_light(small, k), k)
        paper = np.minimum(ndimage.gaussian_filter(closed, sigma=k / 4), closed)  # the blur never lifts a shadow's edge
        paper = _sharp_steps(x, paper) if k >= SHADOW_K else _resize(paper, h, w)  # back to full size
    return np.clip(1.0 - x / np.maximum(paper, 1e-3), 0.0, 1.0)


def _paper_past_ink(paper: np.ndarray, k: int, shadow: float = 0.25) -> np.ndarray:
    """The paper's light estimate (paper light, ink dark) with the ink it kept taken out. A stroke
    wider than the closing (a bold font, a felt-tip pen, a digit that fills the picture) survives
    it, and would be divided by its own darkness: its inside would read as paper. A shadow on paper
    keeps more than ``shadow`` of the lit paper's light (its 95th percentile); ink is much darker.
    So where the estimate falls below that, it is ink; and so is a dark area that is a stroke, not
    a shadow (``_felt_tip``), in a picture large enough for the closing (``k``) to be wider than a
    thin pen. The paper there takes the light of the nearest paper outside it."""
    lit = float(np.percentile(paper, 95))
    ink = paper < shadow * lit
    if k >= SHADOW_K:  # a picture of 384 px or more; in a smaller one a thin pen's grey 4x4 means are as wide as k
        ink |= _felt_tip(paper / max(lit, 1e-3), k)
    if not ink.any() or ink.all():
        return paper
    nearest = ndimage.distance_transform_edt(ink, return_distances=False, return_indices=True)
    return paper[tuple(nearest)]


def _felt_tip(light: np.ndarray, k: int, dark: float = 0.4, dim: float = 0.6) -> np.ndarray:
    """Where the paper's light estimate (``light``: 1 the lit paper) is a pen's stroke, not a
    shadow: a felt-tip pen in dark blue or green is lighter than black ink, as light as a deep
    shadow, and wide enough to outlast the closing. Both are under ``dark``; they differ in shape.
    A shadow is broad: some of it holds a disk ``2 k`` wide (twice the closing's size), or it comes
    in from the picture's edge (a hand, a phone, the desk). A pen's stroke is narrower than that
    all along, and lies inside the picture. The shapes are those of the areas under ``dim`` (the
    noise and the uneven light on a shadow near ``dark`` would cut it into narrow pieces), and a
    stroke is all of such an area, its blurred rim too."""
    dimmed = light < dim
    labels, n = ndimage.label(dimmed)
    if n == 0:
        return dimmed
    broad = ndimage.distance_transform_edt(dimmed) > k  # the middles of the disks 2k wide that fit in it
    shadows = np.union1d(labels[broad], np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    strokes = np.setdiff1d(labels[light < dark], shadows)
    return np.isin(labels, strokes)


def _sharp_steps(x: np.ndarray, small_paper: np.ndarray, step: float = 0.1) -> np.ndarray:
    """The paper's light estimated on the 1/4-size copy, ``small_paper``, brought back to the size
    of ``x`` (paper light, ink dark). Enlarged, a hard step in it (the edge of a shadow or of the
    desk) is spread over 4 pixels, and the pixels just inside its dark side would read as a line
    of ink. So where the light changes by more than ``step`` (a fraction) between neighbouring
    small pixels, a pixel whose own light lies between the two sides' is paper (its own light),
    one darker than both is ink on the darker side's paper."""
    h, w = x.shape
    paper = _resize(small_paper, h, w)
    low, high = ndimage.minimum_filter(small_paper, size=3), ndimage.maximum_filter(small_paper, size=3)
    steep = low < (1 - step) * high
    if steep.any():
        def enlarge(a):  # each small pixel back to its 4x4 block
            a = np.repeat(np.repeat(a, 4, axis=0), 4, axis=1)
            return np.pad(a, ((0, h - a.shape[0]), (0, w - a.shape[1])), mode="edge")
        steep = enlarge(steep)
        paper[steep] = np.clip(x[steep], enlarge(low)[steep], enlarge(high)[steep])
    return paper


def _paper_light(small: np.ndarray, k: int) -> np.ndarray:
    """The paper's light at each pixel of a shrunk picture (paper light, ink dark): a grey closing
    of size ``k`` wipes out every dark mark thinner than k, then a closing by reconstruction puts
    back the dark areas at least k/4 wide that join one it kept (a finger of a hand's shadow,
    narrower than k, even half as wide, joins the palm; its round tip too). A pen's stroke, thinner
    than k/4, is no path for that, so a digit touching a shadow does not take the shadow's light; a
    bolder stroke put back is told from the shadow again by ``_paper_past_ink``."""
    closed = ndimage.grey_closing(small, size=k)
    if k < SHADOW_K:  # no telling a finger from a bold pen by its width
        return closed
    wide = ndimage.grey_closing(small, size=k // 4 + 1)  # the picture without its pen strokes
    if not (closed > 1.05 * wide).any():  # no dark area between k/4 and k wide: nothing to put back
        return closed
    return morphology.reconstruction(np.maximum(closed, wide), wide, method="erosion").astype(small.dtype)


def ink_mask(ink: np.ndarray) -> np.ndarray:
    """Which pixels are ink: above a threshold chosen for this picture by Otsu's method (the level
    that best splits the pixels into two groups), and above 0.1 so that plain paper's noise never
    counts. When that mask is a net with many holes, printed lines that ``remove_lines`` could not
    take away (squared paper photographed at an angle), the threshold is the upper of three levels
    (paper, printed lines, pen; multi-Otsu): a pen is darker than the lines printed on paper. A
    picture whose threshold falls below 0.1 and whose ink above it is faint too (its median under
    0.3) may be pencil (``faint_ink_mask``), unless what that finds is a net. Lesson 08."""
    if ink.max() <= 0.1:
        return np.zeros(ink.shape, dtype=bool)
    threshold = float(filters.threshold_otsu(ink))
    mask = ink > max(threshold, 0.1)
    if threshold < 0.1 and min(ink.shape) >= 100 and (not mask.any() or np.median(ink[mask]) < 0.3):
        faint = faint_ink_mask(ink)
        if ndimage.label(~faint)[1] <= NET:  # else faint printed lines, not pencil
            return faint
    if min(ink.shape) >= 100 and ndimage.label(~mask)[1] > NET:
        try:
            mask = ink > max(float(filters.threshold_multiotsu(ink, classes=3)[1]), 0.1)
        except ValueError:  # fewer than three grey levels: keep the two
            pass
    return mask


def faint_ink_mask(ink: np.ndarray, noise: float = 4.0) -> np.ndarray:
    """The ink of a faint picture (pencil): graphite is grainy, and above a floor of 0.1 its
    stroke falls apart into specks. So the ink map is first smoothed over about a pen's width (a
    Gaussian, sigma 1 pixel: the grain averages out along the stroke, the paper's noise too), and
    the floor is ``noise`` times the paper's own noise (the smoothed map's 90th percentile: most
    of a picture is paper), between 0.03 and 0.1; a noisy photo keeps the floor of 0.1. Then
    Otsu's threshold as for any picture. Lesson 08."""
    smooth = ndimage.gaussian_filter(ink, sigma=1.0)
    floor = float(np.clip(noise * np.percentile(smooth[::2, ::2], 90), 0.03, 0.1))
    return smooth > max(float(filters.threshold_otsu(smooth)), floor)


def remove_lines(ink: np.ndarray) -> np.ndarray:
    """The ink map without ruled lines or a grid. A printed line crosses the whole page: it has ink
    along most of its row, up to both ends, and it is thin. A digit's stroke stops before the
    picture's edges (the bar of a 7, the stem of a 1 in a tightly cropped picture), and the desk at
    the edge of a photo is a wide dark area, not a thin line: both stay. So the ink that a line
    leaves along each row (``line_levels``) is taken away from the whole row, and the same for each
    column. Where the pen crosses a line, the darker pen survives. Lesson 08."""
    if min(ink.shape) < 100:  # a small picture is all digit
        return ink
    rows, cols = line_levels(ink), line_levels(ink.T)
    return np.clip(ink - rows[:, None] - cols[None, :], 0.0, 1.0)


def line_levels(ink: np.ndarray, thin: int = 3) -> np.ndarray:
    """How much ink a printed line puts on each row of ``ink`` (h, w) -> (h,): the ink that three
    quarters of the row has (its 25th percentile), if the row also has ink at both of its ends,
    and only as much as it has more than the rows ``thin`` pixels above and below it (a line is
    thin; the rows along a dark area all have its ink). Lesson 08."""
    level = np.percentile(ink[:, ::4], 25, axis=1)  # every 4th pixel along a line is enough
    end = max(1, ink.shape[1] // 50)  # a line reaches the last 2% of the row at either end
    level = np.minimum(level, np.minimum(ink[:, :end].max(axis=1), ink[:, -end:].max(axis=1)))
    padded = np.pad(level, thin, mode="edge")
    return np.clip(level - np.maximum(padded[:-2 * thin], padded[2 * thin:]), 0.0, None)


def remove_desk(ink: np.ndarray) -> np.ndarray:
    """The ink map without what lies outside the page. A photo of a page taken at a slight angle
    shows a strip of the desk along the picture's edges, darker than the paper: as much "ink" as
    the pen, and often more of it. It is told from the digit by where it is: it runs along the
    picture's border (``along_border``), where a digit at most touches it. Such ink, the ink at
    least ``DESK_INK`` dark joined to it (``_with_its_fainter_ink``: a dark app bar cut into pieces
    by its light menu words and icons) and a pixel or two of its blurred rim, is set to 0; then
    once more for what lies along the page's edge (a shadow there, fainter than the desk); unless
    nothing would be left. Lesson 08."""
    if min(ink.shape) < 100:  # a small picture is all digit
        return ink
    page, gone = ink, np.zeros(ink.shape, dtype=bool)
    for _ in range(2):  # the desk; then what lies along the page's edge, seen once the desk is gone (a shadow)
        outside = along_border(ink_mask(page) | gone)
        if not outside.any():
            break
        outside = _with_its_fainter_ink(outside, page)
        gone = ndimage.maximum_filter(outside.view(np.uint8), size=5) > 0  # 2 pixels more all round
        page = np.where(gone, 0.0, ink).astype(ink.dtype)
    return page if page.max() > 0.1 else ink  # 0.1: as ink_mask, the paper's noise is no ink


def _with_its_fainter_ink(outside: np.ndarray, ink: np.ndarray, faint: float = DESK_INK) -> np.ndarray:
    """What lies outside the page (``outside``, a mask) with the ink at least ``faint`` dark joined
    to it. The desk, or a dark app's title bar and toolbar in a screenshot, is not evenly dark in
    the ink map: its light icons and menu words, and the paper's light estimate carried into it,
    split it into pieces, and the pieces that do not reach the border above the ink threshold
    would stay, each as much ink as a digit. Through ink this dark they are one piece with it; the
    paper's noise and what is left of a ruled line (under 0.2) lead nowhere."""
    labels, _ = ndimage.label(outside | (ink > faint), structure=np.ones((3, 3)))
    return np.isin(labels, np.unique(labels[outside]))


def along_border(mask: np.ndarray, run: float = 0.1) -> np.ndarray:
    """The pieces of ``mask`` that lie along the picture's border: each touches it along at least
    ``run`` (a fraction) of the picture's shorter side in one go. A digit, a ruled line or a
    neighbouring digit cut by the crop touches it for a pen's width at most. Lesson 08."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    ring = np.concatenate([labels[0, :], labels[1:, -1], labels[-1, -2::-1], labels[-2:0:-1, 0]])
    starts = np.flatnonzero(np.diff(ring, prepend=-1))  # runs of one label around the border
    lengths = np.diff(starts, append=len(ring))
    long = ring[starts][(lengths >= run * min(mask.shape)) & (ring[starts] > 0)]
    return np.isin(labels, long)


def keep_digit(mask: np.ndarray, ink: np.ndarray | None = None) -> np.ndarray:
    """The digit's pixels: the largest connected component of the mask and the pieces near it that
    are at least 10% of its size (a 5's bar, a stroke cut by a ruled line). A piece under ``MARK``
    of its size is kept only within ``MARK`` of its height or width of its ink: a 5's bar nearly
    touches the 5, a dot or a small scribble beside the digit stands apart. Components touching
    the picture's edge (a shadow, the table) are left out unless nothing else is there, and so is
    a box or a circle drawn round the digit (``_frames``). A piece in a row of pieces alike
    (``_rows``: a toolbar's icons, a line of print) is not taken for the digit when another piece
    at least 10% as large is there, nor is a piece at least ``FLAT`` times as wide as it is tall
    (``_flat``: a line, the grey strip above a page in a screenshot), nor a word in a line of words
    (``_words``: an app's menu row); the digit must be at least 10% as large as the largest piece
    that could be it. A thin upright bar beside the digit that reaches past both its ends
    (``_bars_beside``: a text cursor) is not kept with it. Given the ``ink`` map, the digit is the
    piece with the most ink, not the most pixels: a finger's shadow on the page may cover more of it
    than the pen, but faintly. Lesson 08."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        return mask
    boxes = ndimage.find_objects(labels)
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
    for i in _frames(labels, boxes, sizes):
        sizes[i] = 0
    h, w = mask.shape
    inside = np.array([b[0].start > 0 and b[1].start > 0 and b[0].stop < h and b[1].stop < w for b in boxes])
    if inside.any() and min(h, w) >= 100:
        sizes = np.where(inside, sizes, 0)
    weight = sizes.copy() if ink is None else ndimage.sum_labels(ink, labels, index=np.arange(1, n + 1)) * (sizes > 0)
    weight[_rows(boxes, sizes)] = 0  # the pieces that could be the digit, by how much ink they hold
    weight[_flat(boxes)] = 0
    weight[_words(boxes, sizes)] = 0
    best = int(np.argmax(weight))
    main = best if weight[best] > 0 and sizes[best] >= 0.1 * sizes[weight > 0].max() else int(np.argmax(sizes))
    (top, bottom), (left, right) = ((b.start, b.stop) for b in boxes[main])
    reach = 0.5 * max(bottom - top, right - left)
    keep = [i for i, b in enumerate(boxes)
            if sizes[i] >= 0.1 * sizes[main] and b[0].start < bottom + reach and b[0].stop > top - reach
            and b[1].start < right + reach and b[1].stop > left - reach]
    marks = [i for i in keep if sizes[i] < MARK * sizes[main]]
    if marks:  # how far each small piece is from the digit's own ink
        r = int(np.ceil(reach))
        window = (slice(max(0, top - r), bottom + r), slice(max(0, left - r), right + r))
        gap = ndimage.distance_transform_edt(labels[window] != main + 1)
        far = [i for i in marks if gap[labels[window] == i + 1].min(initial=np.inf) > MARK * 2 * reach]
        keep = [i for i in keep if i not in far]
    keep = [i for i in keep if i not in _bars_beside(boxes, main, keep)]
    return np.isin(labels, np.array(keep) + 1)


def _bars_beside(boxes: list, main: int, pieces: list[int], thin: float = 0.25) -> list[int]:
    """The ``pieces`` (indices) that are a straight upright bar beside the digit (``main``): at
    most ``thin`` times as wide as it is tall, wholly to the left or the right of the digit's
    box, and reaching past both its top and its bottom. A text cursor after a typed digit is
    such a bar (it spans the line, which is taller than a digit); no stroke of a digit stands
    apart from the rest of it and reaches past it at both ends."""
    (top, bottom), (left, right) = ((b.start, b.stop) for b in boxes[main])
    bars = []
    for i in pieces:
        (t, b), (l, r) = ((s.start, s.stop) for s in boxes[i])
        if i != main and r - l <= thin * (b - t) and (r <= left or l >= right) and t < top and b > bottom:
            bars.append(i)
    return bars


def _rows(boxes: list, sizes: np.ndarray, alike: int = ROW) -> list[int]:
    """The components (indices) that stand in a row of at least ``alike`` pieces alike: as tall
    and as wide as each other (within 25%), as much ink (within half), side by side on one line
    (their middles within a quarter of their height). A toolbar's icons, a line of printed text,
    the dashes of a dashed line; not the pieces of one digit, which differ. Only components at
    least 10% the size of the largest are looked at (specks of noise are many and alike)."""
    big = np.flatnonzero(sizes >= 0.1 * sizes.max()) if sizes.max() > 0 else np.array([], dtype=int)
    if len(big) < alike:
        return []
    b = np.array([(r.start, r.stop, c.start, c.stop) for r, c in (boxes[i] for i in big)], dtype=float)
    height, width, ink = b[:, 1] - b[:, 0], b[:, 3] - b[:, 2], sizes[big]

    def near(a, within):  # (n, n): each pair within ``within`` of the larger of the two
        return np.abs(a[:, None] - a[None, :]) <= within * np.maximum(a[:, None], a[None, :])

    middle = (b[:, 0] + b[:, 1]) / 2
    in_line = np.abs(middle[:, None] - middle[None, :]) <= 0.25 * height[:, None]
    alike_in_line = near(height, 0.25) & near(width, 0.25) & near(ink, 0.5) & in_line
    return [int(i) for i in big[alike_in_line.sum(axis=1) >= alike]]  # each piece counts itself


def _words(boxes: list, sizes: np.ndarray, alike: int = ROW) -> list[int]:
    """The components (indices) that are words on a line of text: at least ``alike`` pieces side
    by side on one line (their middles within a quarter of the taller one's height), as tall as
    each other (within a third), each at least as wide as it is tall. An app's menu row ("File
    Edit View ..."), shrunk until each word's letters run together, is such a row: more ink in
    each word than in a digit typed at an everyday text size. Words differ in width, so ``_rows``
    does not find them; a digit is taller than it is wide. Only pieces at least 10% the size of
    the largest are looked at."""
    big = np.flatnonzero(sizes >= 0.1 * sizes.max()) if sizes.max() > 0 else np.array([], dtype=int)
    if len(big) < alike:
        return []
    b = np.array([(r.start, r.stop, c.start, c.stop) for r, c in (boxes[i] for i in big)], dtype=float)
    height, width = b[:, 1] - b[:, 0], b[:, 3] - b[:, 2]
    wide = width >= height
    taller = np.maximum(height[:, None], height[None, :])
    middle = (b[:, 0] + b[:, 1]) / 2
    in_line = np.abs(middle[:, None] - middle[None, :]) <= 0.25 * taller
    as_tall = np.abs(height[:, None] - height[None, :]) <= taller / 3
    words = in_line & as_tall & wide[:, None] & wide[None, :]
    return [int(i) for i in big[wide & (words.sum(axis=1) >= alike)]]  # each word counts itself


def _flat(boxes: list, flat: float = FLAT) -> list[int]:
    """The components (indices) at least ``flat`` times as wide as they are tall: a line, not a
    digit (no digit is that flat). The strip of grey round a page in a screenshot, seen between the
    toolbar and the page's top edge, an underline, a ruled line cut short by the picture's edge.
    Such a piece is not taken for the digit; the bar of a 7 broken off its stem is still kept with it."""
    return [i for i, (r, c) in enumerate(boxes) if c.stop - c.start >= flat * (r.stop - r.start)]


def _frames(labels: np.ndarray, boxes: list, sizes: np.ndarray) -> list[int]:
    """The components (indices) that are a frame drawn round the others: a ring whose bounding box
    holds another component at least 5% of its size, and whose hole (once gaps of up to 10% of its
    side are closed) is at least half of that box.
    A 0 or an 8 has holes too, but nothing inside them. Only components at least 10% the size of
    the largest are looked at as frames (one drawn round the digit is larger than it), so a
    picture with thousands of specks costs their number, not its square."""
    bounds = np.array([(r.start, r.stop, c.start, c.stop) for r, c in boxes])
    frames = []
    for i in np.flatnonzero(sizes >= 0.1 * sizes.max()):
        top, bottom, left, right = bounds[i]
        held = ((sizes >= 0.05 * sizes[i]) & (bounds[:, 0] >= top) & (bounds[:, 1] <= bottom)
                & (bounds[:, 2] >= left) & (bounds[:, 3] <= right))
        held[i] = False
        if held.any():
            ring = labels[top:bottom, left:right] == i + 1  # closed up first: a hand-drawn box has gaps at its corners
            gaps = ndimage.binary_dilation(ring, iterations=max(1, max(ring.shape) // 20))
            hole = ndimage.binary_fill_holes(gaps).sum() - gaps.sum()
            if hole >= 0.5 * ring.size:
                frames.append(int(i))
    return frames


def crop_digit(ink: np.ndarray, digit: np.ndarray, size: int = 4 * MNIST_BOX) -> np.ndarray:
    """The ink of the digit's pixels (``digit``: a mask), cut out by its bounding box and resized
    so that its longer side is ``size`` pixels (80: four times MNIST's 20x20 box, enough detail for
    the next step), brightest ink scaled to 1. Lesson 08."""
    rows, cols = np.flatnonzero(digit.any(1)), np.flatnonzero(digit.any(0))
    if len(rows) == 0:
        return np.zeros((size, size), dtype=np.float32)
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    near = ndimage.binary_dilation(digit[box], iterations=1)  # the stroke's soft edge, not its neighbours
    crop = ink[box] * near
    scale = size / max(crop.shape)
    crop = _resize(crop, max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale)))
    return np.clip(crop / max(float(crop.max()), 1e-6), 0.0, 1.0)


def stroke_width(mask: np.ndarray) -> float:
    """The mean width in pixels of the strokes in a mask: their area over the length of their
    centre lines (the skeleton). Lesson 08."""
    length = morphology.skeletonize(mask).sum()
    return float(mask.sum() / length) if length else 0.0


def normalise_strokes(crop: np.ndarray, pen: float = 4 * MNIST_PEN, tolerance: float = 1.5) -> np.ndarray:
    """The digit with MNIST's pen: a crop whose strokes are within ``tolerance`` times of ``pen``
    pixels wide (80 pixels high: 4 x 2.8) comes back as it is; a hair-thin pen, a felt tip or a
    bold font is thinned to its centre lines (the skeleton) and drawn again ``pen`` pixels wide
    with soft edges, the stroke the model learned. Lesson 08."""
    if crop.max() <= 0:
        return crop
    mask = crop > max(float(filters.threshold_otsu(crop)), 0.2)
    width = stroke_width(mask)
    if pen / tolerance <= width <= pen * tolerance:
        return crop
    mask = np.pad(mask, int(np.ceil(pen)))  # room for the pen around strokes at the crop's edge
    distance = ndimage.distance_transform_edt(~morphology.skeletonize(mask))
    return np.clip(pen / 2 + 0.5 - distance, 0.0, 1.0).astype(np.float32)


def mnist_layout(crop: np.ndarray) -> np.ndarray:
    """A digit (h, w) light on dark -> (28, 28) float32 laid out as MNIST's: scaled to fit a 20x20
    box (keeping its aspect ratio), its centre of mass at pixel (14, 14) (LeCun et al., "The MNIST
    database"). Lesson 08."""
    out = np.zeros((28, 28), dtype=np.float32)
    if crop.max() <= 0:
        return out
    rows, cols = np.flatnonzero(crop.max(1) > 0), np.flatnonzero(crop.max(0) > 0)
    crop = crop[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    scale = MNIST_BOX / max(crop.shape)
    h, w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    box = np.clip(_resize(crop, h, w), 0.0, 1.0)
    cy, cx = ndimage.center_of_mass(box)
    top = int(np.clip(round(14 - cy), 0, 28 - h))  # MNIST puts the centre of mass at pixel (14, 14)
    left = int(np.clip(round(14 - cx), 0, 28 - w))
    out[top:top + h, left:left + w] = box
    return out


def digit_steps(x: np.ndarray) -> dict[str, np.ndarray]:
    """Every step from a grey picture (h, w) in [0, 1] to the (28, 28) the model sees, by name, in
    order: picture, ink, no_lines, page, mask, digit, crop, strokes, mnist. Lesson 08 shows each
    one. ``has_digit(steps)`` says whether there was a digit at all."""
    steps = {"picture": _shrink(x, WORK_SIDE)}
    steps["ink"] = flatten_background(steps["picture"])
    steps["no_lines"] = remove_lines(steps["ink"])
    steps["page"] = remove_desk(steps["no_lines"])
    steps["mask"] = ink_mask(steps["page"])
    steps["digit"] = keep_digit(steps["mask"], steps["page"])
    steps["crop"] = crop_digit(steps["page"], steps["digit"])
    steps["strokes"] = normalise_strokes(steps["crop"])
    steps["mnist"] = mnist_layout(steps["strokes"])
    return steps


def preprocess_digit(x: np.ndarray) -> np.ndarray:
    """A grey picture of one digit (h, w) in [0, 1], any size, either polarity -> (28, 28) float32
    laid out like MNIST. What ``load_image``, the CLI and the widgets do for a 28x28 grey model;
    ``digit_steps`` shows the steps. A 28x28 digit laid out like MNIST already comes back as it
    is (inverted if it is dark on light). Raises ``NoDigitError`` when there is no digit (a blank
    page, paper without a digit), saying whether nothing stood out or only specks did. Lesson 08."""
    light_on_dark = 1.0 - x if x.shape == (28, 28) and is_dark_on_light(x) else x
    if is_mnist_layout(light_on_dark):
        return light_on_dark.astype(np.float32)
    steps = digit_steps(x)
    if not has_digit(steps):
        if steps["digit"].any():
            raise NoDigitError("no digit found: the marks that stand out from the paper are too small or too faint "
                               "for a digit; crop the picture closer to the digit, or photograph it larger and darker")
        raise NoDigitError("no digit found: the picture looks blank (no mark stands out from the paper); check that "
                           "it is the right file, or photograph the digit larger and darker")
    return steps["mnist"]


def has_digit(steps: dict[str, np.ndarray]) -> bool:
    """Whether ``digit_steps`` found a digit, not a speck: ink kept, at least 2% of the picture's
    longer side tall or wide (a digit 16 pixels tall in a 12-megapixel photo is still one), its
    strokes (their darkest 10%) at least ``MIN_INK`` dark; or, faint pencil, at least
    ``FAINT_INK`` dark and at least 10% of the picture's longer side (a speck of dust or the
    paper's grain is not that large). Lesson 08."""
    digit = steps["digit"]
    if not digit.any():
        return False
    rows, cols = np.flatnonzero(digit.any(1)), np.flatnonzero(digit.any(0))
    side = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
    darkness = float(np.percentile(steps["page"][digit], 90))
    return side >= 0.02 * max(digit.shape) and darkness >= MIN_INK or side >= 0.1 * max(digit.shape) and darkness >= FAINT_INK


def is_mnist_layout(x: np.ndarray) -> bool:
    """True for a (28, 28) light-on-dark digit as MNIST lays it out: the ink's box 19-21 pixels on
    its longer side, its centre of mass within 1.5 pixels of (14, 14). Lesson 08."""
    if x.shape != (28, 28) or x.max() < 0.5 or is_dark_on_light(x):
        return False
    rows, cols = np.flatnonzero(x.max(1) > 0.1), np.flatnonzero(x.max(0) > 0.1)
    cy, cx = ndimage.center_of_mass(x)
    side = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
    return 19 <= side <= 21 and abs(cy - 14) <= 1.5 and abs(cx - 14) <= 1.5


def _shrink(x: np.ndarray, side: int) -> np.ndarray:
    """(h, w) shrunk (antialiased) so that its longer side is at most ``side``: a 12-megapixel photo
    holds no more of a digit than this, and every later step is cheaper."""
    x = x.astype(np.float32, copy=False)
    h, w = x.shape
    if max(h, w) <= side:
        return x
    scale = side / max(h, w)
    return _resize(x, max(1, round(h * scale)), max(1, round(w * scale)))


def save_seen(x: torch.Tensor | np.ndarray, path: str | Path, zoom: int = 8) -> None:
    """Save a model input (C, H, W) in [0, 1], a tensor or an array, as a PNG, each pixel ``zoom``
    x ``zoom`` (nearest, so the pixels stay visible): the picture the model actually saw.
    ``predict --show`` writes them. Lesson 08."""
    if hasattr(x, "detach"):  # a tensor
        x = x.detach().cpu().float().numpy()
    if not isinstance(x, np.ndarray) or x.ndim != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"expected an image tensor (C, H, W) with C = 1 or 3, got {getattr(x, 'shape', x)}")
    pixels = (np.clip(x.astype(np.float32), 0, 1) * 255).round().astype(np.uint8).transpose(1, 2, 0)
    img = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    img.resize((img.width * zoom, img.height * zoom), Image.Resampling.NEAREST).save(path)


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
    import torch

    if not torch.is_tensor(x) or x.ndim not in (3, 4):
        got = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise ValueError(f"expected an image (C, H, W) or a batch (N, C, H, W) tensor, got {got}")
    single = x.ndim == 3
    predictions = _predict_batch(model, x[None] if single else x, classes, top_k, device,
                                 paths=[None] * (1 if single else len(x)))
    return predictions[0] if single else predictions


def _predict_batch(model, x, classes, top_k, device, paths) -> list[Prediction]:
    import torch

    from .device import eval_mode, model_device

    if device is not None:
        model.to(device)
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    with eval_mode(model), torch.inference_mode():
        logits = model(x.to(model_device(model), dtype))
    if logits.ndim != 2:
        raise ValueError(f"expected the model to return logits (N, num_classes), got {tuple(logits.shape)}")
    return rank_classes(torch.softmax(logits.float(), dim=1).cpu().numpy(), classes, top_k, paths)


def rank_classes(probabilities: np.ndarray, classes: Sequence | None = None, top_k: int = 3,
                 paths: Sequence[str | None] | None = None) -> list[Prediction]:
    """One ``Prediction`` per row of ``probabilities`` (N, num_classes): its ``top_k`` classes, most
    probable first (ties: the lower class index first). ``classes`` names the columns (None: "0",
    "1", ...); ``paths`` names the rows (default None each). Lesson 08."""
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    num_classes = probabilities.shape[1]
    names = [str(i) for i in range(num_classes)] if classes is None else [str(c) for c in classes]
    if len(names) != num_classes:
        raise ValueError(f"the model has {num_classes} outputs but {len(names)} class names were given")
    best = np.argsort(-probabilities, axis=1, kind="stable")[:, :top_k]
    paths = [None] * len(probabilities) if paths is None else paths
    return [Prediction(path, [(names[i], float(row[i])) for i in top])
            for path, row, top in zip(paths, probabilities, best)]


def predict_files(model: torch.nn.Module, paths: str | Path | Sequence[str | Path],
                  classes: Sequence | None = None, top_k: int = 3,
                  device: str | torch.device | None = None, batch_size: int = 64,
                  input_shape: Sequence[int] | None = None, invert: bool | str = "auto"
                  ) -> list[Prediction]:
    """Load image files and predict them in batches; one ``Prediction`` per file, in order. Lesson 08.

    The model runs in eval mode under ``torch.inference_mode()``. ``input_shape`` (C, H, W) defaults
    to the model's ``config`` (in_channels, image_size), else (1, 28, 28); ``invert`` as in
    ``load_image``. A file that cannot be read raises ``ImageError`` naming it, a picture without a
    digit ``NoDigitError``.
    """
    import torch

    if isinstance(paths, (str, Path)):
        paths = [paths]
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    shape = tuple(input_shape) if input_shape is not None else _model_input_shape(model)
    predictions: list[Prediction] = []
    for start in range(0, len(paths), batch_size):
        chunk = [str(p) for p in paths[start:start + batch_size]]
        x = torch.from_numpy(np.stack([load_pixels(p, shape, invert) for p in chunk]))
        predictions += _predict_batch(model, x, classes, top_k, device, paths=chunk)
    return predictions


def saliency(model: torch.nn.Module, x: torch.Tensor, target: int | None = None) -> torch.Tensor:
    """Saliency map (H, W): |d score / d pixel|, the largest over channels (Simonyan et al. 2014).

    x is one image (C, H, W) or (1, C, H, W); ``target`` is the class whose score (logit) we
    differentiate, by default the predicted one. Which pixels would change the answer most? Lesson 08.
    """
    import torch

    from .device import eval_mode, model_device

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
