"""On-the-fly augmentation: a random affine warp per image, one vectorised gather per batch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

SIDE = 28


@dataclass(frozen=True)
class Warp:
    """Ranges of the random affine transformation, each drawn uniformly per image."""

    degrees: float = 10.0  # rotation in [-degrees, degrees]
    scale: float = 0.1  # zoom factor in [1 - scale, 1 + scale]
    shift: float = 2.5  # translation in [-shift, shift] pixels along each axis


def augment(pixels: NDArray[np.uint8], rng: np.random.Generator, warp: Warp) -> NDArray[np.float32]:
    """Return randomly warped copies `(n, 784)` float32 (0-255) of raw images `(n, 784)`.

    Each output pixel samples its source position bilinearly, zero outside the image.
    """
    n = len(pixels)
    angle = np.deg2rad(rng.uniform(-warp.degrees, warp.degrees, n)).astype(np.float32)
    zoom = rng.uniform(1 - warp.scale, 1 + warp.scale, n).astype(np.float32)
    shift = rng.uniform(-warp.shift, warp.shift, (2, n, 1, 1)).astype(np.float32)
    # Inverse map: output offset from the centre -> source offset, rotate by -angle, 1/zoom.
    cos = (np.cos(angle) / zoom)[:, None, None]  # (n, 1, 1)
    sin = (np.sin(angle) / zoom)[:, None, None]
    grid = np.arange(SIDE, dtype=np.float32) - (SIDE - 1) / 2
    r, c = grid[None, :, None] - shift[0], grid[None, None, :] - shift[1]  # (n, 28, 1/28)
    rows = cos * r - sin * c + (SIDE - 1) / 2  # (n, 28, 28) source row
    cols = sin * r + cos * c + (SIDE - 1) / 2
    return _bilinear(pixels.reshape(n, SIDE, SIDE), rows, cols).reshape(n, SIDE * SIDE)


def _bilinear(
    images: NDArray[np.uint8], rows: NDArray[np.float32], cols: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Sample `images` `(n, 28, 28)` at fractional positions, reading zeros outside."""
    n = len(images)
    padded = np.zeros((n, SIDE + 2, SIDE + 2), np.float32)  # a zero border of 1 pixel
    padded[:, 1:-1, 1:-1] = images
    flat = padded.reshape(-1)
    rows = np.clip(rows + 1, 0, SIDE + 0.999, dtype=np.float32)
    cols = np.clip(cols + 1, 0, SIDE + 0.999, dtype=np.float32)
    r0, c0 = np.floor(rows), np.floor(cols)
    fr, fc = rows - r0, cols - c0  # (n, 28, 28) fractional parts
    index = r0.astype(np.int32) + np.arange(n, dtype=np.int32)[:, None, None] * (SIDE + 2)
    index = index * (SIDE + 2) + c0.astype(np.int32)
    top = flat[index] * (1 - fc) + flat[index + 1] * fc
    bottom = flat[index + SIDE + 2] * (1 - fc) + flat[index + SIDE + 3] * fc
    return top * (1 - fr) + bottom * fr
