"""Predictions of JSON images: wait for the answer (`/v1/predict`) or poll for it (`/v1/jobs`)."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from flask import Blueprint, request, url_for
from numpy.typing import NDArray
from rq.job import JobStatus

from api import (
    access,
    backpressure,
    dispatch,
    errors,
    ids,
    microbatch,
    payload,
    pixel_encoding,
    schemas,
    upload,
)
from api.errors import ApiError
from api.inputs import EncodingQuery, ImagesBody, PredictQuery
from api.openapi import Operation
from api.services import Services, services
from store import groups, results

bp = Blueprint("jobs", __name__, url_prefix="/v1")

QUEUED = {JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED, JobStatus.CREATED}
Answer = tuple[schemas.JobFinished | schemas.JobAccepted, int, dict[str, str]]  # and headers
BODY_ERRORS = (400, 413, 415, 422, 429, 503)
DROPPED = "dropped unrun: no worker took it before its queue TTL ran out"


@bp.post("/predict")
@Operation(
    {
        200: ("the labels", schemas.JobFinished),
        202: ("still running after the wait", schemas.JobAccepted),
    },
    errors=(*BODY_ERRORS, 500),
    query=PredictQuery,
    body=ImagesBody,
)
def predict() -> Any:
    """Label the images, waiting up to ?wait= seconds; 202 with a status URL after that."""
    found = services()
    return answer(found, _images(found))


def answer(found: Services, pixels: NDArray[np.uint8]) -> Answer:
    """Queue pixels `(n, 784)` in a micro-batch and wait up to ?wait= seconds for their labels.

    Returns the finished job (200) or, when the wait runs out, its status URL (202).
    """
    wait = payload.parse_wait(
        request.args.get("wait"), found.config["DIGITS_WAIT"], found.config["DIGITS_MAX_WAIT"]
    )
    found.predict_workers.require()
    with microbatch.batcher().submit(pixels) as job_id:
        result = found.inbox.wait(job_id, wait)
    if result is None:
        return _accepted(job_id)
    if result.error is not None:
        raise errors.job_failure(result.error)
    return _finished(job_id, result), 200, {}


@bp.post("/jobs")
@Operation(
    {202: ("queued", schemas.JobAccepted)}, errors=BODY_ERRORS, query=EncodingQuery, body=ImagesBody
)
def create_job() -> Any:
    """Queue the images and answer at once with the job's status URL."""
    found = services()
    job_id = ids.new()
    dispatch.submit_group(found, [(job_id, _images(found))], joinable=False)
    return _accepted(job_id)


@bp.get("/jobs/<job_id>")
@Operation({200: ("the job", schemas.JobStatus)}, errors=(404, 410, 503))
def job_status(job_id: str) -> Any:
    """Report a job: queued, started, finished (with labels) or failed (with the error).

    Two Redis reads at most: the result, then, while there is none, its group's job.
    """
    found = services()
    if not dispatch.is_id(job_id):
        raise _unknown(job_id)
    result, group_id = groups.find(found.redis, job_id)
    if result is not None and result.error is None:
        return _finished(job_id, result)
    if result is not None:
        return {"job_id": job_id, "status": "failed", "error": result.error}
    return _pending(found, job_id, group_id)


def _images(found: Services) -> NDArray[np.uint8]:
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the images as application/json")
    encoding = pixel_encoding.parse(request.args.get("encoding"))
    body = upload.read(raw_allowed=True, expected="send the images as application/json")
    pixels = payload.parse_images(body, found.config["DIGITS_MAX_IMAGES"])
    access.note(rows=len(pixels))
    many = len(pixels) > 1
    return pixel_encoding.apply(pixels, encoding, lambda i: f"images[{i}]" if many else "the image")


def _accepted(job_id: str) -> Answer:
    access.note(job_id=job_id)
    status_url = url_for("jobs.job_status", job_id=job_id)
    return (
        {"job_id": job_id, "status": "queued", "status_url": status_url},
        202,
        {"Location": status_url},
    )


def _finished(job_id: str, result: results.Result) -> schemas.JobFinished:
    access.note(job_id=job_id, model_version=result.model_version)
    return {
        "job_id": job_id,
        "status": "finished",
        "labels": result.labels,
        "probabilities": result.probabilities,
        "confidence": result.confidence,
        "uncertain": result.uncertain,
        "model_version": cast(str, result.model_version),  # a finished result names one
    }


def _pending(found: Services, job_id: str, group_id: str) -> schemas.JobStatus:
    """Report a job that has no result from its group's job, or 404 when there is none.

    A request rides on its group's job, named after the group's first member.
    """
    job = groups.waiting(found.redis, group_id, found.predict_queue)
    if job.rq_status is None:
        # Its input is kept as long as its result would be; RQ's record only for the queue TTL.
        if job.input_kept:
            why = "no worker is alive" if job.live_workers == 0 else "the workers were busy"
            return {"job_id": job_id, "status": "failed", "error": f"{DROPPED} ({why})"}
        raise _unknown(job_id)
    if job.rq_status == JobStatus.STARTED:
        return {"job_id": job_id, "status": "started"}
    if job.rq_status in QUEUED:
        return {
            "job_id": job_id,
            "status": "queued",
            "message": backpressure.not_started(job.live_workers),
        }
    return {
        "job_id": job_id,
        "status": "failed",
        "error": job.failure or f"the job ended as {job.rq_status}",
    }


def _unknown(job_id: str) -> ApiError:
    return ids.missing("job", job_id, services().config["DIGITS_RESULT_TTL"])
