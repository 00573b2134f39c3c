"""POST /v1/batches, GET /v1/batches/<id>, submission.csv: CSV in, Kaggle submission out."""

from __future__ import annotations

import io

import numpy as np
import pytest
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

from formats.kaggle_csv import write_kaggle_csv
from store import keys


def csv_bytes(tmp_path, pixels: np.ndarray, labels: np.ndarray | None = None) -> bytes:
    path = tmp_path / "upload.csv"
    write_kaggle_csv(path, pixels, labels)
    return path.read_bytes()


def submission_rows(response) -> list[tuple[int, int]]:
    lines = response.data.decode().splitlines()
    assert lines[0] == "ImageId,Label"
    return [tuple(map(int, line.split(","))) for line in lines[1:]]


def test_csv_with_labels_to_submission(
    client: FlaskClient, service, published: dict, pixels: np.ndarray, tmp_path
) -> None:
    truth = np.arange(len(pixels)) % 10
    accepted = client.post(
        "/v1/batches", data=csv_bytes(tmp_path, pixels, truth), content_type="text/csv"
    )
    assert accepted.status_code == 202
    body = accepted.json
    assert (body["rows"], body["chunks"], body["has_labels"]) == (100, 3, True)
    assert accepted.headers["Location"] == body["status_url"]
    queued = client.get(body["status_url"]).json
    assert (queued["status"], queued["rows_done"], queued["accuracy"]) == ("queued", 0, None)
    early = client.get(body["submission_url"])
    assert early.status_code == 409
    assert early.json["error"]["code"] == "not_finished"

    service.work()

    status = client.get(body["status_url"]).json
    assert status["status"] == "finished"
    assert status["rows_done"] == 100
    assert status["model_version"] == published["a"]
    assert status["model_versions"] == [published["a"]]
    expected = service.labels("a", pixels)
    assert status["accuracy"] == pytest.approx(np.mean(np.asarray(expected) == truth))
    submission = client.get(body["submission_url"])
    assert submission.status_code == 200
    assert submission.mimetype == "text/csv"
    assert "submission.csv" in submission.headers["Content-Disposition"]
    assert submission_rows(submission) == list(enumerate(expected, start=1))


def test_multipart_upload_without_labels(
    client: FlaskClient, service, published: dict, pixels: np.ndarray, tmp_path
) -> None:
    upload = {"file": (io.BytesIO(csv_bytes(tmp_path, pixels[:30])), "test.csv")}
    accepted = client.post("/v1/batches", data=upload, content_type="multipart/form-data")
    assert accepted.status_code == 202
    assert accepted.json["has_labels"] is False
    service.work()
    status = client.get(accepted.json["status_url"]).json
    assert status["status"] == "finished"
    assert "accuracy" not in status
    rows = submission_rows(client.get(accepted.json["submission_url"]))
    assert rows == list(enumerate(service.labels("a", pixels[:30]), start=1))


def test_unusual_but_legal_csv_is_accepted(
    client: FlaskClient, service, published: dict, pixels: np.ndarray, tmp_path
) -> None:
    text = csv_bytes(tmp_path, pixels[:3]).replace(b"\n", b"\r\n")
    text = b"\xef\xbb\xbf" + text.rstrip(b"\r\n") + b"\r\n\r\n\r\n"
    accepted = client.post("/v1/batches", data=text, content_type="text/csv")
    assert accepted.status_code == 202
    assert accepted.json["rows"] == 3


def test_chunk_run_twice_counts_once(
    client: FlaskClient, service, redis_conn: Redis, published: dict, pixels, tmp_path
) -> None:
    body = client.post(
        "/v1/batches", data=csv_bytes(tmp_path, pixels[:50]), content_type="text/csv"
    ).json
    service.work()
    # As if a worker died after counting chunk 0 and RQ ran the job again.
    Queue(keys.BATCH_QUEUE, connection=redis_conn, serializer=JSONSerializer).enqueue_call(
        "worker.jobs.predict_chunk", args=[body["batch_id"], 0, 60]
    )
    service.work()
    status = client.get(body["status_url"]).json
    assert (status["status"], status["rows_done"]) == ("finished", 50)
    assert len(submission_rows(client.get(body["submission_url"]))) == 50


