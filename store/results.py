"""Job results in Redis: written by a worker, read (or waited for) by the API.

A result is one value, `<model version>:<float32 probabilities><uint8 uncertain flags>`
(40 + 1 bytes per image) or `error:<message>`, stored under the job's result key. When a
caller waits for it, the job names the inbox of the caller's API process (store.inbox) and
the result is also pushed there, after the job id and a newline, so the caller gets the
answer in the same round trip that wakes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from redis import Redis
from redis.client import Pipeline

from store import codec, keys

ERROR = b"error"
# A caller starts waiting right after queueing the job; an answer nobody took within this
# many seconds is for a caller that has given up (or an API process that is gone).
ANSWER_TTL = 60
SEPARATOR = b"\n"  # between the job id and the answer in an inbox entry


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
    inbox: str | None = None,
) -> None:
    """Queue on `pipe` the result of a job, and its answer on `inbox` when a caller waits."""
    payload = (
        model_version.encode()
        + b":"
        + codec.probabilities_to_bytes(probabilities)
        + codec.flags_to_bytes(uncertain)
    )
    _store(pipe, job_id, payload, ttl, inbox)


def write_error(
    connection: Redis, job_id: str, message: str, ttl: int, inbox: str | None = None
) -> None:
    """Record that a job failed, with the answer on `inbox` when a caller waits."""
    pipe = connection.pipeline()
    _store(pipe, job_id, ERROR + b":" + message.encode(), ttl, inbox)
    pipe.execute()


def _store(pipe: Pipeline, job_id: str, payload: bytes, ttl: int, inbox: str | None) -> None:
    pipe.set(keys.job_result(job_id), payload, ex=ttl)
    if inbox is not None:
        pipe.rpush(inbox, job_id.encode() + SEPARATOR + payload)
        pipe.expire(inbox, ANSWER_TTL)


def answered(entry: bytes) -> tuple[str, bytes]:
    """Split an inbox entry into the job id and its stored result."""
    job_id, _, payload = entry.partition(SEPARATOR)
    return job_id.decode(), payload


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
