"""Random affine warps of training images."""

from __future__ import annotations

import numpy as np

from model.augment import Warp, augment


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
