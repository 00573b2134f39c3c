"""Batch records in Redis: a CSV's chunks, their progress, and the labels they produced.

A batch is a hash (rows, chunks, progress counters, timestamps) plus one key per chunk for
its pixels, its given labels (when the upload had a `label` column), its predicted labels
and their confidences and uncertain flags. A chunk is counted by an atomic script that
first adds the chunk number to a set, so a chunk that runs twice (its worker died after
finishing) is counted once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray
from redis import Redis
from redis.client import Pipeline

from store import codec, keys, lua

# KEYS: record, done set, versions set, labels, pixels, truth, confidence
# ARGV: chunk, rows, correct, model version, label bytes, ttl, now, confidence bytes, uncertain
_COMPLETE_CHUNK = lua.script(
    """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('SET', KEYS[4], ARGV[5], 'EX', ARGV[6])
redis.call('SET', KEYS[7], ARGV[8], 'EX', ARGV[6])
redis.call('HINCRBY', KEYS[1], 'uncertain_rows', ARGV[9])
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('EXPIRE', KEYS[3], ARGV[6])
redis.call('DEL', KEYS[5], KEYS[6])
redis.call('HINCRBY', KEYS[1], 'correct', ARGV[3])
local done = redis.call('HINCRBY', KEYS[1], 'rows_done', ARGV[2])
if done == tonumber(redis.call('HGET', KEYS[1], 'rows')) then
  redis.call('HSET', KEYS[1], 'status', 'finished', 'finished_at', ARGV[7])
end
return 1
"""
)

# KEYS: done set, pixels, truth, record, the registry's current version. ARGV: chunk, now
_CLAIM_CHUNK = lua.script(
    """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return {1} end
local recorded = redis.call('EXISTS', KEYS[4])
local pixels = redis.call('GET', KEYS[2])
if recorded == 1 and pixels then redis.call('HSETNX', KEYS[4], 'started_at', ARGV[2]) end
return {0, recorded, pixels, redis.call('GET', KEYS[3]), redis.call('GET', KEYS[5])}
"""
)

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


@dataclass(frozen=True)
class ChunkInput:
    """What a worker needs to label one chunk, and the model to label it with."""

    pixels: NDArray[np.uint8]
    truth: NDArray[np.uint8] | None
    current_model: str | None


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


def claim_chunk(connection: Redis, batch_id: str, chunk: int) -> ChunkInput | None:
    """Return a chunk's input and the registry's current version; None when it was counted.

    One script: it also marks the batch started, the first time a chunk of it is claimed.
    """
    script_keys = [
        keys.batch_done(batch_id),
        keys.batch_pixels(batch_id, chunk),
        keys.batch_truth(batch_id, chunk),
        keys.batch(batch_id),
        keys.MODELS_CURRENT,
    ]
    reply = lua.run(connection, _CLAIM_CHUNK, script_keys, [str(chunk), now()])
    if reply[0] == 1:
        return None
    _, recorded, pixels, truth, current = reply
    if not recorded:  # writing started_at would leave a record of that field alone
        raise Incomplete(f"batch {batch_id} chunk {chunk}: the batch's record is gone")
    if pixels is None:
        raise LookupError(f"batch {batch_id} chunk {chunk}: its pixels expired or were deleted")
    return ChunkInput(
        pixels=codec.pixels_from_bytes(codec.raw(pixels)),
        truth=None if truth is None else codec.labels_from_bytes(codec.raw(truth)),
        current_model=None if current is None else codec.text(current),
    )


def complete_chunk(
    connection: Redis,
    batch_id: str,
    chunk: int,
    answers: Answers,
    correct: int,
    model_version: str,
    ttl: int,
) -> bool:
    """Store a chunk's answers and count it, once; return False if it was already counted."""
    script_keys = [
        keys.batch(batch_id),
        keys.batch_done(batch_id),
        keys.batch_versions(batch_id),
        keys.batch_labels(batch_id, chunk),
        keys.batch_pixels(batch_id, chunk),
        keys.batch_truth(batch_id, chunk),
        keys.batch_confidence(batch_id, chunk),
    ]
    args: list[str | int | bytes] = [
        str(chunk),
        len(answers.labels),
        correct,
        model_version,
        codec.labels_to_bytes(answers.labels),
        ttl,
        now(),
        codec.confidences_to_bytes(answers.confidence) + codec.flags_to_bytes(answers.uncertain),
        int(np.count_nonzero(answers.uncertain)),
    ]
    return bool(lua.run(connection, _COMPLETE_CHUNK, script_keys, args) == 1)


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
