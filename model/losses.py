"""Softmax and the fused softmax-cross-entropy loss."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float32]


def softmax(Z: Array) -> Array:
    """Turn logits `(n, k)` into probabilities in place; stable for any finite logits."""
    Z -= Z.max(axis=1, keepdims=True)
    np.exp(Z, out=Z)
    Z /= Z.sum(axis=1, keepdims=True)
    return Z


def softmax_cross_entropy(
    Z: Array, y: NDArray[np.int64], smoothing: float = 0.0
) -> tuple[float, Array, Array]:
    """Return mean cross-entropy, its gradient w.r.t. the logits and the probabilities.

    Z: logits `(n, k)`, left untouched; y: labels `(n,)`. The log-probabilities come
    from the log-sum-exp of shifted logits, so logits of +-1e4 give finite values.
    `smoothing` spreads that much of the target mass uniformly over the k classes.
    """
    n, k = Z.shape
    shifted = Z - Z.max(axis=1, keepdims=True)  # (n, k), max 0
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    target = np.full((n, k), smoothing / k, np.float32)
    target[np.arange(n), y] += 1 - smoothing
    loss = float(-(target * log_probs).sum() / n)
    P = np.exp(log_probs)  # (n, k)
    dZ = (P - target) / n
    return loss, dZ.astype(np.float32), P
