"""Random warps, elastic distortions, stroke-width and resolution changes of training images."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from model.augment import (
    Warp,
    _both_axes,
    _operator,
    augment,
    change_strokes,
    elastic_field,
    lower_resolution,
)


def _digits() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (5, 784), dtype=np.uint8)


def test_a_null_warp_returns_the_images() -> None:
    images = _digits()
    out = augment(images, np.random.default_rng(0), Warp(degrees=0, scale=0, shift=0))
    assert out.dtype == np.float32 and out.shape == (5, 784)
    np.testing.assert_allclose(out, images, atol=1e-3)


def test_warps_are_seeded_and_vary_per_image() -> None:
    images = np.repeat(_digits()[:1], 4, axis=0)
    first = augment(images, np.random.default_rng(1), Warp())
    again = augment(images, np.random.default_rng(1), Warp())
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first[0], first[1])


def test_values_stay_within_pixel_range() -> None:
    out = augment(_digits(), np.random.default_rng(2), Warp(degrees=30, scale=0.3, shift=5))
    assert out.min() >= 0 and out.max() <= 255


def test_a_pure_shift_moves_the_image() -> None:
    image = np.zeros((1, 28, 28), np.uint8)
    image[0, 10, 10] = 200
    rng = np.random.default_rng(3)
    out = augment(image.reshape(1, 784), rng, Warp(degrees=0, scale=0, shift=3)).reshape(28, 28)
    assert abs(out.sum() - 200) < 1e-2  # bilinear translation conserves the ink
    rows, cols = np.indices(out.shape)
    centre = np.array([(rows * out).sum(), (cols * out).sum()]) / out.sum()
    moved = np.abs(centre - 10)
    assert moved.max() > 0.1 and moved.max() <= 3


def test_elastic_displacements_have_the_expected_size() -> None:
    rows, cols = elastic_field(500, np.random.default_rng(4), alpha=34, sigma=4)
    assert rows.shape == cols.shape == (500, 28, 28)
    # Uniform(-1, 1) has sd 1/sqrt(3); a 2-D Gaussian of sigma 4 shrinks it by about
    # 2 * sqrt(pi) * 4 (more at the zero border), then times alpha 34: ~1.2-1.5 px.
    assert 1.0 < rows.std() < 1.7 and 1.0 < cols.std() < 1.7
    assert abs(rows.mean()) < 0.1


def test_the_filter_matrices_match_scipy() -> None:
    images = np.random.default_rng(5).uniform(-1, 1, (3, 28, 28)).astype(np.float32)
    smooth = _both_axes(_operator("gaussian", 4.0), images)
    expected = ndimage.gaussian_filter(images, (0, 4, 4), mode="constant", truncate=2.0)
    np.testing.assert_allclose(smooth, expected, atol=1e-5)  # float32 sums of 28 terms


def test_stroke_changes_thicken_or_thin_strokes() -> None:
    images = np.zeros((2, 28, 28), np.float32)
    images[:, 8:20, 13:15] = 255  # a vertical bar 2 pixels wide
    out = change_strokes(images, np.random.default_rng(6), share=1.0)
    widths = sorted((out[i] > 0).sum() / 12 for i in range(2))
    assert widths[0] < 2 < widths[1]  # one eroded, one dilated


def test_resolution_loss_blurs_but_keeps_the_digit() -> None:
    digit = np.zeros((1, 28, 28), np.float32)
    digit[0, 6:22, 12:16] = 255
    low = lower_resolution(digit, np.random.default_rng(7), share=1.0, sides=(8, 8))
    assert low.shape == digit.shape and low.min() >= 0 and low.max() <= 255
    assert np.corrcoef(low.ravel(), digit.ravel())[0, 1] > 0.7  # measured 0.75 at 8 px
    assert ((low > 0) & (low < 255)).sum() > ((digit > 0) & (digit < 255)).sum()  # soft edges


def test_full_augmentation_is_seeded() -> None:
    warp = Warp(elastic_alpha=34, stroke=0.5, low_res=0.5)
    first = augment(_digits(), np.random.default_rng(8), warp)
    np.testing.assert_array_equal(first, augment(_digits(), np.random.default_rng(8), warp))
    assert first.min() >= 0 and first.max() <= 255


def test_bilinear_sampling_matches_scipy_over_many_remaps() -> None:
    from scipy import ndimage

    from model.augment import REMAP_IMAGES, _bilinear

    rng = np.random.default_rng(4)
    n = REMAP_IMAGES + 3  # two remaps
    images = rng.uniform(0, 255, (n, 28, 28)).astype(np.float32)
    rows, cols = rng.uniform(-0.9, 27.9, (2, n, 28, 28)).astype(np.float32)
    out = _bilinear(images, rows, cols)
    expected = np.stack(
        [
            ndimage.map_coordinates(image, [r, c], order=1, mode="grid-constant", cval=0.0)
            for image, r, c in zip(images, rows, cols, strict=True)
        ]
    )
    # Measured here: at most 0.014 grey levels apart. OpenCV may round sample positions to
    # 1/32 px (INTER_BITS = 5): on values 0-255 that moves a sample by at most 255/64 ~ 4.
    np.testing.assert_allclose(out, expected, atol=255 / 64)
