"""Redis failover under Sentinel: the primary killed mid-batch, the replica takes over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from failover import SentinelGroup
from processes import ROOT, free_port, wait_for, workers
from redis import Redis

import model
from api import create_app
from formats.kaggle_csv import write_kaggle_csv
from scripts.registry import publish_file
from store import keys
from store.connection import connect

CNN = Path(__file__).resolve().parent.parent / "model" / "weights" / "cnn.npz"
ROWS = 10_000


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    """A primary, a replica and three sentinels on loopback, all stopped after the test."""
    found = SentinelGroup(tmp_path / "redis")
    try:
        found.start()
        yield found
    finally:
        found.stop()


def test_a_sentinel_url_reaches_the_primary_and_its_database(group: SentinelGroup) -> None:
    connection = connect(group.url.removesuffix("/0") + "/3", socket_timeout=5)
    connection.set("digits:test:found", "1")
    assert connection.connection_pool.get_master_address() == ("127.0.0.1", group.primary.port)
    assert Redis(port=group.primary.port, db=3).get("digits:test:found") == b"1"
    wait_for(lambda: Redis(port=group.replica.port, db=3).get("digits:test:found"), 10, "a copy")


@pytest.mark.slow
def test_the_cli_and_digits_up_work_through_the_sentinels(
    group: SentinelGroup, networks: dict[str, bytes], pixels: np.ndarray, tmp_path: Path
) -> None:
    weights = tmp_path / "a.npz"
    weights.write_bytes(networks["a"])
    cli = [sys.executable, "-m", "scripts.cli"]
    env = os.environ | {"REDIS_URL": group.url}
    published = subprocess.run(
        [*cli, "publish", str(weights), "--activate"], env=env, cwd=ROOT, capture_output=True
    )
    assert published.returncode == 0, published.stderr
    listed = subprocess.run([*cli, "models"], env=env, cwd=ROOT, capture_output=True, text=True)
    assert model.file_version(networks["a"]) in listed.stdout

    port = free_port()
    up = subprocess.Popen(
        [*cli, "up", "--workers", "1", "--port", str(port)],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert up.stdout is not None
        assert "serving on" in up.stdout.readline()
        answer = requests.post(
            f"http://127.0.0.1:{port}/v1/predict", json={"images": pixels[:3].tolist()}, timeout=10
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["labels"] == model.loads(networks["a"]).predict(pixels[:3]).tolist()
    finally:
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=30) == 0


@pytest.mark.slow
def test_batch_finishes_once_when_the_primary_is_killed(
    group: SentinelGroup, tmp_path: Path
) -> None:
    connection = connect(group.url)
    publish_file(connection, CNN, activate=True)
    client = create_app({"REDIS_URL": group.url, "DIGITS_CHUNK_ROWS": 500}).test_client()
    pixels = np.random.default_rng(6).integers(0, 256, (ROWS, 784), dtype=np.uint8)
    write_kaggle_csv(tmp_path / "test.csv", pixels)
    expected = model.load(CNN).predict(pixels).tolist()

    with workers(group.url, 2, tmp_path):
        wait_for(lambda: client.get("/readyz").json["checks"]["workers"] == 2, 60, "2 workers")
        upload = (tmp_path / "test.csv").read_bytes()
        batch = client.post("/v1/batches", data=upload, content_type="text/csv").json
        wait_for(lambda: client.get(batch["status_url"]).json["rows_done"] >= 1000, 60, "2 chunks")
        assert group.primary.process is not None
        group.primary.process.kill()  # SIGKILL: no AOF flush, no goodbye to the replica
        killed_at = time.monotonic()

        refused = 0
        while (
            answer := client.post("/v1/jobs", json={"pixels": pixels[0].tolist()})
        ).status_code != 202:
            assert answer.status_code == 503, answer.json
            assert int(answer.headers["Retry-After"]) > 0
            assert set(answer.json["error"]) == {"code", "message"}
            refused += 1
            assert time.monotonic() - killed_at < 60, "no new primary within 60 s"
            time.sleep(0.05)
        window = time.monotonic() - killed_at
        assert group.primary_port() == group.replica.port

        def finished() -> dict | None:
            body = client.get(batch["status_url"]).json
            return body if body["status"] == "finished" else None

        status = wait_for(finished, 90, "the batch to finish after the failover")
        done_after = time.monotonic() - killed_at

    print(
        f"\nprimary killed: 503 for {window:.1f} s ({refused} refused), "
        f"batch done {done_after:.1f} s"
    )
    assert refused > 0  # the kill really took the primary away from the API
    assert (status["rows"], status["rows_done"]) == (ROWS, ROWS)
    assert connection.scard(keys.batch_done(batch["batch_id"])) == batch["chunks"] == 20
    lines = client.get(batch["submission_url"]).data.decode().splitlines()
    assert lines[0] == "ImageId,Label"
    rows = [tuple(map(int, line.split(","))) for line in lines[1:]]
    assert rows == list(enumerate(expected, start=1))
