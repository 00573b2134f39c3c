"""Nothing from Redis is ever unpickled: a pickle planted where the service reads is not run.

Each test plants a pickle whose loading would create a marker file (through os.system)
where a job, its arguments, its input, its result or a model's weights live, runs the
real worker and API paths over it, and checks the marker is absent and the failure is an
ordinary one: a failed job, a refused model, a JSON error.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import os
import pickle
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest
from flask import Flask
from flask.testing import FlaskClient
from processes import redis_db
from redis import Redis
from rq.serializers import JSONSerializer

import model
from formats.kaggle_csv import write_kaggle_csv
from formats.weights import version as file_version
from scripts.registry import PublishError, publish_file
from store import keys, registry
from worker import jobs, runner

DB = redis_db(14)  # this module's database, flushed before and after


class Planted:
    """An object whose unpickling runs a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def redis_url() -> str:
    return DB


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "pickle-was-loaded"
    yield path
    assert not path.exists(), "a planted pickle was unpickled"


@pytest.fixture
def planted(marker: Path) -> bytes:
    payload = pickle.dumps(Planted(marker))
    pickle.loads(payload)  # the payload works: loading it does create the marker
    assert marker.exists()
    marker.unlink()
    return payload


def queue_job(client: FlaskClient) -> str:
    return client.post("/v1/jobs", json={"pixels": [0] * 784}).json["job_id"]


def test_pickled_job_data_is_not_loaded(
    client: FlaskClient, service, published: dict, planted: bytes
) -> None:
    job_id = queue_job(client)
    service.connection.hset(f"rq:job:{job_id}", "data", zlib.compress(planted))
    assert service.work() is True
    body = client.get(f"/v1/jobs/{job_id}").json
    assert body["status"] == "failed" and "DeserializationError" in body["error"]
    after = queue_job(client)
    service.work()
    assert client.get(f"/v1/jobs/{after}").json["status"] == "finished"


def test_pickled_inputs_fail_their_jobs(
    client: FlaskClient, service, published: dict, planted: bytes, tmp_path: Path
) -> None:
    job_id = queue_job(client)
    service.connection.set(keys.job_pixels(job_id), planted)
    csv = tmp_path / "test.csv"
    write_kaggle_csv(csv, np.zeros((50, 784), np.uint8))
    batch_id = client.post("/v1/batches", data=csv.read_bytes(), content_type="text/csv").json[
        "batch_id"
    ]
    service.connection.set(keys.batch_pixels(batch_id, 1), planted)
    service.work()
    assert client.get(f"/v1/jobs/{job_id}").json["status"] == "failed"
    batch = client.get(f"/v1/batches/{batch_id}").json
    assert batch["status"] == "failed" and batch["rows_done"] == 40


def test_pickled_results_are_not_loaded(
    client: FlaskClient, service, published: dict, planted: bytes
) -> None:
    ours, rqs = queue_job(client), queue_job(client)
    service.work()
    connection = service.connection
    connection.set(keys.job_result(ours), planted)
    connection.delete(keys.job_result(rqs))  # so the API falls back to RQ's own record
    stream = f"rq:results:{rqs}"
    [(entry, fields)] = connection.xrange(stream)
    connection.xdel(stream, entry)
    connection.hset(f"rq:job:{rqs}", "status", "failed")
    connection.xadd(stream, {**fields, b"return_value": base64.b64encode(planted)})
    for job_id in (ours, rqs):
        response = client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 500
        assert response.json["error"]["code"] == "internal_error"
    assert client.get("/healthz").status_code == 200


