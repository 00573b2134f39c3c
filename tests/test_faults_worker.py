"""Dead workers: their started jobs go back to the queue within seconds, and run once."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient
from processes import wait_for, workers
from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

import model
from api import create_app
from config.settings import DEFAULTS
from formats.kaggle_csv import write_kaggle_csv
from scripts.registry import publish_file
from store import codec, keys
from worker import recovery, runner
from worker.queues import ClaimingQueue

CNN = Path(__file__).resolve().parent.parent / "model" / "weights" / "cnn.npz"
ROWS = 10_000


def running(redis_conn: Redis, queue_name: str) -> dict[str, str]:
    """Map each worker that runs a job of the queue now to that job's id."""
    started = Queue(queue_name, connection=redis_conn).started_job_registry
    found = {}
    for entry in redis_conn.zrange(started.key, 0, -1):
        composite = codec.text(entry)
        owner = redis_conn.hget(f"rq:execution:{composite}", "worker_name")
        if owner is not None:
            found[codec.text(owner)] = composite.split(":")[0]
    return found


def start_and_die(redis_conn: Redis, job_id: str) -> runner.Worker:
    """Take the job off its queue as a worker does, then stop beating as a killed one does."""
    worker = runner.build(redis_conn)
    worker.register_birth()
    recovery.beat(redis_conn, worker.name)
    job = Job.fetch(job_id, connection=redis_conn, serializer=JSONSerializer)
    Queue(job.origin, connection=redis_conn).remove(job)
    worker.prepare_execution(job)
    stale = float(redis_conn.zscore(keys.WORKER_BEATS, worker.name) or 0) - 60
    redis_conn.zadd(keys.WORKER_BEATS, {worker.name: stale})
    return worker


def test_sweep_requeues_the_job_of_a_dead_worker_only(
    client: FlaskClient, service, published: dict, pixels: np.ndarray, redis_conn: Redis
) -> None:
    job_id = client.post("/v1/jobs", json={"images": pixels[:3].tolist()}).json["job_id"]
    live_id = client.post("/v1/jobs", json={"images": pixels[3:5].tolist()}).json["job_id"]
    dead = start_and_die(redis_conn, job_id)
    live = runner.build(redis_conn)
    recovery.beat(redis_conn, live.name)
    live_job = Job.fetch(live_id, connection=redis_conn, serializer=JSONSerializer)
    Queue(keys.PREDICT_QUEUE, connection=redis_conn).remove(live_job)
    live.prepare_execution(live_job)
    assert service.queued() == 0

    assert recovery.sweep(redis_conn, dead.queues) == [job_id]
    job = Job.fetch(job_id, connection=redis_conn, serializer=JSONSerializer)
    assert job.get_status() == JobStatus.QUEUED and job.meta["recoveries"] == 1
    assert running(redis_conn, keys.PREDICT_QUEUE) == {live.name: live_id}
    assert recovery.sweep(redis_conn, dead.queues) == []  # nothing twice
    assert redis_conn.zscore(keys.WORKER_BEATS, dead.name) is not None  # RQ still lists it
    redis_conn.delete(dead.key)
    recovery.sweep(redis_conn, dead.queues)
    assert redis_conn.zscore(keys.WORKER_BEATS, dead.name) is None  # forgotten with RQ's key

    service.work()
    finished = client.get(f"/v1/jobs/{job_id}").json
    assert finished["status"] == "finished"
    assert finished["labels"] == service.labels("a", pixels[:3])


def test_a_job_that_kills_every_worker_fails_after_max_recoveries(
    client: FlaskClient, service, published: dict, pixels: np.ndarray, redis_conn: Redis
) -> None:
    job_id = client.post("/v1/jobs", json={"pixels": pixels[0].tolist()}).json["job_id"]
    for _ in range(DEFAULTS["DIGITS_MAX_RECOVERIES"]):
        worker = start_and_die(redis_conn, job_id)
        assert recovery.sweep(redis_conn, worker.queues) == [job_id]
    worker = start_and_die(redis_conn, job_id)
    assert recovery.sweep(redis_conn, worker.queues) == []
    assert service.queued() == 0
    body = client.get(f"/v1/jobs/{job_id}").json
    assert body["status"] == "failed"
    assert "died before finishing it, 3 times" in body["error"]


