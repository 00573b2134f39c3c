"""Turn a picture of one handwritten digit into 28x28 pixels the way MNIST was made.

MNIST took bilevel scans, scaled each digit so its longer side is 20 px (the anti-aliasing
of that step makes the grey edges) and placed it in a 28x28 field with its centre of mass
at the centre. `preprocess` does the same to an uploaded photo, scan or canvas drawing,
after finding the ink on the page (`pictures.paper`) and choosing the digit's strokes among the
ink: the biggest piece of ink not cut by the picture's edge, and the pieces near it that
are not specks (unless a piece half as big lies far away: then all of them, so two marks are
shown to the model as they are, and flagged uncertain, not read as one digit). One step
MNIST did not need: strokes bolder than three in four MNIST digits are thinned to that width.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image
from scipy import ndimage

from pictures.paper import ink_mask
from pictures.picture import MAX_PIXELS, ImageError, decode

SPECK_SHARE = 0.05  # ink pieces smaller than this share of the digit's main piece are noise
RIVAL_SHARE = 0.5  # a distant piece this big beside the main one makes the picture ambiguous
NEAR = 0.5  # pieces this far outside the main piece's box (share of its longer side) are not it
BOLD = 0.16  # stroke width / longer side above which strokes are thinned (3/4 of MNIST is below)
KEEP_AFTER_THINNING = 0.2  # share of the ink thinning must leave, or the glyph is kept as is
BOX = 20  # the digit's longer side, as in MNIST
SIDE = 28  # the field it is placed in
CENTRE = 14.0  # where its centre of mass goes (row and column)

__all__ = ["ImageError", "Seen", "preprocess"]


@dataclass(frozen=True)
class Seen:
    """What the model is shown: `pixels` (28, 28) uint8, ink bright on black, and `box`, the
    digit's [left, top, right, bottom] in the original picture's pixels (right and bottom
    exclusive, EXIF orientation applied)."""

    pixels: NDArray[np.uint8]
    box: list[int]


def preprocess(data: bytes, max_pixels: int = MAX_PIXELS) -> Seen:
    """Find the digit in an encoded image and return its MNIST-style view and crop box."""
    picture = decode(data, max_pixels)
    digit = choose_digit(ink_mask(picture.colour))
    rows, cols = np.nonzero(digit.any(axis=1))[0], np.nonzero(digit.any(axis=0))[0]
    box = picture.box(rows[0], cols[0], rows[-1] + 1, cols[-1] + 1)
    glyph = thin(crop(digit))
    return Seen(place(scale(glyph)), box)


def choose_digit(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Keep the digit's pieces of ink: the main piece and the sizeable pieces near it."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    if count < 2:
        raise ImageError("blank_image", "the image is blank: no digit found")
    left, top, width, height, area = stats[1:].T  # one entry per piece, background left out
    right, bottom = left + width, top + height
    rows, cols = mask.shape
    inside = (left > 0) & (top > 0) & (right < cols) & (bottom < rows)
    candidates = np.flatnonzero(inside) if inside.any() else np.arange(count - 1)
    main = candidates[np.argmax(area[candidates])]
    reach = NEAR * max(width[main], height[main])
    near = (
        (bottom >= top[main] - reach)
        & (top <= bottom[main] + reach)
        & (right >= left[main] - reach)
        & (left <= right[main] + reach)
    )
    sizeable = area >= SPECK_SHARE * area[main]
    if (~near & (area >= RIVAL_SHARE * area[main])).any():
        near[:] = True  # two marks of a size far apart: not one digit, show the model both
    keep = np.concatenate([[False], near & sizeable])
    return keep[labels]


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
