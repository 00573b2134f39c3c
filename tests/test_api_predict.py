"""POST /v1/predict and /v1/jobs, GET /v1/jobs/<id>: real Redis, a real worker."""

from __future__ import annotations

import gzip
import json
import time
import zlib

import numpy as np
import pytest
from flask.testing import FlaskClient
from monitor import commands_sent
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

from api import dispatch
from api.services import Services
from store import groups, keys, liveness
from worker import runner


def test_sync_predict_one_image(
    client: FlaskClient, service, published: dict, pixels: np.ndarray
) -> None:
    response = service.while_working(
        lambda: client.post("/v1/predict", json={"pixels": pixels[0].tolist()})
    )
    assert response.status_code == 200
    body = response.json
    assert body["labels"] == service.labels("a", pixels[:1])
    assert np.asarray(body["probabilities"]).shape == (1, 10)
    assert sum(body["probabilities"][0]) == pytest.approx(1, abs=1e-5)
    assert body["model_version"] == published["a"]
    assert client.get(f"/v1/jobs/{body['job_id']}").json["labels"] == body["labels"]


def test_sync_predict_many_images(
    client: FlaskClient, service, published: dict, pixels: np.ndarray
) -> None:
    response = service.while_working(
        lambda: client.post("/v1/predict", json={"images": pixels.tolist()})
    )
    assert response.status_code == 200
    assert response.json["labels"] == service.labels("a", pixels)
    assert np.asarray(response.json["probabilities"]).shape == (100, 10)


def test_predict_answers_202_when_the_wait_runs_out(
    client: FlaskClient, service, live_worker: None, published: dict, pixels: np.ndarray
) -> None:
    response = client.post("/v1/predict?wait=0.05", json={"images": pixels[:3].tolist()})
    assert response.status_code == 202
    assert response.json["status"] == "queued"
    status_url = response.json["status_url"]
    assert status_url == f"/v1/jobs/{response.json['job_id']}"
    assert response.headers["Location"] == status_url
    service.work()
    finished = client.get(status_url).json
    assert finished["status"] == "finished"
    assert finished["labels"] == service.labels("a", pixels[:3])


def test_job_round_trip(client: FlaskClient, service, published: dict, pixels: np.ndarray) -> None:
    accepted = client.post("/v1/jobs", json={"images": pixels[:5].tolist()})
    assert accepted.status_code == 202
    job_id = accepted.json["job_id"]
    assert client.get(f"/v1/jobs/{job_id}").json == {
        "job_id": job_id,
        "status": "queued",
        "message": "no worker has taken it yet: none is alive; it runs when one starts "
        "(digits worker)",
    }
    with service.alive():
        assert "1 alive, busy" in client.get(f"/v1/jobs/{job_id}").json["message"]
    service.work()
    body = client.get(f"/v1/jobs/{job_id}").json
    assert body["status"] == "finished"
    assert body["labels"] == service.labels("a", pixels[:5])
    assert body["model_version"] == published["a"]


def test_job_travels_as_raw_bytes_and_json(
    client: FlaskClient, redis_conn: Redis, service, published: dict, pixels: np.ndarray
) -> None:
    job_id = client.post("/v1/jobs", json={"images": pixels[:2].tolist()}).json["job_id"]
    assert redis_conn.get(keys.job_pixels(job_id)) == pixels[:2].tobytes()
    assert 0 < redis_conn.ttl(keys.job_pixels(job_id)) <= 3600
    job_data = json.loads(zlib.decompress(redis_conn.hget(f"rq:job:{job_id}", "data")))
    assert job_data[0] == "worker.jobs.predict_group"
    assert job_data[2] == [job_id, 3600]


def test_every_result_key_expires(
    client: FlaskClient, redis_conn: Redis, service, published: dict, pixels: np.ndarray
) -> None:
    job_id = client.post("/v1/jobs", json={"pixels": pixels[0].tolist()}).json["job_id"]
    service.work()
    ours = [key.decode() for key in redis_conn.scan_iter(f"{keys.PREFIX}job:{job_id}:*")]
    assert ours
    assert all(0 < redis_conn.ttl(key) <= 3600 for key in ours)


def test_failed_job_reports_its_error(client: FlaskClient, service, pixels: np.ndarray) -> None:
    response = service.while_working(
        lambda: client.post("/v1/predict", json={"pixels": pixels[0].tolist()})
    )
    assert response.status_code == 503  # no model can serve: unavailable, not broken
    assert response.json["error"]["code"] == "no_model"
    assert int(response.headers["Retry-After"]) > 0
    assert "no model is active" in response.json["error"]["message"]
    job_id = client.post("/v1/jobs", json={"pixels": pixels[0].tolist()}).json["job_id"]
    service.work()
    body = client.get(f"/v1/jobs/{job_id}").json
    assert body["status"] == "failed"
    assert body["error"].startswith("NoModel: no model is active")


