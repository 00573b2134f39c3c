"""Batch records: chunks stored as bytes, each counted once, labels read back in order."""

from __future__ import annotations

import numpy as np
from redis import Redis

from store import batches, chunks, keys


def answers(labels: list[int], uncertain: list[bool] | None = None) -> batches.Answers:
    """Labels with confidences 0.5, 0.6, ... and the given flags (none set by default)."""
    flags = np.array(uncertain if uncertain is not None else [False] * len(labels))
    confidence = 0.5 + 0.1 * np.arange(len(labels))
    return batches.Answers(np.array(labels), confidence, flags)


def create(connection: Redis, rows: int, chunk_rows: int, truth: bool = False) -> np.ndarray:
    pixels = np.arange(rows * 784, dtype=np.int64).reshape(rows, 784).astype(np.uint8)
    labels = np.arange(rows) % 10 if truth else None
    pipe = connection.pipeline()
    assert batches.create(pipe, "b1", pixels, labels, chunk_rows, ttl=60) == -(-rows // chunk_rows)
    pipe.execute()
    return pixels


def test_create_stores_chunks_as_raw_bytes(redis_conn: Redis) -> None:
    pixels = create(redis_conn, rows=5, chunk_rows=2, truth=True)
    assert redis_conn.get(keys.batch_pixels("b1", 2)) == pixels[4:].tobytes()
    assert redis_conn.get(keys.batch_truth("b1", 0)) == bytes([0, 1])
    batch = batches.read(redis_conn, "b1")
    assert batch is not None
    assert (batch.rows, batch.chunks, batch.status, batch.has_labels) == (5, 3, "queued", True)


def test_each_chunk_counts_once_and_the_last_finishes(redis_conn: Redis) -> None:
    create(redis_conn, rows=5, chunk_rows=2, truth=True)
    chunk = chunks.claim(redis_conn, "b1", 0)
    assert chunk is not None and chunk.truth is not None
    assert batches.read(redis_conn, "b1").status == "running"
    first = answers([0, 9], [True, False])
    assert chunks.complete(redis_conn, "b1", 0, first, 1, "v1", ttl=60) is True
    assert chunks.complete(redis_conn, "b1", 0, first, 1, "v1", ttl=60) is False
    assert chunks.claim(redis_conn, "b1", 0) is None
    assert redis_conn.get(keys.batch_pixels("b1", 0)) is None  # input dropped once counted
    batch = batches.read(redis_conn, "b1")
    assert (batch.rows_done, batch.correct, batch.status) == (2, 1, "running")
    assert batch.uncertain_rows == 1  # counted once although the chunk completed twice
    chunks.complete(redis_conn, "b1", 2, answers([4], [True]), 1, "v2", ttl=60)
    chunks.complete(redis_conn, "b1", 1, answers([2, 3]), 2, "v2", ttl=60)
    batch = batches.read(redis_conn, "b1")
    assert (batch.rows_done, batch.correct, batch.status) == (5, 4, "finished")
    assert batch.uncertain_rows == 2
    assert batch.model_versions == ["v1", "v2"]
    assert batch.finished_at is not None
    labels_read = np.concatenate(list(batches.iter_labels(redis_conn, batch)))
    assert labels_read.tolist() == [0, 9, 2, 3, 4]
    read = list(batches.iter_answers(redis_conn, batch))
    assert np.concatenate([chunk.labels for chunk in read]).tolist() == [0, 9, 2, 3, 4]
    assert np.concatenate([chunk.uncertain for chunk in read]).tolist() == [
        True, False, False, False, True
    ]  # fmt: skip
    # float32 round trip of 0.5, 0.6, ...: within one float32 ulp near 1 (6e-8)
    confidence = np.concatenate([chunk.confidence for chunk in read])
    np.testing.assert_allclose(confidence, [0.5, 0.6, 0.5, 0.6, 0.5], atol=1e-7)


def test_completing_an_expired_batch_recreates_nothing(redis_conn: Redis) -> None:
    assert chunks.complete(redis_conn, "gone", 0, answers([1]), 0, "v", ttl=60) is False
    assert redis_conn.keys("*") == []


def test_mark_failed(redis_conn: Redis) -> None:
    create(redis_conn, rows=2, chunk_rows=2)
    batches.mark_failed(redis_conn, "b1", "ValueError: broken")
    batch = batches.read(redis_conn, "b1")
    assert (batch.status, batch.error) == ("failed", "ValueError: broken")
    batches.mark_failed(redis_conn, "gone", "x")
    assert not redis_conn.exists(keys.batch("gone"))
