"""Job results in Redis: written by a worker, read (or waited for) by the API."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from redis import Redis
from redis.client import Pipeline

from worker import codec, keys


@dataclass(frozen=True)
class Result:
    """What a finished job produced: labels and probabilities, or an error message."""

    labels: NDArray[np.uint8] | None = None
    probabilities: NDArray[np.float32] | None = None
    model_version: str | None = None
    error: str | None = None


def write(
    pipe: Pipeline,
    job_id: str,
    probabilities: NDArray[np.floating],
    model_version: str,
    ttl: int,
) -> None:
    """Queue on `pipe` the result of a job and the wake-up of whoever waits for it."""
    result_key = keys.job_result(job_id)
    pipe.hset(
        result_key,
        mapping={
            "labels": codec.labels_to_bytes(probabilities.argmax(axis=1)),
            "probabilities": codec.probabilities_to_bytes(probabilities),
            "model_version": model_version,
        },
    )
    pipe.expire(result_key, ttl)
    _notify(pipe, job_id, ttl)


def write_error(connection: Redis, job_id: str, message: str, ttl: int) -> None:
    """Record that a job failed, and wake whoever waits for it."""
    pipe = connection.pipeline()
    pipe.hset(keys.job_result(job_id), "error", message)
    pipe.expire(keys.job_result(job_id), ttl)
    _notify(pipe, job_id, ttl)
    pipe.execute()


def _notify(pipe: Pipeline, job_id: str, ttl: int) -> None:
    pipe.rpush(keys.job_notify(job_id), b"1")
    pipe.expire(keys.job_notify(job_id), ttl)


def wait(connection: Redis, job_id: str, timeout: float) -> bool:
    """Block until the job's worker signals the end or `timeout` seconds pass."""
    if timeout <= 0:
        return False
    return connection.blpop([keys.job_notify(job_id)], timeout=timeout) is not None


def read(connection: Redis, job_id: str) -> Result | None:
    """Return the job's result, or None when there is none (yet or any more)."""
    fields = connection.hgetall(keys.job_result(job_id))
    if not fields:
        return None
    if b"error" in fields:
        return Result(error=codec.text(fields[b"error"]))
    return Result(
        labels=codec.labels_from_bytes(codec.raw(fields[b"labels"])),
        probabilities=codec.probabilities_from_bytes(codec.raw(fields[b"probabilities"])),
        model_version=codec.text(fields[b"model_version"]),
    )