@pytest.mark.parametrize("job_id", ["0" * 32, "not-a-job", "x" * 200])
def test_unknown_job_is_404(client: FlaskClient, job_id: str) -> None:
    response = client.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


GOOD = [0] * 784


@pytest.mark.parametrize(
    ("body", "status", "where"),
    [
        (b"{", 400, "not valid JSON"),
        (b"", 400, "not valid JSON"),
        (b"[1, 2]", 422, "JSON object"),
        (b'{"pixels": [1], "images": [[1]]}', 422, "JSON object"),
        (json.dumps({"pixels": GOOD, "extra": 1}).encode(), 422, "unexpected field 'extra'"),
        (b'{"images": []}', 422, "non-empty list"),
        (b'{"pixels": 5}', 422, "pixels must be a list"),
        (json.dumps({"pixels": GOOD[:-1]}).encode(), 422, "pixels has 783 values, expected 784"),
        (json.dumps({"images": [GOOD, GOOD + [0]]}).encode(), 422, "images[1] has 785 values"),
        (json.dumps({"images": [GOOD, GOOD[:-1] + [256]]}).encode(), 422, "images[1][783] is 256"),
        (json.dumps({"pixels": [-1] + GOOD[1:]}).encode(), 422, "pixels[0] is -1"),
        (json.dumps({"pixels": [0.5] + GOOD[1:]}).encode(), 422, "pixels[0] is 0.5"),
        (json.dumps({"pixels": ["7"] + GOOD[1:]}).encode(), 422, 'pixels[0] is "7"'),
        (json.dumps({"pixels": [None] + GOOD[1:]}).encode(), 422, "pixels[0] is null"),
        (json.dumps({"pixels": GOOD[1:] + [True]}).encode(), 422, "pixels[783] is true"),
        (json.dumps({"pixels": [2**70] + GOOD[1:]}).encode(), 422, "pixels[0] is"),
        (json.dumps({"images": [GOOD, "x"]}).encode(), 422, "images[1] must be a list"),
    ],
)
def test_bad_body_is_rejected_and_nothing_is_queued(
    client: FlaskClient, redis_conn: Redis, service, body: bytes, status: int, where: str
) -> None:
    for path in ("/v1/predict", "/v1/jobs"):
        response = client.post(path, data=body, content_type="application/json")
        assert response.status_code == status, response.json
        assert where in response.json["error"]["message"]
    assert service.queued() == 0
    assert not list(redis_conn.scan_iter(f"{keys.PREFIX}*"))


def test_wrong_content_type_is_415(client: FlaskClient, service) -> None:
    response = client.post("/v1/predict", data=json.dumps({"pixels": GOOD}))
    assert response.status_code == 415
    assert response.json["error"] == {
        "code": "unsupported_media_type",
        "message": "send the images as application/json",
    }
    assert service.queued() == 0


def test_too_many_images_is_413(app, service) -> None:
    app.config["DIGITS_MAX_IMAGES"] = 2
    response = app.test_client().post("/v1/jobs", json={"images": [GOOD] * 3})
    assert response.status_code == 413
    assert response.json["error"]["code"] == "too_many_images"
    assert "3 images sent, at most 2" in response.json["error"]["message"]
    assert service.queued() == 0


def test_oversize_body_is_413(app, service) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 1000
    response = app.test_client().post("/v1/predict", json={"pixels": GOOD})
    assert response.status_code == 413
    assert response.json["error"]["code"] == "too_large"
    assert "limit of 1000 bytes" in response.json["error"]["message"]
    assert service.queued() == 0


@pytest.mark.parametrize("wait", ["-1", "abc", "nan", "1e9"])
def test_bad_wait_is_400(client: FlaskClient, service, wait: str) -> None:
    response = client.post(f"/v1/predict?wait={wait}", json={"pixels": GOOD})
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_parameter"
    assert service.queued() == 0


def test_failed_job_without_callback_shows_rqs_exception(
    client: FlaskClient, redis_conn: Redis, service, published: dict
) -> None:
    job_id = "f" * 32  # queued as if by the API, but its pixels are gone and no callback ran
    queue = Queue(keys.PREDICT_QUEUE, connection=redis_conn, serializer=JSONSerializer)
    queue.enqueue_call("worker.jobs.predict_group", args=[job_id, 60], job_id=job_id)
    assert client.get(f"/v1/jobs/{job_id}").json["status"] == "queued"
    service.work()
    body = client.get(f"/v1/jobs/{job_id}").json
    assert body == {
        "job_id": job_id,
        "status": "failed",
        "error": f"LookupError: job {job_id}: its pixels expired or were deleted",
    }


