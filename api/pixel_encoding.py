"""Raw pixels must be MNIST-encoded: light ink on a black field, 0-255. Refuse the usual slips.

Two mistakes are common and give confident nonsense rather than an error: an inverted image
(`255 - x`: a dark digit on a white field, as on paper) and a thresholded one (only 0 and 1).
MNIST centres a 20 px digit in a 28x28 field, so its outer frame is black: of the 208
pixels of the 2-pixel frame, at most 4.3% are 128 or brighter in any of the 60,000 MNIST
training digits, and at least 95.7% once inverted. An image is called inverted when more
than 3/4 of its frame is that bright: not halfway, because uniform noise has half its
frame bright (0.35-0.65 in 100,000 random images) and is a different problem, not a wrong
encoding. Every MNIST training digit reaches 254 somewhere, so an image whose brightest
value is exactly 1 is a thresholded one (all zeros is blank, not wrongly encoded).
`tests/test_pixel_encoding.py` counts both checks on all 70,000 MNIST digits.

`?encoding=` lets a client that knows what it sends say so: `inverted` (converted with
`255 - x`), `binary` (0/1 values, converted with `x * 255`) or `as-is` (no check at all).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from api.errors import ApiError

ENCODINGS = ("mnist", "inverted", "binary", "as-is")  # the values of ?encoding=, default first
SIDE = 28
FRAME = 2  # pixels of the outer frame that MNIST leaves black
BRIGHT = 128  # a frame pixel this bright or brighter is bright
INVERTED_SHARE = 0.75  # bright share of the frame; MNIST training <= 0.043, inverted >= 0.957
BINARY_AT_MOST = 1  # brightest value of a thresholded 0/1 image; MNIST digits reach >= 254
_RING = np.ones((SIDE, SIDE), dtype=bool)
_RING[FRAME:-FRAME, FRAME:-FRAME] = False
FRAME_PIXELS = np.flatnonzero(_RING)  # the 208 indices of the outer frame in a 784 vector
TO_IMAGE = "?encoding=as-is to keep it as it is, or send the picture to POST /v1/predict/image"


def parse(raw: str | None) -> str:
    """Return the ?encoding= value, or raise ApiError (400) when it is not one of ENCODINGS."""
    if raw is None:
        return ENCODINGS[0]
    if raw not in ENCODINGS:
        raise ApiError(
            400, "invalid_parameter", f"encoding must be one of {', '.join(ENCODINGS)}, not {raw!r}"
        )
    return raw


def apply(
    pixels: NDArray[np.uint8], encoding: str, where: Callable[[int], str]
) -> NDArray[np.uint8]:
    """Return pixels `(n, 784)` in MNIST's encoding, converting as `encoding` says.

    With `mnist` (the default) they are checked, and ApiError 422 `wrong_encoding` names
    the first image, by `where(index)`, that is inverted or thresholded, and what to do.
    """
    if encoding == "inverted":
        return 255 - pixels
    if encoding == "binary":
        over = np.flatnonzero(pixels.max(axis=1) > BINARY_AT_MOST)
        if len(over):
            raise ApiError(
                422,
                "wrong_encoding",
                f"{where(int(over[0]))} has values above 1, but encoding=binary says 0 and 1 only",
            )
        return pixels * np.uint8(255)
    if encoding == "mnist":
        _check(pixels, where)
    return pixels


def bright_frame(pixels: NDArray[np.uint8]) -> NDArray[np.float64]:
    """Return the share of each image's outer FRAME pixels >= BRIGHT, (n,), from (n, 784)."""
    return (pixels[:, FRAME_PIXELS] >= BRIGHT).mean(axis=1)


def problems(pixels: NDArray[np.uint8]) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Return which images `(n, 784)` look thresholded (0/1) and which inverted: two (n,)."""
    return pixels.max(axis=1) == BINARY_AT_MOST, bright_frame(pixels) > INVERTED_SHARE


def _check(pixels: NDArray[np.uint8], where: Callable[[int], str]) -> None:
    binary, inverted = problems(pixels)
    wrong = np.flatnonzero(binary | inverted)
    if not len(wrong):
        return
    index = int(wrong[0])
    if binary[index]:
        problem = (
            f"{where(index)} has only the values 0 and 1 (a thresholded image?), but pixels are"
            " 0-255 with the ink bright: scale it (x * 255), send ?encoding=binary or "
        )
    else:
        problem = (
            f"{where(index)} looks inverted: its border is bright, but MNIST pixels are light"
            " ink on a black field: send 255 - x, send ?encoding=inverted or "
        )
    more = f" ({len(wrong)} of the {len(pixels)} images checked)" if len(wrong) > 1 else ""
    raise ApiError(422, "wrong_encoding", problem + TO_IMAGE + more)
