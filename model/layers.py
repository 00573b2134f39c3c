"""Layers with `forward`/`backward`; parameters and their gradients live in plain dicts.

Images are NHWC: `(n, height, width, channels)`, so a convolution is one GEMM whose rows
are output pixels, `patches @ W + b`, the same shape of computation as `Dense`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from model import parallel

Array = NDArray[np.float32]


class Layer:
    """Base layer: no parameters, identity `spec`; subclasses override forward/backward."""

    def __init__(self) -> None:
        self.params: dict[str, Array] = {}  # learned by the optimizer
        self.grads: dict[str, Array] = {}  # same keys as params, filled by backward
        self.buffers: dict[str, Array] = {}  # saved with the weights, not learned

    def spec(self) -> dict[str, Any]:
        """Return the JSON description that rebuilds this layer."""
        return {"type": type(self).__name__}

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Return the per-example output shape for a per-example input shape."""
        return shape

    def forward(self, X: Array, training: bool = False) -> Array:
        raise NotImplementedError

    def backward(self, dY: Array) -> Array:
        raise NotImplementedError


def _expect(condition: bool, layer: Layer, shape: tuple[int, ...]) -> None:
    if not condition:
        raise ValueError(f"{layer.spec()} cannot take inputs of shape {shape}")


def column_sums(X: Array) -> Array:
    """Sum a `(rows, features)` array over its rows.

    A GEMV with a ones vector: several times faster than `X.sum(axis=0)`, which
    reduces a tall array along its strided axis.
    """
    return np.ones(len(X), X.dtype) @ X


def sum_of(arrays: Iterable[Array]) -> Array:
    """Add up the partial results of the parts of a batch (model.parallel)."""
    total, *rest = arrays
    for array in rest:
        total += array
    return total


def he_normal(rng: np.random.Generator | None, shape: tuple[int, ...], fan_in: int) -> Array:
    """Draw He-initialised weights: N(0, 2 / fan_in), right for ReLU networks.

    Without a generator, return zeros: placeholders for weights about to be loaded,
    which costs nothing until they are filled.
    """
    if rng is None:
        return np.zeros(shape, np.float32)
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


