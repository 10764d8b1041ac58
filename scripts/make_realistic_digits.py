"""The project's realistic digit set: the kinds of pictures people really give a digit classifier.

    python scripts/make_realistic_digits.py OUT_DIR [--sheet contact_sheet.png]

Writes 360 labelled images, 30 per category (3 of each digit), deterministically (numpy + Pillow,
seeded): the same files on every machine. ``OUT_DIR/labels.csv`` lists ``path,label,category``.
Nothing here is MNIST: the digits are hand-made pen strokes or font glyphs, so the set tests what
the model and ``imgrec_lib.inference`` do with pictures they were not trained on.

Categories:
    strokes     handwriting-like pen strokes, pen widths 3-12 px, on white paper
    fonts       printed digits in DejaVu, STIX and Computer Modern faces, bold and serif included
    photos      phone-like 1600x1200 JPEGs: lighting gradient, a shadow along an edge, noise, blur
    ink         blue and red ink on white or cream paper
    offcentre   a small digit somewhere on a large page
    mnist28     28x28, laid out like MNIST or filling the frame; half of them dark on light
    lined       ruled paper (blue rules, a red margin), photographed
    squared     squared (grid) paper, photographed
    desk        a page photographed at an angle on a desk: dark, light or wooden strips of desk along
                the picture's edges, from a sliver to a wide wedge
    shadow      a photographed page with the shadow of a hand or a phone across it: a dark polygon,
                its edge sharp or slightly blurred, the paper under it at 0.35-0.7 of its light,
                crossing or touching the digit
    framed      a digit with a box or a circle drawn round it in the same ink
    pencil      faint pencil: light grey strokes (0.15-0.35 darker than the paper), grainy, on
                textured paper
"""

from __future__ import annotations

import argparse
import csv
import io
import math
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

CATEGORIES = ("strokes", "fonts", "photos", "ink", "offcentre", "mnist28", "lined", "squared", "desk", "shadow",
              "framed", "pencil")
PER_DIGIT = 3  # images of each digit in each category: 12 x 10 x 3 = 360
FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
         "DejaVuSansMono.ttf", "STIXGeneral.ttf", "STIXGeneralBol.ttf", "cmr10.ttf", "DejaVuSans-Oblique.ttf",
         "cmss10.ttf")


# --------------------------------------------------------------------------- digit shapes

def _arc(cx, cy, rx, ry, start, stop, n=24):
    """Points along an ellipse from angle ``start`` to ``stop`` (degrees; 270 is the top, y points down)."""
    t = np.radians(np.linspace(start, stop, n))
    return list(zip(cx + rx * np.cos(t), cy + ry * np.sin(t)))


def _bezier(p0, p1, p2, n=16):
    t = np.linspace(0, 1, n)[:, None]
    p = (1 - t) ** 2 * np.array(p0) + 2 * (1 - t) * t * np.array(p1) + t ** 2 * np.array(p2)
    return [tuple(q) for q in p]


# Each digit is a few pen strokes (polylines) in a unit box, x to the right, y down.
STROKES = {
    0: [_arc(0.5, 0.5, 0.32, 0.45, 0, 360, 40)],
    1: [[(0.3, 0.22), (0.52, 0.04), (0.52, 0.96)]],
    2: [_arc(0.5, 0.3, 0.3, 0.26, 190, 380) + [(0.15, 0.95), (0.87, 0.95)]],
    3: [_arc(0.5, 0.27, 0.24, 0.22, 200, 450) + _arc(0.5, 0.72, 0.28, 0.24, 270, 520)],
    4: [[(0.66, 0.96), (0.66, 0.04), (0.1, 0.66), (0.9, 0.66)]],
    5: [[(0.8, 0.05), (0.3, 0.05), (0.26, 0.46)] + _arc(0.5, 0.68, 0.3, 0.27, 225, 520)],
    6: [_bezier((0.74, 0.06), (0.22, 0.2), (0.22, 0.68)) + _arc(0.5, 0.7, 0.28, 0.25, 180, 540, 40)],
    7: [[(0.13, 0.05), (0.87, 0.05), (0.4, 0.96)]],
    8: [_arc(0.5, 0.27, 0.22, 0.22, 90, 450, 30), _arc(0.5, 0.71, 0.28, 0.24, 270, 630, 36)],
    9: [_arc(0.5, 0.3, 0.26, 0.25, 0, 360, 36), [(0.76, 0.3), (0.7, 0.96)]],
}


