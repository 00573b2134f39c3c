"""On-the-fly augmentation: stroke-width and resolution changes, then a random affine warp
plus an elastic distortion, one bilinear remap (OpenCV) per batch.

Elastic distortions follow Simard, Steinkraus and Platt (2003), "Best Practices for
Convolutional Neural Networks Applied to Visual Document Analysis": a per-pixel random
displacement field, smoothed by a Gaussian of width `elastic_sigma`, scaled by
`elastic_alpha` (their values: sigma 4, alpha 34). Stroke-width changes are a grey
dilation or erosion by a 2x2 square (one pixel thicker or thinner); resolution loss
shrinks a digit to 8-16 pixels with anti-aliasing and enlarges it back, as a low-resolution
scan does. The filters are scipy.ndimage's, turned into matrices once and applied to a whole
batch as GEMMs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

SIDE = 28
REMAP_IMAGES = 1000  # images per remap: OpenCV's remap takes pictures under 32,767 rows


@dataclass(frozen=True)
class Warp:
    """Ranges of the random transformations, each drawn independently per image."""

    degrees: float = 10.0  # rotation in [-degrees, degrees]
    scale: float = 0.1  # zoom factor in [1 - scale, 1 + scale]
    shift: float = 2.5  # translation in [-shift, shift] pixels along each axis
    elastic_alpha: float = 0.0  # elastic displacement scale in pixels (Simard et al.: 34)
    elastic_sigma: float = 4.0  # width of the Gaussian smoothing the field (Simard et al.: 4)
    stroke: float = 0.0  # share of images made one pixel thicker or thinner (half each)
    low_res: float = 0.0  # share of images shrunk to 8-16 pixels and enlarged back
    low_res_min: int = 8  # smallest side of the shrunk image, pixels
    low_res_max: int = 16  # largest side of the shrunk image, pixels


def augment(pixels: NDArray[np.uint8], rng: np.random.Generator, warp: Warp) -> NDArray[np.float32]:
    """Return randomly distorted copies `(n, 784)` float32 (0-255) of raw images `(n, 784)`.

    Each output pixel samples its source position bilinearly, zero outside the image.
    """
    n = len(pixels)
    images = pixels.reshape(n, SIDE, SIDE).astype(np.float32)
    if warp.stroke:
        images = change_strokes(images, rng, warp.stroke)
    if warp.low_res:
        images = lower_resolution(images, rng, warp.low_res, (warp.low_res_min, warp.low_res_max))
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
    if warp.elastic_alpha:
        d_rows, d_cols = elastic_field(n, rng, warp.elastic_alpha, warp.elastic_sigma)
        rows, cols = rows + d_rows, cols + d_cols
    return _bilinear(images, rows, cols).reshape(n, SIDE * SIDE)


def elastic_field(
    n: int, rng: np.random.Generator, alpha: float, sigma: float
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Return smooth random displacements (rows, columns), each `(n, 28, 28)` in pixels.

    Uniform(-1, 1) per pixel, Gaussian-smoothed (zero beyond the border, truncated at 2
    sigma: the tails change the field by < 5%) and scaled by `alpha` (Simard et al. 2003).
    """
    field = rng.random((2, n, SIDE, SIDE), dtype=np.float32) * 2 - 1  # uniform(-1, 1)
    G = _operator("gaussian", sigma)  # (28, 28)
    smooth = _both_axes(G, field.reshape(2 * n, SIDE, SIDE)).reshape(2, n, SIDE, SIDE)
    smooth *= np.float32(alpha)
    return smooth[0], smooth[1]


def _both_axes(M: NDArray[np.float32], images: NDArray[np.float32]) -> NDArray[np.float32]:
    """Return `M @ image @ M.T` for every image `(n, 28, 28)`, as two tall GEMMs.

    ~10x faster than scipy.ndimage's filter loops here, and than NumPy's stacked matmul.
    """
    n = len(images)
    cols = (images.reshape(-1, SIDE) @ M.T).reshape(n, SIDE, SIDE)  # image @ M.T
    both = cols.transpose(0, 2, 1).reshape(-1, SIDE) @ M.T  # (image @ M.T).T @ M.T
    return np.ascontiguousarray(both.reshape(n, SIDE, SIDE).transpose(0, 2, 1))


