"""The network's raw-pixel interface, seeding and inference folding."""

from __future__ import annotations

import numpy as np
import pytest
from tolerances import (
    DENSE_ATOL,
    DENSE_RTOL,
    PROBABILITY_ATOL,
    PROBABILITY_RTOL,
    SUM_TO_ONE_RTOL,
)

import model
from model.layers import BatchNorm
from model.losses import softmax

ARCHS = ["mlp", "cnn"]


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (37, 784), dtype=np.uint8)


@pytest.mark.parametrize("arch", ARCHS)
def test_same_seed_gives_same_weights(arch: str) -> None:
    first, second = model.build(arch, seed=3).state(), model.build(arch, seed=3).state()
    other = model.build(arch, seed=4).state()
    assert all(np.array_equal(first[name], second[name]) for name in first)
    assert not np.array_equal(first["0.W"], other["0.W"])


@pytest.mark.parametrize("arch", ARCHS)
def test_predict_proba_returns_probabilities(arch: str, pixels: np.ndarray) -> None:
    P = model.build(arch).predict_proba(pixels)
    assert P.shape == (37, 10) and P.dtype == np.float32
    np.testing.assert_allclose(P.sum(axis=1), 1, rtol=SUM_TO_ONE_RTOL)
    labels = model.build(arch).predict(pixels)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, P.argmax(axis=1))


@pytest.mark.parametrize("arch", ARCHS)
def test_folded_inference_matches_the_training_graph(arch: str, pixels: np.ndarray) -> None:
    net = model.build(arch, seed=1)
    rng = np.random.default_rng(2)
    for layer in net.layers:
        if isinstance(layer, BatchNorm):  # non-trivial statistics, so folding is exercised
            layer.buffers["mean"] = rng.standard_normal(layer.buffers["mean"].shape, np.float32)
            layer.buffers["var"] = rng.uniform(0.5, 2, layer.buffers["var"].shape)
            layer.buffers["var"] = layer.buffers["var"].astype(np.float32)
    expected = softmax(net.forward(net.normalise(pixels)))
    np.testing.assert_allclose(
        net.predict_proba(pixels), expected, rtol=PROBABILITY_RTOL, atol=PROBABILITY_ATOL
    )


def test_predictions_do_not_depend_on_chunking(pixels: np.ndarray) -> None:
    net = model.build("cnn")
    batch = np.concatenate([pixels] * 20)  # spans several inference chunks
    # Other chunk sizes sum in another order on some BLAS kernels (Haswell): float32 rounding.
    np.testing.assert_allclose(
        net.predict_proba(batch)[-37:],
        net.predict_proba(pixels),
        rtol=PROBABILITY_RTOL,
        atol=PROBABILITY_ATOL,
    )


def test_rejects_pixels_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match="784"):
        model.build("mlp").predict(np.zeros((2, 783), np.uint8))


def test_rejects_unknown_architecture() -> None:
    with pytest.raises(ValueError, match="unknown architecture"):
        model.build("transformer")


def test_metadata_is_json_and_describes_the_network() -> None:
    import json

    net = model.build("cnn", seed=5)
    restored = json.loads(json.dumps(net.metadata))
    assert restored["architecture"]["name"] == "cnn"
    assert restored["seed"] == 5
    assert restored["normalisation"] == {"scale": 1 / 255, "shift": 0.0}
    assert net.version is None


def test_blank_pixel_columns_are_skipped_without_changing_the_answer(pixels: np.ndarray) -> None:
    net = model.build("mlp", seed=1)
    digits = pixels.reshape(-1, 28, 28).copy()
    digits[:, :5], digits[:, -5:], digits[:, :, :5], digits[:, :, -5:] = 0, 0, 0, 0
    raw = digits.reshape(-1, 784)  # blank borders: 460 of 784 columns, as in MNIST
    first = net._inference_plan()[0]
    assert np.count_nonzero(raw.any(axis=0)) <= model.network.SPARSE_COLUMNS * 784
    full = raw.astype(np.float32) @ first.params["W"] + first.params["b"]
    np.testing.assert_allclose(
        model.network.first_dense(raw, first), full, rtol=DENSE_RTOL, atol=DENSE_ATOL
    )
    expected = softmax(net.forward(net.normalise(raw)))
    np.testing.assert_allclose(
        net.predict_proba(raw), expected, rtol=PROBABILITY_RTOL, atol=PROBABILITY_ATOL
    )
