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
Resizing, blur, threshold and morphology are OpenCV's (one thread: the API serves requests
in parallel instead).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from pictures.picture import ImageError

cv2.setNumThreads(1)

MIN_CONTRAST = 32.0  # grey levels between darkest and brightest below which it is blank
FIT_SIDE = 48  # the paper surface is fitted on a copy this size: light varies slowly
DEGREE = 2  # of the paper polynomial: a linear shadow needs 1, a lens's vignetting 2
DEGREE_TERMS = (1, 3, 6)  # monomials up to degree 0, 1 and 2: the fits tried
SIMPLER = 1.5  # a lower degree whose paper spread is within this factor (+1 grey) is used
FIT_ROUNDS = 4  # refits, each without the pixels that are not paper by the last surface
OUTLIER = 2.5  # residual, in robust standard deviations, that marks a pixel as not paper
DARKEST_PAPER = 24.0  # grey level below which paper brightness is not divided by
SMOOTHING = 1.0  # pixels, standard deviation of the Gaussian blur before the threshold
MIN_INK = 0.15  # relative colour distance below which nothing is ink, however Otsu splits
LINE_SHARE = 1 / 400  # ruled and grid lines are at most twice this share of the longer side


@dataclass(frozen=True)
class Ink:
    """A page's ink: `strength` (h, w) float32, each pixel's colour distance from the paper
    under it relative to that paper (0: paper), and `level`, Otsu's threshold on it."""

    strength: NDArray[np.float32]
    level: float

    def mask(self, share: float = 1.0) -> NDArray[np.bool_]:
        """Return where the strength exceeds `share` x `level`, ruled and grid lines dropped."""
        return without_lines(self.strength > share * self.level)


def find_ink(colour: NDArray[np.float32]) -> Ink:
    """Measure the ink of colour planes (3, h, w) 0-255 of a page; raise ImageError if blank."""
    planes = colour.reshape(3, -1)
    spread = planes.max(axis=1) - planes.min(axis=1)  # (3,)
    if float(spread.max()) < MIN_CONTRAST:
        raise ImageError("blank_image", "the image is blank: no digit found")
    grey = colour[0] + colour[1] + colour[2]  # three times the mean
    if np.median(grey[::2, ::2]) < (float(grey.min()) + float(grey.max())) / 2:
        colour = 255.0 - colour  # light strokes on a dark field: make the paper the bright part
    # A pixel's blur: dithered scans and JPEG noise become grey levels before the threshold.
    strength = np.asarray(cv2.GaussianBlur(ink_strength(colour), (0, 0), SMOOTHING), np.float32)
    if float(strength.max()) < MIN_INK:
        raise ImageError("blank_image", "the image is blank: no digit found")
    return Ink(strength, max(_otsu(strength), MIN_INK))


def _otsu(strength: NDArray[np.float32]) -> float:
    """Otsu's threshold (OpenCV's, on the strengths quantised to 256 levels)."""
    top = float(strength.max())
    levels = (strength * (255.0 / top)).astype(np.uint8)
    level, _ = cv2.threshold(levels, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return (float(level) + 0.5) * top / 255.0


def ink_strength(colour: NDArray[np.float32]) -> NDArray[np.float32]:
    """Return each pixel's colour distance from the paper under it, relative to it, (h, w)."""
    paper = paper_colour(colour)  # (3, h, w)
    relative = (colour - paper) / np.maximum(paper, DARKEST_PAPER)
    relative *= relative
    return np.sqrt((relative[0] + relative[1] + relative[2]) / 3)


def paper_colour(colour: NDArray[np.float32]) -> NDArray[np.float32]:
    """Fit the paper's colour as a smooth surface per channel; return it at full size.

    The lowest polynomial degree that explains the paper about as well as the highest is
    used: a higher one, free where strokes hide the paper, would invent light there.
    """
    height, width = colour.shape[1:]
    small = _resized(colour, _thumbnail_size(width, height), cv2.INTER_AREA)
    targets = small.reshape(3, -1).T.astype(np.float64)  # (sh*sw, 3)
    basis = _basis(*small.shape[1:])  # (sh*sw, terms), terms ordered by degree
    paper = _paper_pixels(basis, targets)
    fits = []
    for terms in DEGREE_TERMS:
        coefficients = np.linalg.lstsq(basis[paper, :terms], targets[paper], rcond=None)[0]
        fitted = basis[:, :terms] @ coefficients  # (sh*sw, 3)
        fits.append((fitted, float(np.median(np.abs(targets[paper] - fitted[paper])))))
    best = min(spread for _, spread in fits)
    surface = next(fitted for fitted, spread in fits if spread <= SIMPLER * best + 1.0)
    planes = surface.T.reshape(small.shape).astype(np.float32)
    return _resized(planes, (width, height), cv2.INTER_LINEAR)


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


def _thumbnail_size(width: int, height: int) -> tuple[int, int]:
    factor = min(1.0, FIT_SIDE / max(height, width))
    return max(2, round(width * factor)), max(2, round(height * factor))


def _resized(
    colour: NDArray[np.float32], size: tuple[int, int], method: int
) -> NDArray[np.float32]:
    """Resize each plane of (3, h, w) float32 to `size` (width, height) with OpenCV."""
    if size == (colour.shape[2], colour.shape[1]):
        return colour
    return np.stack([cv2.resize(plane, size, interpolation=method) for plane in colour])


def _basis(height: int, width: int) -> NDArray[np.float64]:
    """Monomials x^i y^j, i + j <= DEGREE by degree, on a grid over [-1, 1]^2: (h*w, terms)."""
    y = np.linspace(-1.0, 1.0, height)[:, None].repeat(width, axis=1).ravel()
    x = np.linspace(-1.0, 1.0, width)[None, :].repeat(height, axis=0).ravel()
    terms = [x**i * y ** (d - i) for d in range(DEGREE + 1) for i in range(d + 1)]
    return np.stack(terms, axis=1)


def without_lines(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Drop structures thinner than a ruled line; keep the full width of the strokes that stay."""
    radius = max(1, round(LINE_SHARE * max(mask.shape)))
    ink = mask.view(np.uint8)
    thick = cv2.morphologyEx(ink, cv2.MORPH_OPEN, _disk(radius))
    if not thick.any():
        return mask  # nothing is thicker than a line: a fine pen, not a ruled page
    return mask & cv2.dilate(thick, _disk(radius + 1)).view(np.bool_)


def _disk(radius: int) -> NDArray[np.uint8]:
    side = 2 * radius + 1
    return np.asarray(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side)), np.uint8)
