"""JSON log lines: one per request and one per job, secrets masked wherever they appear."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from processes import redis_db
from redis import Redis

from api import auth, create_app
from store import keys, logs

DB = redis_db(14)  # this module's database, flushed before and after
ROOT = Path(__file__).resolve().parent.parent
API_KEY = "log-test-key-0123456789"


@pytest.fixture
def redis_url() -> str:
    return DB


@pytest.fixture
def app(redis_conn: Redis) -> Flask:
    return create_app({"REDIS_URL": DB, "TESTING": True, "DIGITS_API_KEYS": API_KEY})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {API_KEY}"
    return client


def lines(caplog: pytest.LogCaptureFixture, logger: str) -> list[dict]:
    """The fields of every record `logger` wrote, as the JSON formatter prints them."""
    formatter = logs.JsonFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if r.name == logger]


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("redis://:s3cret@db:6379/0", "redis://:***@db:6379/0"),
        ("rediss://user:s3cret@db/1 and more", "rediss://user:***@db/1 and more"),
        ("unix://:s3cret@/run/redis.sock?db=0", "unix://:***@/run/redis.sock?db=0"),
        ("redis://db:6379/0?password=s3cret&x=1", "redis://db:6379/0?password=***&x=1"),
        ("Authorization: Bearer s3cret", "Authorization: Bearer ***"),
        ("/v1/predict/live?access_token=s3cret&wait=2", "/v1/predict/live?access_token=***&wait=2"),
        ("redis://db:6379/0 has no secret", "redis://db:6379/0 has no secret"),
    ],
)
def test_mask(text: str, masked: str) -> None:
    assert logs.mask(text) == masked


def test_formatter_writes_one_json_object_with_fields_and_masks_secrets() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "lost %s", ("redis://:pw@h",), None)
    record.fields = {"job_id": "j1", "rows": 3}
    try:
        raise ConnectionError("to redis://:pw@h failed")
    except ConnectionError:
        record.exc_info = sys.exc_info()
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line and "pw@" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "lost redis://:***@h"
    assert (parsed["level"], parsed["logger"], parsed["job_id"], parsed["rows"]) == (
        "error",
        "x",
        "j1",
        3,
    )
    assert "ConnectionError" in parsed["error"]


def test_configure_sends_json_lines_to_stderr_in_a_fresh_process() -> None:
    code = (
        "import logging; from store import logs; logs.configure('info'); "
        "logging.getLogger('t').info('to %s', 'redis://:pw@h'); "
        "logging.getLogger('t').debug('not shown')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert json.loads(line)["message"] == "to redis://:***@h"


def test_configure_leaves_a_configured_root_logger_alone() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    assert before  # pytest's own capture handlers
    logs.configure("DEBUG")
    assert root.handlers == before


def test_one_line_per_request_with_job_and_key_id(
    client: FlaskClient, service, published: dict, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    job_id = client.post("/v1/jobs", json={"images": [[0] * 784] * 3}).json["job_id"]
    service.work()
    assert client.get(f"/v1/jobs/{job_id}").status_code == 200
    client.get("/v1/jobs/" + "f" * 32)
    created, polled, unknown = lines(caplog, "api.access")
    key_id = auth.key_id(API_KEY)
    assert created["method"] == "POST" and created["path"] == "/v1/jobs"
    assert (created["status"], created["job_id"], created["rows"]) == (202, job_id, 3)
    assert created["key_id"] == key_id and created["duration_ms"] > 0
    assert (polled["route"], polled["job_id"]) == ("/v1/jobs/<job_id>", job_id)
    assert polled["model_version"] == published["a"]
    assert (unknown["status"], unknown["job_id"]) == (404, "f" * 32)
    assert API_KEY not in caplog.text


def test_refused_requests_are_logged_without_the_key_sent(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app.test_client().get("/v1/models", headers={"Authorization": "Bearer guessed-key"})
    [line] = lines(caplog, "api.access")
    assert line["status"] == 401 and "key_id" not in line
    assert "guessed-key" not in caplog.text


def test_one_line_per_job_from_the_worker(
    client: FlaskClient, service, published: dict, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    job_id = client.post("/v1/jobs", json={"images": [[0] * 784] * 2}).json["job_id"]
    doomed = client.post("/v1/jobs", json={"pixels": [0] * 784}).json["job_id"]
    service.connection.delete(keys.job_pixels(doomed))
    csv = ",".join(f"pixel{i}" for i in range(784)) + "\n" + ",".join(["0"] * 784) + "\n"
    batch_id = client.post("/v1/batches", data=csv, content_type="text/csv").json["batch_id"]
    service.work()
    by_id = {line["job_id"]: line for line in lines(caplog, "store.jobstats")}
    done, failed = by_id[job_id], by_id[doomed]
    [chunk] = [line for line in by_id.values() if line["queue"] == keys.BATCH_QUEUE]
    assert (chunk["batch_id"], chunk["chunk"], chunk["rows"]) == (batch_id, 0, 1)
    assert chunk["counted"] is True
    assert (done["outcome"], done["rows"], done["model_version"]) == ("finished", 2, published["a"])
    assert done["queue"] == keys.PREDICT_QUEUE
    assert done["queue_wait_ms"] >= 0 and done["compute_ms"] > 0
    assert failed["outcome"] == "failed" and not {"rows", "model_version"} & failed.keys()