def _hand(rng: np.random.Generator, digit: int) -> list[np.ndarray]:
    """The digit's strokes, wobbled and slanted as a hand would: a random slant, rotation, aspect,
    and a slow sideways drift along each stroke."""
    slant, angle = rng.uniform(-0.3, 0.2), math.radians(rng.uniform(-8, 8))
    sx, sy = rng.uniform(0.75, 1.1), 1.0
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    phase, amp = rng.uniform(0, 2 * math.pi, 2), rng.uniform(0.0, 0.03, 2)
    strokes = STROKES[digit]
    if digit == 1:  # the flag of a 1: from none to a long continental one
        flag = rng.uniform(0.0, 0.3)
        strokes = [[(0.52 - flag, 0.04 + 0.8 * flag)] + strokes[0][1:]]
    out = []
    for stroke in strokes:
        p = np.array(stroke, dtype=float) - 0.5
        p += amp * np.sin(2 * math.pi * p[:, ::-1] * 1.3 + phase)
        p[:, 0] = (p[:, 0] + slant * p[:, 1]) * sx
        p[:, 1] *= sy
        out.append(p @ rot.T)
    return out


def _draw_strokes(draw: ImageDraw.ImageDraw, strokes, centre, height, pen, colour) -> None:
    """Draw unit-box strokes ``height`` px tall around ``centre`` with a round pen ``pen`` px wide."""
    for p in strokes:
        pts = [(centre[0] + x * height, centre[1] + y * height) for x, y in p]
        draw.line(pts, fill=colour, width=int(round(pen)), joint="curve")
        r = pen / 2
        for x, y in (pts[0], pts[-1]):
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)


def _glyph(rng, digit: int, font_name: str, height: int) -> Image.Image:
    """A printed digit, black on white, about ``height`` px tall, in an image with a margin."""
    font = ImageFont.truetype(str(FONT_DIR / font_name), size=int(height * 1.35))
    left, top, right, bottom = font.getbbox(str(digit))
    margin = height // 2
    img = Image.new("L", (right - left + 2 * margin, bottom - top + 2 * margin), 255)
    ImageDraw.Draw(img).text((margin - left, margin - top), str(digit), fill=0, font=font)
    return img


# --------------------------------------------------------------------------- paper and camera

