"""Shared fixtures: a private Redis database, the app, tiny models, an in-process worker."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import numpy as np
import pytest
import shapes
from flask import Flask
from flask.testing import FlaskClient
from processes import (
    SUITE_REDIS,
    free_port,
    redis_db,
    redis_server_binary,
    up_redis_url,
    wait_for,
)
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from werkzeug.serving import make_server

import model
from api import create_app
from store import keys, registry
from worker import jobs, runner
from worker.cache import ModelCache

T = TypeVar("T")


def pytest_configure(config: pytest.Config) -> None:
    """Start the suite's own Redis server (no disk, loopback, a free port) unless one is given.

    A suite of its own keeps runs apart: two checkouts testing at once, or a developer's
    data in 127.0.0.1:6379, never see each other's keys. `DIGITS_TEST_REDIS=redis://host:port`
    points the suite at an existing server instead.
    """
    if os.environ.get(SUITE_REDIS):
        return
    port = free_port()
    server = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--maxmemory-policy", "noeviction", "--databases", "16"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    config.stash[_SERVER] = server
    os.environ[SUITE_REDIS] = f"redis://127.0.0.1:{port}"
    wait_for(lambda: _answers(port), 10, "the suite's redis-server to answer")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the server pytest_configure started."""
    server = config.stash.get(_SERVER, None)
    if server is not None:
        server.terminate()
        server.wait(timeout=10)
        os.environ.pop(SUITE_REDIS, None)


def _answers(port: int) -> bool:
    try:
        return bool(Redis(port=port, socket_connect_timeout=0.2).ping())
    except RedisError:
        return False


_SERVER = pytest.StashKey[subprocess.Popen[bytes]]()


@pytest.fixture
def redis_url() -> str:
    """The test database (11); a module that needs its own overrides this fixture."""
    return redis_db(11)


@pytest.fixture
def redis_conn(redis_url: str) -> Iterator[Redis]:
    """A client on the test database, empty before and after the test."""
    connection = Redis.from_url(redis_url)
    connection.flushdb()
    yield connection
    connection.flushdb()
    connection.close()


@pytest.fixture
def up_redis() -> Iterator[Redis]:
    """A client on `digits up`'s test database, empty before and after the test."""
    connection = Redis.from_url(up_redis_url())
    connection.flushdb()
    yield connection
    connection.flushdb()
    connection.close()


@pytest.fixture(autouse=True)
def fresh_model_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give each test the model cache of a newly started worker process."""
    monkeypatch.setattr(jobs, "CACHE", ModelCache())


@pytest.fixture
def app(redis_conn: Redis, redis_url: str) -> Flask:
    """The app on the test database, with small chunks so batches have several."""
    app = create_app({"REDIS_URL": redis_url, "TESTING": True, "DIGITS_CHUNK_ROWS": 40})
    return shapes.install(app)  # every answer checked against its declared shape


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def url(app: Flask) -> Iterator[str]:
    """The app served over HTTP on a free loopback port (werkzeug, a thread per request)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


@pytest.fixture(scope="session")
def networks() -> dict[str, bytes]:
    """Two small untrained MLP weights files that disagree: plumbing needs no accuracy."""
    return {name: model.dumps(model.build("mlp", seed=seed)) for name, seed in (("a", 0), ("b", 1))}


@pytest.fixture
def published(redis_conn: Redis, networks: dict[str, bytes]) -> dict[str, str]:
    """Publish both networks, make "a" current; return their versions."""
    versions = {
        name: registry.publish(redis_conn, data, model.loads(data).metadata)[0]
        for name, data in networks.items()
    }
    registry.activate(redis_conn, versions["a"])
    return versions


@pytest.fixture(scope="session")
def pixels() -> np.ndarray:
    """100 images of random pixels."""
    return np.random.default_rng(0).integers(0, 256, (100, 784), dtype=np.uint8)


class Service:
    """Drive the queue from a test: count jobs, run a real worker, compute expected labels."""

    def __init__(self, connection: Redis, networks: dict[str, bytes]) -> None:
        self.connection = connection
        self.networks = networks

    def queued(self) -> int:
        """Count the jobs waiting on both queues."""
        names = (keys.PREDICT_QUEUE, keys.BATCH_QUEUE)
        return sum(Queue(name, connection=self.connection).count for name in names)

    def work(self) -> bool:
        """Run a real worker (preload, no fork, JSON serializer) until the queues are empty."""
        return runner.run(self.connection, burst=True)

    @contextmanager
    def alive(self) -> Iterator[None]:
        """Register a worker as RQ does at its birth, so the API counts one alive meanwhile."""
        worker = runner.build(self.connection)
        worker.register_birth()
        try:
            yield
        finally:
            worker.register_death()

    def while_working(self, call: Callable[[], T], jobs: int = 1) -> T:
        """Run `call` in a thread; once it has queued `jobs` jobs, run a burst worker here."""
        with self.alive(), ThreadPoolExecutor(1) as pool:
            future = pool.submit(call)
            deadline = time.monotonic() + 10
            while self.queued() < jobs and not future.done():
                assert time.monotonic() < deadline, "the call queued no job"
                time.sleep(0.01)
            self.work()
            return future.result(timeout=30)

    def labels(self, name: str, pixels: np.ndarray) -> list[int]:
        """Labels the named network gives the pixels, computed outside the service."""
        return model.loads(self.networks[name]).predict(pixels).tolist()


@pytest.fixture
def service(redis_conn: Redis, networks: dict[str, bytes]) -> Service:
    return Service(redis_conn, networks)


@pytest.fixture
def live_worker(service: Service) -> Iterator[None]:
    """A worker registered alive for the whole test, so POST /v1/predict takes work."""
    with service.alive():
        yield
