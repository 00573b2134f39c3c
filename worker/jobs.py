"""RQ job functions: the worker's side of a prediction. The API enqueues them by name.

Jobs carry only ids and TTLs (JSON); pixels and results travel as raw bytes under the keys
in `store.keys`. Exceptions propagate so RQ marks the job failed; the failure callbacks
leave a message the API can show.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from redis import Redis
from rq import get_current_job
from rq.job import Job

from store import batches, codec, groups, keys, results
from worker.cache import ModelCache, NoModel

# One per process: the worker fills it before its loop (`preload`) and every job reuses it.
CACHE = ModelCache()


def preload(connection: Redis) -> str | None:
    """Load the current model, if any, before the first job; return its version."""
    current = connection.get(keys.MODELS_CURRENT)
    if current is None:
        return None
    try:
        return CACHE.get(connection, codec.text(current))[1]
    except NoModel:  # the current model does not load: work anyway, and load a good one later
        return None


def predict(job_id: str, ttl: int) -> dict[str, Any]:
    """Label the images stored for `job_id`; store labels, probabilities and the version."""
    connection = _connection()
    pipe = connection.pipeline(transaction=False)
    pipe.get(keys.job_pixels(job_id))
    pipe.get(keys.MODELS_CURRENT)
    data, current = pipe.execute()
    if data is None:
        raise LookupError(f"job {job_id}: its pixels expired or were deleted")
    network, version = CACHE.get(connection, _text(current))
    probabilities = network.predict_proba(codec.pixels_from_bytes(data))  # (n, 10)
    pipe = connection.pipeline(transaction=False)
    results.write(pipe, job_id, probabilities, version, ttl)
    pipe.delete(keys.job_pixels(job_id))
    pipe.execute()
    return {"images": len(probabilities), "model_version": version}


def predict_group(group_id: str, ttl: int) -> dict[str, Any]:
    """Label a micro-batch group (store.groups); store each member's share under its id."""
    connection = _connection()
    group = groups.claim(connection, group_id)
    network, version = CACHE.get(connection, group.current_model)
    probabilities = network.predict_proba(group.pixels)  # (n, 10)
    pipe = connection.pipeline(transaction=False)
    start = 0
    for job_id, images in group.members:
        results.write(pipe, job_id, probabilities[start : start + images], version, ttl)
        start += images
    groups.delete(pipe, group_id)
    pipe.execute()
    return {"images": len(probabilities), "members": len(group.members), "model_version": version}


def predict_chunk(batch_id: str, chunk: int, ttl: int) -> dict[str, Any]:
    """Label one chunk of a batch and count it (once, even if this chunk runs again)."""
    connection = _connection()
    chunk_input = batches.read_chunk(connection, batch_id, chunk)
    where = {"batch_id": batch_id, "chunk": chunk}
    if chunk_input is None:
        return {"rows": 0, "counted": False, **where}
    network, version = CACHE.get(connection, _text(connection.get(keys.MODELS_CURRENT)))
    labels = network.predict_proba(chunk_input.pixels).argmax(axis=1)  # (n,)
    truth = chunk_input.truth
    correct = 0 if truth is None else int((labels == truth).sum())
    counted = batches.complete_chunk(connection, batch_id, chunk, labels, correct, version, ttl)
    return {"rows": len(labels), "counted": counted, "model_version": version, **where}


def predict_failed(
    job: Job,
    connection: Redis,
    exc_type: type[BaseException],
    exc_value: BaseException,
    traceback: TracebackType | None,
) -> None:
    """Leave the failure message as the job's result and wake the caller waiting for it."""
    job_id, ttl = job.args
    results.write_error(connection, job_id, _message(exc_type, exc_value), ttl)


def predict_group_failed(
    job: Job,
    connection: Redis,
    exc_type: type[BaseException],
    exc_value: BaseException,
    traceback: TracebackType | None,
) -> None:
    """Leave the failure message as every member's result and wake them all."""
    group_id, ttl = job.args
    for job_id in groups.member_ids(connection, group_id):
        results.write_error(connection, job_id, _message(exc_type, exc_value), ttl)


def chunk_failed(
    job: Job,
    connection: Redis,
    exc_type: type[BaseException],
    exc_value: BaseException,
    traceback: TracebackType | None,
) -> None:
    """Mark the chunk's batch failed with the message."""
    batches.mark_failed(connection, job.args[0], _message(exc_type, exc_value))


def _connection() -> Redis:
    job = get_current_job()
    if job is None:
        raise RuntimeError("job functions run inside an RQ worker")
    return job.connection


def _text(value: bytes | str | None) -> str | None:
    return None if value is None else codec.text(value)


def _message(exc_type: type[BaseException], exc_value: BaseException) -> str:
    return f"{exc_type.__name__}: {exc_value}"
