"""Across hosts: Redis, the API and two workers on separate hosts; one worker's host cut off.

The hosts are network namespaces on a private bridge (tests/netns.py). Cutting a cable drops
packets instead of resetting connections, so the cut worker hangs rather than failing: it is
found dead by its silence, its chunk runs again elsewhere, and when its cable comes back its
late answer must not count twice.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from netns import Network, unavailable
from processes import ROOT, redis_server_binary, stop, wait_for
from redis import Redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

import model
from formats.kaggle_csv import write_kaggle_csv
from store import codec, keys
from worker import recovery

CNN = ROOT / "model" / "weights" / "cnn.npz"
ROWS = 30_000
CHUNK_ROWS = 1500  # 20 chunks of about a second each with the CNN
CUT_SECONDS = 20.0
API_PORT = 8000


class Hosts:
    """The test's network and the processes it started on its hosts."""

    def __init__(self, network: Network, log_dir: Path) -> None:
        self.network = network
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, host: str, command: list[str], env: dict[str, str] | None = None) -> None:
        """Run `command` on `host`, its output going to `<host>.log`."""
        with open(self.log_dir / f"{host}.log", "ab") as log:
            self.processes[host] = subprocess.Popen(
                self.network.command(host, command),
                cwd=ROOT,
                env=os.environ | {"DIGITS_LOG_LEVEL": "INFO"} | (env or {}),
                stdout=log,
                stderr=subprocess.STDOUT,
            )


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Hosts]:
    """Hosts redis, api, worker-1, worker-2 and client; every namespace removed afterwards."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)  # not as root: CI runs as root, so there it always runs
    network = Network()
    found = Hosts(network, tmp_path)
    try:
        for host in ("redis", "api", "worker-1", "worker-2", "client"):
            network.add_host(host)
        yield found
    finally:
        stop(list(found.processes.values()))
        network.close()


def running_chunks(connection: Redis) -> dict[int, str]:
    """Map the pid of each worker running a batch chunk now to that chunk's job id."""
    started = Queue(keys.BATCH_QUEUE, connection=connection).started_job_registry
    found = {}
    for entry in connection.zrange(started.key, 0, -1):
        composite = codec.text(entry)
        owner = connection.hget(f"rq:execution:{composite}", "worker_name")
        if owner is not None:
            pid = int(connection.hget(f"rq:worker:{codec.text(owner)}", "pid") or 0)
            found[pid] = composite.split(":")[0]
    return found


@pytest.mark.slow
def test_a_worker_host_cut_off_mid_batch_costs_no_row_and_counts_none_twice(
    hosts: Hosts, tmp_path: Path
) -> None:
    network = hosts.network
    password = secrets.token_urlsafe(16)  # Redis on a network answers only with a password
    redis_url = f"redis://:{password}@{network.hosts['redis']}:6379/0"
    cli = [sys.executable, "-m", "scripts.cli"]
    pixels = np.random.default_rng(7).integers(0, 256, (ROWS, 784), dtype=np.uint8)
    write_kaggle_csv(tmp_path / "test.csv", pixels)
    expected = model.load(CNN).predict(pixels).tolist()

    hosts.start("redis", [redis_server_binary(), "--bind", network.hosts["redis"], "--port",
                          "6379", "--save", "", "--appendonly", "no", "--requirepass", password,
                          "--maxmemory-policy", "noeviction"])  # fmt: skip
    with network.on("client"):
        connection = Redis.from_url(redis_url, socket_timeout=10)
        wait_for(lambda: _answers(connection), 10, "Redis on its host")
    published = subprocess.run(
        network.command("api", [*cli, "publish", str(CNN), "--activate", "--redis-url", redis_url]),
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert published.returncode == 0, published.stderr
    settings = {"REDIS_URL": redis_url, "DIGITS_CHUNK_ROWS": str(CHUNK_ROWS)}
    hosts.start("api", [*cli, "api", "--host", network.hosts["api"], "--port", str(API_PORT),
                        "--processes", "1", "--threads", "4"], settings)  # fmt: skip
    for worker in ("worker-1", "worker-2"):
        hosts.start(worker, [*cli, "worker", "--redis-url", redis_url])
    cut_worker = hosts.processes["worker-1"]
    base = f"http://{network.hosts['api']}:{API_PORT}"

    with network.on("client"), requests.Session() as http:
        http.trust_env = False  # no proxy from the environment: the API is on the bridge

        def workers_ready(count: int) -> Callable[[], bool]:
            def check() -> bool:
                try:
                    return (
                        http.get(f"{base}/readyz", timeout=5).json()["checks"]["workers"] == count
                    )
                except (requests.RequestException, ValueError):
                    return False

            return check

        wait_for(workers_ready(2), 90, "the API and both workers")
        with open(tmp_path / "test.csv", "rb") as upload:
            answer = http.post(
                f"{base}/v1/batches", data=upload, headers={"Content-Type": "text/csv"}, timeout=120
            )
        assert answer.status_code == 202, answer.text
        batch = answer.json()
        first = wait_for(
            lambda: running_chunks(connection).get(cut_worker.pid), 60, "worker-1 to run a chunk"
        )

        def next_chunk() -> str | None:  # just begun: the cut lands well before its end
            found = running_chunks(connection).get(cut_worker.pid)
            return found if found not in (None, first) else None

        lost_chunk = wait_for(next_chunk, 60, "worker-1 to begin another chunk", interval=0.005)
        network.cut("worker-1")
        cut_at = time.monotonic()

        def requeued() -> bool:
            job = Job.fetch(lost_chunk, connection=connection, serializer=JSONSerializer)
            return bool(job.meta.get("recoveries"))

        wait_for(requeued, CUT_SECONDS, "the cut-off worker's chunk to be queued again")
        requeued_after = time.monotonic() - cut_at
        time.sleep(max(0.0, CUT_SECONDS - (time.monotonic() - cut_at)))
        network.reconnect("worker-1")
        reconnected = time.monotonic()
        wait_for(workers_ready(2), 60, "worker-1 to beat again after the reconnect")
        back_after = time.monotonic() - reconnected

        def status() -> dict:
            return http.get(f"{base}{batch['status_url']}", timeout=10).json()

        wait_for(lambda: status()["status"] == "finished", 120, "the batch to finish")
        done_after = time.monotonic() - cut_at
        time.sleep(recovery.DEAD_AFTER)  # room for a late answer from worker-1 to land

        body = status()
        submission = http.get(f"{base}{batch['submission_url']}", timeout=60).text
        chunks_done = connection.scard(keys.batch_done(batch["batch_id"]))

    print(
        f"\nworker host cut for {CUT_SECONDS:.0f} s: its chunk queued again {requeued_after:.1f} s "
        f"after the cut, worker-1 back {back_after:.1f} s after the reconnect, "
        f"batch done {done_after:.1f} s after the cut"
    )
    assert cut_worker.poll() is None  # it waited out the cut instead of dying
    assert (body["status"], body["rows"], body["rows_done"]) == ("finished", ROWS, ROWS)
    assert chunks_done == batch["chunks"] == ROWS // CHUNK_ROWS
    lines = submission.splitlines()
    assert lines[0] == "ImageId,Label"
    rows = [tuple(map(int, line.split(","))) for line in lines[1:]]
    assert rows == list(enumerate(expected, start=1))


def _answers(connection: Redis) -> bool:
    try:
        return bool(connection.ping())
    except Exception:
        return False
