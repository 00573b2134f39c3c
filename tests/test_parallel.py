"""Batch parts in threads (model.parallel): the same numbers as one pass, BLAS left as found."""

from __future__ import annotations

import threading
from contextlib import nullcontext

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits
from tolerances import PROBABILITY_RTOL

import model
from model import parallel
from model.layers import Conv2D, MaxPool2D
from model.trainer import threads_for


def blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def run_layer(layer: Conv2D | MaxPool2D, X: np.ndarray, dY: np.ndarray) -> list[np.ndarray]:
    Y = layer.forward(X.copy(), training=True)
    dX = layer.backward(dY.copy())
    return [Y, dX, *(layer.grads[name] for name in sorted(layer.grads))]


@pytest.mark.parametrize(
    ("make", "x_shape", "y_shape"),
    [
        (
            lambda: Conv2D(3, 8, 5, padding=2, rng=np.random.default_rng(0)),
            (37, 12, 12, 3),
            (37, 12, 12, 8),
        ),
        (lambda: Conv2D(1, 4, 5, rng=np.random.default_rng(0)), (40, 10, 10, 1), (40, 6, 6, 4)),
        (MaxPool2D, (33, 8, 8, 5), (33, 4, 4, 5)),
    ],
)
def test_parts_in_threads_give_what_one_pass_gives(make, x_shape, y_shape) -> None:
    rng = np.random.default_rng(1)
    X = rng.standard_normal(x_shape).astype(np.float32)
    dY = rng.standard_normal(y_shape).astype(np.float32)
    alone = run_layer(make(), X, dY)
    seen: set[str] = set()
    original = parallel.parts

    def watched(n: int, count: int) -> list[slice]:
        seen.add(threading.current_thread().name)
        return original(n, count)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parallel, "parts", watched)
        with parallel.use(3):
            split = run_layer(make(), X, dY)
    assert seen  # the batch was split (3 parts of >= 8 examples each)
    for one, many in zip(alone, split, strict=True):
        # Weight gradients are summed part by part: float32 rounding of sums over the batch,
        # bounded like the network's sums (tests/tolerances.py); near-zero entries are
        # compared against the largest one, the scale their rounding errors have.
        np.testing.assert_allclose(
            many, one, rtol=PROBABILITY_RTOL, atol=PROBABILITY_RTOL * 1e-2 * np.abs(one).max()
        )


def test_work_runs_in_the_pool_only_inside_use() -> None:
    names: list[str] = []

    def work(rows: slice) -> int:
        names.append(threading.current_thread().name)
        return rows.stop - rows.start

    assert parallel.over_batch(64, work) == [64]
    assert names == [threading.current_thread().name]
    names.clear()
    with parallel.use(2):
        assert parallel.over_batch(64, work) == [32, 32]
        assert parallel.over_batch(12, work) == [12]  # too few examples to split
    assert all(name.startswith("batch-part") for name in names[:2])


def test_use_holds_blas_to_one_thread_and_gives_back_what_it_found() -> None:
    with threadpool_limits(limits=2):
        before = blas_threads()
        with parallel.use(2):
            assert set(blas_threads()) == {1}
            with parallel.use(3):
                assert parallel.over_batch(48, lambda rows: rows) == parallel.parts(48, 3)
            with parallel.use(1):
                assert parallel.over_batch(48, lambda rows: rows) == [slice(0, 48)]
            assert parallel.over_batch(48, lambda rows: rows) == parallel.parts(48, 2)
        assert blas_threads() == before
    assert parallel.parts(10, 3) == [slice(0, 3), slice(3, 6), slice(6, 10)]


def test_only_convolutional_networks_train_in_parts() -> None:
    with threadpool_limits(limits=2):
        assert isinstance(threads_for(model.build("mlp")), nullcontext)  # BLAS's own threads
        with threads_for(model.build("mlp"), 1):
            assert set(blas_threads()) == {1}
            assert parallel.over_batch(64, lambda rows: rows) == [slice(0, 64)]
        with threads_for(model.build("cnn"), 2):
            assert set(blas_threads()) == {1}
            assert parallel.over_batch(64, lambda rows: rows) == parallel.parts(64, 2)
