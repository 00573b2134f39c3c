"""`digits up` supervision: a killed worker and a stopped one are replaced, the API stays up."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests
from processes import free_port, up_redis_url, wait_for
from redis import Redis
from rq import Queue

import model
from scripts import supervisor
from scripts.supervisor import Child, Supervisor
from store import keys, liveness, registry, restarts

ROOT = Path(__file__).resolve().parent.parent
REPLACED_WITHIN = 15.0  # seconds from a worker's death to a replacement that beats


class Prober:
    """Ask /healthz every 0.1 s in a thread; remember every failure (no answer within 2 s)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.failures: list[str] = []
        self.answers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                status = requests.get(f"{self.base}/healthz", timeout=2).status_code
                if status != 200:
                    self.failures.append(f"status {status}")
            except requests.RequestException as error:
                self.failures.append(repr(error))
            self.answers += 1

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def worker_pids(up: subprocess.Popen[str]) -> set[int]:
    found = set()
    for child in psutil.Process(up.pid).children():
        try:
            if "worker" in child.cmdline():
                found.add(child.pid)
        except psutil.ZombieProcess:  # killed, not reaped yet: not a worker any more
            pass
    return found


def replaced(up: subprocess.Popen[str], old: int, queue: Queue, count: int) -> set[int]:
    """Return the workers once `old` is gone and `count` workers run and beat; else empty."""
    pids = worker_pids(up)
    alive = liveness.live_workers(queue)
    return pids if old not in pids and len(pids) == count and alive == count else set()


def restart_count(base: str) -> float:
    text = requests.get(f"{base}/metrics", timeout=5).text
    found = re.search(r'^digits_supervisor_restarts_total\{role="worker"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_up_replaces_a_killed_and_a_stopped_worker_and_keeps_the_api_up(
    up_redis: Redis, networks: dict[str, bytes], tmp_path: Path
) -> None:
    version, _ = registry.publish(up_redis, networks["a"], model.loads(networks["a"]).metadata)
    registry.activate(up_redis, version)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    stderr = tmp_path / "up.log"
    with open(stderr, "wb") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "scripts.cli", "up", "--workers", "2", "--port", str(port)],
            cwd=ROOT,
            env=os.environ | {"REDIS_URL": up_redis_url()},
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    queue = Queue(keys.PREDICT_QUEUE, connection=up_redis)
    try:
        assert up.stdout is not None
        assert up.stdout.readline().startswith(f"digits up: serving on {base}")
        wait_for(lambda: liveness.live_workers(queue) == 2, 30, "both workers to beat")
        with Prober(base) as prober:
            killed = sorted(worker_pids(up))[0]
            started = time.monotonic()
            os.kill(killed, signal.SIGKILL)  # what the kernel's OOM killer does
            pids = wait_for(lambda: replaced(up, killed, queue, 2), 30, "a new worker")
            after_kill = time.monotonic() - started
            assert restart_count(base) == 1

            stopped = sorted(pids)[0]
            started = time.monotonic()
            os.kill(stopped, signal.SIGSTOP)  # alive to the OS, silent to Redis
            wait_for(lambda: replaced(up, stopped, queue, 2), 60, "the stopped worker's successor")
            after_stop = time.monotonic() - started
            assert not psutil.pid_exists(stopped) or (
                psutil.Process(stopped).status() == psutil.STATUS_ZOMBIE
            )
            assert restart_count(base) == 2
        print(
            f"replaced: killed worker in {after_kill:.1f} s, stopped worker in {after_stop:.1f} s"
        )
        assert after_kill < REPLACED_WITHIN
        assert after_stop < liveness.DEAD_AFTER + REPLACED_WITHIN
        assert prober.failures == [] and prober.answers > 20
        assert up.poll() is None
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=30) == 0
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    lines = [json.loads(line) for line in stderr.read_text().splitlines() if line.startswith("{")]
    events = [line for line in lines if line.get("event") == "restart"]
    assert [(line["role"], line["pid"]) for line in events] == [
        ("worker", killed),
        ("worker", stopped),
    ]
    assert events[0]["reason"] == "exited with code -9"
    assert events[1]["reason"].startswith("alive but no heartbeat")


def sleeper() -> list[str]:
    return [sys.executable, "-c", "import time; time.sleep(60)"]


def crasher() -> list[str]:
    return [sys.executable, "-c", "raise SystemExit(3)"]


def run_until_given_up(found: Supervisor, role: str) -> str | None:
    deadline = time.monotonic() + 30
    while role not in found.given_up:
        assert time.monotonic() < deadline, f"the supervisor never gave up on the {role}"
        fatal = found.check()
        time.sleep(0.02)
    return fatal


def test_a_crash_looping_worker_is_given_up_and_the_api_kept(
    up_redis: Redis, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(supervisor, "BACKOFF_FIRST", 0.01)
    monkeypatch.setattr(supervisor, "MAX_RESTARTS", 3)
    found = Supervisor([Child("api", sleeper()), Child("worker", crasher())], {}, up_redis)
    found.start()
    try:
        assert run_until_given_up(found, "worker") is None
        assert restarts.read(up_redis) == {"worker": 3}
        api = found.children[0].process
        assert api is not None and api.poll() is None  # the API is never stopped for a worker
        assert "worker process exited with code 3" in caplog.text
        assert "restarted 3 times in the last 60 s: not restarting it again" in caplog.text
        assert "the API stays up without it" in caplog.text
    finally:
        found.stop(timeout=5)


def test_a_crash_looping_api_stops_the_service(
    up_redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervisor, "BACKOFF_FIRST", 0.01)
    monkeypatch.setattr(supervisor, "MAX_RESTARTS", 2)
    found = Supervisor([Child("api", crasher()), Child("worker", sleeper())], {}, up_redis)
    found.start()
    try:
        fatal = run_until_given_up(found, "api")
        assert fatal == "the API keeps exiting (2 restarts in 60 s)"
        assert restarts.read(up_redis) == {"api": 2}
    finally:
        found.stop(timeout=5)
