"""The project's realistic digit set: the kinds of pictures people really give a digit classifier.

    python scripts/make_realistic_digits.py OUT_DIR [--sheet contact_sheet.png]

Writes 450 labelled images, 30 per category (3 of each digit), deterministically (numpy + Pillow,
seeded): the same files on every machine. Each image has its own generator, seeded by (seed, the
category's place in CATEGORIES, digit, k), so a category added at the end leaves every other
image's bytes as they were. ``OUT_DIR/labels.csv`` lists ``path,label,category``.
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
    screenshot  a 1280-1440 px screenshot of an app: title bar, menu, a toolbar with a row of icons,
                a grey surround and a white page with one typed digit 40-110 px high; sometimes a
                text cursor, a mouse pointer, a ruler, a scroll bar, a status bar; PNG
    marker      thick felt-tip (strokes 7-12% of the digit's height) in black, dark blue, dark green
                or dark red at 85-95% opacity, darker where strokes overlap; slight blur, JPEG 60-90
    handshadow  a phone photo, 1200-4000 px, of a page in perspective on a desk with the hard shadow
                of a hand with fingers or of a phone across part of the page and across or near the
                digit; warm light, vignette, noise, blur, JPEG 30-70; one digit in three small, its
                loops closing up once the photo is shrunk
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
              "framed", "pencil", "screenshot", "marker", "handshadow")
PER_DIGIT = 3  # images of each digit in each category: 15 x 10 x 3 = 450
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


# --------------------------------------------------------------------------- a screenshot, felt-tip, a hand's shadow

MENU = ("File", "Edit", "View", "Insert", "Format", "Tools", "Window", "Help")


def _screenshot(rng, digit: int, k: int) -> Image.Image:
    """An app's window as a screenshot, 1280-1440 px wide: a title bar, a menu, a toolbar with a row
    of icons, a grey surround and a white page with one typed digit 40-110 px high; a text cursor,
    a mouse pointer, a ruler, a scroll bar and a status bar some of the time."""
    w = int(rng.integers(1280, 1441))
    h = int(w * rng.uniform(0.56, 0.66))
    dark = rng.random() < 0.3  # a dark title bar and toolbar
    chrome, text = ((45, 47, 52), (225, 225, 225)) if dark else ((236, 236, 238), (40, 40, 40))
    surround = int(rng.integers(170, 225))
    img = Image.new("RGB", (w, h), (surround,) * 3)
    draw = ImageDraw.Draw(img)
    ui = ImageFont.truetype(str(FONT_DIR / "DejaVuSans.ttf"), int(rng.integers(12, 17)))
    title, menu, tools = int(rng.integers(26, 36)), int(rng.integers(22, 30)), int(rng.integers(36, 60))
    top = title + menu + tools
    draw.rectangle([0, 0, w, top], fill=chrome)
    draw.rectangle([0, 0, w, title], fill=tuple(max(c - 12, 0) for c in chrome))
    draw.text((w // 2 - 60, title // 2), "Untitled - Notes", fill=text, font=ui, anchor="lm")
    for i, colour in enumerate([(237, 106, 94), (245, 191, 79), (98, 197, 84)]):  # the window's buttons
        x = 14 + 22 * i
        draw.ellipse([x, title // 2 - 6, x + 12, title // 2 + 6], fill=colour)
    x = 12
    for word in MENU[:int(rng.integers(5, len(MENU) + 1))]:
        draw.text((x, title + menu // 2), word, fill=text, font=ui, anchor="lm")
        x += int(ui.getlength(word)) + int(rng.integers(14, 24))
    icon, x, y = int(tools * rng.uniform(0.5, 0.7)), 10, title + menu + tools // 2
    bold = ImageFont.truetype(str(FONT_DIR / "DejaVuSans-Bold.ttf"), icon)
    for i in range(int(rng.integers(10, 22))):  # the toolbar's icons: shapes, letters and little bars
        kind = rng.integers(5)
        colour = text if rng.random() < 0.6 else tuple(int(c) for c in rng.integers(30, 220, 3))
        box = [x, y - icon // 2, x + icon, y + icon // 2]
        if kind == 0:
            draw.rounded_rectangle(box, radius=icon // 5, outline=colour, width=2)
        elif kind == 1:
            draw.ellipse(box, fill=colour)
        elif kind == 2:
            draw.text((x + icon // 2, y), "BIUSA"[i % 5], fill=colour, font=bold, anchor="mm")
        elif kind == 3:
            for j in range(4):  # an "align" icon: four short bars
                bar_y = box[1] + 3 + j * icon // 4
                draw.line([(x, bar_y), (x + icon - (j % 2) * icon // 3, bar_y)], fill=colour, width=2)
        else:
            draw.polygon([(x, box[3]), (x + icon // 2, box[1]), (x + icon, box[3])], fill=colour)
        x += icon + int(rng.integers(6, 16)) + (int(rng.integers(10, 24)) if rng.random() < 0.2 else 0)
        if x > w - icon - 10:
            break
    status = int(rng.integers(20, 28)) if rng.random() < 0.6 else 0
    if status:
        draw.rectangle([0, h - status, w, h], fill=chrome)
        draw.text((12, h - status // 2), "Page 1 of 1    1 word    English (US)", fill=text, font=ui, anchor="lm")
    if rng.random() < 0.5:  # a scroll bar along the right edge
        draw.rectangle([w - 14, top, w, h - status], fill=(225, 225, 225))
        draw.rounded_rectangle([w - 12, top + 30, w - 2, top + 30 + int(rng.integers(60, 300))], radius=4,
                               fill=(160, 160, 160))
    page_w = int(w * rng.uniform(0.45, 0.7))
    left, page_top = (w - page_w) // 2 + int(rng.integers(-60, 61)), top + int(rng.integers(12, 40))
    draw.rectangle([left + 4, page_top + 4, left + page_w + 4, h + 10], fill=(surround - 30,) * 3)  # its shadow
    draw.rectangle([left, page_top, left + page_w, h + 10], fill="white", outline=(150, 150, 150))
    if rng.random() < 0.3:  # a ruler with ticks above the page
        draw.rectangle([left, top, left + page_w, top + 12], fill=(250, 250, 250))
        for t in range(left, left + page_w, 12):
            draw.line([(t, top + 12), (t, top + (4 if (t - left) % 60 else 0))], fill=(120, 120, 120))
    height = int(rng.integers(40, 111))  # the digit's height on the screen
    font = ImageFont.truetype(str(FONT_DIR / FONTS[(3 * digit + k) % len(FONTS)]), int(height * 1.35))
    margin = int(page_w * rng.uniform(0.08, 0.15))
    x0 = left + margin + int(rng.uniform(0, 0.5) * (page_w - 2 * margin - height))
    y0 = page_top + margin + int(rng.uniform(0, 0.6) * max(h - page_top - 2 * margin - height - status, 1))
    ink = tuple(int(c) for c in rng.integers(0, 40, 3))
    draw.text((x0, y0), str(digit), fill=ink, font=font, anchor="lt")
    right, bottom = draw.textbbox((x0, y0), str(digit), font=font, anchor="lt")[2:]
    if rng.random() < 0.5:  # the text cursor just after the digit
        draw.line([(right + 3, y0 - height // 8), (right + 3, bottom + height // 8)], fill=(0, 0, 0), width=2)
    if rng.random() < 0.3:  # the mouse pointer somewhere on the page, away from the digit
        px, py = left + page_w * rng.uniform(0.6, 0.9), bottom + rng.uniform(1.0, 2.0) * height
        arrow = [(0, 0), (0, 17), (4, 13), (7, 20), (10, 19), (7, 12), (12, 12)]
        draw.polygon([(px + a, py + b) for a, b in arrow], fill="black", outline="white")
    return img


def _felt_tip(rng, digit: int, k: int) -> Image.Image:
    """A digit in thick felt-tip: strokes 7-12% of the digit's height, black, dark blue, dark green or
    dark red ink at 85-95% opacity, so the paper shows through a little and strokes darken where they
    overlap (each stroke is laid down in two or three pieces that overlap at their joins)."""
    size = int(rng.integers(300, 700))
    cream = rng.integers([240, 235, 215], [252, 248, 235]) if k % 2 == 0 else None
    paper = np.array((255, 255, 255) if cream is None else cream, dtype=float)
    colour = np.array([(25, 25, 30), (25, 35, 115), (20, 85, 45), (135, 25, 30)][(3 * digit + k) % 4], dtype=float)
    opacity = rng.uniform(0.85, 0.95)
    height = size * rng.uniform(0.5, 0.7)
    pen = height * rng.uniform(0.07, 0.12)
    rgb = np.ones((size, size, 1)) * paper
    for stroke in _hand(rng, digit):
        cuts = sorted(rng.choice(np.arange(3, len(stroke) - 3), size=int(rng.integers(1, 3)), replace=False)) \
            if len(stroke) > 8 else []
        for start, stop in zip([0] + list(cuts), list(cuts) + [len(stroke)]):
            piece = stroke[max(start - 1, 0):stop + 1]
            mask = Image.new("L", (size, size), 0)
            _draw_strokes(ImageDraw.Draw(mask), [piece], (size / 2, size / 2), height, pen=pen, colour=255)
            alpha = opacity * rng.uniform(0.93, 1.0) * np.asarray(mask, dtype=float)[..., None] / 255
            rgb = rgb * (1 - alpha) + colour * alpha
    img = Image.fromarray(rgb.round().astype(np.uint8))
    return img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.3)))


def _homography(src, dst) -> np.ndarray:
    """The 8 coefficients (a..h) of the perspective map taking the 4 points ``src`` to ``dst``:
    x' = (a x + b y + c) / (g x + h y + 1), y' = (d x + e y + f) / (g x + h y + 1)."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    return np.linalg.solve(np.array(rows, dtype=float), np.array(rhs, dtype=float))


