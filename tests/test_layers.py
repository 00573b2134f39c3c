"""Finite-difference gradient checks for every layer and the loss."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from model.layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, Layer, MaxPool2D, ReLU
from model.losses import softmax, softmax_cross_entropy

# Gradient checks run in float64 (parameters and inputs): central differences with step EPS
# err by ~EPS**2 (truncation) plus ~1e-16/EPS (rounding), about 1e-10 here, far inside
# rtol=1e-5, atol=1e-7, and a BLAS kernel's summation order moves float64 results by ~1e-13.
EPS = 1e-6


def _as_float64(layer: Layer) -> Layer:
    """Switch a layer's parameters to float64 so finite differences are accurate."""
    layer.params = {name: value.astype(np.float64) for name, value in layer.params.items()}
    return layer


def numeric_grad(f: Callable[[], float], x: np.ndarray) -> np.ndarray:
    """Central differences of scalar `f` with respect to every entry of `x` (in place)."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + EPS
        plus = f()
        x[index] = saved - EPS
        minus = f()
        x[index] = saved
        grad[index] = (plus - minus) / (2 * EPS)
    return grad


def check_layer(layer: Layer, X: np.ndarray) -> None:
    """Compare backward with numerical gradients of sum(forward(X) * R)."""
    rng = np.random.default_rng(1)
    R = rng.standard_normal(layer.forward(X.copy(), training=True).shape)

    def objective() -> float:
        return float((layer.forward(X.copy(), training=True) * R).sum())

    objective()
    dX = layer.backward(R.copy())
    analytic = {name: grad.copy() for name, grad in layer.grads.items()}
    np.testing.assert_allclose(dX, numeric_grad(objective, X), rtol=1e-5, atol=1e-7)
    for name, param in layer.params.items():
        np.testing.assert_allclose(
            analytic[name], numeric_grad(objective, param), rtol=1e-5, atol=1e-7
        )


def test_dense_gradients() -> None:
    rng = np.random.default_rng(0)
    check_layer(_as_float64(Dense(5, 4, rng)), rng.standard_normal((3, 5)))


def test_relu_gradients() -> None:
    X = np.random.default_rng(0).standard_normal((4, 6))
    X[np.abs(X) < 0.01] = 0.5  # keep the kink out of the finite-difference step
    check_layer(ReLU(), X)


def test_flatten_gradients() -> None:
    check_layer(Flatten(), np.random.default_rng(0).standard_normal((2, 3, 3, 2)))


@pytest.mark.parametrize("padding", [0, 1])
def test_conv2d_gradients(padding: int) -> None:
    rng = np.random.default_rng(0)
    layer = _as_float64(Conv2D(2, 3, 3, padding=padding, rng=rng))
    layer.params["b"] += rng.standard_normal(3)
    check_layer(layer, rng.standard_normal((2, 5, 6, 2)))


def test_maxpool_gradients() -> None:
    # Distinct values so no window has a tie within the finite-difference step.
    X = np.random.default_rng(0).permutation(2 * 4 * 6 * 3).reshape(2, 4, 6, 3) / 10.0
    check_layer(MaxPool2D(), X)


def test_maxpool_sends_tied_gradient_to_one_input() -> None:
    layer = MaxPool2D()
    layer.forward(np.ones((1, 2, 2, 1), np.float32), training=True)
    assert layer.backward(np.ones((1, 1, 1, 1), np.float32)).sum() == 1


@pytest.mark.parametrize("shape", [(6, 4), (3, 2, 2, 4)])
def test_batchnorm_gradients(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    layer = _as_float64(BatchNorm(4))
    layer.params["gamma"] += rng.standard_normal(4)
    layer.params["beta"] += rng.standard_normal(4)
    check_layer(layer, rng.standard_normal(shape))


def test_batchnorm_inference_uses_running_statistics() -> None:
    layer = BatchNorm(3, momentum=0.0)
    X = np.random.default_rng(0).standard_normal((50, 3)).astype(np.float32) * 4 + 2
    layer.forward(X.copy(), training=True)
    out = layer.forward(X.copy())
    # float32 over 50 rows: the mean is off by ~50*u*|x| ~ 1e-5 at most; the std is below 1
    # by var/(var+eps) with BatchNorm's eps=1e-5 (~3e-7 here), 1e-3 leaves room for both.
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=0), 1, atol=1e-3)


def test_dropout_gradients_follow_its_mask() -> None:
    layer = Dropout(0.5, np.random.default_rng(0))
    X = np.random.default_rng(1).standard_normal((8, 10))

    def objective() -> float:
        layer.rng = np.random.default_rng(0)  # the same mask on every evaluation
        return float(layer.forward(X.copy(), training=True).sum())

    objective()
    dX = layer.backward(np.ones_like(X))
    np.testing.assert_allclose(dX, numeric_grad(objective, X), rtol=1e-5, atol=1e-7)
    assert set(np.unique(dX)) == {0.0, 2.0}


def test_dropout_is_identity_at_inference() -> None:
    X = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(Dropout(0.5).forward(X.copy()), X)


def test_cross_entropy_gradient() -> None:
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((5, 10))
    y = rng.integers(0, 10, 5)
    _, dZ, _ = softmax_cross_entropy(Z.copy(), y, smoothing=0.1)
    numeric = numeric_grad(lambda: softmax_cross_entropy(Z, y, smoothing=0.1)[0], Z)
    np.testing.assert_allclose(dZ, numeric, rtol=1e-4, atol=1e-6)


def test_cross_entropy_is_stable_for_huge_logits() -> None:
    Z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [1e4, 1e4, -1e4]], np.float32)
    y = np.array([0, 0, 1])
    loss, dZ, P = softmax_cross_entropy(Z, y)
    assert np.isfinite(loss) and np.isfinite(dZ).all() and np.isfinite(P).all()
    # Row 2 puts all mass on the wrong class: its loss is the 2e4 logit gap. float32 holds
    # ~6.7e3 to a relative 6e-8 (u), and three probabilities sum to 1 within 3u = 1.8e-7.
    np.testing.assert_allclose(loss, (0 + 2e4 + np.log(2)) / 3, rtol=1e-6)
    np.testing.assert_allclose(P.sum(axis=1), 1, rtol=1e-6)
    probs = softmax(Z.copy())
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs, P, atol=1e-7)
