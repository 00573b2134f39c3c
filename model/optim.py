"""Optimizers: they own their state and update parameter dicts from gradient dicts."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from model.layers import Array, Layer


def _decays(name: str) -> bool:
    """Decay weights and kernels only; biases and BatchNorm scales stay free."""
    return name == "W"


class SGD:
    """Stochastic gradient descent with (optionally Nesterov) momentum and weight decay."""

    def __init__(self, momentum: float = 0.9, nesterov: bool = True, weight_decay: float = 0.0):
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.velocity: dict[tuple[int, str], Array] = {}

    def update(self, layers: Sequence[Layer], lr: float) -> None:
        """Take one step on every parameter of `layers` at learning rate `lr`."""
        for index, layer in enumerate(layers):
            for name, param in layer.params.items():
                grad = layer.grads[name]
                if self.weight_decay and _decays(name):
                    grad = grad + self.weight_decay * param
                v = self.velocity.setdefault((index, name), np.zeros_like(param))
                v *= self.momentum
                v += grad
                step = grad + self.momentum * v if self.nesterov else v
                param -= lr * step


class Adam:
    """Adam; with `weight_decay` > 0 it is AdamW (decay decoupled from the gradient)."""

    def __init__(
        self,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weight_decay = weight_decay
        self.t = 0
        self.m: dict[tuple[int, str], Array] = {}
        self.v: dict[tuple[int, str], Array] = {}

    def update(self, layers: Sequence[Layer], lr: float) -> None:
        """Take one step on every parameter of `layers` at learning rate `lr`."""
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        step_size = lr * math.sqrt(1 - b2**self.t) / (1 - b1**self.t)
        for index, layer in enumerate(layers):
            for name, param in layer.params.items():
                grad = layer.grads[name]
                m = self.m.setdefault((index, name), np.zeros_like(param))
                v = self.v.setdefault((index, name), np.zeros_like(param))
                m *= b1
                m += (1 - b1) * grad
                v *= b2
                v += (1 - b2) * np.square(grad)
                if self.weight_decay and _decays(name):
                    param *= 1 - lr * self.weight_decay
                denominator = np.sqrt(v)
                denominator += self.eps
                np.divide(m, denominator, out=denominator)
                denominator *= step_size
                param -= denominator
