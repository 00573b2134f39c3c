"""Kaggle CSV batches: upload, progress, and the streamed submission.csv."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import numpy as np
from flask import Blueprint, Response, request, url_for
from numpy.typing import NDArray

from api import (
    access,
    backpressure,
    batch_events,
    dispatch,
    ids,
    pixel_encoding,
    schemas,
    upload,
)
from api.errors import ApiError
from api.inputs import EncodingQuery, EventsHeaders, EventsQuery, FileUpload
from api.openapi import BINARY, TEXT, Operation
from api.services import services
from formats.kaggle_csv import CSVFormatError, KaggleCSV, parse_kaggle_csv, text_limit
from store import batches

bp = Blueprint("batches", __name__, url_prefix="/v1")

# Raw bodies: a CSV, or Kaggle's zip / a .csv.gz as they are (recognised by their first bytes).
CSV_TYPES = {"text/csv", "application/csv", "application/vnd.ms-excel"}
ARCHIVE_TYPES = {"application/gzip", "application/x-gzip", "application/zip"}
ARCHIVE_TYPES |= {"application/x-zip-compressed", "application/octet-stream"}
TOO_LARGE = {"too_many_rows", "too_large"}  # parser codes that mean "over a limit"
UPLOAD = {
    "text/csv": TEXT,
    "application/zip": BINARY,
    "application/gzip": BINARY,
    "multipart/form-data": FileUpload,
}
CSV_ERRORS = (404, 409, 410, 503)  # a CSV of a batch: 409 until it is finished


@bp.post("/batches")
@Operation(
    {202: ("queued", schemas.BatchAccepted)},
    errors=(400, 413, 415, 422, 429, 503),
    query=EncodingQuery,
    body=UPLOAD,
    description="The CSV as text/csv (Content-Encoding: gzip allowed), or Kaggle's zip (its "
    "test.csv or its only CSV) or a .csv.gz as they are. A leading ImageId column numbers the "
    "submission; a pandas index column is ignored; all-empty rows are skipped and counted. "
    "Limits: MAX_CONTENT_LENGTH bytes as sent, DIGITS_MAX_ROWS rows, and 6,400 bytes per row "
    "allowed uncompressed.",
)
def create_batch() -> Any:
    """Parse a Kaggle CSV (multipart field `file` or the body; plain, gzip or zip); queue it."""
    found = services()
    max_rows = found.config["DIGITS_MAX_ROWS"]
    encoding = pixel_encoding.parse(request.args.get("encoding"))
    csv = _parse(_upload(text_limit(max_rows)), max_rows)
    pixels = pixel_encoding.apply(csv.pixels, encoding, lambda i: _row_name(csv, i))
    batch_id, chunks = dispatch.submit_batch(found, pixels, csv.labels, csv.image_ids)
    access.note(batch_id=batch_id, rows=len(csv.pixels))
    status_url = url_for("batches.batch_status", batch_id=batch_id)
    body: schemas.BatchAccepted = {
        "batch_id": batch_id,
        "status": "queued",
        "rows": len(csv.pixels),
        "skipped_rows": csv.skipped_rows,
        "chunks": chunks,
        "has_labels": csv.labels is not None,
        "status_url": status_url,
        "submission_url": url_for("batches.submission", batch_id=batch_id),
    }
    return body, 202, {"Location": status_url}


@bp.get("/batches/<batch_id>")
@Operation({200: ("the batch", schemas.Batch)}, errors=(404, 410, 503))
def batch_status(batch_id: str) -> schemas.Batch:
    """Report a batch's progress, model versions and, with labels, its accuracy so far."""
    batch = _find(batch_id)
    body: schemas.Batch = {
        "batch_id": batch.batch_id,
        "status": cast(schemas.BatchStatus, batch.status),  # as store.batches writes it
        "rows": batch.rows,
        "rows_done": batch.rows_done,
        "uncertain_rows": batch.uncertain_rows,
        "chunks": batch.chunks,
        "model_version": batch.model_versions[0] if len(batch.model_versions) == 1 else None,
        "model_versions": batch.model_versions,
        "created_at": batch.created_at,
        "started_at": batch.started_at,
        "finished_at": batch.finished_at,
        "submission_url": url_for("batches.submission", batch_id=batch_id),
        "results_url": url_for("batches.results", batch_id=batch_id),
    }
    if batch.has_labels:
        body["accuracy"] = batch.correct / batch.rows_done if batch.rows_done else None
    if batch.error is not None:
        body["error"] = batch.error
    if batch.status == "queued":
        body["message"] = backpressure.waiting(services().batch_queue)
    return body


@bp.get("/batches/<batch_id>/events")
@Operation(
    {
        200: (
            "progress, chunk (first_image_id, labels), finished or failed",
            {"text/event-stream": TEXT},
        )
    },
    errors=(400, 404, 410, 503),
    query=EventsQuery,
    headers=EventsHeaders,
)
def events(batch_id: str) -> Response:
    """Follow a batch as SSE: progress, each chunk's labels, then finished or failed."""
    resume = request.headers.get("Last-Event-ID", "0")
    if not resume.isdigit():
        raise ApiError(400, "invalid_parameter", "Last-Event-ID must be a number of chunks")
    return batch_events.response(services().redis, _find(batch_id), int(resume))


