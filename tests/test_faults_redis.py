"""Redis restarted under a queued batch: the batch survives (AOF), clients get 503 meanwhile."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from processes import RedisServer, wait_for, workers
from redis import Redis

import model
from api import create_app
from formats.kaggle_csv import write_kaggle_csv
from store import registry


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private Redis with AOF on, in its own directory, stopped after the test."""
    directory = tmp_path / "redis"
    directory.mkdir()
    found = RedisServer(directory)
    found.start()
    yield found
    found.stop()


def service_labels(networks: dict[str, bytes], pixels: np.ndarray) -> list[int]:
    return model.loads(networks["a"]).predict(pixels).tolist()


def assert_unavailable(response) -> None:
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert response.mimetype == "application/json"
    assert set(response.json["error"]) == {"code", "message"}


@pytest.mark.slow
def test_queued_batch_survives_a_redis_restart(
    server: RedisServer, networks: dict[str, bytes], pixels: np.ndarray, tmp_path: Path
) -> None:
    connection = Redis.from_url(server.url)
    version, _ = registry.publish(connection, networks["a"], model.loads(networks["a"]).metadata)
    registry.activate(connection, version)
    client = create_app({"REDIS_URL": server.url, "DIGITS_CHUNK_ROWS": 100}).test_client()
    rows = np.concatenate([pixels] * 10)  # 1,000 rows, 10 chunks
    write_kaggle_csv(tmp_path / "test.csv", rows)

    with workers(server.url, 1, tmp_path) as [worker]:
        wait_for(lambda: client.get("/readyz").status_code == 200, 60, "/readyz to be green")
        os.kill(worker.pid, signal.SIGSTOP)  # queued work must wait out the restart
        csv = (tmp_path / "test.csv").read_bytes()
        batch = client.post("/v1/batches", data=csv, content_type="text/csv").json
        job = client.post("/v1/jobs", json={"images": pixels[:4].tolist()}).json

        server.stop()
        started = time.monotonic()
        assert_unavailable(client.post("/v1/jobs", json={"pixels": pixels[0].tolist()}))
        answered = time.monotonic() - started
        assert_unavailable(client.get(batch["status_url"]))
        red = client.get("/readyz")
        assert_unavailable(red)
        assert red.json["checks"]["redis"] is False

        os.kill(worker.pid, signal.SIGCONT)
        time.sleep(4)  # a worker without Redis keeps its process and tries again
        assert worker.poll() is None

        server.start()
        restarted = time.monotonic()
        wait_for(lambda: client.get("/readyz").status_code == 200, 30, "/readyz to turn green")
        green = time.monotonic() - restarted

        def finished() -> dict | None:
            body = client.get(batch["status_url"]).json
            return body if body["status"] == "finished" else None

        status = wait_for(finished, 60, "the batch to finish after the restart")
        done = time.monotonic() - restarted
        # The job was taken by the frozen worker as Redis went down: it is found and run again.
        wait_for(lambda: client.get(job["status_url"]).json["status"] == "finished", 60, "the job")
        job_done = time.monotonic() - restarted
        assert worker.poll() is None

    print(
        f"\nredis down: 503 in {answered:.2f} s; after restart: ready {green:.1f} s, "
        f"batch done {done:.1f} s, job done {job_done:.1f} s"
    )
    assert status["rows_done"] == len(rows)
    lines = client.get(batch["submission_url"]).data.decode().splitlines()[1:]
    labels = [int(line.split(",")[1]) for line in lines]
    assert labels == model.loads(networks["a"]).predict(rows).tolist()
    assert client.get(job["status_url"]).json["labels"] == service_labels(networks, pixels[:4])


@pytest.mark.slow
def test_a_worker_started_before_redis_waits_for_it_and_stops_on_sigterm(
    networks: dict[str, bytes], pixels: np.ndarray, tmp_path: Path
) -> None:
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory)  # not started yet
    with workers(server.url, 1, tmp_path) as [worker]:
        time.sleep(3)
        assert worker.poll() is None
        server.start()
        try:
            connection = Redis.from_url(server.url)
            version, _ = registry.publish(connection, networks["a"], {})
            registry.activate(connection, version)
            client = create_app({"REDIS_URL": server.url}).test_client()
            job = client.post("/v1/jobs", json={"pixels": pixels[0].tolist()}).json
            wait_for(
                lambda: client.get(job["status_url"]).json["status"] == "finished", 30, "the job"
            )
            server.stop()
            time.sleep(1)  # the worker is waiting for Redis again: SIGTERM must still stop it
            worker.terminate()
            assert worker.wait(timeout=10) == 0
        finally:
            server.stop()


def test_a_full_redis_refuses_new_work_with_503_and_keeps_serving_reads(
    server: RedisServer, networks: dict[str, bytes], pixels: np.ndarray
) -> None:
    connection = Redis.from_url(server.url)
    version, _ = registry.publish(connection, networks["a"], {})
    registry.activate(connection, version)
    client = create_app({"REDIS_URL": server.url}).test_client()
    job = client.post("/v1/jobs", json={"pixels": pixels[0].tolist()}).json
    connection.config_set("maxmemory", connection.info("memory")["used_memory"] // 2)
    try:
        full = client.post("/v1/jobs", json={"pixels": pixels[1].tolist()})
        assert_unavailable(full)
        assert full.json["error"]["code"] == "redis_full"
        assert client.get(job["status_url"]).json["status"] == "queued"
    finally:
        connection.config_set("maxmemory", 0)
    assert client.post("/v1/jobs", json={"pixels": pixels[1].tolist()}).status_code == 202
