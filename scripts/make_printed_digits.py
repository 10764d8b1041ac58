"""Printed digits for training: each digit in 16 Liberation faces, laid out as MNIST's.

    python scripts/make_printed_digits.py [--fonts DIR] [--out imgrec_lib/embedded/printed_digits.npz]

MNIST holds handwriting only, so a model trained on it reads a printed 1 with a foot (the base
serif of most typefaces) as a 2. A small share of printed digits in training fixes that
(benchmarks/HISTORY.md has the figures). Each digit is rendered with Pillow in every Liberation
face (Sans, Sans Narrow, Serif, Mono; regular, bold, italic, bold italic: SIL Open Font License
1.1, Debian/Ubuntu package ``fonts-liberation``) at three sizes, dark on white, and sent through
``imgrec_lib.inference.preprocess_digit``: the 28x28 a model sees when it reads such a picture.
16 faces x 10 digits x 3 sizes = 480 images, stored as uint8 with their labels. The realistic
digit set (scripts/make_realistic_digits.py) prints with matplotlib's DejaVu, STIX and Computer
Modern faces: none of them is used here, so the set stays a fair test.

The file ships with imgrec (``augment.printed_digits`` reads it and checks its SHA-256): run this
script again only when the fonts or the pipeline change, then update ``PRINTED_SHA256``.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imgrec_lib.inference import preprocess_digit  # noqa: E402

FONT_DIR = Path("/usr/share/fonts/truetype/liberation")
FACES = tuple(f"Liberation{family}-{style}.ttf" for family in ("Sans", "SansNarrow", "Serif", "Mono")
              for style in ("Regular", "Bold", "Italic", "BoldItalic"))
HEIGHTS = (60, 100, 160)  # pixels: small, medium and large print, each through the pipeline


def render(digit: int, font_path: Path, height: int) -> np.ndarray:
    """``digit`` printed about ``height`` px tall, black on white with a margin: grey (h, w) in [0, 1]."""
    font = ImageFont.truetype(str(font_path), size=int(height * 1.35))
    left, top, right, bottom = font.getbbox(str(digit))
    margin = height // 4
    img = Image.new("L", (right - left + 2 * margin, bottom - top + 2 * margin), 255)
    ImageDraw.Draw(img).text((margin - left, margin - top), str(digit), fill=0, font=font)
    return np.asarray(img, dtype=np.float64) / 255


def make_printed_digits(font_dir: Path = FONT_DIR) -> tuple[np.ndarray, np.ndarray]:
    """Every face x digit x height through the pipeline: (images uint8 (N, 28, 28), labels int64 (N,))."""
    missing = [face for face in FACES if not (font_dir / face).is_file()]
    if missing:
        raise SystemExit(f"{font_dir} lacks {', '.join(missing)}: install the Liberation fonts "
                         f"(apt-get install fonts-liberation) or pass --fonts DIR")
    images, labels = [], []
    for face in FACES:
        for digit in range(10):
            for height in HEIGHTS:
                images.append(np.round(preprocess_digit(render(digit, font_dir / face, height)) * 255))
                labels.append(digit)
    return np.stack(images).astype(np.uint8), np.array(labels, dtype=np.int64)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fonts", type=Path, default=FONT_DIR, help="folder with the Liberation TTF files")
    parser.add_argument("--out", type=Path, default=ROOT / "imgrec_lib" / "embedded" / "printed_digits.npz")
    args = parser.parse_args(argv)
    images, labels = make_printed_digits(args.fonts)
    np.savez_compressed(args.out, images=images, labels=labels)
    print(f"{len(labels)} printed digits in {args.out}, SHA-256 {hashlib.sha256(args.out.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
