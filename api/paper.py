"""Find the ink on a photographed or scanned page: flatten the light, threshold, drop lines.

A phone photo of paper is not evenly lit: a shadow falls across it, the lens darkens the
corners (vignetting). A global threshold then takes the darker paper for ink. So the paper's
own colour is estimated first, per channel, as a smooth surface (a least-squares polynomial
in x and y, refitted without the pixels that stand out from it: the strokes, the lines),
and every pixel is measured by how far its colour departs from the paper under it, relative
to the paper's brightness (light reflected from paper is a product of light and paper).
That distance is polarity-free and works across colours, so red ink on blue paper of the
same brightness stands out as well as black on white. Otsu's threshold on it splits ink
from paper; ruled, margin and grid lines, thinner than pen strokes, go in a binary opening.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from skimage import filters, morphology

from api.picture import ImageError

MIN_CONTRAST = 32.0  # grey levels between darkest and brightest below which it is blank
FIT_SIDE = 64  # the paper surface is fitted on a copy this size: light varies slowly
DEGREE = 2  # of the paper polynomial: a linear shadow needs 1, a lens's vignetting 2
DEGREE_TERMS = (1, 3, 6)  # monomials up to degree 0, 1 and 2: the fits tried
SIMPLER = 1.5  # a lower degree whose paper spread is within this factor (+1 grey) is used
BILINEAR = Image.Resampling.BILINEAR
FIT_ROUNDS = 6  # refits, each without the pixels that are not paper by the last surface
OUTLIER = 2.5  # residual, in robust standard deviations, that marks a pixel as not paper
DARKEST_PAPER = 24.0  # grey level below which paper brightness is not divided by
SMOOTHING = 1.0  # pixels, standard deviation of the Gaussian blur before the threshold
MIN_INK = 0.15  # relative colour distance below which nothing is ink, however Otsu splits
LINE_SHARE = 1 / 400  # ruled and grid lines are at most twice this share of the longer side


def ink_mask(colour: NDArray[np.float32]) -> NDArray[np.bool_]:
    """Return where the ink is, shape (h, w), from colours (h, w, 3) 0-255 of a page."""
    _refuse_blank(colour)
    grey = colour.mean(axis=2)
    if np.median(grey) < (float(grey.min()) + float(grey.max())) / 2:
        colour = 255.0 - colour  # light strokes on a dark field: make the paper the bright part
    # A pixel's blur: dithered scans and JPEG noise become grey levels before the threshold.
    strength = filters.gaussian(ink_strength(colour), sigma=SMOOTHING)
    if float(strength.max()) < MIN_INK:
        raise ImageError("blank_image", "the image is blank: no digit found")
    mask = strength > max(float(filters.threshold_otsu(strength)), MIN_INK)
    return without_lines(mask)


def _refuse_blank(colour: NDArray[np.float32]) -> None:
    spread = colour.reshape(-1, 3).max(axis=0) - colour.reshape(-1, 3).min(axis=0)
    if float(spread.max()) < MIN_CONTRAST:
        raise ImageError("blank_image", "the image is blank: no digit found")


def ink_strength(colour: NDArray[np.float32]) -> NDArray[np.float32]:
    """Return each pixel's colour distance from the paper under it, relative to it, (h, w)."""
    paper = paper_colour(colour)  # (h, w, 3)
    relative = (colour - paper) / np.maximum(paper, DARKEST_PAPER)
    return np.sqrt(np.square(relative).mean(axis=2)).astype(np.float32)


def paper_colour(colour: NDArray[np.float32]) -> NDArray[np.float32]:
    """Fit the paper's colour as a smooth surface per channel; return it at full size.

    The lowest polynomial degree that explains the paper about as well as the highest is
    used: a higher one, free where strokes hide the paper, would invent light there.
    """
    height, width = colour.shape[:2]
    small = _thumbnail(colour)  # (sh, sw, 3)
    targets = small.reshape(-1, 3).astype(np.float64)
    basis = _basis(*small.shape[:2])  # (sh*sw, terms), terms ordered by degree
    paper = _paper_pixels(basis, targets)
    fits = []
    for terms in DEGREE_TERMS:
        coefficients = np.linalg.lstsq(basis[paper, :terms], targets[paper], rcond=None)[0]
        fitted = basis[:, :terms] @ coefficients  # (sh*sw, 3)
        fits.append((fitted, float(np.median(np.abs(targets[paper] - fitted[paper])))))
    best = min(spread for _, spread in fits)
    surface = next(fitted for fitted, spread in fits if spread <= SIMPLER * best + 1.0)
    return _resized(surface.reshape(small.shape).astype(np.float32), (width, height), BILINEAR)


def _paper_pixels(basis: NDArray[np.float64], targets: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Pixels like the paper: least squares refitted on the pixels still like paper."""
    paper = np.ones(len(targets), dtype=bool)
    for _ in range(FIT_ROUNDS):
        coefficients = np.linalg.lstsq(basis[paper], targets[paper], rcond=None)[0]
        paper = _paper_like(targets - basis @ coefficients, paper)
    return paper


def _paper_like(residual: NDArray[np.float64], paper: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Pixels that may be paper: not darker than the surface, not off in hue (ink is both).

    Asymmetric, as in baseline fitting: strokes only ever pull the surface down, so a pixel
    above it is paper however far, and the fit climbs onto the paper in a few rounds.
    """
    brightness = residual.mean(axis=1)  # (n,)
    hue = np.linalg.norm(residual - brightness[:, None], axis=1)  # (n,)
    spread = 1.4826 * np.median(np.abs(brightness[paper])) + 1.0  # MAD; +1 for flat pages
    hue_spread = 1.4826 * np.median(hue[paper]) + 1.0
    return (brightness > -OUTLIER * spread) & (hue < OUTLIER * hue_spread)


def _thumbnail(colour: NDArray[np.float32]) -> NDArray[np.float32]:
    height, width = colour.shape[:2]
    factor = FIT_SIDE / max(height, width)
    if factor >= 1:
        return colour
    size = (max(2, round(width * factor)), max(2, round(height * factor)))
    return _resized(colour, size, Image.Resampling.BOX)


def _resized(
    colour: NDArray[np.float32], size: tuple[int, int], method: Image.Resampling
) -> NDArray[np.float32]:
    """Resize each channel of (h, w, 3) float32 to `size` (width, height)."""
    channels = [np.asarray(Image.fromarray(colour[..., c]).resize(size, method)) for c in range(3)]
    return np.stack(channels, axis=2)


def _basis(height: int, width: int) -> NDArray[np.float64]:
    """Monomials x^i y^j, i + j <= DEGREE by degree, on a grid over [-1, 1]^2: (h*w, terms)."""
    y = np.linspace(-1.0, 1.0, height)[:, None].repeat(width, axis=1).ravel()
    x = np.linspace(-1.0, 1.0, width)[None, :].repeat(height, axis=0).ravel()
    terms = [x**i * y ** (d - i) for d in range(DEGREE + 1) for i in range(d + 1)]
    return np.stack(terms, axis=1)


def without_lines(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Drop structures thinner than a ruled line; keep the full width of the strokes that stay."""
    radius = max(1, round(LINE_SHARE * max(mask.shape)))
    thick = morphology.opening(mask, morphology.disk(radius))
    if not thick.any():
        return mask  # nothing is thicker than a line: a fine pen, not a ruled page
    return mask & morphology.dilation(thick, morphology.disk(radius + 1))
