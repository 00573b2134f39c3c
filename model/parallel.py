"""Per-example work split over cores: parts of a batch in threads of one pool.

A convolution's patch copies, its input gradient's shifted sums and pooling are memory-bound
NumPy loops that use one core however many BLAS threads there are; on two cores they took
half of a CNN training step. Inside `use(n)` each such layer runs on `n` parts of its
batch, one thread each (NumPy releases the GIL in its loops), and BLAS is held to one
thread: the parts' GEMMs run side by side, and no idle BLAS thread spins on a core a part
needs (OpenBLAS's threads busy-wait after each call: measured 40% slower steps when both
pools were live).

Outside `use`, everything runs inline, in the caller's thread: a service worker predicts
exactly as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

from threadpoolctl import threadpool_limits

T = TypeVar("T")

MIN_ROWS = 8  # examples per part below which splitting costs more than it saves

_state = threading.local()  # .pool and .size: the innermost `use` block's, if any


@contextmanager
def use(threads: int) -> Iterator[None]:
    """Split batch work over `threads` threads until the block ends; BLAS gets one thread."""
    outer = getattr(_state, "pool", None), getattr(_state, "size", 1)
    pool = ThreadPoolExecutor(threads, thread_name_prefix="batch-part") if threads > 1 else None
    _state.pool, _state.size = pool, threads
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        _state.pool, _state.size = outer
        if pool is not None:
            pool.shutdown()


def parts(n: int, count: int) -> list[slice]:
    """Split `range(n)` into `count` contiguous slices of nearly equal size."""
    return [slice(n * i // count, n * (i + 1) // count) for i in range(count)]


def over_batch(n: int, work: Callable[[slice], T]) -> list[T]:
    """Run `work` on parts of a batch of `n` examples, one thread each; return its results.

    `work` must only write its own slice of any array the parts share.
    """
    pool: ThreadPoolExecutor | None = getattr(_state, "pool", None)
    count = min(_state.size, n // MIN_ROWS) if pool is not None else 1
    if pool is None or count <= 1:
        return [work(slice(0, n))]
    return list(pool.map(work, parts(n, count)))
