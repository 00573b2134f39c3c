"""The network: a stack of layers behind a raw-pixel interface, and its two architectures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from formats.mnist import N_PIXELS
from model.calibration import CALIBRATION
from model.layers import (
    LAYER_TYPES,
    Array,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    MaxPool2D,
    ReLU,
)
from model.losses import softmax

N_CLASSES = 10
# Raw uint8 pixels map to [0, 1]; kept as an affine map so it folds into the first layer.
NORMALISATION = {"scale": 1 / 255, "shift": 0.0}
# Rows per inference chunk, chosen by measurement: big enough for efficient GEMMs, small
# enough that a chunk's activations stay in cache (the CNN's first pooling layer runs ~2.5x
# faster per image on chunks of 64 than of 256).
CHUNK_ROWS = {"mlp": 1024, "cnn": 64}
# A first Dense layer skips blank pixel columns when at most this share of them is used.
SPARSE_COLUMNS = 0.9


class Classifier:
    """What every model offers on raw pixels: calibrated probabilities and labels from logits.

    Subclasses (`Network`, `model.ensemble.Ensemble`) provide `logits` and `metadata`.
    """

    metadata: dict[str, Any]
    version: str | None

    def logits(self, pixels: ArrayLike) -> NDArray[np.float32]:
        """Return the logits `(n, 10)` float32 for raw 0-255 pixels `(n, 784)`, before T."""
        raise NotImplementedError

    @property
    def temperature(self) -> float:
        """The temperature T of `predict_proba` (1.0 until calibrated, model.calibration)."""
        return float(self.metadata.get(CALIBRATION, {}).get("temperature", 1.0))

    @property
    def confidence_threshold(self) -> float | None:
        """Calibrated top probability below which an answer is "uncertain"; None if unset."""
        threshold = self.metadata.get(CALIBRATION, {}).get("confidence_threshold")
        return None if threshold is None else float(threshold)

    def predict_proba(self, pixels: ArrayLike) -> NDArray[np.float32]:
        """Return calibrated probabilities `(n, 10)`: softmax(logits / temperature)."""
        Z = self.logits(pixels)  # (n, 10)
        if self.temperature != 1.0:
            Z *= np.float32(1 / self.temperature)
        return softmax(Z)

    def predict(self, pixels: ArrayLike) -> NDArray[np.int64]:
        """Return the most likely digit `(n,)` for raw 0-255 pixels `(n, 784)`."""
        return self.logits(pixels).argmax(axis=1).astype(np.int64)


class Network(Classifier):
    """Layers plus what is needed to use them on raw pixels and to rebuild them from a file."""

    def __init__(self, layers: Sequence[Layer], metadata: dict[str, Any]) -> None:
        self.layers = list(layers)
        self.metadata = metadata  # JSON-able: architecture, normalisation, training record
        self.version: str | None = None  # content hash, set by `model.load` / `model.save`
        self._plan: list[Layer] | None = None  # folded inference layers, rebuilt after training
        self._check_shapes()
        for layer in self.layers:
            if isinstance(layer, Dense | Conv2D):
                layer.input_grad = False  # the first weight layer has nothing upstream
                break

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.metadata["architecture"]["input_shape"])

    def _check_shapes(self) -> None:
        """Raise ValueError unless the layers chain from `input_shape` to 10 logits."""
        shape = self.input_shape
        if int(np.prod(shape)) != N_PIXELS:
            raise ValueError(f"input shape {shape} does not hold {N_PIXELS} pixels")
        for layer in self.layers:
            shape = layer.output_shape(shape)
        if shape != (N_CLASSES,):
            raise ValueError(f"the layers end in shape {shape}, expected ({N_CLASSES},)")

    def normalise(self, pixels: ArrayLike) -> Array:
        """Map raw pixels `(n, 784)` to float32 network inputs of `input_shape`."""
        norm = self.metadata["normalisation"]
        X = np.asarray(pixels, np.float32) * np.float32(norm["scale"])
        if norm["shift"]:
            X += np.float32(norm["shift"])
        return X.reshape(len(X), *self.input_shape)

    def forward(self, X: Array, training: bool = False) -> Array:
        """Run normalised inputs through every layer; return the logits `(n, 10)`."""
        if training:
            self._plan = None
        for layer in self.layers:
            X = layer.forward(X, training)
        return X

    def backward(self, dZ: Array) -> None:
        """Backpropagate the logit gradient `(n, 10)`, filling every layer's `grads`."""
        for layer in reversed(self.layers):
            dZ = layer.backward(dZ)

    def logits(self, pixels: ArrayLike) -> NDArray[np.float32]:
        """Return the logits `(n, 10)` float32 for raw 0-255 pixels `(n, 784)`, before T."""
        pixels = _as_pixels(pixels)
        plan = self._inference_plan()
        chunk = CHUNK_ROWS.get(self.metadata["architecture"]["name"], 512)
        Z = np.empty((len(pixels), N_CLASSES), np.float32)  # (n, 10)
        dense_first = isinstance(plan[0], Dense)
        for start in range(0, len(pixels), chunk):
            raw = pixels[start : start + chunk]
            if dense_first:
                X, layers = first_dense(raw, plan[0]), plan[1:]
            else:
                X, layers = raw.astype(np.float32).reshape(len(raw), *self.input_shape), plan
            for layer in layers:
                X = layer.forward(X)
            Z[start : start + chunk] = X
        return Z

    def state(self) -> dict[str, Array]:
        """Return every parameter and buffer, keyed `<layer index>.<name>`."""
        return {
            f"{index}.{name}": array
            for index, layer in enumerate(self.layers)
            for name, array in (layer.params | layer.buffers).items()
        }

    def load_state(self, arrays: dict[str, Array]) -> None:
        """Copy arrays shaped like `state()` into the layers."""
        for index, layer in enumerate(self.layers):
            for store in (layer.params, layer.buffers):
                for name in store:
                    store[name] = np.array(arrays[f"{index}.{name}"], np.float32)
        self._plan = None

    def _inference_plan(self) -> list[Layer]:
        if self._plan is None:
            self._plan = fold(self.layers, self.metadata["normalisation"])
        return self._plan


