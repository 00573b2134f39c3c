"""Schemathesis against /openapi.json: generated requests, no 5xx, responses as documented."""

from __future__ import annotations

import gzip
import io
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from processes import redis_db, wait_for, workers
from redis import Redis

import model
from api import create_app
from store import registry

FUZZ_REDIS_URL = redis_db(15)  # its own database: a worker runs for the module
# Small limits keep generated bodies small; the wait keeps a request short if a job lags.
CONFIG = {
    "REDIS_URL": FUZZ_REDIS_URL,
    "DIGITS_MAX_IMAGES": 3,
    "DIGITS_MAX_ROWS": 20,
    "DIGITS_WAIT": 2.0,
    "DIGITS_MAX_WAIT": 3.0,
    "MAX_CONTENT_LENGTH": 1 << 20,
    "DIGITS_STREAM_WAIT": 0.2,  # a followed stream ends this soon when quiet
    "DIGITS_STREAM_MAX_WAIT": 0.5,
}


# Over a limit is 413, a rejection too. A CSV or picture that matches the schema (a string)
# can still be malformed, and pixels that match it can still be wrongly encoded (inverted or
# 0/1, `api.pixel_encoding`): for those routes a 422 on "valid" data is right.
CHECKS = """
[checks.negative_data_rejection]
expected-statuses = ["400", "404", "405", "409", "413", "415", "422", "429"]

# Ids start with their creation time: a well-formed one dated past its TTL is 410, by design.
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "410", "429", "5xx"]

[[operations]]
include-path-regex = "^/v1/(batches|predict/image|predict|jobs|streams/.+/in)$"
checks.positive_data_acceptance.enabled = false

# A WebSocket: a request without `Upgrade: websocket` is refused (400) whatever its parameters;
# tests/test_live.py speaks the protocol.
[[operations]]
include-path-regex = "^/v1/predict/live$"
checks.positive_data_acceptance.enabled = false
"""


@schemathesis.serializer("application/x-ndjson")
def _ndjson(context: Any, value: Any) -> bytes:
    """Generated text as the body of a stream's input route."""
    return value if isinstance(value, bytes) else str(value).encode()


@schemathesis.serializer("application/gzip", "application/zip")
def _compressed(context: Any, value: Any) -> bytes:
    """Generated text, compressed as the declared type: the decompression path is fuzzed too."""
    data = value if isinstance(value, bytes) else str(value).encode()
    if context.case.media_type == "application/gzip":
        return gzip.compress(data)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("test.csv", data)
    return buffer.getvalue()


APP = create_app(CONFIG)  # loading the schema reads /openapi.json only: no Redis yet
SCHEMA = schemathesis.openapi.from_wsgi(
    "/openapi.json", APP, config=schemathesis.config.SchemathesisConfig.from_str(CHECKS)
)


@pytest.fixture(scope="module")
def serving(networks: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A published model and one worker subprocess on the app's own database."""
    connection = Redis.from_url(FUZZ_REDIS_URL)
    connection.flushdb()
    version, _ = registry.publish(connection, networks["a"], model.loads(networks["a"]).metadata)
    registry.activate(connection, version)
    with workers(FUZZ_REDIS_URL, 1, tmp_path_factory.mktemp("fuzz")):
        client = APP.test_client()
        wait_for(lambda: client.get("/readyz").status_code == 200, 60, "/readyz to be green")
        yield
    connection.flushdb()


ANSWERED: dict[str, set[int]] = defaultdict(set)  # statuses seen per operation


@pytest.mark.slow
@SCHEMA.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_its_documented_promises(serving: None, case: schemathesis.Case) -> None:
    response = case.call_and_validate()
    ANSWERED[f"{case.method} {case.path}"].add(response.status_code)


@pytest.mark.slow
def test_the_generated_requests_reached_the_success_paths() -> None:
    assert 200 in ANSWERED["POST /v1/predict"]
    assert 202 in ANSWERED["POST /v1/jobs"]
    assert 422 in ANSWERED["POST /v1/batches"]
    assert all(status < 500 for statuses in ANSWERED.values() for status in statuses)
