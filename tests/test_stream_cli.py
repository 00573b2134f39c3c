"""`digits stream`: stdin rows in, answers out, bounded in flight, over Redis or HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from processes import ROOT, wait_for
from redis import Redis

from formats.kaggle_csv import PIXEL_NAMES
from store import keys
from worker import streams as consumer
from worker.streams import Settings


@pytest.fixture
def worker(redis_conn: Redis, published: dict) -> Iterator[None]:
    """A stream consumer in this process, as `digits worker` runs one."""
    with consumer.consuming(redis_conn, "test-worker", Settings()):
        yield


def kaggle_csv(pixels: np.ndarray) -> bytes:
    rows = [",".join(PIXEL_NAMES)] + [",".join(map(str, row)) for row in pixels.tolist()]
    return "\n".join(rows).encode() + b"\n"


def digits_stream(*args: str, stdin: bytes, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scripts.cli", "stream", *args],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )


def test_a_csv_through_redis_makes_a_submission_in_row_order(
    redis_url: str, worker: None, service, pixels: np.ndarray
) -> None:
    done = digits_stream("--redis", redis_url, "--format", "submission", stdin=kaggle_csv(pixels))
    assert done.returncode == 0, done.stderr.decode()
    lines = done.stdout.decode().splitlines()
    assert lines[0] == "ImageId,Label"
    expected = service.labels("a", pixels)
    assert lines[1:] == [f"{i},{label}" for i, label in enumerate(expected, start=1)]


def test_an_imageid_column_numbers_the_submission_and_empty_rows_are_skipped(
    redis_url: str, worker: None, service, pixels: np.ndarray
) -> None:
    header = "ImageId," + ",".join(PIXEL_NAMES)
    rows = [f"{101 + i}," + ",".join(map(str, row)) for i, row in enumerate(pixels[:6].tolist())]
    text = "\n".join([header, *rows[:3], "," * 784, *rows[3:], "," * 784]) + "\n"
    done = digits_stream("--redis", redis_url, "--format", "submission", stdin=text.encode())
    assert done.returncode == 0, done.stderr.decode()
    expected = service.labels("a", pixels[:6])
    assert done.stdout.decode().splitlines() == ["ImageId,Label"] + [
        f"{101 + i},{label}" for i, label in enumerate(expected)
    ]


def test_output_to_a_closed_pipe_ends_without_a_traceback(
    redis_url: str, worker: None, pixels: np.ndarray
) -> None:
    command = [sys.executable, "-m", "scripts.cli", "stream", "--redis", redis_url]
    reader = subprocess.Popen(
        [*command, "--format", "submission"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert reader.stdout is not None and reader.stdin is not None
    reader.stdout.close()  # as `| head -0` would: nobody reads the answers
    _, errors = reader.communicate(kaggle_csv(pixels), timeout=60)
    assert b"Traceback" not in errors, errors.decode()


def test_ndjson_over_http_echoes_each_rows_id(
    url: str, worker: None, service, published: dict, pixels: np.ndarray
) -> None:
    body = b"".join(
        json.dumps({"pixels": row.tolist(), "id": f"form-{n}"}).encode() + b"\n"
        for n, row in enumerate(pixels[:40])
    )
    done = digits_stream("forms", "--url", url, stdin=body)
    assert done.returncode == 0, done.stderr.decode()
    answers = sorted(
        (json.loads(line) for line in done.stdout.splitlines()), key=lambda a: a["row"]
    )
    assert [a["row"] for a in answers] == list(range(1, 41))
    assert [a["id"] for a in answers] == [f"form-{n}" for n in range(40)]
    assert [a["label"] for a in answers] == service.labels("a", pixels[:40])
    assert all(a["model_version"] == published["a"] for a in answers)
    csv = digits_stream("forms", "--url", url, "--format", "csv", stdin=kaggle_csv(pixels[:5]))
    header, *rows = csv.stdout.decode().splitlines()
    assert header == "row,id,label,confidence,model_version,error" and len(rows) == 5


def test_no_more_than_in_flight_rows_wait_unanswered(
    redis_url: str, redis_conn: Redis, published: dict, pixels: np.ndarray
) -> None:
    command = [
        sys.executable,
        "-m",
        "scripts.cli",
        "stream",
        "--redis",
        redis_url,
        "--in-flight",
        "10",
    ]
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
    )
    assert process.stdin is not None
    stdin = process.stdin

    def feed() -> None:  # blocks once the pipe is full: the command stops reading
        stdin.write(kaggle_csv(pixels[:50]))
        stdin.close()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    wait_for(lambda: redis_conn.xlen(keys.stream_in("default")) == 10, 30, "ten inputs")
    time.sleep(1)  # nobody answers: the command must not add an eleventh
    assert redis_conn.xlen(keys.stream_in("default")) == 10
    with consumer.consuming(redis_conn, "late-worker", Settings()):
        feeder.join(timeout=60)
        assert process.stdout is not None and process.stderr is not None
        out = process.stdout.read()
        assert process.wait(timeout=60) == 0, process.stderr.read().decode()
    assert len(out.splitlines()) == 50


def test_a_bad_row_stops_the_command_with_its_number(
    redis_url: str, worker: None, pixels: np.ndarray
) -> None:
    rows = kaggle_csv(pixels[:5]).splitlines(keepends=True)
    rows[3] = b"1,2,3\n"
    done = digits_stream("--redis", redis_url, stdin=b"".join(rows))
    assert done.returncode == 1
    assert "row 3" in done.stderr.decode()


def test_wrongly_encoded_rows_are_refused_unless_encoding_says_so(
    redis_url: str, worker: None, service, pixels: np.ndarray
) -> None:
    digits = np.zeros((4, 784), np.uint8)
    digits[:, 300:500] = pixels[:4, 300:500]  # ink inside a black frame, as MNIST
    refused = digits_stream("--redis", redis_url, stdin=kaggle_csv(255 - digits))
    assert refused.returncode == 1
    assert "row 1 looks inverted" in refused.stderr.decode()
    done = digits_stream(
        "--redis", redis_url, "--encoding", "inverted", "--format", "submission",
        stdin=kaggle_csv(255 - digits),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    expected = service.labels("a", digits)
    assert done.stdout.decode().splitlines()[1:] == [
        f"{i},{label}" for i, label in enumerate(expected, start=1)
    ]
