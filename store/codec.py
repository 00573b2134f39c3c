"""Arrays as raw bytes in Redis: pixels, labels and flags as uint8, probabilities as float32."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from formats.mnist import N_PIXELS

N_CLASSES = 10


def pixels_to_bytes(pixels: NDArray[np.uint8]) -> bytes:
    """Encode `(n, 784)` uint8 pixels as 784 bytes per image."""
    return np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()


def pixels_from_bytes(data: bytes) -> NDArray[np.uint8]:
    """Decode 784 bytes per image into a read-only `(n, 784)` uint8 view."""
    return np.frombuffer(data, dtype=np.uint8).reshape(-1, N_PIXELS)


def labels_to_bytes(labels: NDArray[np.integer]) -> bytes:
    """Encode labels 0-9 as one byte each."""
    return np.asarray(labels, dtype=np.uint8).tobytes()


def labels_from_bytes(data: bytes) -> NDArray[np.uint8]:
    """Decode one byte per label."""
    return np.frombuffer(data, dtype=np.uint8)


def probabilities_to_bytes(probabilities: NDArray[np.floating]) -> bytes:
    """Encode `(n, 10)` probabilities as float32."""
    return np.ascontiguousarray(probabilities, dtype=np.float32).tobytes()


def probabilities_from_bytes(data: bytes) -> NDArray[np.float32]:
    """Decode float32 probabilities into `(n, 10)`."""
    return np.frombuffer(data, dtype=np.float32).reshape(-1, N_CLASSES)


def flags_to_bytes(flags: NDArray[np.bool_]) -> bytes:
    """Encode booleans as one byte each (0 or 1)."""
    return np.asarray(flags, dtype=np.uint8).tobytes()


def flags_from_bytes(data: bytes) -> NDArray[np.bool_]:
    """Decode one byte per boolean."""
    return np.frombuffer(data, dtype=np.uint8).astype(bool)


def confidences_to_bytes(confidences: NDArray[np.floating]) -> bytes:
    """Encode `(n,)` probabilities as float32."""
    return np.ascontiguousarray(confidences, dtype=np.float32).tobytes()


def confidences_from_bytes(data: bytes) -> NDArray[np.float32]:
    """Decode float32 probabilities into `(n,)`."""
    return np.frombuffer(data, dtype=np.float32)


def raw(reply: bytes | str) -> bytes:
    """Return a Redis reply as bytes (our clients never decode, but the types allow it)."""
    return reply if isinstance(reply, bytes) else reply.encode()


def text(reply: bytes | str) -> str:
    """Return a Redis reply as text."""
    return reply.decode() if isinstance(reply, bytes) else reply
