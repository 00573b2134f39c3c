"""GET /v1/predict/live without a browser: the WebSocket on werkzeug and on `digits api` (gevent).

In process (werkzeug, a thread per connection, a real worker run by the test) the slow
prediction is made slow on purpose, so latest-wins is tested exactly; under gunicorn's gevent
worker, as `digits api` serves it, the worker process is stopped instead.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import orjson
import pytest
import requests
from flask import Flask
from processes import digits_api, up_redis_url, wait_for, workers
from redis import Redis
from simple_websocket import Client, ConnectionClosed
from simple_websocket import ConnectionError as HandshakeError
from test_preprocess import encode, redraw
from werkzeug.serving import make_server

import model
from api import create_app, images, latest
from model import data
from pictures.preprocess import preprocess
from store import registry

FIELDS = {"labels", "probabilities", "confidence", "uncertain", "model_version", "job_id"}
KEY = "live-key"


@pytest.fixture(scope="module")
def pictures() -> list[bytes]:
    """PNGs of four MNIST test digits written dark on white."""
    _, _, x_test, _ = data.load_mnist()
    rng = np.random.default_rng(0)
    return [encode(redraw(x_test[i].reshape(28, 28), rng)) for i in range(4)]


def message(tag: Any, picture: bytes) -> str:
    """A drawing as the page sends it: its id and a PNG data URL."""
    url = "data:image/png;base64," + base64.b64encode(picture).decode()
    return orjson.dumps({"id": tag, "image": url}).decode()


def serve(app: Flask) -> Iterator[str]:
    """Serve `app` on a free port (werkzeug, threaded) for the block; yield its ws:// base."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


@pytest.fixture
def ws_url(app: Flask) -> Iterator[str]:
    yield from serve(app)


def received(client: Client, service: Any, count: int, timeout: float = 30) -> list[dict]:
    """Read `count` messages, running a burst worker whenever jobs are queued meanwhile."""
    found: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(found) < count:
        assert time.monotonic() < deadline, f"only {len(found)} of {count} messages: {found}"
        if service.queued():
            service.work()
        text = client.receive(timeout=0.05)
        if text is not None:
            found.append(orjson.loads(text))
    return found


