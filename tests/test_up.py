"""`digits up`: Redis chosen or embedded, shipped model published, children started and stopped."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest
import requests
from processes import redis_db, up_redis_url
from redis import Redis

import model
from scripts.up import ensure_model, redis_server
from store import registry

UP_REDIS_URL = up_redis_url()  # a database of its own: `up` runs in a subprocess
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def lines_of(stream) -> queue.Queue[str]:
    found: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [found.put(line) for line in stream], daemon=True).start()
    return found


def test_up_serves_follows_activation_and_stops_on_sigterm(
    up_redis: Redis, networks: dict[str, bytes], pixels
) -> None:
    versions = {
        name: registry.publish(up_redis, data, model.loads(data).metadata)[0]
        for name, data in networks.items()
    }
    registry.activate(up_redis, versions["a"])
    port = free_port()
    up = subprocess.Popen(
        [sys.executable, "-m", "scripts.cli", "up", "--workers", "1", "--port", str(port)],
        cwd=ROOT,
        env=os.environ | {"REDIS_URL": UP_REDIS_URL},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        out = lines_of(up.stdout)
        line = out.get(timeout=90)
        base = f"http://127.0.0.1:{port}"
        assert line.startswith(f"digits up: serving on {base}")
        assert versions["a"] in line
        children = psutil.Process(up.pid).children(recursive=True)
        assert len(children) >= 3  # gunicorn master and its workers, one RQ worker

        def predict() -> dict:
            response = requests.post(f"{base}/v1/predict", json={"pixels": pixels[0].tolist()})
            assert response.status_code == 200
            return response.json()

        assert predict()["model_version"] == versions["a"]
        activated = requests.post(f"{base}/v1/models/{versions['b']}/activate")
        assert activated.json()["previous"] == versions["a"]
        assert predict()["model_version"] == versions["b"]  # same worker process, no restart
        assert all(child.is_running() for child in children)

        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=30) == 0
        gone, alive = psutil.wait_procs(children, timeout=5)
        assert alive == []
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()


def test_redis_server_prefers_the_environment(tmp_path: Path) -> None:
    with redis_server("redis://example:1/3", redis_db(0), tmp_path) as url:
        assert url == "redis://example:1/3"


def test_redis_server_uses_a_local_server_that_answers(tmp_path: Path) -> None:
    with redis_server(None, redis_db(12), tmp_path) as url:
        assert url == redis_db(12)
    assert not list(tmp_path.iterdir())


def test_redis_server_embeds_one_when_none_answers(tmp_path: Path) -> None:
    with redis_server(None, "redis://127.0.0.1:1/0", tmp_path / "data") as url:
        assert url.startswith("unix://")
        connection = Redis.from_url(url)
        assert connection.ping()
        connection.close()
    assert (tmp_path / "data").is_dir()
    with pytest.raises(Exception):  # noqa: B017 - the server is gone, any connection error
        Redis.from_url(url, socket_connect_timeout=1).ping()


def test_ensure_model_publishes_the_shipped_cnn_first(
    up_redis: Redis, tmp_path: Path, networks: dict[str, bytes]
) -> None:
    with pytest.raises(LookupError, match="no model is active"):
        ensure_model(up_redis, tmp_path)
    (tmp_path / "mlp.npz").write_bytes(networks["a"])
    (tmp_path / "cnn.npz").write_bytes(networks["b"])
    version = ensure_model(up_redis, tmp_path)
    assert version == model.file_version(networks["b"]) == registry.current(up_redis)
    (tmp_path / "cnn.npz").unlink()
    assert ensure_model(up_redis, tmp_path) == version  # a current model is kept
