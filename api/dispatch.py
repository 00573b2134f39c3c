"""Put work on the queues: inputs stored as raw bytes, jobs that name them, one round trip."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from numpy.typing import NDArray
from redis.client import Pipeline
from rq import Queue
from rq.job import Callback

from api import backpressure, ids
from api.services import Services
from store import batches, codec, groups, keys

ID = re.compile(r"[0-9a-f]{32}")  # job and batch ids (api.ids)


def is_id(text: str) -> bool:
    """Say whether `text` could be a job or batch id made here."""
    return ID.fullmatch(text) is not None


def submit_images(services: Services, pixels: NDArray[np.uint8]) -> str:
    """Store the images and enqueue one job for them; return its id."""
    config = services.config
    backpressure.admit(services.predict_queue, config["DIGITS_MAX_QUEUE"])
    job_id = ids.new()
    ttl = config["DIGITS_RESULT_TTL"]
    pipe = _transaction(services)
    pipe.set(keys.job_pixels(job_id), codec.pixels_to_bytes(pixels), ex=ttl)
    services.predict_queue.enqueue_call(
        "worker.jobs.predict",
        args=[job_id, ttl],
        job_id=job_id,
        ttl=ttl,  # its caller polls for it: worth running while its result would be kept
        timeout=config["DIGITS_JOB_TIMEOUT"],
        result_ttl=_record_ttl(config, ttl),
        failure_ttl=ttl,
        on_failure=Callback("worker.jobs.predict_failed"),
        pipeline=pipe,
    )
    pipe.execute()
    return job_id


def submit_group(services: Services, members: groups.Members) -> None:
    """Store a micro-batch group of callers' images and enqueue the one job that answers them.

    The group and its job carry the first member's id; the other ids point to it, so a
    status request for any of them finds the job while it is queued.
    """
    config = services.config
    backpressure.admit(services.predict_queue, config["DIGITS_MAX_QUEUE"])
    ttl = config["DIGITS_RESULT_TTL"]
    group_id = members[0][0]
    pipe = _transaction(services)
    # The group takes newcomers no longer than its job may wait in the queue.
    groups.create(pipe, group_id, members, ttl, open_for=config["DIGITS_SYNC_QUEUE_TTL"])
    services.predict_queue.enqueue_call(
        "worker.jobs.predict_group",
        args=[group_id, ttl],
        job_id=group_id,
        ttl=config["DIGITS_SYNC_QUEUE_TTL"],  # its callers stop waiting after ?wait= seconds
        timeout=config["DIGITS_JOB_TIMEOUT"],
        result_ttl=_record_ttl(config, ttl),
        failure_ttl=ttl,
        on_failure=Callback("worker.jobs.predict_group_failed"),
        pipeline=pipe,
    )
    pipe.execute()


def submit_batch(
    services: Services,
    pixels: NDArray[np.uint8],
    truth: NDArray[np.integer] | None,
    image_ids: NDArray[np.int64] | None = None,
) -> tuple[str, int]:
    """Store a CSV's chunks and enqueue one job per chunk; return (batch id, chunk count)."""
    config = services.config
    backpressure.admit(services.batch_queue, config["DIGITS_MAX_QUEUE"])
    batch_id = ids.new()
    ttl = config["DIGITS_BATCH_TTL"]
    pipe = _transaction(services)
    chunks = batches.create(
        pipe, batch_id, pixels, truth, config["DIGITS_CHUNK_ROWS"], ttl, image_ids
    )
    jobs = [
        Queue.prepare_data(
            "worker.jobs.predict_chunk",
            args=[batch_id, chunk, ttl],
            ttl=ttl,  # as long as the batch's pixels are kept
            timeout=config["DIGITS_JOB_TIMEOUT"],
            result_ttl=_record_ttl(config, ttl),
            failure_ttl=ttl,
            on_failure=Callback("worker.jobs.chunk_failed"),
        )
        for chunk in range(chunks)
    ]
    services.batch_queue.enqueue_many(jobs, pipeline=pipe)
    pipe.execute()
    return batch_id, chunks


def _record_ttl(config: dict[str, Any], ttl: int) -> int:
    """Keep RQ's record of a finished job no longer than its result: it would say "finished"."""
    return min(int(config["DIGITS_JOB_RECORD_TTL"]), ttl)


def _transaction(services: Services) -> Pipeline:
    """Open a MULTI pipeline: inputs and their jobs appear together or not at all."""
    pipe = services.redis.pipeline()
    pipe.multi()  # RQ asks for it before queueing on a caller's pipeline; it must come first
    return pipe
