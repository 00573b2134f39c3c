"""Optimizers and the learning-rate schedule."""

from __future__ import annotations

import numpy as np
import pytest

from model.layers import Layer
from model.optim import SGD, Adam
from model.schedule import cosine, one_cycle


def _quadratic() -> Layer:
    layer = Layer()
    layer.params = {"W": np.array([[3.0, -2.0]], np.float32), "b": np.array([1.0], np.float32)}
    return layer


@pytest.mark.parametrize("optimizer", [SGD(), SGD(nesterov=False), Adam(), Adam(weight_decay=0.01)])
def test_optimizers_minimise_a_quadratic(optimizer: SGD | Adam) -> None:
    layer = _quadratic()
    for _ in range(300):
        layer.grads = {name: 2 * value for name, value in layer.params.items()}  # d/dp of p^2
        optimizer.update([layer], lr=0.05)
    assert all(np.abs(value).max() < 0.05 for value in layer.params.values())
    assert all(value.dtype == np.float32 for value in layer.params.values())


def test_weight_decay_spares_biases() -> None:
    layer = _quadratic()
    layer.grads = {name: np.zeros_like(value) for name, value in layer.params.items()}
    Adam(weight_decay=0.5).update([layer], lr=0.1)
    assert layer.params["b"][0] == 1.0 and layer.params["W"][0, 0] < 3.0


def test_one_cycle_rises_then_falls() -> None:
    rates = [one_cycle(step, 100, max_lr=1.0, warmup=0.2) for step in range(101)]
    assert rates[0] == pytest.approx(0.04)
    assert max(rates) == pytest.approx(1.0) and int(np.argmax(rates)) == 20
    assert rates[-1] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[20:], rates[21:], strict=False))


def test_cosine_decays_to_its_floor() -> None:
    assert cosine(0, 10, 2.0) == pytest.approx(2.0)
    assert cosine(10, 10, 2.0) == pytest.approx(2e-3)