def test_a_worker_that_never_beat_is_judged_by_its_rq_key(
    client: FlaskClient, published: dict, pixels: np.ndarray, redis_conn: Redis
) -> None:
    job_id = client.post("/v1/jobs", json={"pixels": pixels[0].tolist()}).json["job_id"]
    worker = start_and_die(redis_conn, job_id)
    redis_conn.zrem(keys.WORKER_BEATS, worker.name)
    assert recovery.sweep(redis_conn, worker.queues) == []  # its RQ key is still alive
    redis_conn.delete(worker.key)
    assert recovery.sweep(redis_conn, worker.queues) == [job_id]


def test_a_job_claimed_by_a_worker_that_died_before_starting_it_is_requeued(
    client: FlaskClient,
    service,
    published: dict,
    pixels: np.ndarray,
    redis_conn: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(recovery, "DEAD_AFTER", 0.2)
    job_id = client.post("/v1/jobs", json={"pixels": pixels[0].tolist()}).json["job_id"]
    worker = runner.build(redis_conn)
    claimed = ClaimingQueue.dequeue_any(worker.queues, None, connection=redis_conn)
    assert claimed is not None and claimed[0].id == job_id
    assert service.queued() == 0 and running(redis_conn, keys.PREDICT_QUEUE) == {}
    assert recovery.sweep(redis_conn, worker.queues) == []  # claimed a moment ago
    time.sleep(0.3)
    assert recovery.sweep(redis_conn, worker.queues) == [job_id]
    assert service.queued() == 1
    service.work()
    assert client.get(f"/v1/jobs/{job_id}").json["status"] == "finished"
    assert redis_conn.llen(claimed[1].intermediate_queue_key) == 0


def _freeze_mid_chunk(redis_conn: Redis, pids: set[int]) -> tuple[int, str]:
    """SIGSTOP a worker while it runs a chunk; return its pid and the chunk's job id."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for name, job_id in running(redis_conn, keys.BATCH_QUEUE).items():
            pid = int(redis_conn.hget(f"rq:worker:{name}", "pid") or 0)
            if pid not in pids:
                continue
            os.kill(pid, signal.SIGSTOP)
            if running(redis_conn, keys.BATCH_QUEUE).get(name) == job_id:
                return pid, job_id
            os.kill(pid, signal.SIGCONT)  # it finished the chunk before it froze
        time.sleep(0.005)
    raise AssertionError("no worker was caught in the middle of a chunk")


@pytest.mark.slow
def test_batch_finishes_once_when_a_worker_is_killed_mid_chunk(
    redis_conn: Redis, redis_url: str, tmp_path: Path
) -> None:
    publish_file(redis_conn, CNN, activate=True)
    app = create_app({"REDIS_URL": redis_url, "DIGITS_CHUNK_ROWS": 500})
    client = app.test_client()
    pixels = np.random.default_rng(5).integers(0, 256, (ROWS, 784), dtype=np.uint8)
    write_kaggle_csv(tmp_path / "test.csv", pixels)
    expected = model.load(CNN).predict(pixels).tolist()

    with workers(redis_url, 2, tmp_path) as started:
        wait_for(lambda: client.get("/readyz").json["checks"]["workers"] == 2, 60, "2 workers")
        upload = (tmp_path / "test.csv").read_bytes()
        batch = client.post("/v1/batches", data=upload, content_type="text/csv").json
        pid, lost_job = _freeze_mid_chunk(redis_conn, {process.pid for process in started})
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()

        def requeued() -> bool:
            job = Job.fetch(lost_job, connection=redis_conn, serializer=JSONSerializer)
            return bool(job.meta.get("recoveries"))

        wait_for(requeued, 30, "the lost chunk to be queued again")
        detected = time.monotonic() - killed_at

        def finished() -> dict | None:
            body = client.get(batch["status_url"]).json
            return body if body["status"] == "finished" else None

        status = wait_for(finished, 60, "the batch to finish")
        done_after = time.monotonic() - killed_at

        def one_worker_left() -> bool:
            return bool(client.get("/readyz").json["checks"]["workers"] == 1)

        wait_for(one_worker_left, recovery.DEAD_AFTER + 5, "/readyz to count one worker")
        assert [process.poll() is None for process in started].count(True) == 1

    print(
        f"\nworker killed: chunk queued again after {detected:.1f} s, batch done {done_after:.1f} s"
    )
    assert done_after < 60
    assert (status["rows"], status["rows_done"]) == (ROWS, ROWS)
    assert redis_conn.scard(keys.batch_done(batch["batch_id"])) == batch["chunks"] == 20
    lines = client.get(batch["submission_url"]).data.decode().splitlines()
    assert lines[0] == "ImageId,Label"
    rows = [tuple(map(int, line.split(","))) for line in lines[1:]]
    assert rows == list(enumerate(expected, start=1))
