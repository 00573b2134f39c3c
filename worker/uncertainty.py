"""Which answers to flag `uncertain`: the model is not sure, or the input is not one digit.

Three tests, any one flags an image:

- **Not sure**: the calibrated top probability (`confidence`) is below the threshold the
  weights file records (`metadata["calibration"]["confidence_threshold"]`, chosen on the
  validation split by `model.calibration.choose_threshold`). A file without one gets
  FALLBACK_THRESHOLD.
- **Not one digit**: statistics of the 28x28 input that no MNIST digit shows. Every model
  answers such inputs with a digit, often at high confidence (uniform noise gets 0.99 from an
  uncalibrated CNN), so they are judged from the pixels alone. Each bound sits beyond what
  the validation split shows (5,000 training images held out, `model.trainer.split`, seed 0;
  the MNIST test split is never looked at), measured on those images:

  | test                                  | validation digits      | bound               |
  | ---                                   | ---                    | ---                 |
  | ink pixels (>= 128)                   | min 15                 | blank below 10      |
  | lit pixels (> 0)                      | max 296                | noise above 400     |
  | solid share (ink under a 5x5 square)  | 0.16% above 0.2        | solid above 0.2     |
  | wide and in pieces: width/height and  | 0.24% both past bounds | wider than 1.25x    |
  |   components holding >= 10% of ink   |                        |   and >= 2 pieces   |

  Components are 8-connected (`scipy.ndimage.label`, one call for the whole stack).
- **Not a digit, by shape**: the score of the small CNN of `worker.nondigit`, trained on
  digits against generated letters, scribbles and grids, is above its stored threshold.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from worker.nondigit import Detector

SIDE = 28
INK = 128  # a pixel this bright or brighter is ink (MNIST strokes are ~255, edges grey)
BLANK_BELOW = 10  # ink pixels
NOISE_ABOVE = 400  # lit pixels
SOLID_ABOVE = 0.2  # share of ink that is the centre of a 5x5 square of ink
WIDE_ABOVE = 1.25  # width / height of the ink's bounding box
PIECE_SHARE = 0.1  # a component holding this share of the ink counts as a piece
# Without a threshold in the weights file (a model never calibrated): the highest one that
# left >= 98.5% of the validation digits unflagged with the uncalibrated CNN once shipped
# (98.6% at 0.55, measured; label smoothing 0.1 held its top probabilities near 0.9).
FALLBACK_THRESHOLD = 0.55
# 8-connected inside each image of a stack, never across images.
_STACK = np.zeros((3, 3, 3), dtype=bool)
_STACK[1] = True
_SQUARE = np.zeros((1, 5, 5), dtype=bool)
_SQUARE[0] = True


def threshold(metadata: dict[str, Any]) -> float:
    """Return the confidence below which an answer is uncertain, from a model's metadata."""
    value = (metadata.get("calibration") or {}).get("confidence_threshold")
    return FALLBACK_THRESHOLD if value is None else float(value)


def flags(
    pixels: NDArray[np.uint8],
    probabilities: NDArray[np.floating],
    below: float,
    detector: Detector | None = None,
) -> NDArray[np.bool_]:
    """Flag images `(n, 784)` uint8 whose top probability `(n, 10)` is below `below`, that
    are not one digit, or that `detector` flags; return bool `(n,)`."""
    flagged = (probabilities.max(axis=1) < below) | not_one_digit(pixels)
    if detector is not None:
        flagged |= detector.flags(pixels)
    return flagged


def not_one_digit(pixels: NDArray[np.uint8]) -> NDArray[np.bool_]:
    """Flag images `(n, 784)` uint8 that are blank, noise, solid, or several pieces side by side."""
    images = np.asarray(pixels).reshape(-1, SIDE, SIDE)
    ink = images >= INK
    ink_pixels = ink.sum(axis=(1, 2))
    lit = (images > 0).sum(axis=(1, 2))
    solid = ndimage.binary_erosion(ink, _SQUARE).sum(axis=(1, 2))
    height, width = _extent(np.any(ink, axis=2)), _extent(np.any(ink, axis=1))
    wide = width > WIDE_ABOVE * np.maximum(height, 1)
    return (
        (ink_pixels < BLANK_BELOW)
        | (lit > NOISE_ABOVE)
        | (solid > SOLID_ABOVE * ink_pixels)
        | (wide & (pieces(ink, ink_pixels) >= 2))
    )


def pieces(ink: NDArray[np.bool_], ink_pixels: NDArray[np.integer]) -> NDArray[np.int64]:
    """Count the components holding >= PIECE_SHARE of the ink, per image of `(n, 28, 28)`."""
    labels, count = ndimage.label(ink, structure=_STACK)
    if count == 0:
        return np.zeros(len(ink), dtype=np.int64)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]  # (count,)
    owner = np.empty(count, dtype=np.int64)  # the image each component lies in
    owner[labels[ink] - 1] = np.nonzero(ink)[0]
    large = sizes >= PIECE_SHARE * ink_pixels[owner]
    return np.bincount(owner[large], minlength=len(ink))


def _extent(lines: Any) -> NDArray[np.int64]:
    """Span from the first to the last True of each row `(n, 28)`; 0 when none."""
    first = lines.argmax(axis=1)
    last = SIDE - 1 - lines[:, ::-1].argmax(axis=1)
    return np.where(lines.any(axis=1), last - first + 1, 0)
