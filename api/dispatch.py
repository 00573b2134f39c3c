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
from store import batches, groups

ID = re.compile(r"[0-9a-f]{32}")  # job and batch ids (api.ids)


def is_id(text: str) -> bool:
    """Say whether `text` could be a job or batch id made here."""
    return ID.fullmatch(text) is not None


def submit_group(services: Services, members: groups.Members, joinable: bool = True) -> None:
    """Store a group of callers' images and enqueue the one job that answers them.

    The group and its job carry the first member's id; the other ids point to it, so a
    status request for any of them finds the job while it is queued. A joinable group (callers
    waiting on /v1/predict) takes newcomers, has its answers pushed to this process's inbox,
    and is dropped unrun if no worker takes it, for DIGITS_SYNC_QUEUE_TTL; a closed one (a
    POST /v1/jobs request, whose caller polls) waits as long as its result would be kept.
    """
    config = services.config
    services.predict_depth.admit(config["DIGITS_MAX_QUEUE"])
    ttl = config["DIGITS_RESULT_TTL"]
    queue_ttl = config["DIGITS_SYNC_QUEUE_TTL"] if joinable else ttl
    group_id = members[0][0]
    pipe = _transaction(services)
    groups.create(pipe, group_id, members, ttl, open_for=queue_ttl if joinable else 0)
    services.predict_queue.enqueue_call(
        "worker.jobs.predict_group",
        args=[group_id, ttl, services.inbox.key] if joinable else [group_id, ttl],
        job_id=group_id,
        ttl=queue_ttl,
        timeout=config["DIGITS_JOB_TIMEOUT"],
        result_ttl=_record_ttl(config, ttl),
        failure_ttl=ttl,
        on_failure=Callback("worker.jobs.predict_group_failed"),
        pipeline=pipe,
    )
    pipe.llen(services.predict_queue.key)  # the depth, for the next request's admission
    services.predict_depth.saw(int(pipe.execute()[-1]))


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
