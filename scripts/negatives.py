"""`digits negatives`: pictures that are not one handwritten digit, to test the "uncertain" flag.

Seven kinds, each drawn from its own generator seeded by (seed, kind), so a kind's images do
not change when another kind or the count changes:

    blank        nothing written: zeros with a few faint specks below the ink level
    noise        every pixel uniform in 0..hi, hi uniform in 128..255
    blocks       1-3 solid rectangles or ellipses, each side 6-28 px, grey 128-255
    letters      A-Z and a-z but I, l, O and o in nine DejaVu faces (Debian
                 `fonts-dejavu-core` and `fonts-dejavu-extra`), rotated up to 15 degrees;
                 a bar and a ring are the shapes of a handwritten 1 and 0, which no
                 reader of pixels can tell from them (a detector taught to flag a lone
                 bar flags the plain "1" drawn on the page)
    two_digits   two MNIST training digits side by side (one in five: three)
    scribbles    3-5 random strokes (quadratic curves through random points), pen 5-14 px
    lines        grids and hatching: 2-6 straight lines across the field

Everything drawn larger than 28x28 goes through the same MNIST steps as a picture sent to
`POST /v1/predict/image` (crop to the ink, longer side 20 px, centre of mass at the centre:
`pictures.preprocess.scale` and `place`), so a flag that depends on those steps is tested on what
the service would see. The digits come from the training split: the test split is never used.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

KINDS = ("blank", "noise", "blocks", "letters", "two_digits", "scribbles", "lines")
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansCondensed.ttf",
    "DejaVuSerif-Italic.ttf",
)
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz"  # no I, l, O, o: see above
CANVAS = 112  # drawing side, px: 4x the field, like a scan the service would shrink
SIDE = 28
Rng = np.random.Generator
Pixels = NDArray[np.uint8]


def generate(kind: str, count: int, seed: int = 0, digits: Pixels | None = None) -> Pixels:
    """Return `count` images of one kind, uint8 `(count, 784)`, ink bright as in MNIST.

    `digits` (uint8 `(n, 784)` training images) is needed by `two_digits` only.
    Raises KeyError for an unknown kind and ValueError when `two_digits` has no digits.
    """
    draw = _DRAWERS[kind]
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    if kind == "two_digits" and (digits is None or len(digits) == 0):
        raise ValueError("two_digits needs MNIST training digits to combine")
    images = [draw(rng, digits) for _ in range(count)]
    return np.stack(images).reshape(count, SIDE * SIDE)


def _blank(rng: Rng, _: Any) -> Pixels:
    field = np.zeros((SIDE, SIDE), np.uint8)
    specks = rng.integers(0, 6)
    field[rng.integers(0, SIDE, specks), rng.integers(0, SIDE, specks)] = rng.integers(1, 100)
    return field


def _noise(rng: Rng, _: Any) -> Pixels:
    return rng.integers(0, rng.integers(128, 256), (SIDE, SIDE), endpoint=True).astype(np.uint8)


def _blocks(rng: Rng, _: Any) -> Pixels:
    image = Image.new("L", (SIDE, SIDE))
    pen = ImageDraw.Draw(image)
    for _ in range(rng.integers(1, 4)):
        width, height = rng.integers(6, SIDE + 1, 2)
        left, top = rng.integers(0, SIDE - width + 1), rng.integers(0, SIDE - height + 1)
        box = (int(left), int(top), int(left + width - 1), int(top + height - 1))
        shape = pen.rectangle if rng.random() < 0.5 else pen.ellipse
        shape(box, fill=int(rng.integers(128, 256)))
    return np.asarray(image)


def _letters(rng: Rng, _: Any) -> Pixels:
    font = ImageFont.truetype(str(FONT_DIR / FONTS[rng.integers(len(FONTS))]), 72)
    image = Image.new("L", (CANVAS, CANVAS))
    middle = (CANVAS // 2, CANVAS // 2)
    ImageDraw.Draw(image).text(middle, _pick(rng), fill=255, font=font, anchor="mm")
    image = image.rotate(float(rng.uniform(-15, 15)), resample=Image.Resampling.BILINEAR)
    return _mnist(np.asarray(image) / 255.0)


def _two_digits(rng: Rng, digits: Pixels) -> Pixels:
    count = 3 if rng.random() < 0.2 else 2
    chosen = digits[rng.integers(0, len(digits), count)].reshape(count, SIDE, SIDE)
    canvas = np.zeros((SIDE + 8, count * SIDE + 8), np.float64)
    for index, digit in enumerate(chosen):
        left = index * SIDE + int(rng.integers(-4, 3)) * (index > 0)
        top = int(rng.integers(0, 9))
        region = canvas[top : top + SIDE, left : left + SIDE]
        np.maximum(region, digit / 255.0, out=region)
    return _mnist(canvas)


def _scribbles(rng: Rng, _: Any) -> Pixels:
    image = Image.new("L", (CANVAS, CANVAS))
    pen = ImageDraw.Draw(image)
    width = int(rng.integers(5, 15))
    for _ in range(rng.integers(3, 6)):
        ends = rng.uniform(8, CANVAS - 8, (3, 2))
        t = np.linspace(0.0, 1.0, 24)[:, None]
        curve = (1 - t) ** 2 * ends[0] + 2 * (1 - t) * t * ends[1] + t**2 * ends[2]
        pen.line([tuple(point) for point in curve.tolist()], fill=255, width=width, joint="curve")
    return _mnist(np.asarray(image) / 255.0)


def _lines(rng: Rng, _: Any) -> Pixels:
    image = Image.new("L", (CANVAS, CANVAS))
    pen = ImageDraw.Draw(image)
    width = int(rng.integers(4, 12))
    angle = rng.uniform(0, np.pi)
    for _ in range(rng.integers(2, 7)):
        turn = angle + (np.pi / 2 if rng.random() < 0.5 else 0.0)
        centre = rng.uniform(20, CANVAS - 20, 2)
        step = np.array([np.cos(turn), np.sin(turn)]) * CANVAS
        pen.line([tuple(centre - step), tuple(centre + step)], fill=255, width=width)
    return _mnist(np.asarray(image) / 255.0)


def _pick(rng: Rng) -> str:
    return LETTERS[rng.integers(len(LETTERS))]


def _mnist(ink: NDArray[np.floating]) -> Pixels:
    """Threshold ink (0-1, any size) at 0.5 as the image endpoint does, crop it to its box,
    scale its longer side to 20 px and centre its mass."""
    from pictures.preprocess import place, scale  # OpenCV loads only when used, not per command

    mask = ink > 0.5
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return place(scale(mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]))


_DRAWERS: dict[str, Callable[[Rng, Any], Pixels]] = {
    "blank": _blank,
    "noise": _noise,
    "blocks": _blocks,
    "letters": _letters,
    "two_digits": _two_digits,
    "scribbles": _scribbles,
    "lines": _lines,
}


def register(subparsers: Any) -> None:
    """Add `digits negatives`."""
    parser = subparsers.add_parser("negatives", help="write generated non-digits to an .npz")
    parser.add_argument("--out", default="data/negatives.npz", help="where to write them")
    parser.add_argument("--count", type=int, default=500, help="images per kind")
    parser.add_argument("--seed", type=int, default=0, help="seeds every kind")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from model.data import load_mnist

    digits = load_mnist()[0]
    arrays: dict[str, Any] = {kind: generate(kind, args.count, args.seed, digits) for kind in KINDS}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"{args.out}: {len(KINDS)} kinds x {args.count} images, seed {args.seed}")
    return 0
