"""GET /metrics: requests by route and status, job timings from workers, queue, workers, model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient
from processes import redis_db
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from api import create_app
from formats.kaggle_csv import write_kaggle_csv
from scripts import metrics_dir
from store import keys
from worker import runner

DB = redis_db(14)  # this module's database, flushed before and after


@pytest.fixture
def redis_url() -> str:
    return DB


def scrape(client: FlaskClient) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics, by (name, labels)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.data.decode())
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_requests_are_counted_by_route_and_status(client: FlaskClient) -> None:
    before = scrape(client)
    for _ in range(3):
        client.get("/healthz")
    client.get("/v1/jobs/" + "0" * 32)
    client.get("/nowhere")
    after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "digits_http_requests_total"
    assert grew(requests, method="GET", route="/healthz", status="200") == 3
    assert grew(requests, method="GET", route="/v1/jobs/<job_id>", status="404") == 1
    assert grew(requests, method="GET", route="unmatched", status="404") == 1
    latency = "digits_http_request_duration_seconds_count"
    assert grew(latency, method="GET", route="/healthz") == 3


def test_service_and_job_metrics(
    client: FlaskClient, service, published: dict, tmp_path: Path
) -> None:
    before = scrape(client)
    client.post("/v1/jobs", json={"images": [[0] * 784] * 3})
    csv = tmp_path / "test.csv"
    write_kaggle_csv(csv, np.zeros((100, 784), np.uint8))
    client.post("/v1/batches", data=csv.read_bytes(), content_type="text/csv")
    queued = scrape(client)
    assert value(queued, "digits_queue_depth", queue=keys.PREDICT_QUEUE) == 1
    assert value(queued, "digits_queue_depth", queue=keys.BATCH_QUEUE) == 3  # 40-row chunks
    assert value(queued, "digits_model_info", version=published["a"]) == 1
    assert value(queued, "digits_redis_up") == 1
    rows = "digits_request_rows_count"
    assert value(queued, rows, route="/v1/jobs") - value(before, rows, route="/v1/jobs") == 1
    assert value(queued, "digits_request_rows_sum", route="/v1/batches") - value(
        before, "digits_request_rows_sum", route="/v1/batches"
    ) == pytest.approx(100)

    service.work()
    done = scrape(client)
    predict, batch = keys.PREDICT_QUEUE, keys.BATCH_QUEUE
    assert value(done, "digits_queue_depth", queue=predict) == 0
    assert value(done, "digits_jobs_total", queue=predict, outcome="finished") == 1
    assert value(done, "digits_jobs_total", queue=batch, outcome="finished") == 3
    assert value(done, "digits_rows_processed_total", queue=predict) == 3
    assert value(done, "digits_rows_processed_total", queue=batch) == 100
    assert value(done, "digits_job_rows_bucket", queue=batch, le="20.0") == 1  # the last 20
    assert value(done, "digits_job_rows_bucket", queue=batch, le="50.0") == 3
    for histogram in ("digits_job_queue_wait_seconds", "digits_job_compute_seconds"):
        assert value(done, f"{histogram}_count", queue=batch) == 3
        assert value(done, f"{histogram}_bucket", queue=batch, le="+Inf") == 3
        assert value(done, f"{histogram}_sum", queue=batch) > 0


def test_failed_jobs_and_live_workers(client: FlaskClient, service, published: dict) -> None:
    job_id = client.post("/v1/jobs", json={"pixels": [0] * 784}).json["job_id"]
    service.connection.delete(keys.job_pixels(job_id))
    service.work()
    worker = runner.build(service.connection)
    worker.register_birth()
    try:
        samples = scrape(client)
    finally:
        worker.register_death()
    assert value(samples, "digits_jobs_total", queue=keys.PREDICT_QUEUE, outcome="failed") == 1
    assert value(samples, "digits_rows_processed_total", queue=keys.PREDICT_QUEUE) == 0
    assert value(samples, "digits_workers") == 1


def test_metrics_answer_while_redis_is_down(redis_conn: Redis) -> None:
    client = create_app({"REDIS_URL": "redis://127.0.0.1:1/0", "TESTING": True}).test_client()
    client.get("/healthz")
    samples = scrape(client)
    assert value(samples, "digits_redis_up") == 0
    assert not any(name == "digits_queue_depth" for name, _ in samples)


def test_metrics_dir_is_fresh_per_master_and_orphans_are_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics_dir.tempfile, "tempdir", str(tmp_path))
    orphan = tmp_path / f"{metrics_dir.PREFIX}{_dead_pid()}"
    orphan.mkdir()
    (orphan / "counter_1.db").write_bytes(b"old")
    alive = tmp_path / f"{metrics_dir.PREFIX}{os.getppid()}"
    alive.mkdir()
    stale = tmp_path / f"{metrics_dir.PREFIX}{os.getpid()}"
    stale.mkdir()
    (stale / "counter_2.db").write_bytes(b"from a pid used before")
    environ: dict[str, str] = {}
    assert metrics_dir.prepare(environ) == stale
    assert environ[metrics_dir.VARIABLE] == str(stale) and not any(stale.iterdir())
    assert not orphan.exists() and alive.exists()
    operator = {metrics_dir.VARIABLE: str(tmp_path / "mine")}
    assert metrics_dir.prepare(operator) == tmp_path / "mine"


def _dead_pid() -> int:
    """The pid of a process that has exited."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout)
