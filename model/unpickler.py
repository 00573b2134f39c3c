"""A pickle reader that can rebuild NumPy arrays and nothing else."""

from __future__ import annotations

import pickle
from typing import Any, Protocol

import numpy as np
from numpy._core.multiarray import _reconstruct

# Every global a pickled ndarray needs; any other global (os.system, builtins.eval, ...)
# is refused before it can be called. NumPy 1.x pickles name `numpy.core`, NumPy 2.x
# pickles name `numpy._core`; both map to the same function.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class ByteStream(Protocol):
    """What pickle needs from a binary file."""

    def read(self, size: int, /) -> bytes: ...

    def readline(self) -> bytes: ...


class ArrayUnpickler(pickle.Unpickler):
    """Unpickle plain ndarrays (and tuples/lists of them); refuse every other global."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: only NumPy arrays are allowed"
            ) from None


def load_arrays(stream: ByteStream) -> Any:
    """Read one pickle of NumPy arrays from a binary stream, refusing any other object."""
    # latin1 is how NumPy itself reads Python 2 pickles: str payloads become raw bytes.
    return ArrayUnpickler(stream, encoding="latin1").load()
