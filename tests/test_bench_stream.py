"""`digits bench stream` and `stream-soak`: a producer that keeps its rate; answers counted."""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np
import pytest
from redis import Redis

from scripts.bench import stream, stream_soak
from store import keys, streams


def test_the_steady_producer_keeps_its_rate_and_sends_each_entry_once(redis_conn: Redis) -> None:
    streams.create(redis_conn, "steady")
    images = np.arange(3 * 784, dtype=np.uint8).reshape(3, 784)
    started = time.perf_counter()
    with stream.producing(redis_conn, "steady", images, rate=2_000, seconds=1.0) as (sent_at, rate):
        pass
    entries = redis_conn.xrange(keys.stream_in("steady"))
    assert [fields[b"id"] for _, fields in entries] == [str(n).encode() for n in range(2_000)]
    assert entries[4][1][b"pixels"] == images[1].tobytes()  # image n % 3
    assert rate.value == pytest.approx(2_000, rel=0.1)
    # Sent as scheduled, not in a burst: the last entry went out about a second after the first.
    assert 0.85 < sent_at[-1] - sent_at[0] < 1.2 and sent_at[0] >= started
    assert np.all(np.diff(sent_at) >= 0)


def test_every_answer_is_counted_against_its_input(redis_conn: Redis) -> None:
    for n in (0, 1, 1, 3):
        redis_conn.xadd(keys.stream_out("soak"), {"id": str(n), "label": "7"})
    answers = np.zeros(4, dtype=np.int64)
    reader = threading.Thread(
        target=stream_soak.count_answers, args=(redis_conn, "soak", answers, -59.0)
    )
    reader.start()
    reader.join(timeout=10)
    assert answers.tolist() == [1, 2, 0, 1]


def test_the_soak_table_says_what_grew_and_what_went_unanswered() -> None:
    args = argparse.Namespace(workers=2, rate=200, minutes=10.0)
    samples = [
        {"t": 0.0, "api": 100.0, "redis used_memory": 3.0},
        {"t": 60.0, "api": 120.0, "redis used_memory": 9.0},
        {"t": 600.0, "api": 121.5, "redis used_memory": 8.0},
    ]
    answers = np.array([1, 1, 2, 0])
    left = {"in": 0, "pending": 0, "dead": 0, "out": 4}
    text = stream_soak.table(args, samples, answers, 199.9, left)
    assert "| api | 100.0 | 121.5 | 121.5 | +21.5 | +1.5 |" in text
    assert "| redis used_memory | 3.0 | 8.0 | 9.0 | +5.0 | -1.0 |" in text
    assert "answered exactly once: 2; more than once: 1; never: 1" in text