def weights_with_object_array(good: bytes, payload: object) -> bytes:
    """A weights archive whose first parameter is an object array holding `payload`."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as source, zipfile.ZipFile(out, "w") as target:
        names = [name for name in source.namelist() if name != "metadata.npy"]
        for name in source.namelist():
            if name == names[0]:
                member = io.BytesIO()
                array = np.array([payload], dtype=object)
                np.lib.format.write_array(member, array, allow_pickle=True)
                target.writestr(name, member.getvalue())
            else:
                target.writestr(name, source.read(name))
    return out.getvalue()


def test_weights_holding_pickles_are_refused(
    client: FlaskClient,
    service,
    published: dict,
    networks: dict[str, bytes],
    marker: Path,
    tmp_path: Path,
) -> None:
    bad = weights_with_object_array(networks["a"], Planted(marker))
    with pytest.raises(model.WeightsError, match="allow_pickle"):
        model.loads(bad)
    path = tmp_path / "bad.npz"
    path.write_bytes(bad)
    with pytest.raises(PublishError):
        publish_file(service.connection, path, activate=True)
    assert registry.current(service.connection) == published["a"]

    # Planted past `digits publish`, straight into Redis under its true hash:
    before = queue_job(client)
    service.work()  # this worker now holds model "a"
    version = file_version(bad)
    service.connection.set(keys.model_weights(version), bad)
    service.connection.set(keys.MODELS_CURRENT, version)
    after = queue_job(client)
    service.work()
    assert version in jobs.CACHE.refused
    for job_id in (before, after):
        body = client.get(f"/v1/jobs/{job_id}").json
        assert (body["status"], body["model_version"]) == ("finished", published["a"])


def test_activation_checks_weights_against_their_hash(
    client: FlaskClient, redis_conn: Redis, published: dict
) -> None:
    stored = keys.model_weights(published["b"])
    data = bytearray(redis_conn.get(stored))
    data[len(data) // 2] ^= 0xFF
    redis_conn.set(stored, bytes(data))
    refused = client.post(f"/v1/models/{published['b']}/activate")
    assert refused.status_code == 409
    assert refused.json["error"]["code"] == "corrupt_model"
    assert registry.current(redis_conn) == published["a"]


def values_in(connection: Redis) -> Iterator[tuple[str, bytes]]:
    """Every value stored in the database, whatever the type of its key."""
    for raw_key in connection.scan_iter():
        key = raw_key.decode()
        kind = connection.type(key).decode()
        if kind == "string":
            yield key, connection.get(key)
        elif kind == "hash":
            yield from ((key, value) for value in connection.hvals(key))
        elif kind == "list":
            yield from ((key, value) for value in connection.lrange(key, 0, -1))
        elif kind in ("set", "zset"):
            members = connection.smembers(key) if kind == "set" else connection.zrange(key, 0, -1)
            yield from ((key, member) for member in members)
        elif kind == "stream":
            for _, fields in connection.xrange(key):
                yield from ((key, value) for value in fields.values())


def decodings(value: bytes) -> Iterator[bytes]:
    """The value as stored, and as RQ's zlib and base64 layers would turn it."""
    yield value
    for decode in (zlib.decompress, base64.b64decode):
        with contextlib.suppress(zlib.error, binascii.Error, ValueError):
            yield decode(value)


def is_pickle(data: bytes) -> bool:
    return data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")


def test_rq_speaks_json_on_both_sides(
    client: FlaskClient, app: Flask, service, published: dict, tmp_path: Path
) -> None:
    found = app.extensions["digits"]
    assert found.predict_queue.serializer is JSONSerializer
    assert found.batch_queue.serializer is JSONSerializer
    assert runner.build(service.connection).serializer is JSONSerializer
    job_id = queue_job(client)
    data = zlib.decompress(service.connection.hget(f"rq:job:{job_id}", "data"))
    assert orjson.loads(data)[0] == "worker.jobs.predict_group"
    csv = tmp_path / "test.csv"
    write_kaggle_csv(csv, np.zeros((50, 784), np.uint8))
    client.post("/v1/batches", data=csv.read_bytes(), content_type="text/csv")
    failing = queue_job(client)
    service.connection.delete(keys.job_pixels(failing))
    service.work()
    [(_, result)] = service.connection.xrange(f"rq:results:{job_id}")
    assert orjson.loads(base64.b64decode(result[b"return_value"]))["images"] == 1
    stored = list(values_in(service.connection))
    assert len(stored) > 20
    for key, value in stored:
        assert not any(is_pickle(form) for form in decodings(value)), key
