"""Turn a picture of one handwritten digit into 28x28 pixels the way MNIST was made.

MNIST took bilevel scans, scaled each digit so its longer side is 20 px (the anti-aliasing
of that step makes the grey edges) and placed it in a 28x28 field with its centre of mass
at the centre. `preprocess` does the same to an uploaded photo, scan or canvas drawing,
after finding the ink (polarity, Otsu threshold, specks dropped). One step MNIST did not
need: strokes bolder than three in four MNIST digits are thinned to that width.
"""

from __future__ import annotations

import io
import struct
import warnings

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
MAX_PIXELS = 25_000_000  # 5000 x 5000; anything larger is a decompression bomb, not a digit
WORK_SIDE = 512  # larger pictures are box-reduced first: the digit ends up 20 px anyway
MIN_CONTRAST = 32.0  # grey levels between darkest and brightest below which it is blank
SPECK_SHARE = 0.05  # ink blobs smaller than this share of the largest blob are noise
BOLD = 0.16  # stroke width / longer side above which strokes are thinned (3/4 of MNIST is below)
KEEP_AFTER_THINNING = 0.2  # share of the ink thinning must leave, or the glyph is kept as is
BOX = 20  # the digit's longer side, as in MNIST
SIDE = 28  # the field it is placed in
CENTRE = 14.0  # where its centre of mass goes (row and column)


