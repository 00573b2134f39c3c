"""Streams under faults, done for real: workers killed with SIGKILL, Redis restarted (AOF).

Every input must end with exactly one answer in the output stream, and none be lost.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from processes import RedisServer, wait_for, workers
from redis import Redis
from redis.exceptions import RedisError
from rq import Worker

from scripts.registry import publish_file
from store import codec, keys, streams

CNN = Path(__file__).resolve().parent.parent / "model" / "weights" / "cnn.npz"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private Redis with AOF on, in its own directory, stopped after the test."""
    directory = tmp_path / "redis"
    directory.mkdir()
    found = RedisServer(directory)
    found.start()
    yield found
    found.stop()


def add(connection: Redis, name: str, pixels: np.ndarray, first: int) -> list[str]:
    """XADD one entry per image (ids from `first`) in one pipeline; return the entry ids."""
    pipe = connection.pipeline(transaction=False)
    for n, row in enumerate(pixels, start=first):
        streams.add(pipe, name, {"pixels": row.tobytes(), "id": f"img-{n}"})
    return [codec.text(entry_id) for entry_id in pipe.execute()]


def answered(connection: Redis, name: str) -> list[dict]:
    return [streams.decode_answer(f) for _, f in connection.xrange(keys.stream_out(name))]


def pending_by_consumer(connection: Redis, name: str) -> dict[str, int]:
    summary = connection.xpending(keys.stream_in(name), streams.GROUP)
    return {codec.text(c["name"]): int(c["pending"]) for c in summary["consumers"]}


def worker_names(connection: Redis) -> dict[int, str]:
    """Map each live RQ worker's pid to its name (its consumer name in the group)."""
    return {worker.pid: worker.name for worker in Worker.all(connection=connection) if worker.pid}


def assert_answered_once(connection: Redis, name: str, in_ids: list[str]) -> list[dict]:
    answers = answered(connection, name)
    counts = Counter(answer["in_id"] for answer in answers)
    assert [i for i, n in counts.items() if n > 1] == []
    assert set(counts) == set(in_ids)
    assert all("error" not in answer for answer in answers)
    assert connection.xlen(keys.stream_in(name)) == 0
    assert connection.xpending(keys.stream_in(name), streams.GROUP)["pending"] == 0
    return answers


@pytest.mark.slow
def test_kill_9_of_a_worker_mid_stream_answers_every_input_once(
    server: RedisServer, pixels: np.ndarray, tmp_path: Path
) -> None:
    connection = Redis.from_url(server.url)
    publish_file(connection, CNN, activate=True)
    streams.create(connection, "s", maxlen=100_000)
    images = np.concatenate([pixels] * 40)  # 4,000 inputs
    with workers(server.url, 2, tmp_path) as started:
        wait_for(lambda: len(worker_names(connection)) == 2, 60, "two workers")
        in_ids = add(connection, "s", images, 0)
        victim = started[0]
        name = worker_names(connection)[victim.pid]
        # Kill it while it holds entries it has read but not answered.
        wait_for(lambda: pending_by_consumer(connection, "s").get(name, 0) > 0, 30, "work")
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        killed_at = time.monotonic()
        held = pending_by_consumer(connection, "s").get(name, 0)
        assert held > 0, "the killed worker held no entries"
        wait_for(lambda: connection.xlen(keys.stream_out("s")) >= len(in_ids), 90, "answers")
        recovered_after = time.monotonic() - killed_at
        time.sleep(1)  # anything answered twice would show up now
    answers = assert_answered_once(connection, "s", in_ids)
    labels = {answer["id"]: answer["label"] for answer in answers}
    assert len(labels) == len(images)
    assert connection.xlen(keys.stream_dead("s")) == 0
    print(
        f"killed holding {held} entries; all {len(in_ids)} answered {recovered_after:.1f} s later"
    )


@pytest.mark.slow
def test_redis_restarted_with_aof_loses_no_acknowledged_input(
    server: RedisServer, pixels: np.ndarray, tmp_path: Path
) -> None:
    connection = Redis.from_url(server.url)
    publish_file(connection, CNN, activate=True)
    streams.create(connection, "s", maxlen=100_000)
    acknowledged: list[str] = []
    stop = threading.Event()

    def produce() -> None:
        """Add 100 inputs at a time; an XADD that raised was not acknowledged: not counted."""
        producer = Redis.from_url(server.url, socket_timeout=2)
        batch = 0
        while not stop.is_set():
            try:
                acknowledged.extend(add(producer, "s", pixels, batch * 100))
                batch += 1
            except RedisError:
                pass
            time.sleep(0.05)

    with workers(server.url, 2, tmp_path):
        wait_for(lambda: len(worker_names(connection)) == 2, 60, "two workers")
        producer = threading.Thread(target=produce)
        producer.start()
        wait_for(lambda: len(acknowledged) >= 1_000, 30, "inputs to flow")
        server.stop()
        time.sleep(1)
        server.start()
        wait_for(lambda: len(acknowledged) >= 3_000, 60, "inputs to flow again")
        stop.set()
        producer.join()
        wait_for(lambda: connection.xlen(keys.stream_out("s")) >= len(acknowledged), 90, "answers")
        time.sleep(1)
    assert_answered_once(connection, "s", acknowledged)


@pytest.mark.slow
def test_a_poison_entry_ends_in_the_dead_letter_stream(
    server: RedisServer, pixels: np.ndarray, tmp_path: Path
) -> None:
    """An input whose takers all die before answering is set aside, its neighbours answered."""
    connection = Redis.from_url(server.url)
    publish_file(connection, CNN, activate=True)
    streams.create(connection, "s")
    (poison,) = add(connection, "s", pixels[:1], 0)
    # Each of MAX_DELIVERIES consumers takes it, as a worker does, and dies holding it.
    streams.read(connection, "died-1", ["s"], 1, None)
    for n in range(2, streams.MAX_DELIVERIES + 1):
        streams.reclaim(connection, "s", f"died-{n}", 1, idle_ms=0)
    others = add(connection, "s", pixels[1:20], 1)
    with workers(server.url, 1, tmp_path):
        wait_for(lambda: connection.xlen(keys.stream_dead("s")) == 1, 60, "the dead letter")
        wait_for(lambda: connection.xlen(keys.stream_out("s")) == 20, 30, "every answer")
    ((_, dead),) = connection.xrange(keys.stream_dead("s"))
    assert codec.text(dead[b"in_id"]) == poison and dead[b"id"] == b"img-0"
    assert f"no answer after {streams.MAX_DELIVERIES} deliveries" in codec.text(dead[b"reason"])
    assert dead[b"pixels"] == pixels[0].tobytes()  # kept, to be looked at or sent again
    answers = {answer["in_id"]: answer for answer in answered(connection, "s")}
    assert "error" in answers[poison] and "label" not in answers[poison]
    assert all(answers[in_id]["label"] in range(10) for in_id in others)
    assert connection.xpending(keys.stream_in("s"), streams.GROUP)["pending"] == 0
