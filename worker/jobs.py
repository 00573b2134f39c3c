"""RQ job functions: the worker's side of a prediction. The API enqueues them by name.

Two kinds: an image job answers a group of requests (`store.groups`), a chunk job one chunk
of a CSV batch (`store.chunks`). Jobs carry only ids and TTLs (JSON); pixels and results
travel as raw bytes under the keys in `store.keys`. The model to use is the registry's
current version, which a job's claim script reads with its input (the same round trip),
and `preload` with `store.registry.current`. Exceptions propagate so RQ marks the job
failed; the failure callbacks leave a message the API can show.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import numpy as np
from numpy.typing import NDArray
from redis import Redis
from rq import get_current_job
from rq.job import Job

from store import batches, chunks, groups, registry, results
from worker import nondigit, uncertainty
from worker.cache import ModelCache, Network, NoModel

Flags = NDArray[np.bool_]

# One per process: the worker fills it before its loop (`preload`) and every job reuses it.
CACHE = ModelCache()


def preload(connection: Redis) -> str | None:
    """Load the detector and the current model, if any, before the first job; return its version."""
    nondigit.shipped()
    try:
        return CACHE.get(connection, registry.current(connection))[1]
    except NoModel:  # none is current, or it does not load: work anyway, load a good one later
        return None


def predict_group(group_id: str, ttl: int, inbox: str | None = None) -> dict[str, Any]:
    """Label a group of requests (store.groups); store each member's share under its id, and
    push it to `inbox` (store.inbox) when the members wait for it."""
    connection = _connection()
    group = groups.claim(connection, group_id)
    network, version = CACHE.get(connection, group.current_model)
    probabilities, uncertain = answer(network, group.pixels)
    pipe = connection.pipeline(transaction=False)
    start = 0
    for job_id, images in group.members:
        share = slice(start, start + images)
        results.write(pipe, job_id, probabilities[share], uncertain[share], version, ttl, inbox)
        start += images
    groups.delete(pipe, group_id)
    pipe.execute()
    return {"images": len(probabilities), "members": len(group.members), "model_version": version}


def predict_chunk(batch_id: str, chunk: int, ttl: int) -> dict[str, Any]:
    """Label one chunk of a batch and count it (once, even if this chunk runs again)."""
    connection = _connection()
    chunk_input = chunks.claim(connection, batch_id, chunk)
    where = {"batch_id": batch_id, "chunk": chunk}
    if chunk_input is None:
        return {"rows": 0, "counted": False, **where}
    network, version = CACHE.get(connection, chunk_input.current_model)
    probabilities, uncertain = answer(network, chunk_input.pixels)
    answers = batches.Answers(probabilities.argmax(axis=1), probabilities.max(axis=1), uncertain)
    truth = chunk_input.truth
    correct = 0 if truth is None else int((answers.labels == truth).sum())
    counted = chunks.complete(connection, batch_id, chunk, answers, correct, version, ttl)
    return {"rows": len(answers.labels), "counted": counted, "model_version": version, **where}


def predict_group_failed(
    job: Job,
    connection: Redis,
    exc_type: type[BaseException],
    exc_value: BaseException,
    traceback: TracebackType | None,
) -> None:
    """Leave the failure message as every member's result and wake them all."""
    group_id, ttl, *inbox = job.args
    for job_id in groups.member_ids(connection, group_id):
        message = _message(exc_type, exc_value)
        results.write_error(connection, job_id, message, ttl, *inbox)


def chunk_failed(
    job: Job,
    connection: Redis,
    exc_type: type[BaseException],
    exc_value: BaseException,
    traceback: TracebackType | None,
) -> None:
    """Mark the chunk's batch failed with the message."""
    batches.mark_failed(connection, job.args[0], _message(exc_type, exc_value))


def answer(network: Network, pixels: NDArray[np.uint8]) -> tuple[NDArray[np.float32], Flags]:
    """Return the probabilities `(n, 10)` of pixels `(n, 784)` and their uncertain flags `(n,)`."""
    probabilities = network.predict_proba(pixels)
    below = uncertainty.threshold(network.metadata)
    return probabilities, uncertainty.flags(pixels, probabilities, below, nondigit.shipped())


def _connection() -> Redis:
    job = get_current_job()
    if job is None:
        raise RuntimeError("job functions run inside an RQ worker")
    return job.connection


def _message(exc_type: type[BaseException], exc_value: BaseException) -> str:
    return f"{exc_type.__name__}: {exc_value}"