def _capsule(draw, a, b, width: float) -> None:
    """A finger, an arm: a thick segment from ``a`` to ``b`` with round ends."""
    draw.line([tuple(a), tuple(b)], fill=255, width=int(round(width)))
    for x, y in (a, b):
        draw.ellipse([x - width / 2, y - width / 2, x + width / 2, y + width / 2], fill=255)


def _hand_or_phone_shadow(rng, w: int, h: int, digit_at, height: float, scale: float) -> Image.Image:
    """The mask (L, 255 in shadow) of a hand with four fingers and a thumb, or of a phone held in a
    hand, reaching in from outside the picture towards the digit (``height`` px tall, centred at
    ``digit_at``): the middle finger's tip or the phone's end stops from 0.3 of the digit's height
    past its centre (across it) to 1.2 of its height short of it (near it). ``scale`` is the page's
    width in the picture: a finger is 7-9% of it wide."""
    mask = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(mask)
    angle = rng.uniform(0, 2 * math.pi)
    d = np.array([math.cos(angle), math.sin(angle)])  # the direction the hand points in, towards the digit
    n = np.array([-d[1], d[0]])
    target = np.array(digit_at) - d * rng.uniform(-0.3, 1.2) * height + n * rng.uniform(-0.3, 0.3) * height
    s = scale * rng.uniform(0.8, 1.3)
    if rng.random() < 0.6:  # a hand, left or right: the middle finger points at the target, its tip there
        n *= rng.choice([-1, 1])  # from the index finger's side (-n) to the little finger's (+n)
        finger, length = s * rng.uniform(0.07, 0.09), s * rng.uniform(0.3, 0.4)
        spread = math.radians(rng.uniform(2, 8))
        knuckles = target - d * length  # the middle finger's
        for offset, share in zip((-1, 0, 1, 2), (0.88, 1.0, 0.93, 0.72)):  # index, middle, ring, little
            way = d * math.cos(offset * spread) + n * math.sin(offset * spread)
            base = knuckles + n * offset * finger * 1.05
            _capsule(draw, base, base + way * length * share, finger)
        palm = knuckles + n * 0.5 * finger - d * 0.2 * s
        thumb = palm - n * 0.3 * s + d * 0.1 * s
        _capsule(draw, palm - n * 0.1 * s, thumb, finger * 1.2)
        r = 0.2 * s
        draw.ellipse([palm[0] - r, palm[1] - r, palm[0] + r, palm[1] + r], fill=255)
        _capsule(draw, palm, palm - d * 4 * s, 0.3 * s)  # the wrist and the arm, off the picture
    else:  # a phone, its far end at the target, the hand holding it behind
        half_w, length, r = 0.17 * s, 0.7 * s, 0.03 * s
        corners = []
        for cx, cy, start in ((half_w - r, -r, 0), (-half_w + r, -r, 90), (-half_w + r, -length + r, 180),
                              (half_w - r, -length + r, 270)):
            corners += [(cx + r * math.cos(math.radians(t)), cy + r * math.sin(math.radians(t)))
                        for t in np.linspace(start, start + 90, 6)]
        draw.polygon([tuple(target + n * x + d * y) for x, y in corners], fill=255)  # y <= 0: behind the target
        hand = target - d * 0.8 * s
        _capsule(draw, hand, hand - d * 4 * s, 0.3 * s)
    blur = float(rng.choice([0.0, rng.uniform(0.5, 2.0)])) * max(w, h) / 1500
    return mask.filter(ImageFilter.GaussianBlur(blur)) if blur else mask


