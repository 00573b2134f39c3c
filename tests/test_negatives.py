"""The generator of non-digits: every kind, fixed by its seed, in the MNIST format."""

from __future__ import annotations

import numpy as np
import pytest

from scripts.negatives import KINDS, generate


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """Stand-ins for MNIST training digits: one upright stroke each, at varied columns."""
    fields = np.zeros((10, 28, 28), np.uint8)
    for index, field in enumerate(fields):
        field[4:24, 8 + index : 11 + index] = 255
    return fields.reshape(10, 784)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_is_mnist_shaped_and_fixed_by_its_seed(kind: str, digits: np.ndarray) -> None:
    images = generate(kind, 6, seed=0, digits=digits)
    assert images.shape == (6, 784) and images.dtype == np.uint8
    assert np.array_equal(images, generate(kind, 6, seed=0, digits=digits))
    # more images of a kind extend it: the first ones never change
    assert np.array_equal(images[:3], generate(kind, 3, seed=0, digits=digits))
    assert not np.array_equal(images, generate(kind, 6, seed=1, digits=digits))


@pytest.mark.parametrize("kind", ["letters", "two_digits", "scribbles", "lines"])
def test_drawn_kinds_are_scaled_and_centred_like_mnist(kind: str, digits: np.ndarray) -> None:
    images = generate(kind, 20, seed=0, digits=digits).reshape(20, 28, 28)
    for image in images:
        rows, cols = np.nonzero(image.any(axis=1))[0], np.nonzero(image.any(axis=0))[0]
        # the longer side is 20 px (+1 for anti-aliasing at the edge), as the image endpoint makes
        assert 19 <= max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= 22


def test_blank_has_no_ink_and_noise_covers_the_field(digits: np.ndarray) -> None:
    assert generate("blank", 50).max() < 128
    assert ((generate("noise", 50) > 0).mean(axis=1) > 0.9).all()


def test_two_digits_needs_digits_and_unknown_kinds_fail() -> None:
    with pytest.raises(ValueError, match="training digits"):
        generate("two_digits", 1)
    with pytest.raises(KeyError):
        generate("faces", 1)
