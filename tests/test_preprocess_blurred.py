"""Blurred and upscaled digits keep their grey levels through `pictures.preprocess`."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import model
from model import data
from model.trainer import split
from pictures.paper import find_ink
from pictures.picture import MAX_PIXELS, decode
from pictures.preprocess import choose_digit, flat, preprocess
from scripts.bench import photos
from tests.test_preprocess import WEIGHTS

SAMPLE = 300  # validation digits reduced to 8x8
# Measured on these 300 digits: 92.3% right (the bilevel path read 84.0% of them).
LEAST = 0.90


@pytest.fixture(scope="module")
def validation() -> tuple[np.ndarray, np.ndarray]:
    """The shipped CNN's validation split: 5,000 training digits it was not trained on."""
    x_train, y_train, _, _ = data.load_mnist()
    _, _, x_val, y_val = split(x_train, y_train, 5000, 0)
    return x_val, y_val


def test_digits_reduced_to_8x8_are_read(validation: tuple[np.ndarray, np.ndarray]) -> None:
    x_val, y_val = validation
    rng = np.random.default_rng([7, photos.KINDS.index("lowres8")])
    chosen = rng.choice(len(x_val), SAMPLE, replace=False)
    seen = []
    for index in chosen:
        body, _ = photos.picture(x_val[index].reshape(28, 28), "lowres8", int(rng.integers(2**31)))
        seen.append(preprocess(body).pixels.ravel())
    right = float((model.load(WEIGHTS).predict(np.stack(seen)) == y_val[chosen]).mean())
    print(f"{SAMPLE} validation digits reduced to 8x8 and scaled up: {right:.4f} right")
    assert right >= LEAST


def strokes_are_flat(picture: np.ndarray) -> bool:
    """Say whether `flat` finds the strokes of a grey picture (h, w) uint8 flat."""
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, "PNG")
    ink = find_ink(decode(buffer.getvalue(), MAX_PIXELS).colour)
    return flat(ink.strength, choose_digit(ink.mask()))


def test_pen_strokes_are_flat_and_upscaled_ones_peaked(
    validation: tuple[np.ndarray, np.ndarray],
) -> None:
    for digit in validation[0][:20].reshape(-1, 28, 28):
        small = Image.fromarray(255 - digit).resize((8, 8), Image.Resampling.BOX)
        assert not strokes_are_flat(np.asarray(small.resize((240, 240), Image.Resampling.BICUBIC)))
        pen = np.kron(digit > 127, np.ones((8, 8), np.uint8))  # bilevel, 224 px
        assert strokes_are_flat(255 - 255 * pen)


def test_an_upscaled_digit_keeps_its_faint_strokes(
    validation: tuple[np.ndarray, np.ndarray],
) -> None:
    digit = validation[0][0].reshape(28, 28)
    small = Image.fromarray(255 - digit).resize((8, 8), Image.Resampling.BOX)
    buffer = io.BytesIO()
    small.resize((320, 320), Image.Resampling.BICUBIC).save(buffer, "PNG")
    pixels = preprocess(buffer.getvalue()).pixels
    grey = (pixels > 0) & (pixels < 255)
    assert grey.sum() > (pixels == 255).sum()  # mostly grey, as the blurred picture is