def _lighting(rng, h: int, w: int) -> np.ndarray:
    """A phone photo's light over the page: a tilted plane plus a vignette, 0.45-1."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    gx, gy = rng.uniform(-0.6, 0.6, 2)
    plane = 1 + gx * (x - 0.5) + gy * (y - 0.5)
    vignette = 1 - rng.uniform(0.1, 0.3) * ((x - x.mean()) ** 2 + (y - y.mean()) ** 2) * 2
    light = plane * vignette
    return np.clip(0.45 + 0.55 * (light - light.min()) / (np.ptp(light) + 1e-9), 0, 1)


def _shadow(rng, h: int, w: int) -> np.ndarray:
    """A soft shadow along one edge (the phone or a hand over the page): a factor 0.55-1."""
    edge = rng.integers(4)
    depth = rng.uniform(0.06, 0.15)
    y, x = np.mgrid[0:h, 0:w]
    d = [y / h, 1 - y / h, x / w, 1 - x / w][edge]
    return 1 - rng.uniform(0.3, 0.45) / (1 + np.exp((d - depth) * 60))


def _camera(rng, rgb: np.ndarray, blur: float, noise: float) -> Image.Image:
    """Blur, sensor noise and 8-bit quantisation of an (h, w, 3) picture in [0, 1]."""
    img = Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8))
    if blur > 0:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    a = np.asarray(img, dtype=float) / 255 + rng.normal(0, noise, rgb.shape)
    return Image.fromarray((np.clip(a, 0, 1) * 255).round().astype(np.uint8))


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _rules(draw, rng, w, h, squared: bool) -> None:
    """Ruled or squared paper: light blue lines every 40-70 px, a red margin on ruled paper."""
    step = int(rng.integers(40, 70))
    blue = tuple(int(c) for c in rng.integers([120, 150, 190], [170, 190, 235]))
    width = int(rng.integers(2, 5))
    for y in range(int(rng.integers(0, step)), h, step):
        draw.line([(0, y), (w, y)], fill=blue, width=width)
    if squared:
        for x in range(int(rng.integers(0, step)), w, step):
            draw.line([(x, 0), (x, h)], fill=blue, width=width)
    else:
        x = int(w * rng.uniform(0.08, 0.14))
        draw.line([(x, 0), (x, h)], fill=(220, 90, 90), width=width + 1)


def _on_desk(rng, page: Image.Image) -> Image.Image:
    """The page as a phone sees it on a desk: turned by up to 7 degrees, in perspective, and framed
    so that the desk shows along some or all of the picture's edges (the frame 0-8% wider than the
    page). The desk is dark grey, black, wood or a light table, with a little grain."""
    w, h = page.size
    angle, zoom = math.radians(rng.uniform(-7, 7)), rng.uniform(1.0, 1.08)
    cx, cy = w / 2 + rng.uniform(-0.03, 0.03) * w, h / 2 + rng.uniform(-0.03, 0.03) * h
    corners = []  # where the picture's corners fall on the page (PIL's QUAD: top-left, bottom-left, ...)
    for x, y in ((0, 0), (0, h), (w, h), (w, 0)):
        dx, dy = (x - w / 2) * zoom, (y - h / 2) * zoom
        corners += [cx + dx * math.cos(angle) - dy * math.sin(angle) + rng.uniform(-0.02, 0.02) * w,
                    cy + dx * math.sin(angle) + dy * math.cos(angle) + rng.uniform(-0.02, 0.02) * h]
    photo = page.transform((w, h), Image.Transform.QUAD, corners, resample=Image.Resampling.BILINEAR)
    inside = Image.new("L", (w, h), 255).transform((w, h), Image.Transform.QUAD, corners,
                                                    resample=Image.Resampling.BILINEAR)
    colour = np.array([(60, 58, 55), (30, 30, 32), (120, 80, 50), (160, 125, 85), (200, 200, 195)][rng.integers(5)])
    grain = 1 + 0.08 * np.sin(np.arange(h)[:, None] / rng.uniform(3, 9) + rng.uniform(0, 6) * np.sin(np.arange(w) / 97))
    desk = np.clip(colour * grain[..., None] / 255, 0, 1)
    a = np.asarray(inside, dtype=float)[..., None] / 255
    rgb = np.asarray(photo, dtype=float) / 255 * a + desk * (1 - a)
    return Image.fromarray((rgb * 255).round().astype(np.uint8))


def _cast_shadow(rng, w: int, h: int, centre, height: float) -> np.ndarray:
    """The shadow of a phone or of a hand held over the page, reaching in from outside the picture
    to the digit: a factor (h, w), 1 on the lit paper and 0.35-0.7 under the shadow. A phone is a
    long band with rounded corners; a hand is an arm, a palm and four fingers each about half as
    wide as the digit is tall. Its edge is sharp, or blurred by up to 4 px (a hand held higher)."""
    toward = rng.uniform(0, 2 * math.pi)  # the direction the shadow reaches in, towards the digit
    tip = np.array(centre) + height * rng.uniform(-0.5, 0.5, 2)
    y, x = np.mgrid[0:h, 0:w].astype(float)
    along = (x - tip[0]) * math.cos(toward) + (y - tip[1]) * math.sin(toward)  # the shadow lies at along <= 0
    across = -(x - tip[0]) * math.sin(toward) + (y - tip[1]) * math.cos(toward)
    half = rng.uniform(0.3, 0.8) * height  # half the phone's or the arm's width
    r = 0.3 * half  # the radius of its rounded corners
    shadow = np.hypot(np.maximum(along + r, 0), np.maximum(np.abs(across) - (half - r), 0)) <= r
    if rng.random() < 0.5:  # a hand: a palm and four fingers at the end of the arm
        palm = rng.uniform(0.8, 1.2) * height
        shadow |= np.hypot(along, across) <= palm
        length = rng.uniform(1.0, 1.4) * palm
        for offset in np.linspace(-0.75, 0.75, 4) * palm:  # a finger: the points within its radius of a segment
            reach = np.clip(along, 0, length)
            shadow |= np.hypot(along - reach, across - offset) <= 0.22 * palm
    mask = Image.fromarray(shadow.astype(np.uint8) * 255)
    blur = float(rng.choice([0.0, rng.uniform(1, 4)]))
    if blur:
        mask = mask.filter(ImageFilter.GaussianBlur(blur))
    darkness = 1 - rng.uniform(0.35, 0.7)
    return 1 - darkness * np.asarray(mask, dtype=float) / 255


def _pencil(rng, digit: int, size: int) -> np.ndarray:
    """A digit in faint pencil on textured paper: grey (size, size) in [0, 1]. The strokes are grainy
    (graphite catches the paper's tooth) and 0.15-0.35 darker than the paper."""
    strokes = Image.new("L", (size, size), 0)
    _draw_strokes(ImageDraw.Draw(strokes), _hand(rng, digit), (size / 2, size / 2), size * rng.uniform(0.5, 0.7),
                  pen=rng.uniform(2, 6), colour=255)
    strokes = np.asarray(strokes.filter(ImageFilter.GaussianBlur(0.7)), dtype=float) / 255
    grain = np.clip(rng.normal(0.8, 0.25, (size, size)), 0, 1)
    tooth = Image.fromarray((127 + 127 * rng.normal(0, 1, (size, size)).clip(-1, 1)).astype(np.uint8))
    tooth = np.asarray(tooth.filter(ImageFilter.GaussianBlur(1.2)), dtype=float) / 255 - 0.5  # paper texture
    paper = rng.uniform(0.88, 0.98) + 0.06 * tooth
    return paper * (1 - rng.uniform(0.15, 0.35) * strokes * grain)


# --------------------------------------------------------------------------- one image per category

def make_image(category: str, digit: int, k: int, rng: np.random.Generator) -> tuple[bytes, str]:
    """One picture of ``digit`` in ``category``: the file's bytes and its extension."""
    pen_ink = int(rng.integers(10, 70))
    if category == "strokes":
        size = int(rng.integers(300, 500))
        img = Image.new("L", (size, size), int(rng.integers(235, 256)))
        _draw_strokes(ImageDraw.Draw(img), _hand(rng, digit), (size / 2, size / 2), size * rng.uniform(0.55, 0.75),
                      pen=3 + (k * 10 + digit) % 10, colour=pen_ink)
        return _png(img), "png"
    if category == "fonts":
        img = _glyph(rng, digit, FONTS[(digit + 3 * k) % len(FONTS)], int(rng.integers(60, 220)))
        return _png(img), "png"
    if category == "mnist28":
        big = Image.new("L", (112, 112), 0)
        box = 80 if k < 2 else 108  # the third of each digit fills the frame
        _draw_strokes(ImageDraw.Draw(big), _hand(rng, digit), (56, 56), box * 0.9, pen=rng.uniform(8, 14),
                      colour=255)
        img = big.resize((28, 28), Image.Resampling.LANCZOS)
        if (digit + k) % 2:
            img = Image.eval(img, lambda v: 255 - v)  # dark on light
        return _png(img), "png"
    if category == "ink":
        size = int(rng.integers(300, 600))
        paper = (255, 255, 255) if k % 2 else (250, 243, 225)
        img = Image.new("RGB", (size, size), paper)
        colour = (30, 50, 170) if (digit + k) % 2 else (190, 30, 40)
        _draw_strokes(ImageDraw.Draw(img), _hand(rng, digit), (size / 2, size / 2), size * rng.uniform(0.5, 0.7),
                      pen=rng.uniform(4, 12), colour=colour)
        return (_png(img), "png") if k != 2 else (_jpeg(img, 85), "jpg")
    if category == "offcentre":
        w, h = int(rng.integers(900, 1400)), int(rng.integers(700, 1000))
        img = Image.new("L", (w, h), int(rng.integers(230, 256)))
        height = rng.uniform(80, 200)
        centre = (rng.uniform(height, w - height), rng.uniform(height, h - height))
        _draw_strokes(ImageDraw.Draw(img), _hand(rng, digit), centre, height, pen=rng.uniform(3, 8), colour=pen_ink)
        return _png(img), "png"
    if category == "framed":
        size = int(rng.integers(400, 700))
        img = Image.new("L", (size, size), int(rng.integers(235, 256)))
        draw, height, pen = ImageDraw.Draw(img), size * rng.uniform(0.4, 0.55), rng.uniform(3, 10)
        _draw_strokes(draw, _hand(rng, digit), (size / 2, size / 2), height, pen=pen, colour=pen_ink)
        a, b = rng.uniform(0.55, 0.75), rng.uniform(0.65, 0.85)  # the frame's half width and height, in digit heights
        if (digit + k) % 2:  # a box, its corners off by a hand's wobble
            frame = np.array([(-a, -b), (a, -b), (a, b), (-a, b), (-a, -b)]) + rng.uniform(-0.05, 0.05, (5, 2))
        else:  # a circle, drawn round once and a little more
            start = rng.uniform(0, 360)
            frame = np.array(_arc(0, 0, a * 1.1, b * 1.05, start, start + rng.uniform(360, 390), 48))
        _draw_strokes(draw, [frame], (size / 2, size / 2), height, pen=pen, colour=pen_ink)
        return (_png(img), "png") if k != 2 else (_jpeg(img, 80), "jpg")
    if category == "pencil":
        grey = _pencil(rng, digit, int(rng.integers(400, 800)))
        img = _camera(rng, np.repeat(grey[..., None], 3, axis=2), blur=0.0, noise=0.01).convert("L")
        return (_png(img), "png") if k == 0 else (_jpeg(img, int(rng.integers(75, 92))), "jpg")
    # photos, lined, squared, desk, shadow: a page photographed with a phone
    w, h = (1600, 1200) if (digit + k) % 3 else (1200, 1600)
    page = Image.new("RGB", (w, h), (245, 242, 232))
    draw = ImageDraw.Draw(page)
    if category in ("lined", "squared") or (category == "desk" and k == 2):
        _rules(draw, rng, w, h, squared=category == "squared" or (category == "desk" and digit % 2 == 1))
    height = min(w, h) * rng.uniform(0.25, 0.5)
    centre = (w / 2 + rng.uniform(-0.15, 0.15) * w, h / 2 + rng.uniform(-0.15, 0.15) * h)
    ink = (pen_ink,) * 3 if k != 1 else (30, 45, 140)
    _draw_strokes(draw, _hand(rng, digit), centre, height, pen=rng.uniform(6, 16), colour=ink)
    if category == "desk":
        page = _on_desk(rng, page)
    rgb = np.asarray(page, dtype=float) / 255
    light = _lighting(rng, h, w) * (_shadow(rng, h, w) if category == "photos" or k == 0 else 1)
    if category == "shadow":
        light = 0.6 + 0.4 * light  # an even light: the hand's shadow is what is hard here
        light *= _cast_shadow(rng, w, h, centre, height)
    rgb = rgb * light[..., None] * np.array([1.0, 0.97, 0.9])  # a warm indoor light
    img = _camera(rng, rgb, blur=rng.uniform(0.8, 2.5), noise=rng.uniform(0.01, 0.035))
    return _jpeg(img, int(rng.integers(60, 90))), "jpg"


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def make_set(folder: str | Path, seed: int = 0) -> list[tuple[Path, int, str]]:
    """Write the whole set under ``folder`` (``<category>/<digit>_<k>.<ext>`` and ``labels.csv``);
    return its ``(path, label, category)`` rows. The same seed writes the same bytes."""
    folder = Path(folder)
    rows = []
    for c, category in enumerate(CATEGORIES):
        (folder / category).mkdir(parents=True, exist_ok=True)
        for digit in range(10):
            for k in range(PER_DIGIT):
                rng = np.random.default_rng([seed, c, digit, k])
                data, ext = make_image(category, digit, k, rng)
                path = folder / category / f"{digit}_{k}.{ext}"
                path.write_bytes(data)
                rows.append((path, digit, category))
    with open(folder / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "category"])
        writer.writerows((p.relative_to(folder).as_posix(), label, cat) for p, label, cat in rows)
    return rows


def contact_sheet(rows, path: str | Path, thumb: int = 72) -> None:
    """One PNG with every image as a thumbnail: a row per category, its digits left to right."""
    by_category = {c: [r for r in rows if r[2] == c] for c in CATEGORIES}
    cols = max(len(v) for v in by_category.values())
    sheet = Image.new("RGB", (cols * thumb, len(CATEGORIES) * thumb), "white")
    for i, category in enumerate(CATEGORIES):
        for j, (p, _, _) in enumerate(by_category[category]):
            with Image.open(p) as im:
                im = im.convert("RGB")
                im.thumbnail((thumb - 2, thumb - 2))
                sheet.paste(im, (j * thumb + 1, i * thumb + 1))
    sheet.save(path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the images into")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sheet", type=Path, default=None, help="also write a contact sheet PNG here")
    args = parser.parse_args(argv)
    rows = make_set(args.out, args.seed)
    if args.sheet:
        contact_sheet(rows, args.sheet)
    print(f"{len(rows)} images in {args.out}")


if __name__ == "__main__":
    main()
