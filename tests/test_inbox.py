"""One reader of answers per API process: callers get their own answers, whenever they come."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from store import inbox, results
from store.inbox import Inbox


def push(connection: Redis, box: Inbox, job_id: str, label: int) -> None:
    """Write a one-image answer as a worker does, for a caller of `box`."""
    probabilities = np.eye(10, dtype=np.float32)[[label]]
    pipe = connection.pipeline()
    results.write(pipe, job_id, probabilities, np.array([False]), "v1", 60, box.key)
    pipe.execute()


def test_each_caller_gets_its_own_answer_from_one_reader(redis_conn: Redis) -> None:
    box = Inbox(redis_conn)
    # Readers of earlier tests' inboxes live on for up to IDLE_STOP: not this box's.
    before = {thread for thread in threading.enumerate() if thread.name == "inbox"}
    job_ids = [f"{n:032x}" for n in range(8)]
    with ThreadPoolExecutor(len(job_ids)) as pool:
        futures = [pool.submit(box.wait, job_id, 10) for job_id in job_ids]
        for label, job_id in enumerate(reversed(job_ids)):
            push(redis_conn, box, job_id, label % 10)
        answers = [future.result(timeout=15) for future in futures]

    for job_id, answer in zip(job_ids, answers, strict=True):
        assert answer is not None and answer.model_version == "v1"
        assert answer.labels.tolist() == [(len(job_ids) - 1 - int(job_id, 16)) % 10]
    readers = {thread for thread in threading.enumerate() if thread.name == "inbox"} - before
    assert len(readers) <= 1


def test_an_answer_that_came_before_its_caller_waits_is_kept(redis_conn: Redis) -> None:
    box = Inbox(redis_conn)
    push(redis_conn, box, "a" * 32, 3)  # before any reader runs

    answer = box.wait("a" * 32, 5)

    assert answer is not None and answer.labels.tolist() == [3]


def test_a_caller_whose_wait_runs_out_gets_nothing_and_no_one_else_gets_its_answer(
    redis_conn: Redis,
) -> None:
    box = Inbox(redis_conn)
    assert box.wait("b" * 32, 0.2) is None
    push(redis_conn, box, "b" * 32, 4)  # late, for a caller that answered 202
    push(redis_conn, box, "c" * 32, 5)

    answer = box.wait("c" * 32, 5)

    assert answer is not None and answer.labels.tolist() == [5]
    assert results.read(redis_conn, "b" * 32).labels.tolist() == [4]  # still there to poll


def test_a_redis_failure_under_the_reader_reaches_the_waiting_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gone = Redis(port=1, socket_connect_timeout=0.2)  # nothing listens there
    monkeypatch.setattr(inbox, "READ_WAIT", 0.1)

    with pytest.raises(RedisConnectionError):
        Inbox(gone).wait("d" * 32, 5)


def test_only_waiting_callers_get_answers_pushed(redis_conn: Redis) -> None:
    pipe = redis_conn.pipeline()
    results.write(pipe, "e" * 32, np.eye(10, dtype=np.float32)[[1]], np.array([True]), "v1", 60)
    pipe.execute()

    assert redis_conn.keys("digits:inbox:*") == []  # a polled job pushes nothing
    assert results.read(redis_conn, "e" * 32).uncertain.tolist() == [True]