def test_failed_chunk_fails_the_batch(
    client: FlaskClient, service, pixels: np.ndarray, tmp_path
) -> None:
    body = client.post(
        "/v1/batches", data=csv_bytes(tmp_path, pixels[:10]), content_type="text/csv"
    ).json
    service.work()  # no model was published
    status = client.get(body["status_url"]).json
    assert status["status"] == "failed"
    assert "no model is active" in status["error"]
    assert client.get(body["submission_url"]).status_code == 409


def test_batch_keys_expire(
    client: FlaskClient, service, redis_conn: Redis, published: dict, pixels, tmp_path
) -> None:
    truth = np.zeros(len(pixels), dtype=np.int64)
    body = client.post(
        "/v1/batches", data=csv_bytes(tmp_path, pixels, truth), content_type="text/csv"
    ).json
    service.work()
    ours = [key.decode() for key in redis_conn.scan_iter(keys.batch(body["batch_id"]) + "*")]
    # record, labels and confidences per chunk, done and versions sets
    assert len(ours) == 1 + 3 + 3 + 2
    assert all(0 < redis_conn.ttl(key) <= 86_400 for key in ours)


@pytest.mark.parametrize("path", ["/v1/batches/" + "0" * 32, "/v1/batches/nope/submission.csv"])
def test_unknown_batch_is_404(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


HEADER = ",".join(f"pixel{i}" for i in range(784)).encode()
ROW = ",".join(["0"] * 784).encode()


@pytest.mark.parametrize(
    ("body", "status", "code", "where"),
    [
        (b"", 422, "empty", "empty"),
        (HEADER + b"\n", 422, "empty", "no data rows"),
        (ROW + b"\n" + ROW + b"\n", 422, "bad_header", "header"),
        (HEADER + b"\n" + ROW + b"\n" + ROW[:-2] + b"\n", 422, "wrong_column_count", "row 2"),
        (HEADER + b"\n" + ROW[:-1] + b"x\n", 422, "not_integer", "row 1, column pixel783"),
        (HEADER + b"\n" + b"256" + ROW[1:] + b"\n", 422, "out_of_range", "column pixel0"),
        (HEADER.replace(b",", b";") + b"\n", 422, "bad_delimiter", "semicolons"),
        (b"\xff\xfe" + HEADER, 422, "bad_encoding", "UTF-16"),
        (HEADER + (b"\n" + ROW) * 6 + b"\n", 413, "too_many_rows", "limit of 5"),
    ],
)
def test_bad_csv_is_rejected_and_nothing_is_queued(
    app, service, redis_conn: Redis, body: bytes, status: int, code: str, where: str
) -> None:
    app.config["DIGITS_MAX_ROWS"] = 5
    response = app.test_client().post("/v1/batches", data=body, content_type="text/csv")
    assert response.status_code == status, response.json
    assert response.json["error"]["code"] == code
    assert where in response.json["error"]["message"]
    assert service.queued() == 0
    assert not list(redis_conn.scan_iter(f"{keys.PREFIX}*"))


def test_multipart_without_file_is_400(client: FlaskClient, service) -> None:
    response = client.post(
        "/v1/batches",
        data={"other": (io.BytesIO(b"x"), "a.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert response.json["error"] == {
        "code": "missing_file",
        "message": "the multipart body has no field named 'file'",
    }
    assert service.queued() == 0


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
def test_wrong_content_type_is_415(client: FlaskClient, service, content_type) -> None:
    response = client.post("/v1/batches", data=HEADER + b"\n" + ROW, content_type=content_type)
    assert response.status_code == 415
    assert response.json["error"]["code"] == "unsupported_media_type"
    assert service.queued() == 0


def test_oversize_csv_is_413(app, service) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 5000
    response = app.test_client().post(
        "/v1/batches", data=HEADER + b"\n" + ROW + b"\n", content_type="text/csv"
    )
    assert response.status_code == 413
    assert response.json["error"]["code"] == "too_large"
    assert service.queued() == 0
