"""Batch records in Redis: a CSV's chunks, their progress, and the labels they produced.

A batch is a hash (rows, chunks, progress counters, timestamps) plus one key per chunk for
its pixels, its given labels (when the upload had a `label` column), its predicted labels
and their confidences and uncertain flags. The API creates and reads them; workers claim and
count chunks (`store.chunks`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray
from redis import Redis
from redis.client import Pipeline

from store import codec, keys

REQUIRED = ("rows", "chunks", "chunk_rows", "rows_done", "correct", "has_labels", "created_at")


class Incomplete(LookupError):
    """Part of a batch is gone from Redis while the rest remains: evicted, or deleted by hand."""


@dataclass(frozen=True)
class Batch:
    """A batch as the API reports it."""

    batch_id: str
    rows: int
    chunks: int
    chunk_rows: int
    rows_done: int
    correct: int
    uncertain_rows: int
    has_labels: bool
    status: str  # queued | running | finished | failed
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    model_versions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Answers:
    """What a worker found for one chunk: labels, confidences and uncertain flags `(n,)`."""

    labels: NDArray[np.integer]
    confidence: NDArray[np.floating]
    uncertain: NDArray[np.bool_]


def now() -> str:
    """Return the current UTC time as an ISO 8601 string."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def create(
    pipe: Pipeline,
    batch_id: str,
    pixels: NDArray[np.uint8],
    truth: NDArray[np.integer] | None,
    chunk_rows: int,
    ttl: int,
    image_ids: NDArray[np.int64] | None = None,
) -> int:
    """Queue on `pipe` the record and chunk keys of a new batch; return the chunk count.

    `image_ids` (n,) numbers the submission's rows; without them they are 1..n.
    """
    chunks = -(-len(pixels) // chunk_rows)
    record = keys.batch(batch_id)
    pipe.hset(
        record,
        mapping={
            "rows": len(pixels),
            "chunks": chunks,
            "chunk_rows": chunk_rows,
            "rows_done": 0,
            "correct": 0,
            "uncertain_rows": 0,
            "has_labels": int(truth is not None),
            "created_at": now(),
        },
    )
    pipe.expire(record, ttl)
    if image_ids is not None:
        pipe.set(keys.batch_image_ids(batch_id), image_ids.astype("<i8").tobytes(), ex=ttl)
    for chunk in range(chunks):
        rows = slice(chunk * chunk_rows, (chunk + 1) * chunk_rows)
        pipe.set(keys.batch_pixels(batch_id, chunk), codec.pixels_to_bytes(pixels[rows]), ex=ttl)
        if truth is not None:
            pipe.set(keys.batch_truth(batch_id, chunk), codec.labels_to_bytes(truth[rows]), ex=ttl)
    return chunks


def mark_failed(connection: Redis, batch_id: str, message: str) -> None:
    """Record that a chunk of the batch failed for good."""
    if connection.exists(keys.batch(batch_id)):
        connection.hset(keys.batch(batch_id), mapping={"status": "failed", "error": message})


def read(connection: Redis, batch_id: str) -> Batch | None:
    """Return the batch, or None when it is unknown or expired.

    Raises Incomplete when its record lacks fields, or is gone while chunk keys remain.
    """
    pipe = connection.pipeline(transaction=False)
    pipe.hgetall(keys.batch(batch_id))
    pipe.smembers(keys.batch_versions(batch_id))
    pipe.exists(keys.batch_pixels(batch_id, 0), keys.batch_labels(batch_id, 0))
    fields, versions, traces = pipe.execute()
    if not fields and traces:
        raise Incomplete(f"batch {batch_id}: its record is gone from Redis but its chunks remain")
    if not fields:
        return None
    text = {name.decode(): value.decode() for name, value in fields.items()}
    lost = [name for name in REQUIRED if name not in text]
    if lost:
        raise Incomplete(f"batch {batch_id}: its record has lost {', '.join(lost)}")
    return Batch(
        batch_id=batch_id,
        rows=int(text["rows"]),
        chunks=int(text["chunks"]),
        chunk_rows=int(text["chunk_rows"]),
        rows_done=int(text["rows_done"]),
        correct=int(text["correct"]),
        uncertain_rows=int(text.get("uncertain_rows", 0)),
        has_labels=text["has_labels"] == "1",
        status=_status(text),
        created_at=text["created_at"],
        started_at=text.get("started_at"),
        finished_at=text.get("finished_at"),
        error=text.get("error"),
        model_versions=sorted(version.decode() for version in versions),
    )


def _status(fields: dict[str, str]) -> str:
    if "status" in fields:
        return fields["status"]
    return "running" if "started_at" in fields else "queued"


def check_answers(connection: Redis, batch: Batch) -> None:
    """Raise Incomplete unless every chunk's labels and confidences are still in Redis.

    Checked before a CSV is streamed: once its first line is sent it cannot become an error.
    """
    names = [keys.batch_labels(batch.batch_id, chunk) for chunk in range(batch.chunks)]
    names += [keys.batch_confidence(batch.batch_id, chunk) for chunk in range(batch.chunks)]
    present = connection.exists(*names)
    if present != len(names):
        raise Incomplete(
            f"batch {batch.batch_id}: {len(names) - present} of its {len(names)} answer keys "
            "are gone from Redis"
        )


def iter_labels(connection: Redis, batch: Batch) -> Iterator[NDArray[np.uint8]]:
    """Yield the predicted labels chunk by chunk, in upload order."""
    for chunk in range(batch.chunks):
        yield chunk_labels(connection, batch.batch_id, chunk)


def read_image_ids(connection: Redis, batch: Batch) -> NDArray[np.int64]:
    """Return the (rows,) ImageIds of the submission: the upload's, or 1..rows."""
    data = connection.get(keys.batch_image_ids(batch.batch_id))
    if data is None:
        return np.arange(1, batch.rows + 1, dtype=np.int64)
    return np.frombuffer(codec.raw(data), "<i8").astype(np.int64)


def iter_answers(connection: Redis, batch: Batch) -> Iterator[Answers]:
    """Yield labels, confidences and uncertain flags chunk by chunk, in upload order."""
    for chunk, labels in enumerate(iter_labels(connection, batch)):
        data = connection.get(keys.batch_confidence(batch.batch_id, chunk))
        if data is None:
            raise LookupError(f"batch {batch.batch_id} chunk {chunk}: its confidences expired")
        data = codec.raw(data)
        split = 4 * len(labels)
        confidence = codec.confidences_from_bytes(data[:split])
        yield Answers(labels, confidence, codec.flags_from_bytes(data[split:]))


def done_chunks(connection: Redis, batch_id: str) -> set[int]:
    """Return the numbers of the batch's chunks counted so far."""
    return {int(member) for member in connection.smembers(keys.batch_done(batch_id))}


def chunk_labels(connection: Redis, batch_id: str, chunk: int) -> NDArray[np.uint8]:
    """Return one counted chunk's predicted labels; LookupError when they expired."""
    data = connection.get(keys.batch_labels(batch_id, chunk))
    if data is None:
        raise LookupError(f"batch {batch_id} chunk {chunk}: its labels expired")
    return codec.labels_from_bytes(codec.raw(data))
