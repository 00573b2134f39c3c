"""Expiry: every transient key has a TTL; expired jobs and batches are 410, not errors."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import numpy as np
import pytest
from flask.testing import FlaskClient
from redis import Redis

from api import create_app, ids
from formats.kaggle_csv import write_kaggle_csv
from store import codec

# Keys that live until removed: the model registry, cumulative metrics, RQ's queues,
# registries and worker sets (each holds ids whose own keys expire).
PERSISTENT = re.compile(
    r"digits:models:.*|digits:metrics:.*"
    r"|rq:queues|rq:queue:[^:]+(:intermediate)?|rq:workers(:.+)?"
    r"|rq:(wip|finished|failed|deferred|scheduled|canceled):[^:]+"
)


def transient_keys_without_ttl(redis_conn: Redis) -> list[str]:
    names = sorted(codec.text(name) for name in redis_conn.scan_iter())
    return [name for name in names if not PERSISTENT.fullmatch(name) and redis_conn.ttl(name) < 0]


def csv_bytes(tmp_path, pixels: np.ndarray, labels: np.ndarray | None = None) -> bytes:
    write_kaggle_csv(tmp_path / "upload.csv", pixels, labels)
    return (tmp_path / "upload.csv").read_bytes()


def test_every_transient_key_has_a_ttl(
    client: FlaskClient, service, published: dict, pixels: np.ndarray, redis_conn: Redis, tmp_path
) -> None:
    truth = np.arange(len(pixels)) % 10
    client.post("/v1/batches", data=csv_bytes(tmp_path, pixels, truth), content_type="text/csv")
    client.post("/v1/jobs", json={"images": pixels[:3].tolist()})
    client.post("/v1/predict?wait=0", json={"pixels": pixels[0].tolist()})
    assert service.queued() > 0
    assert transient_keys_without_ttl(redis_conn) == []  # while queued
    service.while_working(lambda: client.post("/v1/predict", json={"pixels": [0] * 784}))
    redis_conn.delete("digits:models:current")
    service.while_working(lambda: client.post("/v1/predict", json={"pixels": [0] * 784}))
    assert transient_keys_without_ttl(redis_conn) == []  # finished, failed, and worker state
    kept = client.application.config["DIGITS_JOB_RECORD_TTL"]
    finished = [key for key in redis_conn.scan_iter("rq:job:*")
                if redis_conn.hget(key, "status") == b"finished"]  # fmt: skip
    assert finished and all(0 < redis_conn.ttl(key) <= kept for key in finished)


@pytest.fixture
def short_lived(redis_conn: Redis, redis_url: str) -> Callable[..., FlaskClient]:
    """Make a client of the app on the test database with short TTLs (seconds)."""

    def make(**ttls: int) -> FlaskClient:
        settings = {f"DIGITS_{name.upper()}": seconds for name, seconds in ttls.items()}
        return create_app(
            {"REDIS_URL": redis_url, "DIGITS_CHUNK_ROWS": 40} | settings
        ).test_client()

    return make


def test_an_expired_job_is_410_and_an_unknown_one_404(
    short_lived: Callable[..., FlaskClient], service, published: dict, pixels: np.ndarray
) -> None:
    client = short_lived(result_ttl=2)
    job = client.post("/v1/jobs", json={"pixels": pixels[0].tolist()}).json
    service.work()
    assert client.get(job["status_url"]).json["status"] == "finished"
    time.sleep(3.1)  # past the TTL from when the job ended
    expired = client.get(job["status_url"])
    assert expired.status_code == 410
    assert expired.json["error"]["code"] == "expired"
    assert "kept for 2 s" in expired.json["error"]["message"]
    for unknown in (ids.new(), "f" * 32, "0" * 32):  # made now, in the future, or not by us
        response = client.get(f"/v1/jobs/{unknown}")
        assert (response.status_code, response.json["error"]["code"]) == (404, "not_found")


def test_an_expired_batch_is_410(
    short_lived: Callable[..., FlaskClient], service, published: dict, pixels: np.ndarray, tmp_path
) -> None:
    client = short_lived(batch_ttl=2)
    upload = csv_bytes(tmp_path, pixels[:50])
    batch = client.post("/v1/batches", data=upload, content_type="text/csv").json
    service.work()
    assert client.get(batch["submission_url"]).status_code == 200
    time.sleep(3.1)  # past the TTL from when the job ended
    for url in (batch["status_url"], batch["submission_url"]):
        response = client.get(url)
        assert (response.status_code, response.json["error"]["code"]) == (410, "expired")
    assert client.get(f"/v1/batches/{ids.new()}").status_code == 404


def test_work_nobody_waits_for_is_dropped_unrun(
    short_lived: Callable[..., FlaskClient], service, published: dict, pixels: np.ndarray
) -> None:
    client = short_lived(sync_queue_ttl=1)
    with service.alive():
        accepted = client.post("/v1/predict?wait=0", json={"pixels": pixels[0].tolist()})
    assert accepted.status_code == 202
    time.sleep(1.2)  # longer than the queue TTL: the caller has given up
    assert service.work() is False
    body = client.get(accepted.json["status_url"]).json
    assert body["status"] == "failed"
    assert body["error"].startswith("dropped unrun")
    assert body["error"].endswith("(no worker is alive)")  # the worker registered above is gone
