"""Backpressure: past DIGITS_MAX_QUEUE jobs on a queue, new work gets 429 with Retry-After."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from flask.testing import FlaskClient
from monitor import commands_sent
from redis import Redis

from api import backpressure, create_app
from formats.kaggle_csv import write_kaggle_csv


@pytest.fixture
def bounded(redis_conn: Redis, redis_url: str) -> Callable[[int], FlaskClient]:
    """Make a client of the app on the test database with DIGITS_MAX_QUEUE set."""

    def make(max_queue: int) -> FlaskClient:
        config = {"REDIS_URL": redis_url, "DIGITS_CHUNK_ROWS": 40, "DIGITS_MAX_QUEUE": max_queue}
        return create_app(config).test_client()

    return make


def assert_queue_full(response) -> None:
    assert response.status_code == 429
    assert response.json["error"]["code"] == "queue_full"
    assert "limit is 3" in response.json["error"]["message"]
    assert int(response.headers["Retry-After"]) > 0


def test_full_predict_queue_refuses_new_requests_until_it_drains(
    bounded: Callable[[int], FlaskClient],
    service,
    live_worker: None,
    published: dict,
    pixels: np.ndarray,
    redis_conn: Redis,
) -> None:
    client = bounded(3)
    for image in pixels[:3]:
        assert client.post("/v1/jobs", json={"pixels": image.tolist()}).status_code == 202
    stored = sorted(redis_conn.scan_iter())
    assert_queue_full(client.post("/v1/jobs", json={"pixels": pixels[3].tolist()}))
    assert_queue_full(client.post("/v1/predict", json={"pixels": pixels[3].tolist()}))
    assert sorted(redis_conn.scan_iter()) == stored  # nothing kept of the refused requests
    assert service.queued() == 3
    service.work()
    assert client.post("/v1/jobs", json={"pixels": pixels[3].tolist()}).status_code == 202


def test_full_batch_queue_refuses_new_batches_but_not_single_images(
    bounded: Callable[[int], FlaskClient], service, published: dict, pixels: np.ndarray, tmp_path
) -> None:
    client = bounded(3)
    write_kaggle_csv(tmp_path / "test.csv", pixels)  # 100 rows: 3 chunks of 40
    upload = (tmp_path / "test.csv").read_bytes()
    assert client.post("/v1/batches", data=upload, content_type="text/csv").status_code == 202
    assert_queue_full(client.post("/v1/batches", data=upload, content_type="text/csv"))
    assert client.post("/v1/jobs", json={"pixels": pixels[0].tolist()}).status_code == 202
    assert service.queued() == 4
    service.work()
    assert client.post("/v1/batches", data=upload, content_type="text/csv").status_code == 202


def test_a_bound_of_zero_admits_everything(
    bounded: Callable[[int], FlaskClient], service, published: dict, pixels: np.ndarray
) -> None:
    client = bounded(0)
    for image in pixels[:20]:
        assert client.post("/v1/jobs", json={"pixels": image.tolist()}).status_code == 202
    assert service.queued() == 20


def test_a_fresh_depth_admits_work_without_asking_redis_again(
    bounded: Callable[[int], FlaskClient],
    pixels: np.ndarray,
    redis_conn: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = bounded(100)
    body = {"pixels": pixels[0].tolist()}
    assert client.post("/v1/jobs", json=body).status_code == 202  # reads the depth (LLEN)
    with commands_sent(redis_conn) as sent:
        assert client.post("/v1/jobs", json=body).status_code == 202
    opened = sent.index("MULTI")
    assert "LLEN" not in sent[:opened]  # no depth read before queueing ...
    assert sent[opened:].count("LLEN") == 1  # ... only the one inside the enqueue's transaction

    monkeypatch.setattr(backpressure, "DEPTH_FRESH", 0.0)  # every reading already stale
    with commands_sent(redis_conn) as sent:
        assert client.post("/v1/jobs", json=body).status_code == 202
    assert sent.count("LLEN") == 2 and "LLEN" in sent[: sent.index("MULTI")]