@bp.get("/batches/<batch_id>/submission.csv")
@Operation(
    {
        200: (
            "ImageId from the upload's ImageId column, else 1-based in upload order",
            {"text/csv": TEXT},
        )
    },
    errors=CSV_ERRORS,
)
def submission(batch_id: str) -> Response:
    """Stream `ImageId,Label` for a finished batch; 409 until it is finished."""
    connection, batch = services().redis, _finished(batch_id)
    labels = batches.iter_labels(connection, batch)
    image_ids = batches.read_image_ids(connection, batch)
    return _csv(_submission_lines(labels, image_ids), "submission.csv")


@bp.get("/batches/<batch_id>/results.csv")
@Operation(
    {
        200: (
            "ImageId,Label,Confidence,Uncertain; ImageId as in submission.csv, Confidence the "
            "calibrated top probability (4 decimals), Uncertain 1 or 0",
            {"text/csv": TEXT},
        )
    },
    errors=CSV_ERRORS,
)
def results(batch_id: str) -> Response:
    """Stream `ImageId,Label,Confidence,Uncertain` for a finished batch; 409 until then."""
    connection, batch = services().redis, _finished(batch_id)
    answers = batches.iter_answers(connection, batch)
    image_ids = batches.read_image_ids(connection, batch)
    return _csv(_results_lines(answers, image_ids), "results.csv")


def _finished(batch_id: str) -> batches.Batch:
    batch = _find(batch_id)
    if batch.status != "finished":
        raise ApiError(
            409,
            "not_finished",
            f"batch {batch_id} is {batch.status}: {batch.rows_done} of {batch.rows} rows done",
        )
    try:
        batches.check_answers(services().redis, batch)
    except batches.Incomplete as error:
        raise _lost(error) from None
    return batch


def _csv(lines: Iterator[bytes], filename: str) -> Response:
    disposition = f"attachment; filename={filename}"
    return Response(lines, mimetype="text/csv", headers={"Content-Disposition": disposition})


def _upload(decoded_limit: int) -> bytes:
    return upload.read(
        request.mimetype in CSV_TYPES | ARCHIVE_TYPES,
        "send the CSV (or its .zip / .csv.gz) as text/csv, application/zip, application/gzip "
        "or as multipart field 'file'",
        decoded_limit,
    )


def _parse(source: bytes, max_rows: int) -> KaggleCSV:
    try:
        return parse_kaggle_csv(source, max_rows=max_rows)
    except CSVFormatError as error:
        raise ApiError(413 if error.code in TOO_LARGE else 422, error.code, str(error)) from None


def _row_name(csv: KaggleCSV, index: int) -> str:
    """Name a data row for an error: its 1-based row, and its ImageId when the file has one."""
    image_id = "" if csv.image_ids is None else f" (ImageId {csv.image_ids[index]})"
    skipped = " counting non-empty rows" if csv.skipped_rows else ""
    return f"row {index + 1}{image_id}{skipped}"


def _find(batch_id: str) -> batches.Batch:
    found = services()
    try:
        batch = batches.read(found.redis, batch_id) if dispatch.is_id(batch_id) else None
    except batches.Incomplete as error:
        raise _lost(error) from None
    if batch is None:
        raise ids.missing("batch", batch_id, found.config["DIGITS_BATCH_TTL"])
    return batch


def _lost(error: batches.Incomplete) -> ApiError:
    """410: part of the batch is gone (a Redis that evicts, see README Operations)."""
    return ApiError(
        410,
        "incomplete",
        f"{error}; it cannot be served whole: upload the CSV again (Redis must run with "
        "maxmemory-policy noeviction to keep every batch whole)",
    )


def _submission_lines(
    labels: Iterator[NDArray[np.uint8]], image_ids: NDArray[np.int64]
) -> Iterator[bytes]:
    yield b"ImageId,Label\n"
    first = 0
    for chunk in labels:
        ids = image_ids[first : first + len(chunk)].tolist()
        yield "".join(
            f"{i},{label}\n" for i, label in zip(ids, chunk.tolist(), strict=True)
        ).encode()
        first += len(chunk)


def _results_lines(
    answers: Iterator[batches.Answers], image_ids: NDArray[np.int64]
) -> Iterator[bytes]:
    yield b"ImageId,Label,Confidence,Uncertain\n"
    first = 0
    for chunk in answers:
        rows = zip(
            image_ids[first : first + len(chunk.labels)].tolist(),
            chunk.labels.tolist(),
            chunk.confidence.tolist(),
            chunk.uncertain.tolist(),
            strict=True,
        )
        yield "".join(
            f"{i},{label},{confidence:.4f},{int(flag)}\n" for i, label, confidence, flag in rows
        ).encode()
        first += len(chunk.labels)
