"""Micro-batching of sync predictions: grouping rules, and each caller's own answer.

No assertion here is about time: a window the code ignored would make a test hang (and
pytest-timeout fail it), and the windows it may wait are checked against the setting.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from flask import Flask
from monitor import commands_sent
from processes import redis_db
from redis import Redis
from rq import Queue
from tolerances import PROBABILITY_ATOL, PROBABILITY_RTOL

from api import create_app, dispatch
from api.microbatch import GroupQueue, MicroBatcher, batcher
from api.services import services
from store import groups, inbox, keys, results

REDIS_URL = redis_db(10)  # this module's database, flushed before and after
LONG = 60.0  # a window no test may wait out
WAIT = "?wait=60"  # callers outwait any slowness of the machine: the worker runs when told


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture
def redis_conn() -> Iterator[Redis]:
    connection = Redis.from_url(REDIS_URL)
    connection.flushdb()
    yield connection
    connection.flushdb()
    connection.close()


def make_app(window_ms: float, max_batch: int) -> Flask:
    settings = {"DIGITS_BATCH_WINDOW_MS": window_ms, "DIGITS_MAX_BATCH": max_batch}
    return create_app({"REDIS_URL": REDIS_URL, "TESTING": True, **settings})


@pytest.fixture
def app(redis_conn: Redis) -> Flask:
    """An app whose groups close only when full: grouping does not depend on timing."""
    return make_app(LONG * 1000, 8)


class Recorder:
    """A stand-in queue: records each group sent, optionally failing or blocking."""

    def __init__(self, error: Exception | None = None) -> None:
        self.sent: list[tuple[list[str], bool]] = []
        self.error = error
        self.release = threading.Event()
        self.release.set()

    def __call__(self, members: groups.Members, company: bool) -> None:
        self.release.wait()
        self.sent.append(([job_id for job_id, _ in members], company))
        if self.error is not None:
            raise self.error


def image(value: int, count: int = 1) -> np.ndarray:
    return np.full((count, 784), value, np.uint8)


def in_flight(batch: MicroBatcher, pixels: np.ndarray) -> tuple[threading.Event, Any]:
    """Start a request that stays in flight (company for others) until the event is set."""
    done = threading.Event()
    entered = threading.Event()

    def hold() -> str:
        with batch.submit(pixels) as job_id:
            entered.set()
            done.wait()
            return job_id

    pool = ThreadPoolExecutor(1)
    future = pool.submit(hold)
    pool.shutdown(wait=False)
    entered.wait()
    return done, future


def submit_all(batch: MicroBatcher, images: list[np.ndarray]) -> list[str]:
    """Submit every image from its own thread; return the job ids in the same order."""

    def one(pixels: np.ndarray) -> str:
        with batch.submit(pixels) as job_id:
            return job_id

    with ThreadPoolExecutor(len(images)) as pool:
        return list(pool.map(one, images))


def test_a_lone_request_goes_at_once_whatever_the_window() -> None:
    queue = Recorder()
    batch = MicroBatcher(queue, window=LONG, max_images=8)
    with batch.submit(image(1)) as job_id:
        assert queue.sent == [([job_id], False)]


def test_requests_with_company_share_one_group_sent_when_full() -> None:
    queue = Recorder()
    batch = MicroBatcher(queue, window=LONG, max_images=5)
    release, first = in_flight(batch, image(0))
    ids = submit_all(batch, [image(value) for value in range(1, 6)])
    release.set()
    assert queue.sent[0] == ([first.result()], False)
    assert len(queue.sent) == 2
    members, company = queue.sent[1]
    assert sorted(members) == sorted(ids) and company
    assert len(set(ids)) == 5


def test_many_threads_every_request_sent_exactly_once_within_the_limit() -> None:
    queue = Recorder()
    batch = MicroBatcher(queue, window=0.001, max_images=4)
    release, first = in_flight(batch, image(0))
    sizes = [1, 2, 3, 4, 1, 2] * 10
    ids = submit_all(batch, [image(value % 250, count) for value, count in enumerate(sizes)])
    release.set()
    sent = [job_id for members, _ in queue.sent for job_id in members]
    assert sorted(sent) == sorted([first.result(), *ids])
    count = dict(zip(ids, sizes, strict=True)) | {first.result(): 1}
    assert all(sum(count[job_id] for job_id in members) <= 4 for members, _ in queue.sent)
    assert batch._in_flight == 0


def test_the_window_waited_is_the_configured_one() -> None:
    queue = Recorder()
    window = 0.005
    batch = MicroBatcher(queue, window=window, max_images=64)
    waits: list[float] = []
    wait = batch._lock.wait

    def recording_wait(timeout: float | None = None) -> bool:
        waits.append(timeout if timeout is not None else float("inf"))
        return wait(timeout)

    batch._lock.wait = recording_wait  # type: ignore[method-assign]
    release, _ = in_flight(batch, image(0))
    submit_all(batch, [image(1)])
    release.set()
    assert waits and max(waits) <= window


def test_a_zero_window_sends_at_once_even_with_company() -> None:
    queue = Recorder()
    batch = MicroBatcher(queue, window=0, max_images=64)
    release, _ = in_flight(batch, image(0))
    (job_id,) = submit_all(batch, [image(1)])
    release.set()
    assert queue.sent[-1] == ([job_id], True)


def test_a_request_larger_than_the_limit_goes_alone() -> None:
    queue = Recorder()
    batch = MicroBatcher(queue, window=LONG, max_images=4)
    release, _ = in_flight(batch, image(0))
    (job_id,) = submit_all(batch, [image(1, count=6)])
    release.set()
    assert queue.sent[-1] == ([job_id], True)


def test_a_failed_send_reaches_every_member() -> None:
    queue = Recorder(error=ConnectionError("queue down"))
    batch = MicroBatcher(queue, window=LONG, max_images=3)
    queue.release.clear()  # the first request stays in its send: company for the others
    errors: list[BaseException] = []

    def one(pixels: np.ndarray) -> None:
        try:
            with batch.submit(pixels):
                pass
        except ConnectionError as error:
            errors.append(error)

    threads = [threading.Thread(target=one, args=(image(value),)) for value in range(4)]
    threads[0].start()
    while batch._in_flight == 0:
        threading.Event().wait(0.001)
    for thread in threads[1:]:
        thread.start()
    queue.release.set()
    for thread in threads:
        thread.join()
    assert len(errors) == 4 and batch._in_flight == 0


# Through Redis and a real worker.


def post_all(app: Flask, bodies: list[dict[str, Any]], query: str = "") -> list[Any]:
    """POST each body to /v1/predict from its own thread and test client."""

    def one(body: dict[str, Any]) -> Any:
        return app.test_client().post(f"/v1/predict{query}", json=body)

    pool = ThreadPoolExecutor(len(bodies))
    futures = [pool.submit(one, body) for body in bodies]
    pool.shutdown(wait=False)
    return futures


def wait_until(condition: Callable[[], bool]) -> None:
    """Wait for something the threads under test do (pytest-timeout bounds it)."""
    while not condition():
        threading.Event().wait(0.005)


def members_of(redis_conn: Redis, group_id: str) -> list[bytes]:
    return list(redis_conn.lrange(keys.group_members(group_id), 0, -1))


def rq_jobs(redis_conn: Redis) -> int:
    return len(redis_conn.keys("rq:job:*"))


def test_concurrent_predictions_share_one_job_and_get_their_own_answers(
    redis_conn: Redis, service, live_worker: None, published: dict, pixels: np.ndarray
) -> None:
    count = 9  # one request alone, then eight that join its job while it waits for a worker
    app = make_app(20, count)
    bodies = [{"pixels": row.tolist()} for row in pixels[:count]]
    futures = post_all(app, bodies[:1], WAIT)
    wait_until(lambda: Queue(keys.PREDICT_QUEUE, connection=redis_conn).count == 1)
    group_id = Queue(keys.PREDICT_QUEUE, connection=redis_conn).job_ids[0]
    futures += post_all(app, bodies[1:], WAIT)
    wait_until(lambda: len(members_of(redis_conn, group_id)) == count)
    service.work()
    answers = [future.result(timeout=30) for future in futures]
    assert rq_jobs(redis_conn) == 1
    expected = model_outputs(service, pixels[:count])
    for answer, (label, probabilities) in zip(answers, expected, strict=True):
        assert answer.status_code == 200
        assert answer.json["labels"] == [label]
        np.testing.assert_allclose(
            answer.json["probabilities"],
            [probabilities],
            rtol=PROBABILITY_RTOL,  # the worker's batch is another size: float32 rounding
            atol=PROBABILITY_ATOL,
        )
        assert answer.json["model_version"] == published["a"]
    job_ids = {answer.json["job_id"] for answer in answers}
    assert len(job_ids) == count and group_id in job_ids
    client = app.test_client()
    for answer in answers:
        polled = client.get(f"/v1/jobs/{answer.json['job_id']}").json
        assert polled["labels"] == answer.json["labels"]


def test_the_callers_of_one_process_share_one_reader_of_answers(
    redis_conn: Redis,
    service,
    live_worker: None,
    published: dict,
    pixels: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(inbox, "READ_WAIT", 30)  # one blocking read outlasts the whole test
    count = 8
    app = make_app(20, count)
    with commands_sent(redis_conn, naming=app.extensions["digits"].inbox.key) as sent:
        futures = post_all(app, [{"pixels": row.tolist()} for row in pixels[:count]], WAIT)
        wait_until(lambda: Queue(keys.PREDICT_QUEUE, connection=redis_conn).count >= 1)
        group_id = Queue(keys.PREDICT_QUEUE, connection=redis_conn).job_ids[0]
        wait_until(lambda: len(members_of(redis_conn, group_id)) == count)
        service.work()
        answers = [future.result(timeout=30) for future in futures]
    assert [answer.json["labels"] for answer in answers] == [
        [label] for label in service.labels("a", pixels[:count])
    ]
    # One blocking read took all eight answers (and the next one waits): not one per caller.
    assert 1 <= sent.count("BLPOP") <= 2


def model_outputs(service, pixels: np.ndarray) -> list[tuple[int, np.ndarray]]:
    import model

    probabilities = model.loads(service.networks["a"]).predict_proba(pixels)
    return [(int(row.argmax()), row) for row in probabilities]


def test_a_member_that_stops_waiting_can_poll_its_own_job(
    redis_conn: Redis, service, live_worker: None, published: dict, pixels: np.ndarray
) -> None:
    app = make_app(0, 8)
    (first,) = post_all(app, [{"pixels": pixels[0].tolist()}], WAIT)
    wait_until(lambda: Queue(keys.PREDICT_QUEUE, connection=redis_conn).count == 1)
    late = app.test_client().post("/v1/predict?wait=0", json={"images": pixels[1:3].tolist()})
    assert late.status_code == 202
    job_id = late.json["job_id"]
    group_id = Queue(keys.PREDICT_QUEUE, connection=redis_conn).job_ids[0]
    assert job_id != group_id and len(members_of(redis_conn, group_id)) == 2
    client = app.test_client()
    assert client.get(f"/v1/jobs/{job_id}").json["status"] == "queued"
    service.work()
    assert first.result(timeout=30).json["labels"] == service.labels("a", pixels[:1])
    assert client.get(f"/v1/jobs/{job_id}").json["labels"] == service.labels("a", pixels[1:3])


def test_max_batch_one_gives_every_request_its_own_job(
    redis_conn: Redis, service, live_worker: None, published: dict, pixels: np.ndarray
) -> None:
    app = make_app(LONG * 1000, 1)
    futures = post_all(app, [{"pixels": row.tolist()} for row in pixels[:4]], WAIT)
    wait_until(lambda: Queue(keys.PREDICT_QUEUE, connection=redis_conn).count == 4)
    service.work()
    labels = [future.result(timeout=30).json["labels"][0] for future in futures]
    assert labels == service.labels("a", pixels[:4])
    assert rq_jobs(redis_conn) == 4


def test_a_claimed_group_takes_no_one_and_a_new_job_starts(
    app: Flask, redis_conn: Redis, service, published: dict, pixels: np.ndarray
) -> None:
    found = services_of(app)
    queue = GroupQueue(found, max_images=8)
    queue.send([("a" * 32, pixels[:1])], company=False)
    assert groups.join(redis_conn, "a" * 32, [("b" * 32, pixels[1:2])], 60)
    claimed = groups.claim(redis_conn, "a" * 32)
    assert claimed.members == [("a" * 32, 1), ("b" * 32, 1)]
    assert claimed.current_model == published["a"]
    np.testing.assert_array_equal(claimed.pixels, pixels[:2])
    assert not groups.join(redis_conn, "a" * 32, [("c" * 32, pixels[2:3])], 60)
    queue.send([("c" * 32, pixels[2:3])], company=True)
    assert Queue(keys.PREDICT_QUEUE, connection=redis_conn).job_ids == ["a" * 32, "c" * 32]


def test_a_group_that_fails_answers_every_member_with_the_error(
    app: Flask, redis_conn: Redis, service, published: dict, pixels: np.ndarray
) -> None:
    found = services_of(app)
    members = [("d" * 32, pixels[:1]), ("e" * 32, pixels[1:3])]
    dispatch.submit_group(found, members)
    redis_conn.delete(keys.job_pixels("d" * 32))
    service.work()
    for job_id, _ in members:
        result = results.read(redis_conn, job_id)
        assert result is not None and result.error is not None
        assert "expired or were deleted" in result.error


def services_of(app: Flask) -> Any:
    with app.app_context():
        assert batcher() is app.extensions["digits.microbatch"]
        return services()
