"""A worker's side of a chunk: one script claims it, one counts it."""

from __future__ import annotations

import numpy as np
from monitor import commands_sent
from redis import Redis
from test_batches import answers, create

from store import batches, chunks, keys


def test_a_chunk_costs_two_commands_its_claim_and_its_count(redis_conn: Redis) -> None:
    pixels = create(redis_conn, rows=5, chunk_rows=2, truth=True)
    redis_conn.set(keys.MODELS_CURRENT, "v1")
    chunks.claim(redis_conn, "b1", 2)  # Redis now knows both scripts
    chunks.complete(redis_conn, "b1", 2, answers([4]), 0, "v1", ttl=60)
    with commands_sent(redis_conn) as sent:
        chunk = chunks.claim(redis_conn, "b1", 0)
        assert chunk is not None and chunk.current_model == "v1"
        chunks.complete(redis_conn, "b1", 0, answers([0, 1]), 2, "v1", ttl=60)
    assert sent == ["EVALSHA", "EVALSHA"]
    np.testing.assert_array_equal(chunk.pixels, pixels[:2])
    assert chunk.truth is not None and chunk.truth.tolist() == [0, 1]
    assert batches.read(redis_conn, "b1").started_at is not None
