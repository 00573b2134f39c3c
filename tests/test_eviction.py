"""A Redis that evicts: refused at start, reported by /readyz, half-evicted batches are 410."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient
from processes import RedisServer
from redis import Redis

import model
from api import create_app
from store import keys, registry
from worker import runner

ROOT = Path(__file__).resolve().parent.parent
REFUSED_WITHIN = 60  # seconds a refusing command may take to start Python and say no


@pytest.fixture(scope="module")
def evicting_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server with 30 MB and allkeys-lru, the default of many hosted Redis."""
    options = ("--maxmemory", "30mb", "--maxmemory-policy", "allkeys-lru", "--appendonly", "no")
    server = RedisServer(tmp_path_factory.mktemp("evicting"), options=options)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def evicting(evicting_url: str) -> Iterator[Redis]:
    connection = Redis.from_url(evicting_url)
    connection.flushdb()
    yield connection
    connection.flushdb()


def digits(*args: str, url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.cli", *args],
        cwd=ROOT,
        env=os.environ | {"REDIS_URL": url} | env,
        capture_output=True,
        text=True,
        timeout=REFUSED_WITHIN,
    )


@pytest.mark.parametrize(
    "command",
    [["worker"], ["api", "--port", "0"], ["up", "--workers", "1", "--port", "0"]],
    ids=["worker", "api", "up"],
)
def test_every_command_refuses_an_evicting_redis_and_says_how_to_fix_it(
    evicting: Redis, evicting_url: str, command: list[str]
) -> None:
    refused = digits(*command, url=evicting_url)
    assert refused.returncode == 1
    message = refused.stderr
    assert "refusing to start: Redis has maxmemory-policy allkeys-lru" in message
    assert "CONFIG SET maxmemory-policy noeviction" in message
    assert "--allow-eviction" in message and "DIGITS_ALLOW_EVICTION=1" in message
    assert evicting.dbsize() == 0  # nothing published, nothing queued


def test_the_override_lets_a_worker_run(evicting: Redis, evicting_url: str) -> None:
    for ran in (
        digits("worker", "--burst", "--allow-eviction", url=evicting_url),
        digits("worker", "--burst", url=evicting_url, DIGITS_ALLOW_EVICTION="1"),
    ):
        assert ran.returncode == 0, ran.stderr
        assert "refusing" not in ran.stderr


def test_readyz_reports_the_policy(
    evicting: Redis, evicting_url: str, networks: dict[str, bytes]
) -> None:
    version, _ = registry.publish(evicting, networks["a"], model.loads(networks["a"]).metadata)
    registry.activate(evicting, version)
    worker = runner.build(evicting)
    worker.register_birth()
    refused = create_app({"REDIS_URL": evicting_url}).test_client().get("/readyz")
    assert refused.status_code == 503
    assert refused.json["checks"]["maxmemory_policy"] == "allkeys-lru"
    assert refused.json["error"]["message"].startswith("Redis has maxmemory-policy allkeys-lru")
    allowed = create_app({"REDIS_URL": evicting_url, "DIGITS_ALLOW_EVICTION": 1})
    ready = allowed.test_client().get("/readyz")
    assert ready.status_code == 200
    assert ready.json["checks"]["maxmemory_policy"] == "allkeys-lru"
    worker.register_death()


def kaggle_csv(rows: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (rows, 784))
    header = ",".join(f"pixel{i}" for i in range(784))
    return (header + "\n" + "\n".join(",".join(map(str, row)) for row in pixels) + "\n").encode()


def answers_of(client: FlaskClient, batch_ids: list[str]) -> list[int]:
    statuses = []
    for batch_id in batch_ids:
        for url in (f"/v1/batches/{batch_id}", f"/v1/batches/{batch_id}/submission.csv"):
            response = client.get(url)
            assert response.status_code < 500, response.get_data(as_text=True)
            assert response.is_json or response.status_code == 200
            statuses.append(response.status_code)
    return statuses


def test_a_half_evicted_batch_is_410_never_500(
    evicting: Redis, evicting_url: str, networks: dict[str, bytes]
) -> None:
    version, _ = registry.publish(evicting, networks["a"], model.loads(networks["a"]).metadata)
    registry.activate(evicting, version)
    app = create_app(
        {"REDIS_URL": evicting_url, "DIGITS_ALLOW_EVICTION": 1, "DIGITS_CHUNK_ROWS": 50}
    )
    client = app.test_client()
    batch_ids = [
        client.post("/v1/batches", data=kaggle_csv(200, seed), content_type="text/csv").json[
            "batch_id"
        ]
        for seed in range(6)
    ]
    runner.run(evicting, burst=True)
    assert set(answers_of(client, batch_ids)) == {200}

    # By hand, what eviction does: a record gone with its chunks left, a record without its
    # counters (a worker's later HSETNX on an evicted record), one chunk's labels gone.
    evicting.delete(keys.batch(batch_ids[0]))
    evicting.hdel(keys.batch(batch_ids[1]), "rows", "chunks")
    evicting.delete(keys.batch_labels(batch_ids[2], 1))
    for batch_id in batch_ids[:2]:
        response = client.get(f"/v1/batches/{batch_id}")
        assert response.status_code == 410
        assert response.json["error"]["code"] == "incomplete"
        assert "noeviction" in response.json["error"]["message"]
    lost = client.get(f"/v1/batches/{batch_ids[2]}/submission.csv")
    assert (lost.status_code, lost.json["error"]["code"]) == (410, "incomplete")
    assert "1 of its 8 answer keys are gone" in lost.json["error"]["message"]

    # Then the real thing: fill Redis past maxmemory until it evicts.
    filler = b"x" * 100_000
    for n in range(600):
        evicting.set(f"filler:{n}", filler)
    assert evicting.info("stats")["evicted_keys"] > 0
    statuses = answers_of(client, batch_ids)
    assert set(statuses) <= {200, 404, 410}