@functools.lru_cache(maxsize=32)
def _operator(kind: str, value: float) -> NDArray[np.float32]:
    """Return the `(28, 28)` matrix of a separable 1-D filter along one image axis.

    Built by running scipy.ndimage's filter on the unit vectors, so `M @ image @ M.T`
    equals the filter applied to both axes, for a whole batch in two GEMMs.
    `gaussian`: Gaussian of sigma `value`, zero outside, truncated at 2 sigma.
    `low_res`: anti-aliasing Gaussian of sigma (28 / side - 1) / 2 (scikit-image's `resize`
    rule), bilinear shrink to `value` pixels and bilinear enlargement back to 28.
    """
    eye = np.eye(SIDE, dtype=np.float64)  # row i: the unit vector e_i
    if kind == "gaussian":
        rows = ndimage.gaussian_filter1d(eye, value, axis=1, mode="constant", truncate=2.0)
    else:
        side = int(value)
        rows = ndimage.gaussian_filter1d(eye, (SIDE / side - 1) / 2, axis=1, mode="constant")
        rows = ndimage.zoom(rows, (1, side / SIDE), order=1)  # (28, side)
        rows = ndimage.zoom(rows, (1, SIDE / side), order=1)  # (28, 28)
    return np.ascontiguousarray(rows.T, dtype=np.float32)  # column i: the filtered e_i


def change_strokes(
    images: NDArray[np.float32], rng: np.random.Generator, share: float
) -> NDArray[np.float32]:
    """Dilate or erode (grey, 2x2 square) a random `share` of images `(n, 28, 28)`."""
    chosen = np.flatnonzero(rng.random(len(images)) < share)
    thicker, thinner = chosen[: len(chosen) // 2], chosen[len(chosen) // 2 :]
    out = images.copy()
    out[thicker] = ndimage.grey_dilation(images[thicker], size=(1, 2, 2))
    out[thinner] = ndimage.grey_erosion(images[thinner], size=(1, 2, 2))
    return out


def lower_resolution(
    images: NDArray[np.float32],
    rng: np.random.Generator,
    share: float,
    sides: tuple[int, int],
) -> NDArray[np.float32]:
    """Shrink a random `share` of images `(n, 28, 28)` to a random side and enlarge them back.

    Shrinking is anti-aliased, both ways bilinear (see `_operator`).
    """
    chosen = rng.random(len(images)) < share
    side_of = rng.integers(sides[0], sides[1] + 1, len(images))
    out = images.copy()
    for side in np.unique(side_of[chosen]):
        group = np.flatnonzero(chosen & (side_of == side))
        M = _operator("low_res", int(side))  # (28, 28)
        out[group] = np.clip(_both_axes(M, images[group]), 0, 255)
    return out


def _bilinear(
    images: NDArray[np.float32], rows: NDArray[np.float32], cols: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Sample `images` `(n, 28, 28)` at fractional positions, reading zeros outside.

    The images, each with a zero border of one pixel, are stacked into one tall picture and
    sampled by one OpenCV `remap` (bilinear): 5x faster than NumPy's four gathers on a batch
    of 256 (0.7 against 3.6 ms, measured), a third of an MLP training step before.
    """
    n = len(images)
    padded = np.zeros((n, SIDE + 2, SIDE + 2), np.float32)  # a zero border of 1 pixel
    padded[:, 1:-1, 1:-1] = images
    rows = np.clip(rows + 1, 0, SIDE + 0.999, dtype=np.float32)
    cols = np.clip(cols + 1, 0, SIDE + 0.999, dtype=np.float32)
    out = np.empty((n, SIDE, SIDE), np.float32)
    for first in range(0, n, REMAP_IMAGES):
        part = slice(first, first + REMAP_IMAGES)
        count = len(padded[part])
        offsets = np.arange(count, dtype=np.float32)[:, None, None] * (SIDE + 2)
        out[part] = cv2.remap(
            padded[part].reshape(count * (SIDE + 2), SIDE + 2),
            cols[part].reshape(count * SIDE, SIDE),
            (rows[part] + offsets).reshape(count * SIDE, SIDE),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        ).reshape(count, SIDE, SIDE)
    return out