class ImageError(Exception):
    """An upload that is not a readable picture of a digit: error code, message, HTTP status."""

    def __init__(self, code: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def preprocess(data: bytes, max_pixels: int = MAX_PIXELS) -> NDArray[np.uint8]:
    """Return the (28, 28) uint8 MNIST-style view (ink bright on black) of an encoded image."""
    ink = ink_levels(decode(data, max_pixels))
    glyph = thin(crop(ink_mask(ink)))
    return place(scale(glyph))


def decode(data: bytes, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode PNG/JPEG/GIF/BMP/WebP bytes into an upright, at most 512 px, 'La' image."""
    if not data:
        raise ImageError("empty_image", "the upload is empty: send one PNG, JPEG, GIF, BMP or WebP")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise too_large(max_pixels) from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise ImageError(
                "unreadable_image", "the upload is not a PNG, JPEG, GIF, BMP or WebP image"
            ) from exc
    if image.width * image.height > max_pixels:
        raise too_large(max_pixels)
    image.draft("L", (WORK_SIDE, WORK_SIDE))  # JPEG only: decode in grey at a reduced scale
    try:
        image.load()
        upright = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise ImageError("unreadable_image", f"the image is damaged or truncated: {exc}") from exc
    return shrink(premultiplied(upright))


def too_large(max_pixels: int) -> ImageError:
    """Build the error for an image over the pixel limit."""
    return ImageError(
        "image_too_large", f"the image has more than {max_pixels:,} pixels; send a smaller one", 413
    )


def premultiplied(image: Image.Image) -> Image.Image:
    """Convert any mode to 'La': grey premultiplied by alpha, so box-averaging stays exact."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        # 16-bit greys would be clipped at 255 by Pillow's conversion, not scaled.
        wide = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(wide / 257.0, 0, 255).astype(np.uint8), "L")
    # Pillow's direct RGBA -> La conversion drops the alpha; going through LA keeps it.
    return image.convert("RGBA").convert("LA").convert("La")


def shrink(image: Image.Image) -> Image.Image:
    """Box-reduce so the longer side is at most WORK_SIDE pixels."""
    factor = -(-max(image.size) // WORK_SIDE)
    return image.reduce(factor) if factor > 1 else image


def ink_levels(image: Image.Image) -> NDArray[np.float32]:
    """Return grey levels 0-255 with the ink bright and the background dark, shape (h, w)."""
    pixels = np.asarray(image, dtype=np.float32)  # (h, w, 2): premultiplied grey, alpha
    grey, alpha = pixels[..., 0], pixels[..., 1] / 255.0
    if alpha.min() < 1.0:
        # Transparent areas are background: lay the picture on the shade opposite its strokes.
        visible = float(alpha.sum())
        stroke = float(grey.sum()) / visible if visible else 0.0
        grey = grey + (255.0 if stroke < 128.0 else 0.0) * (1.0 - alpha)
    darkest, brightest = float(grey.min()), float(grey.max())
    if brightest - darkest < MIN_CONTRAST:
        raise ImageError("blank_image", "the image is blank: no digit found")
    if np.median(border(grey)) > (darkest + brightest) / 2:
        grey = 255.0 - grey
    return grey


def border(grey: NDArray[np.float32]) -> NDArray[np.float32]:
    """Return the pixels of the outer ring (2% of the shorter side, at least 1 px)."""
    width = max(1, min(grey.shape) // 50)
    ring = np.ones(grey.shape, dtype=bool)
    ring[width:-width, width:-width] = False
    return grey[ring]


def ink_mask(ink: NDArray[np.float32]) -> NDArray[np.bool_]:
    """Return the ink above the Otsu threshold, without specks, shape (h, w)."""
    mask = ink > otsu_threshold(ink)
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    if count == 0:
        raise ImageError("blank_image", "the image is blank: no digit found")
    areas = np.bincount(labels.ravel())  # areas[0] is the background
    keep = areas >= SPECK_SHARE * areas[1:].max()
    keep[0] = False
    return keep[labels]


def otsu_threshold(grey: NDArray[np.float32]) -> float:
    """Return the grey level that best splits the pixels into two classes (Otsu, 1979)."""
    counts = np.bincount(np.clip(grey, 0, 255).astype(np.uint8).ravel(), minlength=256)
    levels = np.arange(256, dtype=np.float64)
    below = np.cumsum(counts, dtype=np.float64)  # pixels at or below each level
    above = below[-1] - below
    below_sum = np.cumsum(counts * levels)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_below = below_sum / below
        mean_above = (below_sum[-1] - below_sum) / above
        between = below * above * (mean_below - mean_above) ** 2
    return float(np.argmax(np.nan_to_num(between)))


def crop(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Cut the mask down to the bounding box of its ink."""
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def thin(glyph: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Thin strokes bolder than BOLD; MNIST's writers used pens, not markers."""
    padded = np.pad(glyph, 1)
    edge = padded & ~ndimage.binary_erosion(padded)
    width = 2.0 * padded.sum() / edge.sum()  # a stroke L long, w wide: area Lw, edge 2L
    excess = width - BOLD * max(glyph.shape)
    if excess <= 0:
        return glyph
    thinned = ndimage.distance_transform_edt(padded) > excess / 2
    if thinned.sum() < KEEP_AFTER_THINNING * padded.sum():
        return glyph  # a blob, not strokes: thinning would erase it
    return crop(thinned)


def scale(glyph: NDArray[np.bool_]) -> NDArray[np.float32]:
    """Resize the cropped ink so its longer side is BOX pixels, anti-aliased, range 0-1."""
    height, width = glyph.shape
    factor = BOX / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    image = Image.fromarray(glyph.astype(np.float32), "F")
    return np.clip(np.asarray(image.resize(size, Image.Resampling.LANCZOS)), 0.0, 1.0)


def place(glyph: NDArray[np.float32]) -> NDArray[np.uint8]:
    """Paste the glyph into the 28x28 field with its centre of mass at (14, 14)."""
    centre_row, centre_col = ndimage.center_of_mass(glyph)
    top = int(round(CENTRE - centre_row))
    left = int(round(CENTRE - centre_col))
    height, width = glyph.shape
    field = np.zeros((3 * SIDE, 3 * SIDE), dtype=np.float32)  # margins absorb any overhang
    field[SIDE + top : SIDE + top + height, SIDE + left : SIDE + left + width] = glyph
    return np.rint(field[SIDE : 2 * SIDE, SIDE : 2 * SIDE] * 255.0).astype(np.uint8)
