"""Backpressure: refuse new work while a queue is full, instead of queueing without bound.

A queue's depth is counted in jobs (one LLEN): a /v1/predict or /v1/jobs request is one job
(or rides in a micro-batch job), a CSV batch is one job per chunk of DIGITS_CHUNK_ROWS rows.
Work is refused with 429 `queue_full` and a Retry-After while the queue it would join holds
DIGITS_MAX_QUEUE jobs or more; a batch is admitted whole when its queue is below the bound.
Work already queued carries a queue TTL (`dispatch`): what nobody waits for any more is
dropped unrun instead of delaying everyone behind it.
"""

from __future__ import annotations

from rq import Queue

from api.errors import ApiError

RETRY_AFTER_SECONDS = 2  # a full queue drains in seconds: workers take hundreds of jobs a second


def admit(queue: Queue, limit: int) -> None:
    """Raise 429 when `queue` holds `limit` jobs or more; a limit of 0 admits everything."""
    if limit <= 0:
        return
    depth = queue.count
    if depth >= limit:
        raise ApiError(
            429,
            "queue_full",
            f"the {queue.name} queue holds {depth} jobs, its limit is {limit}; retry later",
            retry_after=RETRY_AFTER_SECONDS,
        )
