"""Decode an uploaded picture into colour pixels at a working size, and remember that size.

Photos arrive at up to 25 million pixels; the digit ends up 20 px tall, so everything after
decoding works on a copy whose longer side is at most WORK_SIDE. JPEGs are decoded straight
at a reduced scale (libjpeg's DCT scaling, `Image.draft`), everything else is box-reduced on
premultiplied colours so transparent canvas pixels do not bleed into the strokes.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
MAX_PIXELS = 25_000_000  # 5000 x 5000; anything larger is a decompression bomb, not a digit
WORK_SIDE = 512  # larger pictures are reduced first: the digit ends up 20 px anyway
OPAQUE_MODES = ("RGB", "L", "CMYK", "YCbCr", "1")  # no alpha: no compositing needed
WIDE_MODES = ("I", "F", "I;16", "I;16B", "I;16L", "I;16N")


class ImageError(Exception):
    """An upload that is not a readable picture of a digit: error code, message, HTTP status."""

    def __init__(self, code: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Picture:
    """Colours at the working size and how to map them back to the upright original.

    `colour` is float32 (3, h, w), 0-255 (planes, so per-pixel sums over channels are plane
    sums), with transparent areas laid on a plain background;
    `size` is the upright original's (width, height) in pixels (EXIF orientation applied).
    """

    colour: NDArray[np.float32]
    size: tuple[int, int]

    def box(self, top: int, left: int, bottom: int, right: int) -> list[int]:
        """Map a working-size box (end exclusive) to [left, top, right, bottom] in the original."""
        height, width = self.colour.shape[1:]
        x_scale, y_scale = self.size[0] / width, self.size[1] / height
        return [
            int(np.floor(left * x_scale)),
            int(np.floor(top * y_scale)),
            min(self.size[0], int(np.ceil(right * x_scale))),
            min(self.size[1], int(np.ceil(bottom * y_scale))),
        ]


def decode(data: bytes, max_pixels: int = MAX_PIXELS) -> Picture:
    """Decode PNG/JPEG/GIF/BMP/WebP bytes; raise ImageError (413/422) when that is not possible."""
    image = _open(data, max_pixels)
    size = image.size  # before draft() reduces it
    # JPEG only: decode at 1/2, 1/4 or 1/8 scale, the smallest that keeps half WORK_SIDE.
    image.draft("RGB", (WORK_SIDE // 2 + 1, WORK_SIDE // 2 + 1))
    try:
        image.load()
        upright = ImageOps.exif_transpose(image)
        size = _upright(size, image)
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise ImageError("unreadable_image", f"the image is damaged or truncated: {exc}") from exc
    if upright.mode in OPAQUE_MODES:
        opaque = np.asarray(_shrink(upright.convert("RGB")), dtype=np.float32)  # (h, w, 3)
        return Picture(np.ascontiguousarray(opaque.transpose(2, 0, 1)), size)
    return Picture(_composited(_shrink(_premultiplied(upright))), size)


def _open(data: bytes, max_pixels: int) -> Image.Image:
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
                "unreadable_image", "the image is not a PNG, JPEG, GIF, BMP or WebP image"
            ) from exc
    if image.width * image.height > max_pixels:
        raise too_large(max_pixels)
    return image


def _upright(size: tuple[int, int], image: Image.Image) -> tuple[int, int]:
    """The original's (width, height) as displayed: EXIF orientations 5-8 swap the sides."""
    width, height = size
    orientation = image.getexif().get(0x0112, 1)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def too_large(max_pixels: int) -> ImageError:
    """Build the error for an image over the pixel limit."""
    return ImageError(
        "image_too_large", f"the image has more than {max_pixels:,} pixels; send a smaller one", 413
    )


def _premultiplied(image: Image.Image) -> Image.Image:
    """Convert any mode to 'RGBa'; 16-bit greys are stretched over their real range first."""
    if image.mode in WIDE_MODES:
        # A 12-bit scan in a 16-bit file uses 0-4095: a fixed /257 would leave it nearly black.
        wide = np.asarray(image, dtype=np.float64)
        low, high = float(wide.min()), float(wide.max())
        stretched = (wide - low) * (255.0 / (high - low)) if high > low else np.zeros_like(wide)
        image = Image.fromarray(np.rint(stretched).astype(np.uint8), "L")
    return image.convert("RGBA").convert("RGBa")


def _shrink(image: Image.Image) -> Image.Image:
    """Box-reduce so the longer side is at most WORK_SIDE pixels."""
    factor = -(-max(image.size) // WORK_SIDE)
    return image.reduce(factor) if factor > 1 else image


def _composited(image: Image.Image) -> NDArray[np.float32]:
    """Lay transparent areas on the shade opposite the strokes; return (3, h, w) float32."""
    pixels = np.asarray(image, dtype=np.float32).transpose(2, 0, 1)  # premultiplied, alpha
    colour, alpha = pixels[:3], pixels[3:] / 255.0
    if alpha.min() < 1.0:
        visible = float(alpha.sum())
        stroke = float(colour.sum()) / 3 / visible if visible else 0.0
        colour = colour + (255.0 if stroke < 128.0 else 0.0) * (1.0 - alpha)
    return np.ascontiguousarray(colour)
