"""The service on a Redis that wants a password: API (gunicorn, 2 processes) and worker run
against `redis://:<password>@...`, and the password shows in no log line and no response.

The same deployment checks that /metrics adds up the counts of both gunicorn processes.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

import model
from api import create_app
from formats.kaggle_csv import write_kaggle_csv
from scripts import metrics_dir
from store import registry

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "redis-auth-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(check: Callable[[], T], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return found


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


@dataclass
class Deployment:
    password: str
    redis_url: str
    base: str
    api: subprocess.Popen[bytes]
    logs: Path
    versions: dict[str, str]

    def get(self, path: str) -> requests.Response:
        return requests.get(self.base + path, headers=AUTH, timeout=30)

    def post(self, path: str, headers: dict[str, str] = AUTH, **kwargs: Any) -> requests.Response:
        return requests.post(self.base + path, headers=headers, timeout=30, **kwargs)

    def log_text(self) -> str:
        return "\n".join(path.read_text() for path in sorted(self.logs.glob("*.log")))


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A private redis-server that refuses clients without its password."""
    password, port = "pw-" + secrets.token_hex(12), free_port()
    binary = shutil.which("redis-server")
    assert binary is not None, "redis-server is not installed"
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", password]
    server = subprocess.Popen(
        [*command, "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL
    )
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    try:
        wait_for(lambda: _pings(url), 10, "redis-server")
        yield password, port
    finally:
        server.terminate()
        server.wait(timeout=10)


def _pings(url: str) -> bool:
    try:
        return bool(Redis.from_url(url).ping())
    except Exception:
        return False


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "scripts.cli", *command],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture(scope="module")
def deployment(
    redis_server: tuple[str, int],
    networks: dict[str, bytes],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    password, port = redis_server
    redis_url = f"redis://:{password}@127.0.0.1:{port}/0"
    connection = Redis.from_url(redis_url)
    versions = {
        name: registry.publish(connection, data, model.loads(data).metadata)[0]
        for name, data in networks.items()
    }
    registry.activate(connection, versions["a"])
    logs, api_port = tmp_path_factory.mktemp("logs"), free_port()
    env = {name: value for name, value in os.environ.items() if name != metrics_dir.VARIABLE}
    env |= {"REDIS_URL": redis_url, "DIGITS_API_KEYS": API_KEY, "DIGITS_LOG_LEVEL": "INFO"}
    api_command = ["api", "--port", str(api_port), "--processes", "2", "--threads", "4"]
    api = start(api_command, env, logs / "api.log")
    worker = start(["worker"], env, logs / "worker.log")
    found = Deployment(password, redis_url, f"http://127.0.0.1:{api_port}", api, logs, versions)
    try:
        wait_for(lambda: answers(found.base + "/readyz"), 90, "the API and worker to be ready")
        yield found
    finally:
        for process in (api, worker):
            process.send_signal(signal.SIGTERM)
        for process in (api, worker):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shared = Path(tempfile.gettempdir()) / f"{metrics_dir.PREFIX}{api.pid}"
        shutil.rmtree(shared, ignore_errors=True)  # `digits api` leaves it to the next start


def test_api_and_worker_work_through_the_password(
    deployment: Deployment, pixels: np.ndarray, tmp_path: Path
) -> None:
    answer = deployment.post("/v1/predict", json={"images": pixels[:5].tolist()})
    assert answer.status_code == 200
    assert answer.json()["model_version"] == deployment.versions["a"]
    csv = tmp_path / "test.csv"
    write_kaggle_csv(csv, pixels)
    csv_type = {"Content-Type": "text/csv"}
    refused = deployment.post("/v1/batches", data=csv.read_bytes(), headers=csv_type)
    assert refused.status_code == 401
    batch = deployment.post("/v1/batches", data=csv.read_bytes(), headers=AUTH | csv_type).json()

    def finished() -> bool:
        return deployment.get(batch["status_url"]).json()["status"] == "finished"

    wait_for(finished, 30, "the batch")
    submission = deployment.get(batch["submission_url"]).text.splitlines()
    assert submission[0] == "ImageId,Label" and len(submission) == len(pixels) + 1


def test_metrics_add_up_across_gunicorn_processes(deployment: Deployment) -> None:
    def healthz_count() -> float:
        text = deployment.get("/metrics").text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "digits_http_requests_total" and sample.labels["route"] == "/healthz"
        )

    before = healthz_count()
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: deployment.get("/healthz").status_code, range(80)))
    assert statuses == [200] * 80
    shared = Path(tempfile.gettempdir()) / f"{metrics_dir.PREFIX}{deployment.api.pid}"
    counters = {path.stem.split("_")[-1] for path in shared.glob("counter_*.db")}
    assert len(counters) == 2, f"both gunicorn processes counted requests: {counters}"
    assert [healthz_count() - before for _ in range(6)] == [80.0] * 6


def test_a_wrong_password_is_a_503_that_does_not_show_it(
    redis_server: tuple[str, int], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    password, port = redis_server
    wrong = "wrong-" + secrets.token_hex(8)
    url = f"redis://:{wrong}@127.0.0.1:{port}/0"
    client = create_app({"REDIS_URL": url, "TESTING": True}).test_client()
    for path, status in {"/readyz": 503, "/v1/models": 503, "/metrics": 200}.items():
        response = client.get(path)
        assert response.status_code == status
        assert wrong not in response.text and password not in response.text
    worker = subprocess.run(
        [sys.executable, "-m", "scripts.cli", "worker", "--burst"],
        cwd=ROOT,
        env=os.environ | {"REDIS_URL": url, "DIGITS_LOG_LEVEL": "INFO"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = worker.stdout + worker.stderr
    assert "redis://:***@127.0.0.1" in output  # the worker said where it connects, masked
    assert wrong not in output and wrong not in caplog.text


def test_logs_are_json_lines_without_secrets(deployment: Deployment, pixels: np.ndarray) -> None:
    job_id = deployment.post("/v1/predict", json={"pixels": pixels[0].tolist()}).json()["job_id"]

    def ours() -> list[dict]:
        text = deployment.log_text()
        return [json.loads(line) for line in text.splitlines() if line[:1] + line[-1:] == "{}"]

    def logged(logger: str) -> list[dict]:
        return [
            line for line in ours() if line["logger"] == logger and line.get("job_id") == job_id
        ]

    [job] = wait_for(lambda: logged("store.jobstats"), 10, "the job's line")  # after the answer
    assert (job["outcome"], job["rows"], job["queue"]) == ("finished", 1, "digits-predict")
    [request] = logged("api.access")
    assert request["status"] == 200 and request["model_version"] == deployment.versions["a"]
    assert request["path"] == "/v1/predict" and request["key_id"] and request["duration_ms"] > 0
    assert any("redis://:***@127.0.0.1" in line["message"] for line in ours())
    text = deployment.log_text()
    assert deployment.password not in text and API_KEY not in text