class Held:
    """Make `images.answer` wait for the test on the first `count` calls: slow predictions."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, count: int) -> None:
        self.real = images.answer
        self.count = count
        self.started = threading.Semaphore(0)
        self.release = threading.Event()
        self.lock = threading.Lock()
        monkeypatch.setattr(images, "answer", self.answer)

    def answer(self, *args: Any) -> Any:
        with self.lock:
            hold, self.count = self.count > 0, self.count - 1
        if hold:
            self.started.release()
            assert self.release.wait(30)
        return self.real(*args)

    def wait_started(self, count: int) -> None:
        for _ in range(count):
            assert self.started.acquire(timeout=10), "a held prediction did not start"


def test_a_drawing_is_answered_like_predict_image(
    ws_url: str, service: Any, published: dict, pictures: list[bytes]
) -> None:
    client = Client.connect(f"{ws_url}/v1/predict/live")
    with service.alive():
        client.send(message("first", pictures[0]))
        (answer,) = received(client, service, 1)
    client.close()
    seen = preprocess(pictures[0])
    assert answer["id"] == "first" and answer["status"] == "finished"
    assert answer.keys() >= FIELDS
    assert answer["labels"] == service.labels("a", seen.pixels.reshape(1, -1))
    assert np.asarray(answer["probabilities"]).shape == (1, 10)
    assert answer["confidence"][0] == pytest.approx(max(answer["probabilities"][0]), abs=1e-6)
    assert isinstance(answer["uncertain"][0], bool)
    assert answer["model_version"] == published["a"]
    assert answer["pixels"] == seen.pixels.tolist() and answer["box"] == seen.box


def test_a_newer_drawing_is_answered_while_an_older_one_is_slow(
    ws_url: str, service: Any, published: dict, pictures: list[bytes], monkeypatch
) -> None:
    held = Held(monkeypatch, count=1)
    client = Client.connect(f"{ws_url}/v1/predict/live")
    with service.alive():
        client.send(message(1, pictures[0]))
        held.wait_started(1)
        client.send(message(2, pictures[1]))
        (newer,) = received(client, service, 1)  # while drawing 1 is still being predicted
        held.release.set()
        (older,) = received(client, service, 1)
        assert client.receive(timeout=0.5) is None
    client.close()
    assert newer["id"] == 2 and newer["status"] == "finished"
    assert older == {"id": 1, "status": "superseded", "by": 2}


def test_a_drawing_answered_before_the_next_one_arrives_is_kept(
    ws_url: str, service: Any, published: dict, pictures: list[bytes]
) -> None:
    client = Client.connect(f"{ws_url}/v1/predict/live")
    with service.alive():
        answers = []
        for tag in (1, 2):
            client.send(message(tag, pictures[tag]))
            answers += received(client, service, 1)
    client.close()
    assert [(a["id"], a["status"]) for a in answers] == [(1, "finished"), (2, "finished")]


def test_past_the_in_flight_bound_only_the_newest_waiting_drawing_runs(
    ws_url: str, service: Any, published: dict, pictures: list[bytes], monkeypatch
) -> None:
    held = Held(monkeypatch, count=latest.IN_FLIGHT)
    client = Client.connect(f"{ws_url}/v1/predict/live")
    with service.alive():
        for tag in range(1, latest.IN_FLIGHT + 1):
            client.send(message(tag, pictures[tag - 1]))
        held.wait_started(latest.IN_FLIGHT)
        client.send(message("waits", pictures[2]))
        client.send(message("newest", pictures[3]))
        (dropped,) = received(client, service, 1)  # before it ever started
        held.release.set()
        rest = received(client, service, latest.IN_FLIGHT + 1)
    client.close()
    assert dropped == {"id": "waits", "status": "superseded", "by": "newest"}
    superseded = [m for m in rest if m.get("status") == "superseded"]
    assert sorted(m["id"] for m in superseded) == list(range(1, latest.IN_FLIGHT + 1))
    assert [m["id"] for m in rest if m.get("status") == "finished"] == ["newest"]


@pytest.mark.parametrize(
    ("sent", "tag", "code"),
    [
        ("not json", None, "invalid_json"),
        (b"\x89PNG", None, "invalid_message"),
        ("[1, 2]", None, "invalid_message"),
        ('{"id": 7}', 7, "invalid_image"),
        ('{"id": 8, "image": "data:image/png;base64,@@"}', 8, "invalid_image"),
        ('{"id": 9, "pixels": [0]}', 9, "invalid_image"),
    ],
)
def test_a_bad_message_gets_its_error_and_the_connection_goes_on(
    ws_url: str, service: Any, published: dict, pictures: list[bytes], sent, tag, code
) -> None:
    client = Client.connect(f"{ws_url}/v1/predict/live")
    with service.alive():
        client.send(sent)
        (error,) = received(client, service, 1)
        client.send(message("next", pictures[0]))
        (answer,) = received(client, service, 1)
    client.close()
    assert error["id"] == tag and error["error"]["code"] == code and error["error"]["message"]
    assert answer["id"] == "next" and answer["status"] == "finished"


def test_a_blank_drawing_gets_the_error_of_the_image_route(
    ws_url: str, service: Any, published: dict
) -> None:
    client = Client.connect(f"{ws_url}/v1/predict/live")
    with service.alive():
        client.send(message(1, encode(np.full((280, 280), 255, np.uint8))))
        (error,) = received(client, service, 1)
    client.close()
    assert error["id"] == 1 and error["error"]["code"] == "blank_image"


def test_without_a_live_worker_each_drawing_says_so(ws_url: str, pictures: list[bytes]) -> None:
    client = Client.connect(f"{ws_url}/v1/predict/live")
    client.send(message(1, pictures[0]))
    error = orjson.loads(client.receive(timeout=10))
    client.close()
    assert error["id"] == 1 and error["error"]["code"] == "no_worker"


def test_a_plain_get_is_told_to_upgrade(ws_url: str) -> None:
    response = requests.get(f"{ws_url.replace('ws://', 'http://')}/v1/predict/live", timeout=5)
    assert response.status_code == 400
    assert "Upgrade: websocket" in response.json()["error"]["message"]


def keyed_app(redis_url: str, **settings: Any) -> Flask:
    return create_app({"REDIS_URL": redis_url, "DIGITS_API_KEYS": KEY, **settings})


def test_keys_guard_the_handshake_by_header_or_access_token(
    redis_conn: Redis, redis_url: str
) -> None:
    for base in serve(keyed_app(redis_url)):
        for refused in ("", "?access_token=wrong"):
            with pytest.raises(HandshakeError) as handshake:
                Client.connect(f"{base}/v1/predict/live{refused}")
            assert handshake.value.status_code == 401
        for url, headers in (
            (f"{base}/v1/predict/live", {"Authorization": f"Bearer {KEY}"}),
            (f"{base}/v1/predict/live?access_token={KEY}", None),
        ):
            client = Client.connect(url, headers=headers)
            client.send("{}")
            assert orjson.loads(client.receive(timeout=10))["error"]["code"] == "invalid_image"
            client.close()


def test_each_drawing_spends_from_the_rate_limit(
    redis_conn: Redis, redis_url: str, pictures: list[bytes]
) -> None:
    app = keyed_app(redis_url, DIGITS_RATE_LIMIT="2/hour")  # the handshake is the first
    for base in serve(app):
        client = Client.connect(f"{base}/v1/predict/live?access_token={KEY}")
        client.send(message(1, pictures[0]))
        first = orjson.loads(client.receive(timeout=10))
        client.send(message(2, pictures[0]))
        second = orjson.loads(client.receive(timeout=10))
        client.close()
    assert first["error"]["code"] == "no_worker"  # charged, then turned away: no worker here
    assert second == {"id": 2, "error": second["error"]}
    assert second["error"]["code"] == "rate_limited"


def test_an_idle_connection_is_closed(redis_conn: Redis, redis_url: str) -> None:
    for base in serve(create_app({"REDIS_URL": redis_url, "DIGITS_LIVE_IDLE": 0.3})):
        client = Client.connect(f"{base}/v1/predict/live")
        with pytest.raises(ConnectionClosed):
            client.receive(timeout=5)
        assert client.close_reason == 1000


@pytest.fixture
def shipped_api(up_redis: Redis, networks: dict[str, bytes]) -> Iterator[str]:
    """`digits api` as shipped (gunicorn, gevent), one process, on a free port; its ws:// base."""
    version, _ = registry.publish(up_redis, networks["a"], model.loads(networks["a"]).metadata)
    registry.activate(up_redis, version)
    with digits_api(up_redis_url(), "--processes", "1") as (base, _):
        yield base.replace("http://", "ws://")