def test_rejected_requests_leave_earlier_work_intact(
    client: FlaskClient, service, published: dict, pixels: np.ndarray
) -> None:
    job_id = client.post("/v1/jobs", json={"images": pixels[:2].tolist()}).json["job_id"]
    service.work()
    before = client.get(f"/v1/jobs/{job_id}").json
    for body in (b"{", b'{"pixels": [1]}', b"[]", b"\xff" * 100):
        assert client.post(
            "/v1/predict", data=body, content_type="application/json"
        ).status_code in (
            400,
            422,
        )
    assert client.post("/v1/batches", data=b"x", content_type="text/csv").status_code == 422
    assert client.get(f"/v1/jobs/{job_id}").json == before
    assert client.get("/v1/models").json["current"] == published["a"]
    assert service.queued() == 0


def test_predict_without_a_live_worker_is_503_at_once_and_queues_nothing(
    client: FlaskClient, redis_conn: Redis, service, published: dict, pixels: np.ndarray
) -> None:
    silent = runner.build(redis_conn)
    silent.register_birth()  # its process exists (RQ's key is there) ...
    liveness.beat(redis_conn, silent.name)
    seconds, _ = redis_conn.time()
    redis_conn.zadd(
        keys.WORKER_BEATS, {silent.name: seconds - liveness.DEAD_AFTER - 1}
    )  # ... silent
    started = time.monotonic()
    response = client.post("/v1/predict", json={"pixels": pixels[0].tolist()})
    assert time.monotonic() - started < 1.0
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json["error"]["code"] == "no_worker"
    assert "no worker is alive" in response.json["error"]["message"]
    assert service.queued() == 0
    assert client.get("/readyz").json["checks"]["workers"] == 0


def test_jobs_and_batches_are_taken_without_a_worker_and_say_so(
    client: FlaskClient, service, published: dict, pixels: np.ndarray
) -> None:
    job = client.post("/v1/jobs", json={"pixels": pixels[0].tolist()})
    csv = ",".join(f"pixel{i}" for i in range(784)) + "\n" + ",".join(["0"] * 784) + "\n"
    batch = client.post("/v1/batches", data=csv, content_type="text/csv")
    assert (job.status_code, batch.status_code) == (202, 202)
    for url in (job.json["status_url"], batch.json["status_url"]):
        body = client.get(url).json
        assert body["status"] == "queued"
        assert body["message"].startswith("no worker has taken it yet: none is alive")
    service.work()
    assert client.get(job.json["status_url"]).json["status"] == "finished"
    assert "message" not in client.get(batch.json["status_url"]).json


def test_a_gzip_encoded_json_body_is_read(
    client: FlaskClient, service, published: dict, pixels: np.ndarray
) -> None:
    body = gzip.compress(json.dumps({"pixels": pixels[0].tolist()}).encode())
    response = service.while_working(
        lambda: client.post(
            "/v1/predict",
            data=body,
            content_type="application/json",
            headers={"Content-Encoding": "gzip"},
        )
    )
    assert response.status_code == 200, response.json
    assert response.json["labels"] == service.labels("a", pixels[:1])


def test_an_unknown_content_encoding_on_json_is_415(client: FlaskClient, service) -> None:
    response = client.post(
        "/v1/predict",
        data=json.dumps({"pixels": GOOD}),
        content_type="application/json",
        headers={"Content-Encoding": "br"},
    )
    assert response.status_code == 415
    assert response.json["error"]["code"] == "unsupported_encoding"
    assert service.queued() == 0


def lookup(client: FlaskClient, redis_conn: Redis, job_id: str) -> tuple[dict, list[str]]:
    """GET /v1/jobs/<id>: the body, and the commands it sent to Redis."""
    with commands_sent(redis_conn) as sent:
        body = client.get(f"/v1/jobs/{job_id}").json
    return body, sent


def test_a_status_lookup_is_at_most_two_reads(
    app, client: FlaskClient, redis_conn: Redis, service, published: dict, pixels: np.ndarray
) -> None:
    job_id = client.post("/v1/jobs", json={"pixels": pixels[0].tolist()}).json["job_id"]
    client.get(f"/v1/jobs/{job_id}")  # the connection is open and the script loaded
    found: Services = app.extensions["digits"]
    dispatch.submit_group(found, [("a" * 32, pixels[1:2])])
    assert groups.join(redis_conn, "a" * 32, [("b" * 32, pixels[2:3])], 60)
    rq_only = "c" * 32  # no record of ours: RQ's alone, whose failure runs no callback
    Queue(keys.PREDICT_QUEUE, connection=redis_conn, serializer=JSONSerializer).enqueue_call(
        "worker.jobs.predict_group", args=[rq_only, 60], job_id=rq_only
    )
    for pending in (job_id, "b" * 32, rq_only):
        body, sent = lookup(client, redis_conn, pending)
        assert body["status"] == "queued" and "none is alive" in body["message"]
        assert sent == ["MGET", "EVALSHA"]
    service.work()
    for done in (job_id, "b" * 32):
        body, sent = lookup(client, redis_conn, done)
        assert (body["status"], sent) == ("finished", ["MGET"])
    body, sent = lookup(client, redis_conn, rq_only)
    assert body["status"] == "failed" and body["error"].startswith("LookupError")
    assert sent == ["MGET", "EVALSHA"]
