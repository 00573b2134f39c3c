"""Backpressure: refuse new work that cannot be done soon, instead of queueing without bound.

A queue's depth is counted in jobs (one LLEN): a /v1/predict or /v1/jobs request is one job
(or rides in a micro-batch job), a CSV batch is one job per chunk of DIGITS_CHUNK_ROWS rows.
Work is refused with 429 `queue_full` and a Retry-After while the queue it would join holds
DIGITS_MAX_QUEUE jobs or more; a batch is admitted whole when its queue is below the bound.
Work already queued carries a queue TTL (`dispatch`): what nobody waits for any more is
dropped unrun instead of delaying everyone behind it.

A caller who waits for the answer (`POST /v1/predict`) is told at once, 503 `no_worker`, when
no worker is alive to give one; work that is only queued (/v1/jobs, batches) is still taken:
it is durable and runs when a worker comes.
"""

from __future__ import annotations

import threading
import time

from rq import Queue

from api.errors import ApiError
from store import liveness

RETRY_AFTER_SECONDS = 2  # a full queue drains in seconds: workers take hundreds of jobs a second
NO_WORKER_RETRY_AFTER = 5  # seconds: a supervisor replaces a dead worker within about that
# A live worker seen this recently is trusted without asking Redis again: two round trips
# per predict otherwise. A worker dying inside this window is covered by the queue TTL.
LIVE_WORKER_CACHE = 1.0
# A queue depth read this recently (an LLEN, or the one sent along with this process's last
# enqueue) admits work without asking Redis again while it leaves room: one round trip per
# request otherwise. Only other processes' work can be missed meanwhile; a full queue is
# always read again, so a drained one takes work at once.
DEPTH_FRESH = 0.1


def admit(queue: Queue, limit: int) -> None:
    """Raise 429 when `queue` holds `limit` jobs or more; a limit of 0 admits everything."""
    if limit > 0:
        _refuse_if_full(queue, queue.count, limit)


def _refuse_if_full(queue: Queue, depth: int, limit: int) -> None:
    if depth >= limit:
        raise ApiError(
            429,
            "queue_full",
            f"the {queue.name} queue holds {depth} jobs, its limit is {limit}; retry later",
            retry_after=RETRY_AFTER_SECONDS,
        )


class QueueDepth:
    """A queue's depth as this process last saw it, read again when stale or at the limit."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self._seen = (0, -float("inf"))  # (depth, monotonic time it was read)

    def admit(self, limit: int) -> None:
        """Raise 429 when the queue holds `limit` jobs or more; a limit of 0 admits everything."""
        if limit <= 0:
            return
        depth, seen_at = self._seen
        if depth >= limit or time.monotonic() - seen_at > DEPTH_FRESH:
            depth = self.queue.count
            self.saw(depth)
        _refuse_if_full(self.queue, depth, limit)

    def saw(self, depth: int) -> None:
        """Remember a depth just read (an LLEN sent along with an enqueue, say)."""
        self._seen = (depth, time.monotonic())


class WorkerCheck:
    """Say whether a worker is alive on a queue, asking Redis at most once a second when one is."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self._seen_alive = -float("inf")  # monotonic time a live worker was last seen
        self._lock = threading.Lock()

    def require(self) -> None:
        """Raise 503 `no_worker` with a Retry-After when no worker beats on the queue."""
        if time.monotonic() - self._seen_alive < LIVE_WORKER_CACHE:
            return
        if liveness.live_workers(self.queue) == 0:
            raise ApiError(
                503,
                "no_worker",
                "no worker is alive to answer now (none has a current heartbeat); "
                "retry later, or queue the work with POST /v1/jobs to have it run "
                "when a worker starts (digits worker)",
                retry_after=NO_WORKER_RETRY_AFTER,
            )
        with self._lock:
            self._seen_alive = time.monotonic()


def waiting(queue: Queue) -> str:
    """Say why work queued on `queue` has not started: no live worker, or busy ones."""
    return not_started(liveness.live_workers(queue))


def not_started(workers: int) -> str:
    """Say why queued work has not started, given the live workers on its queue."""
    if workers == 0:
        return "no worker has taken it yet: none is alive; it runs when one starts (digits worker)"
    return f"no worker has taken it yet: {workers} alive, busy with earlier work"
