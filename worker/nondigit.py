"""A small CNN that tells one handwritten digit from anything else (letters, scribbles, grids).

The digit classifier answers every input with a digit; the input tests of
`worker.uncertainty` catch what simple statistics show (blank, noise, solid, side by side),
but a letter or a scribble has a digit's ink, size and shape statistics. This detector is
trained apart from the classifier (`digits train-nondigit`), on the training digits against
generated non-digits (`scripts/negatives.py`), so it serves every classifier version
unchanged. Its threshold is chosen on the validation digits (`model.trainer.split`, seed 0)
for a stated share of digits flagged, and stored with its weights.

Architecture (built from `model.layers`, NHWC): 8C5-pool-16C5-pool-64-2, 0.34 M
multiply-adds per image against the shipped CNN's 4.0 M; it takes 0.3-0.5x the CNN's time all
the same, its small layers being bound by memory, not arithmetic (`digits bench uncertain`).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from model.layers import Conv2D, Dense, Flatten, Layer, MaxPool2D, ReLU
from model.losses import softmax

WEIGHTS = Path(__file__).with_name("nondigit.npz")
CHUNK = 1024  # images per forward pass: bounds the im2col buffers


def build(rng: np.random.Generator | None = None) -> list[Layer]:
    """Return the detector's layers, freshly initialised: logits `(n, 2)`, class 1 = not a digit."""
    return [
        Conv2D(1, 8, 5, rng=rng),  # (24, 24, 8)
        MaxPool2D(),  # (12, 12, 8)
        ReLU(),
        Conv2D(8, 16, 5, rng=rng),  # (8, 8, 16)
        MaxPool2D(),  # (4, 4, 16)
        ReLU(),
        Flatten(),  # (256,)
        Dense(256, 64, rng),
        ReLU(),
        Dense(64, 2, rng),
    ]


def forward(layers: list[Layer], pixels: NDArray[np.uint8], training: bool = False) -> Any:
    """Return the logits `(n, 2)` float32 of raw 0-255 pixels `(n, 784)`."""
    X = np.asarray(pixels, dtype=np.float32).reshape(-1, 28, 28, 1) / 255.0
    for layer in layers:
        X = layer.forward(X, training)
    return X


class Detector:
    """Score images for "not a digit" and flag those above the stored threshold."""

    def __init__(self, layers: list[Layer], metadata: dict[str, Any]) -> None:
        self.layers = layers
        self.metadata = metadata
        self.threshold = float(metadata["threshold"])

    def score(self, pixels: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Return the probability `(n,)` float32 that each image `(n, 784)` is not a digit."""
        scores = np.empty(len(pixels), np.float32)
        for start in range(0, len(pixels), CHUNK):
            logits = forward(self.layers, pixels[start : start + CHUNK])
            scores[start : start + CHUNK] = softmax(logits)[:, 1]
        return scores

    def flags(self, pixels: NDArray[np.uint8]) -> NDArray[np.bool_]:
        """Flag images `(n, 784)` uint8 scored above the threshold; bool `(n,)`."""
        return self.score(pixels) > self.threshold


def save(path: Path, layers: list[Layer], metadata: dict[str, Any]) -> None:
    """Write the layers' parameters and the JSON metadata (threshold, training record)."""
    arrays: dict[str, Any] = {
        f"{index}.{name}": array
        for index, layer in enumerate(layers)
        for name, array in layer.params.items()
    }
    np.savez_compressed(path, metadata=np.array(json.dumps(metadata)), **arrays)


def load(path: Path = WEIGHTS) -> Detector:
    """Read a detector written by `save` (no pickle: `allow_pickle=False`)."""
    layers = build()
    with np.load(path, allow_pickle=False) as stored:
        metadata = json.loads(str(stored["metadata"]))
        for index, layer in enumerate(layers):
            for name in layer.params:
                layer.params[name] = np.array(stored[f"{index}.{name}"], np.float32)
    return Detector(layers, metadata)


@cache
def shipped() -> Detector:
    """The detector shipped beside this module, loaded once per process."""
    return load(WEIGHTS)
