"""The hostile-input corpus: every request in tests/corpus gets its 4xx JSON error, no 5xx.

Each `*.http` file is one request: a `METHOD /path` line, headers, a blank line, then the
body bytes exactly. `X-Corpus-Expect: <status> <code>` is the answer it must get and
`X-Corpus-Note` says what is wrong with the request; neither header is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

from api import create_app
from formats.kaggle_csv import write_kaggle_csv
from store import codec
from worker import runner

CORPUS = Path(__file__).resolve().parent / "corpus"
# The limits the corpus's over-the-limit requests are written against.
LIMITS = {
    "MAX_CONTENT_LENGTH": 65_536,
    "DIGITS_MAX_IMAGES": 5,
    "DIGITS_MAX_ROWS": 20,
    "DIGITS_CHUNK_ROWS": 40,
}


@dataclass(frozen=True)
class Case:
    """One request of the corpus and the answer it must get."""

    name: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    code: str


def read_case(path: Path) -> Case:
    """Parse a corpus file."""
    head, _, body = path.read_bytes().partition(b"\n\n")
    request_line, *lines = head.decode().split("\n")
    method, target = request_line.split(" ", 1)
    headers = dict(line.split(": ", 1) for line in lines)
    status, code = headers.pop("X-Corpus-Expect").split(" ")
    headers.pop("X-Corpus-Note")
    return Case(path.stem, method, target, headers, body, int(status), code)


CASES = [read_case(path) for path in sorted(CORPUS.glob("*.http"))]


def send(client: FlaskClient, case: Case):
    return client.open(case.path, method=case.method, data=case.body, headers=case.headers)


@pytest.fixture
def limited(redis_conn: Redis, redis_url: str) -> Flask:
    return create_app({"REDIS_URL": redis_url, **LIMITS})


def stored(redis_conn: Redis) -> set[str]:
    """The keys in the database, but for counters that every request may move."""
    names = {codec.text(name) for name in redis_conn.scan_iter()}
    return {name for name in names if not name.startswith(("digits:metrics:", "digits:ratelimit:"))}


def test_the_corpus_covers_every_kind_of_input() -> None:
    prefixes = {case.name.split("-")[0] for case in CASES}
    assert prefixes == {"csv", "json", "image", "route"}
    assert len(CASES) >= 100
    assert all(400 <= case.status < 500 for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_request_gets_its_4xx_json_error(
    case: Case, limited: Flask, published: dict, redis_conn: Redis
) -> None:
    before = stored(redis_conn)
    response = send(limited.test_client(), case)
    assert response.status_code == case.status, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/json"
    error = response.json["error"]
    assert set(error) == {"code", "message"} and error["message"]
    assert error["code"] == case.code
    assert stored(redis_conn) == before  # nothing stored, nothing queued


def test_the_service_stays_ready_and_earlier_work_intact(
    limited: Flask, service, published: dict, pixels: np.ndarray, redis_conn: Redis, tmp_path
) -> None:
    client = limited.test_client()
    write_kaggle_csv(tmp_path / "test.csv", pixels[:20])
    upload = (tmp_path / "test.csv").read_bytes()
    batch = client.post("/v1/batches", data=upload, content_type="text/csv").json
    job = client.post("/v1/jobs", json={"images": pixels[:3].tolist()}).json
    service.work()
    done = {url: client.get(url).get_data() for url in (batch["submission_url"], job["status_url"])}
    queued = client.post("/v1/jobs", json={"pixels": pixels[3].tolist()}).json

    answers = [send(client, case).status_code for case in CASES]

    assert all(400 <= status < 500 for status in answers)
    assert {url: client.get(url).get_data() for url in done} == done
    assert service.queued() == 1
    runner.build(redis_conn).register_birth()  # a live worker, for /readyz
    assert client.get("/readyz").status_code == 200
    service.work()
    assert client.get(queued["status_url"]).json["labels"] == service.labels("a", pixels[3:4])
