"""Generate photographs and scans of MNIST digits on paper, one kind of trouble at a time.

Each picture is an MNIST digit, scaled up (bicubic) and laid as ink on a page: a page 200 to
4000 px on its longer side (log-uniform; 4:3, 3:4 or square), the digit 20-50% of the
shorter side tall, anywhere on the page, saved as JPEG of quality 60-95. Each kind adds one
thing phones and scanners do to paper:

- clean: white or off-white paper, even light
- shadow: light falls off across the page, to 45-65% at the far side, in any direction
- vignette: a lens's bright centre and dark corners (to 25-50% in the corners), slight blur
- blur: the digit out of focus (Gaussian, 1-3% of the digit's height)
- ruled: notebook paper, light blue rules and a red margin line
- grid: squared paper, light blue or grey lines
- colour: coloured ink on coloured paper, some pairs of the same brightness
- tilt: ruled paper photographed at an angle: rotated up to 10 degrees, keystoned
- canvas: a drawing exported as PNG with a transparent background (strokes dark or light)
- lowres8, lowres16: the digit reduced to 8x8 or 16x16 and scaled back up, as a scan of a
  small form field is

`picture(digit, kind, seed)` makes one, reproducibly: the same seed gives the same bytes.
"""

from __future__ import annotations

import io

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage

KINDS = (
    "clean",
    "shadow",
    "vignette",
    "blur",
    "ruled",
    "grid",
    "colour",
    "tilt",
    "canvas",
    "lowres8",
    "lowres16",
)
PAPER_KINDS = KINDS[:8]  # the kinds that are photos of paper
SIDES = (200, 4000)  # longer side of the page, pixels
DIGIT_SHARE = (0.2, 0.5)  # the digit's height, share of the page's shorter side
QUALITY = (60, 95)  # JPEG quality
INKS = ((20, 20, 25), (25, 35, 110), (15, 40, 90), (60, 60, 70))  # black, blue, navy, pencil
# Coloured ink and paper; the first two pairs have about the same brightness (Rec. 601 luma).
COLOUR_PAIRS = (
    ((230, 40, 40), (85, 110, 190)),
    ((40, 150, 40), (200, 90, 110)),
    ((30, 30, 160), (250, 235, 150)),
    ((150, 30, 30), (220, 240, 220)),
    ((20, 90, 30), (250, 220, 200)),
)


def picture(digit: NDArray[np.uint8], kind: str, seed: int) -> tuple[bytes, str]:
    """Return one encoded picture of `digit` (28x28 uint8, MNIST) and its content type."""
    rng = np.random.default_rng(seed)
    if kind.startswith("lowres"):
        return _low_resolution(digit, int(kind.removeprefix("lowres")), rng), "image/png"
    if kind == "canvas":
        return _canvas(digit, rng), "image/png"
    page = render_page(digit, kind, page_size(rng), rng)
    buffer = io.BytesIO()
    Image.fromarray(page).save(
        buffer, "JPEG", quality=int(rng.integers(QUALITY[0], QUALITY[1] + 1))
    )
    return buffer.getvalue(), "image/jpeg"


def page_size(rng: np.random.Generator) -> tuple[int, int]:
    """A page's (width, height): log-uniform longer side, 4:3, 3:4 or square."""
    longer = int(np.exp(rng.uniform(np.log(SIDES[0]), np.log(SIDES[1]))))
    shorter = longer * [3, 4, 4][rng.integers(3)] // 4
    return (longer, shorter) if rng.random() < 0.5 else (shorter, longer)


def render_page(
    digit: NDArray[np.uint8], kind: str, size: tuple[int, int], rng: np.random.Generator
) -> NDArray[np.uint8]:
    """Return a photo of paper of one kind, (height, width, 3) uint8, with the digit on it."""
    width, height = size
    ink_colour, paper_colour = _colours(kind, rng)
    page = Image.new("RGB", (width, height), paper_colour)
    if kind in ("ruled", "tilt"):
        _rule(page, rng)
    elif kind == "grid":
        _squares(page, rng)
    alpha = _ink(digit, width, height, rng)  # (h, w) float32 0-1
    if kind == "blur":
        sigma = rng.uniform(0.01, 0.03) * DIGIT_SHARE[1] * min(width, height)
        alpha = _blurred(alpha, sigma)
    colour = np.asarray(page, dtype=np.float32)
    ink = np.asarray(ink_colour, dtype=np.float32)
    colour = colour * (1 - alpha[..., None]) + ink * alpha[..., None]
    colour *= _light(kind, width, height, rng)[..., None]
    result = Image.fromarray(np.clip(colour, 0, 255).astype(np.uint8))
    if kind == "vignette":
        result = result.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5) * width / 400))
    if kind == "tilt":
        result = _tilted(result, paper_colour, rng)
    return np.asarray(result)


def _colours(
    kind: str, rng: np.random.Generator
) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    if kind == "colour":
        ink, paper = COLOUR_PAIRS[rng.integers(len(COLOUR_PAIRS))]
        return ink, paper
    white = int(rng.integers(225, 256))
    return INKS[rng.integers(len(INKS))], (white, white, int(rng.integers(white - 20, white + 1)))