def first_dense(raw: NDArray[Any], layer: Layer) -> Array:
    """Apply a network's first (folded) Dense layer to raw pixels `(n, 784)`.

    Pixels blank in every image of the chunk are left out of the GEMM: a blank pixel adds
    nothing (0 * its weights), so the result is the full product's. Digits leave the
    borders blank: a quarter of the columns of 1,024 MNIST images, ~15% of an MLP's
    multiply-adds (measured: ~8% of its inference time, the gathers cost the rest).
    """
    W, b = layer.params["W"], layer.params["b"]
    used = np.flatnonzero(raw.any(axis=0))
    if len(used) > SPARSE_COLUMNS * raw.shape[1]:  # gathering would cost more than it saves
        X = raw.astype(np.float32) @ W
    else:
        X = raw[:, used].astype(np.float32) @ W[used]
    X += b
    return X


def _as_pixels(pixels: ArrayLike) -> NDArray[Any]:
    array = np.asarray(pixels)
    if array.ndim != 2 or array.shape[1] != N_PIXELS:
        raise ValueError(f"pixels must have shape (n, {N_PIXELS}), got {array.shape}")
    return array


def fold(layers: Sequence[Layer], normalisation: dict[str, float]) -> list[Layer]:
    """Return inference-only layers: input scaling and BatchNorm folded into weights.

    The raw-pixel affine map goes into the first Dense/Conv2D (`(x*s + t) @ W =
    x @ (s*W) + t*sum(W)`; exact for a convolution only without padding), each
    BatchNorm into the Dense/Conv2D before it, and Dropout disappears.
    """
    scale: float | None = normalisation["scale"]
    shift = normalisation["shift"]
    plan: list[Layer] = []
    for layer in layers:
        if isinstance(layer, Dropout):
            continue
        if isinstance(layer, BatchNorm) and plan and isinstance(plan[-1], Dense | Conv2D):
            bn_scale, bn_shift = layer.scale_shift()
            W, b = plan[-1].params["W"], plan[-1].params["b"]
            plan[-1].params = {"W": W * bn_scale, "b": b * bn_scale + bn_shift}
            continue
        copy = rebuild([layer.spec()])[0]
        copy.params = {name: value.copy() for name, value in layer.params.items()}
        copy.buffers = {name: value.copy() for name, value in layer.buffers.items()}
        if isinstance(copy, Dense | Conv2D) and scale is not None:
            if shift and isinstance(copy, Conv2D) and copy.padding:
                raise ValueError("cannot fold a shifted normalisation into a padded Conv2D")
            W, b = copy.params["W"], copy.params["b"]
            copy.params = {"W": W * np.float32(scale), "b": b + np.float32(shift) * W.sum(0)}
            scale = None
        plan.append(copy)
    if scale is not None:
        raise ValueError("network has no Dense or Conv2D layer to fold the input scaling into")
    return plan


