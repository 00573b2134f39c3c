"""Job results in Redis: written by a worker, read (or waited for) by the API.

A result is one value, `<model version>:<float32 probabilities><uint8 uncertain flags>`
(40 + 1 bytes per image) or `error:<message>`, stored under the job's result key and
also pushed to its notify list, so a caller blocked on that list gets the answer in the
same round trip that wakes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from redis import Redis
from redis.client import Pipeline

from store import codec, keys

ERROR = b"error"
# A caller starts waiting right after queueing the job; a push nobody took within this
# many seconds is for a caller that has given up.
NOTIFY_TTL = 60


@dataclass(frozen=True)
class Result:
    """What a finished job produced: labels, probabilities and flags, or an error message."""

    labels: NDArray[np.int64] | None = None
    probabilities: NDArray[np.float32] | None = None
    uncertain: NDArray[np.bool_] | None = None
    model_version: str | None = None
    error: str | None = None

    @property
    def confidence(self) -> NDArray[np.float32] | None:
        """The calibrated top probability of each image `(n,)`."""
        return None if self.probabilities is None else self.probabilities.max(axis=1)


def write(
    pipe: Pipeline,
    job_id: str,
    probabilities: NDArray[np.floating],
    uncertain: NDArray[np.bool_],
    model_version: str,
    ttl: int,
) -> None:
    """Queue on `pipe` the result of a job and the wake-up of whoever waits for it."""
    payload = (
        model_version.encode()
        + b":"
        + codec.probabilities_to_bytes(probabilities)
        + codec.flags_to_bytes(uncertain)
    )
    _store(pipe, job_id, payload, ttl)


def write_error(connection: Redis, job_id: str, message: str, ttl: int) -> None:
    """Record that a job failed, and wake whoever waits for it."""
    pipe = connection.pipeline()
    _store(pipe, job_id, ERROR + b":" + message.encode(), ttl)
    pipe.execute()


def _store(pipe: Pipeline, job_id: str, payload: bytes, ttl: int) -> None:
    pipe.set(keys.job_result(job_id), payload, ex=ttl)
    pipe.rpush(keys.job_notify(job_id), payload)
    pipe.expire(keys.job_notify(job_id), NOTIFY_TTL)


def wait(connection: Redis, job_id: str, timeout: float) -> Result | None:
    """Block until the job ends (its result) or `timeout` seconds pass (None)."""
    if timeout <= 0:
        return None
    popped = connection.blpop([keys.job_notify(job_id)], timeout=timeout)
    return None if popped is None else decode(codec.raw(popped[1]))


def read(connection: Redis, job_id: str) -> Result | None:
    """Return the job's result, or None when there is none (yet or any more)."""
    payload = connection.get(keys.job_result(job_id))
    return None if payload is None else decode(codec.raw(payload))


def decode(payload: bytes) -> Result:
    """Return the result a stored value holds."""
    head, _, body = payload.partition(b":")
    if head == ERROR:
        return Result(error=body.decode())
    images = len(body) // (4 * codec.N_CLASSES + 1)
    split = 4 * codec.N_CLASSES * images
    probabilities = codec.probabilities_from_bytes(body[:split])  # (n, 10)
    return Result(
        labels=probabilities.argmax(axis=1),
        probabilities=probabilities,
        uncertain=codec.flags_from_bytes(body[split:]),
        model_version=head.decode(),
    )