class Dense(Layer):
    """Fully connected layer: `X @ W + b`."""

    def __init__(self, n_in: int, n_out: int, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.params = {
            "W": he_normal(rng, (n_in, n_out), n_in),  # (n_in, n_out)
            "b": np.zeros(n_out, np.float32),  # (n_out,)
        }
        self.input_grad = True  # the first layer skips dX: nothing upstream needs it
        self.X: Array | None = None

    def spec(self) -> dict[str, Any]:
        n_in, n_out = self.params["W"].shape
        return {"type": "Dense", "n_in": n_in, "n_out": n_out}

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        _expect(shape == (self.params["W"].shape[0],), self, shape)
        return (self.params["W"].shape[1],)

    def forward(self, X: Array, training: bool = False) -> Array:
        self.X = X if training else None  # (n, n_in)
        Y = X @ self.params["W"]  # (n, n_out)
        Y += self.params["b"]
        return Y

    def backward(self, dY: Array) -> Array:
        assert self.X is not None, "backward needs a training forward first"
        self.grads = {"W": self.X.T @ dY, "b": column_sums(dY)}
        return dY @ self.params["W"].T if self.input_grad else dY[:, :0]


class ReLU(Layer):
    """Rectifier, max(x, 0), applied in place: the input is a fresh activation."""

    def __init__(self) -> None:
        super().__init__()
        self.mask: NDArray[np.bool_] | None = None

    def forward(self, X: Array, training: bool = False) -> Array:
        if training:
            self.mask = X > 0
        return np.maximum(X, 0, out=X)

    def backward(self, dY: Array) -> Array:
        assert self.mask is not None, "backward needs a training forward first"
        dY *= self.mask
        return dY


class Flatten(Layer):
    """Reshape `(n, ...)` to `(n, features)`."""

    def __init__(self) -> None:
        super().__init__()
        self.shape: tuple[int, ...] = ()

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (int(np.prod(shape)),)

    def forward(self, X: Array, training: bool = False) -> Array:
        self.shape = X.shape
        return X.reshape(len(X), -1)

    def backward(self, dY: Array) -> Array:
        return dY.reshape(self.shape)


class Dropout(Layer):
    """Inverted dropout: zero a fraction `rate` of activations while training, scale the rest."""

    def __init__(self, rate: float, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.rate = rate
        self.rng = rng or np.random.default_rng(0)
        self.mask: NDArray[Any] | None = None

    def spec(self) -> dict[str, Any]:
        return {"type": "Dropout", "rate": self.rate}

    def forward(self, X: Array, training: bool = False) -> Array:
        if not training or self.rate == 0:
            return X
        keep = np.float32(1 - self.rate)
        mask = (self.rng.random(X.shape, dtype=np.float32) < keep) / keep
        self.mask = mask
        X *= mask
        return X

    def backward(self, dY: Array) -> Array:
        if self.rate == 0:
            return dY
        assert self.mask is not None, "backward needs a training forward first"
        dY *= self.mask
        return dY


class BatchNorm(Layer):
    """Normalise the last axis with batch statistics while training, running ones after.

    Works after Dense `(n, features)` and after Conv2D `(n, h, w, channels)` alike, since
    both keep the features in the last axis.
    """

    def __init__(self, n_features: int, momentum: float = 0.9, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum = momentum
        self.eps = eps
        self.params = {
            "gamma": np.ones(n_features, np.float32),
            "beta": np.zeros(n_features, np.float32),
        }
        self.buffers = {
            "mean": np.zeros(n_features, np.float32),
            "var": np.ones(n_features, np.float32),
        }
        self.X_hat: Array | None = None
        self.inv_std: NDArray[Any] | None = None

    def spec(self) -> dict[str, Any]:
        return {
            "type": "BatchNorm",
            "n_features": len(self.params["gamma"]),
            "momentum": self.momentum,
            "eps": self.eps,
        }

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        _expect(len(shape) > 0 and shape[-1] == len(self.params["gamma"]), self, shape)
        return shape

    def scale_shift(self) -> tuple[Array, Array]:
        """Return the inference-time affine map `X * scale + shift` per feature."""
        scale = self.params["gamma"] / np.sqrt(self.buffers["var"] + self.eps)
        return scale, self.params["beta"] - self.buffers["mean"] * scale

    def forward(self, X: Array, training: bool = False) -> Array:
        if not training:
            scale, shift = self.scale_shift()
            X *= scale
            X += shift
            return X
        flat = X.reshape(-1, X.shape[-1])  # (rows, features)
        mean = column_sums(flat) / len(flat)
        flat -= mean
        var = column_sums(np.square(flat)) / len(flat)
        m = self.momentum
        self.buffers["mean"] = (m * self.buffers["mean"] + (1 - m) * mean).astype(np.float32)
        self.buffers["var"] = (m * self.buffers["var"] + (1 - m) * var).astype(np.float32)
        inv_std = 1 / np.sqrt(var + self.eps)
        self.inv_std = inv_std
        flat *= inv_std
        self.X_hat = X  # (..., features), normalised in place
        return X * self.params["gamma"] + self.params["beta"]

    def backward(self, dY: Array) -> Array:
        assert self.X_hat is not None and self.inv_std is not None, "needs a training forward"
        flat_dY = dY.reshape(-1, dY.shape[-1])  # (rows, features)
        flat_hat = self.X_hat.reshape(-1, dY.shape[-1])
        dbeta = column_sums(flat_dY)
        dgamma = column_sums(flat_dY * flat_hat)
        self.grads = {"gamma": dgamma, "beta": dbeta}
        # dX = gamma / std * (dY - mean(dY) - X_hat * mean(dY * X_hat))
        rows = len(flat_dY)
        flat_hat *= dgamma / rows
        flat_hat -= flat_dY
        flat_hat += dbeta / rows
        flat_hat *= -(self.params["gamma"] * self.inv_std)
        self.X_hat = None
        return flat_hat.reshape(dY.shape)


class Conv2D(Layer):
    """2-D convolution, stride 1, NHWC, as one GEMM over im2col patches.

    W has shape `(kh * kw * c_in, c_out)`, rows ordered (kernel row, kernel column,
    input channel) so each patch row is built from contiguous channel vectors.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        padding: int = 0,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        fan_in = kernel * kernel * c_in
        self.kernel = kernel
        self.padding = padding
        self.c_in = c_in
        self.params = {
            "W": he_normal(rng, (fan_in, c_out), fan_in),  # (k*k*c_in, c_out)
            "b": np.zeros(c_out, np.float32),  # (c_out,)
        }
        self.input_grad = True  # the first layer skips dX: nothing upstream needs it
        self.patches: Array | None = None
        self.in_shape: tuple[int, ...] = ()

    def spec(self) -> dict[str, Any]:
        return {
            "type": "Conv2D",
            "c_in": self.c_in,
            "c_out": self.params["W"].shape[1],
            "kernel": self.kernel,
            "padding": self.padding,
        }

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        _expect(len(shape) == 3 and shape[2] == self.c_in, self, shape)
        h, w, _ = shape
        _expect(min(h, w) + 2 * self.padding >= self.kernel, self, shape)
        grow = 2 * self.padding - self.kernel + 1
        return (h + grow, w + grow, self.params["W"].shape[1])

    def forward(self, X: Array, training: bool = False) -> Array:
        n, h, w, c = X.shape  # (n, h, w, c_in)
        k, p = self.kernel, self.padding
        if p:
            X = np.pad(X, ((0, 0), (p, p), (p, p), (0, 0)))
        self.in_shape = X.shape
        W, b = self.params["W"], self.params["b"]
        ho, wo = X.shape[1] - k + 1, X.shape[2] - k + 1
        dtype = np.result_type(X, W)
        Y = np.empty((n, ho, wo, W.shape[1]), dtype)  # (n, ho, wo, c_out)
        patches = np.empty((n, ho, wo, k, k, c), X.dtype) if training else None

        def part(rows: slice) -> None:
            # One sequential copy of a strided view; assigning 25 shifted slices into the
            # patch buffer instead is ~5x slower, each pass scattering across the whole buffer.
            windows = sliding_window_view(X[rows], (k, k), axis=(1, 2))  # (m, ho, wo, c, k, k)
            view = windows.transpose(0, 1, 2, 4, 5, 3)  # (m, ho, wo, k, k, c_in)
            own = patches[rows] if patches is not None else np.empty(view.shape, X.dtype)
            np.copyto(own, view)
            out = Y[rows].reshape(-1, W.shape[1])  # (m * ho * wo, c_out), a view of Y
            np.matmul(own.reshape(len(out), k * k * c), W, out=out)
            out += b

        parallel.over_batch(n, part)
        self.patches = patches
        return Y

    def backward(self, dY: Array) -> Array:
        assert self.patches is not None, "backward needs a training forward first"
        patches, self.patches = self.patches, None  # the largest array of the step
        n, ho, wo, c_out = dY.shape
        k, p, c = self.kernel, self.padding, self.c_in
        W = self.params["W"]
        dX = np.zeros(self.in_shape, dY.dtype) if self.input_grad else None

        def part(rows: slice) -> tuple[Array, Array]:
            dY2 = dY[rows].reshape(-1, c_out)  # (m * ho * wo, c_out)
            grads = (patches[rows].reshape(len(dY2), -1).T @ dY2, column_sums(dY2))
            if dX is not None:
                # One small GEMM per kernel offset, accumulated into the shifted input
                # window: faster than materialising the full patch gradient, which would
                # not fit in cache.
                own, m = dX[rows], rows.stop - rows.start
                for i in range(k):
                    for j in range(k):
                        offset = slice((i * k + j) * c, (i * k + j + 1) * c)
                        own[:, i : i + ho, j : j + wo, :] += (dY2 @ W[offset].T).reshape(
                            m, ho, wo, c
                        )
            return grads

        found = parallel.over_batch(n, part)
        self.grads = {"W": sum_of(grad for grad, _ in found), "b": sum_of(b for _, b in found)}
        if dX is None:
            return dY[:, :0]
        return dX[:, p : dX.shape[1] - p, p : dX.shape[2] - p, :] if p else dX


class MaxPool2D(Layer):
    """2x2 max pooling with stride 2 on NHWC; the gradient goes to the first maximum."""

    def __init__(self) -> None:
        super().__init__()
        self.masks: list[NDArray[np.bool_]] = []
        self.in_shape: tuple[int, ...] = ()

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        _expect(len(shape) == 3 and shape[0] % 2 == 0 and shape[1] % 2 == 0, self, shape)
        h, w, c = shape
        return (h // 2, w // 2, c)

    def forward(self, X: Array, training: bool = False) -> Array:
        n, h, w, c = X.shape
        if h % 2 or w % 2:
            raise ValueError(f"MaxPool2D needs even height and width, got {h}x{w}")
        Y = np.empty((n, h // 2, w // 2, c), X.dtype)
        masks = np.empty((4, *Y.shape), bool) if training else None

        def part(rows: slice) -> None:
            corners = [X[rows, a::2, b::2, :] for a in (0, 1) for b in (0, 1)]  # 4 x (m, ...)
            out = Y[rows]
            np.maximum(corners[0], corners[1], out=out)
            np.maximum(out, np.maximum(corners[2], corners[3]), out=out)
            if masks is not None:
                taken = np.zeros(out.shape, bool)
                for corner, mask in zip(corners, masks[:, rows], strict=True):
                    np.equal(corner, out, out=mask)
                    mask &= ~taken
                    taken |= mask

        parallel.over_batch(n, part)
        if masks is not None:
            self.in_shape, self.masks = X.shape, list(masks)
        return Y

    def backward(self, dY: Array) -> Array:
        dX = np.empty(self.in_shape, dY.dtype)

        def part(rows: slice) -> None:
            for (a, b), mask in zip(((0, 0), (0, 1), (1, 0), (1, 1)), self.masks, strict=True):
                np.multiply(dY[rows], mask[rows], out=dX[rows, a::2, b::2, :])

        parallel.over_batch(len(dY), part)
        return dX


LAYER_TYPES: dict[str, type[Layer]] = {
    cls.__name__: cls for cls in (Dense, ReLU, Flatten, Dropout, BatchNorm, Conv2D, MaxPool2D)
}