def from_metadata(metadata: dict[str, Any]) -> Network:
    """Rebuild a network (weights zero) from the metadata of its weights file."""
    return Network(rebuild(metadata["architecture"]["layers"]), metadata)


def rebuild(specs: Sequence[dict[str, Any]], rng: np.random.Generator | None = None) -> list[Layer]:
    """Instantiate layers from their `spec()` dicts."""
    layers = []
    for spec in specs:
        kwargs = {key: value for key, value in spec.items() if key != "type"}
        cls = LAYER_TYPES[spec["type"]]
        if cls in (Dense, Conv2D, Dropout) and rng is not None:
            kwargs["rng"] = rng
        layers.append(cls(**kwargs))
    return layers


def mlp_layers(rng: np.random.Generator) -> list[Layer]:
    """784-512-512-10 with BatchNorm and dropout: the fast architecture.

    Measured on the validation split, 800-unit layers gained 0.04 points for 1.4x the time.
    """
    return [
        Dense(N_PIXELS, 512, rng),
        BatchNorm(512),
        ReLU(),
        Dropout(0.2, rng.spawn(1)[0]),
        Dense(512, 512, rng),
        BatchNorm(512),
        ReLU(),
        Dropout(0.2, rng.spawn(1)[0]),
        Dense(512, N_CLASSES, rng),
    ]


def cnn_layers(rng: np.random.Generator) -> list[Layer]:
    """32C5-pool-BN-64C5-pool-BN-256-10: the accurate architecture.

    Pooling comes straight after each convolution so BatchNorm and ReLU work on 4x
    fewer values; ReLU commutes with max, so only the BatchNorm statistics differ.
    """
    return [
        Conv2D(1, 32, 5, rng=rng),  # (24, 24, 32)
        MaxPool2D(),  # (12, 12, 32)
        BatchNorm(32),
        ReLU(),
        Conv2D(32, 64, 5, rng=rng),  # (8, 8, 64)
        MaxPool2D(),  # (4, 4, 64)
        BatchNorm(64),
        ReLU(),
        Flatten(),  # (1024,)
        Dense(1024, 256, rng),
        BatchNorm(256),
        ReLU(),
        Dropout(0.4, rng.spawn(1)[0]),
        Dense(256, N_CLASSES, rng),
    ]


ARCHITECTURES = {
    "mlp": ((N_PIXELS,), mlp_layers),
    "cnn": ((28, 28, 1), cnn_layers),
}


def build(arch: str, seed: int = 0) -> Network:
    """Return an untrained, He-initialised network; the same seed gives the same weights."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(ARCHITECTURES)}")
    input_shape, make_layers = ARCHITECTURES[arch]
    layers = make_layers(np.random.default_rng(seed))
    metadata = {
        "architecture": {
            "name": arch,
            "input_shape": list(input_shape),
            "layers": [layer.spec() for layer in layers],
        },
        "normalisation": dict(NORMALISATION),
        "seed": seed,
    }
    return Network(layers, metadata)
