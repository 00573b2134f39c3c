"""The worker: preloads, caches the model, follows the registry, refuses bad weights."""

from __future__ import annotations

import subprocess
import sys

import pytest
from monitor import commands_sent
from redis import Redis
from rq import SimpleWorker

from config.settings import DEFAULTS
from formats.weights import version as file_version
from store import keys
from worker import jobs, runner
from worker.cache import ModelCache, NoModel


def test_preload_loads_the_current_model_before_any_job(redis_conn: Redis, published: dict) -> None:
    assert jobs.preload(redis_conn) == published["a"]
    assert jobs.CACHE.version == published["a"]
    assert jobs.CACHE.network is not None


def test_preload_without_a_model(redis_conn: Redis) -> None:
    assert jobs.preload(redis_conn) is None
    with pytest.raises(NoModel, match="no model is active"):
        jobs.CACHE.get(redis_conn, None)


def test_cache_loads_once_and_swaps_on_a_new_version(redis_conn: Redis, published: dict) -> None:
    cache = ModelCache()
    network, version = cache.get(redis_conn, published["a"])
    assert cache.get(redis_conn, published["a"])[0] is network
    swapped, new_version = cache.get(redis_conn, published["b"])
    assert swapped is not network and new_version == published["b"]


def test_cache_keeps_serving_when_the_new_version_does_not_load(
    redis_conn: Redis, published: dict
) -> None:
    cache = ModelCache()
    network, _ = cache.get(redis_conn, published["a"])
    bad = b"not a weights file"
    bad_version = file_version(bad)
    redis_conn.set(keys.model_weights(bad_version), bad)
    redis_conn.set(keys.MODELS_CURRENT, bad_version)
    assert cache.get(redis_conn, bad_version) == (network, published["a"])
    assert bad_version in cache.refused
    with pytest.raises(NoModel):
        ModelCache().get(redis_conn, bad_version)


def test_worker_is_simple_json_and_on_both_queues(redis_conn: Redis) -> None:
    worker = runner.build(redis_conn)
    assert isinstance(worker, SimpleWorker)
    assert worker.serializer.__name__ == "JSONSerializer"
    assert worker.queue_names() == [keys.PREDICT_QUEUE, keys.BATCH_QUEUE]
    assert worker.worker_ttl == DEFAULTS["DIGITS_WORKER_TTL"]


def test_burst_worker_returns_whether_it_worked(client, service, published: dict) -> None:
    assert service.work() is False
    client.post("/v1/jobs", json={"pixels": [0] * 784})
    assert service.work() is True
    assert service.queued() == 0


def test_worker_command_in_burst_mode(client, redis_conn: Redis, redis_url: str, published) -> None:
    job_id = client.post("/v1/jobs", json={"pixels": [0] * 784}).json["job_id"]
    subprocess.run(
        [sys.executable, "-m", "scripts.cli", "worker", "--burst", "--redis-url", redis_url],
        check=True,
        timeout=60,
    )
    body = client.get(f"/v1/jobs/{job_id}").json
    assert (body["status"], body["model_version"]) == ("finished", published["a"])


def test_worker_skips_redundant_writes(redis_conn: Redis) -> None:
    worker = runner.build(redis_conn)
    worker.register_birth()
    beat = worker.last_heartbeat
    worker.heartbeat()
    assert worker.last_heartbeat == beat  # within HEARTBEAT_INTERVAL of the last one
    worker.heartbeat(timeout=200)
    assert worker.last_heartbeat != beat and redis_conn.ttl(worker.key) > 100
    pipe = redis_conn.pipeline()
    worker.heartbeat(pipeline=pipe)
    assert len(pipe) == 2  # RQ's own pipelines always get their heartbeat
    worker.set_state("idle")
    redis_conn.hset(worker.key, "state", "marker")
    worker.set_state("idle")
    assert redis_conn.hget(worker.key, "state") == b"marker"
    worker.set_state("busy")
    assert redis_conn.hget(worker.key, "state") == b"busy"
    worker.register_death()


def test_between_jobs_the_worker_asks_about_suspension_once_a_second(redis_conn: Redis) -> None:
    worker = runner.build(redis_conn)
    worker.register_birth()
    with commands_sent(redis_conn) as first:
        worker.check_for_suspension(burst=False)
    with commands_sent(redis_conn) as second:
        worker.check_for_suspension(burst=False)  # within HEARTBEAT_INTERVAL of the first
    worker.register_death()
    assert "EXISTS" in first
    assert second == []


def test_idle_is_written_once_the_worker_has_waited_for_work(
    redis_conn: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = runner.build(redis_conn)
    worker.register_birth()
    worker.set_state("busy")
    worker.set_state("idle")  # a job ended: the next one may be taken at once
    worker.heartbeat()
    assert worker.get_state() == "idle"
    assert redis_conn.hget(worker.key, "state") == b"busy"
    monkeypatch.setattr(runner, "IDLE_WAIT", 0.0)  # as if it had waited for work that long
    worker.heartbeat()
    assert redis_conn.hget(worker.key, "state") == b"idle"
    worker.register_death()