def read_all(client: Client, count: int, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    found = []
    while len(found) < count and time.monotonic() < deadline:
        text = client.receive(timeout=0.2)
        if text is not None:
            found.append(orjson.loads(text))
    return found


def stopped(process: subprocess.Popen[bytes]) -> Callable[[], None]:
    os.kill(process.pid, signal.SIGSTOP)
    return lambda: os.kill(process.pid, signal.SIGCONT)


@pytest.mark.slow
def test_latest_wins_under_gunicorn_gevent(
    shipped_api: str, pictures: list[bytes], tmp_path
) -> None:
    with workers(up_redis_url(), 1, tmp_path) as (worker,):
        http = shipped_api.replace("ws://", "http://")
        wait_for(lambda: requests.get(f"{http}/readyz", timeout=5).ok, 60, "the worker")
        client = Client.connect(f"{shipped_api}/v1/predict/live")
        client.send(message(0, pictures[0]))
        (first,) = read_all(client, 1)
        resume = stopped(worker)  # still counted alive for 5 s: drawings queue, none answered
        try:
            client.send(message(1, pictures[1]))
            client.send(message(2, pictures[2]))
            time.sleep(0.5)
        finally:
            resume()
        later = read_all(client, 2)
        assert client.receive(timeout=0.5) is None
        client.close()
    assert first["id"] == 0 and first["status"] == "finished" and first.keys() >= FIELDS
    assert len(later) == 2 and {"id": 1, "status": "superseded", "by": 2} in later
    (answer,) = [m for m in later if m["id"] == 2]
    assert answer["status"] == "finished" and answer.keys() >= FIELDS