def _shadowed_photo(rng, digit: int, k: int) -> Image.Image:
    """A phone photo, 1200-4000 px on its long side, of a page in perspective on a desk, with the hard
    shadow of a hand or of a phone across part of the page and across or near the digit; a warm light,
    a vignette, blur and noise. One digit in three is small (5-8% of the page's width) and written
    with a thick pen (10-15% of its height), so its loops close up once the photo is shrunk and blurred."""
    long = int(rng.integers(1200, 4001))
    w, h = (long, long * 3 // 4) if (digit + k) % 3 == 0 else (long * 3 // 4, long)
    page_w = min(w, h / 1.41) * rng.uniform(0.75, 0.95)  # the page's width in the picture, A4-shaped
    pw, ph = int(page_w), int(page_w * 1.41)
    page = Image.new("RGB", (pw, ph), tuple(int(c) for c in rng.integers([236, 232, 222], [252, 248, 240])))
    draw = ImageDraw.Draw(page)
    if k == 2 and digit % 2:  # ruled paper
        step = ph / rng.uniform(28, 36)
        for y in np.arange(step * 3, ph, step):
            draw.line([(0, y), (pw, y)], fill=(150, 175, 215), width=max(1, int(pw / 600)))
    height = page_w * (rng.uniform(0.05, 0.08) if k == 0 else rng.uniform(0.1, 0.3))
    pen = height * (rng.uniform(0.1, 0.15) if k == 0 else rng.uniform(0.04, 0.1))
    spot = np.array([pw * rng.uniform(0.3, 0.7), ph * rng.uniform(0.3, 0.7)])
    ink = tuple(int(c) for c in ((rng.integers(15, 60),) * 3 if digit % 3 else (30, 45, 140)))
    _draw_strokes(draw, _hand(rng, digit), tuple(spot), height, pen=max(pen, 2.0), colour=ink)
    turn, keystone = math.radians(rng.uniform(-8, 8)), rng.uniform(0.8, 0.97)  # the camera's tilt narrows the top
    centre = np.array([w / 2, h / 2]) + rng.uniform(-0.04, 0.04, 2) * (w, h)
    quad = []
    for x, y in ((-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)):
        x = x * (keystone if y < 0 else 1)
        p = np.array([x * pw, y * ph]) + rng.uniform(-0.015, 0.015, 2) * (w, h)
        quad.append(centre + [p[0] * math.cos(turn) - p[1] * math.sin(turn),
                              p[0] * math.sin(turn) + p[1] * math.cos(turn)])
    corners = [(0, 0), (pw, 0), (pw, ph), (0, ph)]
    back = _homography(quad, corners)  # PIL maps each output pixel back to the page
    photo = page.transform((w, h), Image.Transform.PERSPECTIVE, tuple(back), Image.Resampling.BILINEAR)
    inside = Image.new("L", (pw, ph), 255).transform((w, h), Image.Transform.PERSPECTIVE, tuple(back),
                                                     Image.Resampling.BILINEAR)
    desk = [(95, 70, 45), (150, 110, 70), (70, 70, 72), (185, 182, 175), (35, 35, 38)][int(rng.integers(5))]
    photo = Image.composite(photo, Image.new("RGB", (w, h), desk), inside)
    a, b, c, d, e, f, g, hh = _homography(corners, quad)
    x, y = spot
    digit_at = np.array([a * x + b * y + c, d * x + e * y + f]) / (g * x + hh * y + 1)
    shrink = math.hypot(*(np.array(quad[1]) - quad[0])) / pw  # the page's scale in the picture, at its top
    shadow = _hand_or_phone_shadow(rng, w, h, digit_at, height * shrink, page_w)
    yy, xx = np.ogrid[0:h, 0:w]
    xx, yy = (xx.astype(np.float32) - w / 2) / w, (yy.astype(np.float32) - h / 2) / h  # -0.5 to 0.5
    vignette = 1 - rng.uniform(0.15, 0.35) * 2 * (xx ** 2 + yy ** 2)
    light = vignette * (1 + rng.uniform(-0.15, 0.15) * xx + rng.uniform(-0.15, 0.15) * yy)
    light *= 1 - rng.uniform(0.35, 0.65) * np.asarray(shadow, dtype=np.float32) / 255
    warm = np.array([1.0, rng.uniform(0.9, 0.96), rng.uniform(0.75, 0.86)], dtype=np.float32)
    rgb = np.asarray(photo, dtype=np.float32) * light[..., None] * warm
    img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(rng.uniform(0.6, 1.4) * long / 1500))
    noise = rng.standard_normal((h, w, 3), dtype=np.float32) * np.float32(255 * rng.uniform(0.01, 0.035))
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255).round().astype(np.uint8))


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
    if category == "screenshot":
        return _png(_screenshot(rng, digit, k)), "png"
    if category == "marker":
        return _jpeg(_felt_tip(rng, digit, k), int(rng.integers(60, 91))), "jpg"
    if category == "handshadow":
        return _jpeg(_shadowed_photo(rng, digit, k), int(rng.integers(30, 71))), "jpg"
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