def _ink(
    digit: NDArray[np.uint8], width: int, height: int, rng: np.random.Generator
) -> NDArray[np.float32]:
    """The digit's ink as coverage 0-1 on a (height, width) page, anywhere on it."""
    rows, cols = np.nonzero(digit)
    glyph = digit[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    tall = rng.uniform(*DIGIT_SHARE) * min(width, height)
    factor = tall / glyph.shape[0]
    size = (max(1, round(glyph.shape[1] * factor)), max(1, round(tall)))
    ink = np.asarray(Image.fromarray(glyph).resize(size, Image.Resampling.BICUBIC), np.float32)
    alpha = np.zeros((height, width), np.float32)
    top = int(rng.integers(0, height - size[1] + 1))
    left = int(rng.integers(0, width - size[0] + 1))
    alpha[top : top + size[1], left : left + size[0]] = np.clip(ink / 255.0, 0, 1)
    return alpha


def _blurred(alpha: NDArray[np.float32], sigma: float) -> NDArray[np.float32]:
    return ndimage.gaussian_filter(alpha, sigma).astype(np.float32)


def _light(kind: str, width: int, height: int, rng: np.random.Generator) -> NDArray[np.float32]:
    """Brightness over the page, (height, width) float32 0-1."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x, y = x / max(width - 1, 1) - 0.5, y / max(height - 1, 1) - 0.5
    if kind == "shadow":
        angle = rng.uniform(0, 2 * np.pi)
        along = x * np.cos(angle) + y * np.sin(angle)  # -0.7..0.7 across the page
        along = (along - along.min()) / (along.max() - along.min())
        return 1 - (1 - rng.uniform(0.45, 0.65)) * along
    if kind == "vignette":
        radius = np.sqrt(x**2 + y**2) / np.sqrt(0.5)  # 0 at the centre, 1 in the corners
        return 1 - (1 - rng.uniform(0.25, 0.5)) * radius**2
    return np.ones((height, width), np.float32)


def _rule(page: Image.Image, rng: np.random.Generator) -> None:
    """Draw light blue rules and a red margin line."""
    draw = ImageDraw.Draw(page)
    width, height = page.size
    spacing = rng.uniform(0.05, 0.1) * height
    thick = max(1, round(height / 300))
    blue = (int(rng.integers(120, 170)), int(rng.integers(160, 200)), 230)
    for row in np.arange(rng.uniform(0, spacing), height, spacing):
        draw.line([(0, row), (width, row)], fill=blue, width=thick)
    margin = rng.uniform(0.05, 0.2) * width
    draw.line([(margin, 0), (margin, height)], fill=(230, 80, 80), width=thick)


def _squares(page: Image.Image, rng: np.random.Generator) -> None:
    """Draw squared paper: light blue or grey lines both ways."""
    draw = ImageDraw.Draw(page)
    width, height = page.size
    spacing = rng.uniform(0.03, 0.07) * max(width, height)
    thick = max(1, round(max(width, height) / 400))
    colour = [(150, 180, 230), (170, 170, 175)][rng.integers(2)]
    for row in np.arange(rng.uniform(0, spacing), height, spacing):
        draw.line([(0, row), (width, row)], fill=colour, width=thick)
    for col in np.arange(rng.uniform(0, spacing), width, spacing):
        draw.line([(col, 0), (col, height)], fill=colour, width=thick)


def _tilted(
    page: Image.Image, paper: tuple[int, int, int], rng: np.random.Generator
) -> Image.Image:
    """Rotate up to 10 degrees and keystone (one edge up to 6% shorter); paper fills the frame."""
    turned = page.rotate(rng.uniform(-10, 10), Image.Resampling.BICUBIC, fillcolor=paper)
    width, height = turned.size
    squeeze = rng.uniform(0, 0.03) * width
    # QUAD maps the output's corners to these input points: top-left, bottom-left,
    # bottom-right, top-right; moving the top ones outwards makes the top edge look farther.
    quad = (-squeeze, 0, 0, height, width, height, width + squeeze, 0)
    return turned.transform(
        (width, height), Image.Transform.QUAD, quad, Image.Resampling.BICUBIC, fillcolor=paper
    )


def _canvas(digit: NDArray[np.uint8], rng: np.random.Generator) -> bytes:
    """A drawing exported from a canvas: RGBA, strokes opaque, the background transparent."""
    side = int(rng.integers(200, 600))
    alpha = _ink(digit, side, side, rng)
    stroke = (0, 0, 0) if rng.random() < 0.5 else (255, 255, 255)
    canvas = np.zeros((side, side, 4), np.uint8)
    canvas[..., :3] = stroke
    canvas[..., 3] = np.rint(alpha * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(canvas, "RGBA").save(buffer, "PNG")
    return buffer.getvalue()


def _low_resolution(digit: NDArray[np.uint8], side: int, rng: np.random.Generator) -> bytes:
    """The digit reduced to side x side and scaled up again, dark on white, as a PNG."""
    small = Image.fromarray(255 - digit).resize((side, side), Image.Resampling.BOX)
    shown = int(rng.integers(200, 400))
    big = small.resize((shown, shown), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    big.save(buffer, "PNG")
    return buffer.getvalue()
