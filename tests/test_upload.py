"""Uploads as clients send them: chunked, gzip-encoded, .csv.gz, Kaggle's zip, odd multipart.

A body over the limit is refused whole (413) however it is sent, and nothing is stored; a
compressed upload is limited by its uncompressed size.
"""

from __future__ import annotations

import gzip
import io
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from processes import free_port, redis_db, wait_for
from redis import Redis
from test_kaggle_csv import zip_bytes
from werkzeug.exceptions import RequestEntityTooLarge

from api.upload import StreamedBody
from formats.kaggle_csv import PIXEL_NAMES, text_limit
from store import keys

ROOT = Path(__file__).resolve().parent.parent
API_REDIS_URL = redis_db(11)  # the gunicorn process's database, flushed before and after
HEADER = ("label," + ",".join(PIXEL_NAMES)).encode()
ZERO_ROW = b"1," + b"0," * 783 + b"0"  # a valid labelled row, 1,570 bytes


def labelled_csv(rows: int) -> bytes:
    return HEADER + b"\n" + (ZERO_ROW + b"\n") * rows


def stored_keys(connection: Redis) -> list[bytes]:
    return list(connection.scan_iter(f"{keys.PREFIX}*"))


# The body reader, on its own


@pytest.mark.parametrize(("size", "refused"), [(999, False), (1000, False), (1001, True)])
def test_a_streamed_body_is_read_whole_up_to_the_limit(size: int, refused: bool) -> None:
    stream = StreamedBody(io.BytesIO(b"x" * size), 1000)
    if refused:
        with pytest.raises(RequestEntityTooLarge):
            stream.read()
    else:
        assert stream.read() == b"x" * size


# Chunked bodies through gunicorn, the server `digits api` runs


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    connection = Redis.from_url(API_REDIS_URL)
    connection.flushdb()
    port = free_port()
    env = {**os.environ, "REDIS_URL": API_REDIS_URL, "DIGITS_MAX_ROWS": "100000"}
    env.pop("MAX_CONTENT_LENGTH", None)  # the shipped 100 MiB limit
    command = [sys.executable, "-m", "scripts.cli", "api", "--port", str(port), "--processes", "1"]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(url), 30, "gunicorn to answer /healthz")
        yield url
    finally:
        server.terminate()
        server.wait(10)
        connection.flushdb()
        connection.close()


def _answers(url: str) -> bool:
    try:
        return requests.get(url + "/healthz", timeout=1).status_code == 200
    except requests.RequestException:  # not listening yet, or still starting
        return False


def post_chunked(url: str, body: Iterator[bytes]) -> tuple[int, dict]:
    """POST with Transfer-Encoding: chunked; return the status and JSON the server answers.

    The server may answer before the body is sent and close: that is read, not an error.
    """
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
        connection.sendall(
            b"POST /v1/batches HTTP/1.1\r\nHost: test\r\nContent-Type: text/csv\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )

        def send() -> None:
            try:
                for block in body:
                    connection.sendall(b"%x\r\n%s\r\n" % (len(block), block))
                connection.sendall(b"0\r\n\r\n")
            except OSError:
                pass  # the server answered early and closed

        sender = threading.Thread(target=send)
        sender.start()
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer) < _length(answer):
            data = connection.recv(1 << 16)
            if not data:
                break
            answer += data
        sender.join(60)
    head, _, payload = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), orjson.loads(payload[: _length(answer) - len(head) - 4])


def _length(answer: bytes) -> int:
    head, found, _ = answer.partition(b"\r\n\r\n")
    if not found:
        return 1 << 62
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            return len(head) + 4 + int(value)
    return 1 << 62


def test_a_chunked_body_over_the_limit_is_413_and_nothing_is_stored(api_url: str) -> None:
    # 110 MiB of valid rows (73,470 of them, within DIGITS_MAX_ROWS): read up to the 100 MiB
    # limit and stopped there, it would have been a batch of ~66,800 rows.
    block = (ZERO_ROW + b"\n") * 668  # ~1 MiB of whole rows
    blocks = -(-110 * 2**20 // len(block))

    def body() -> Iterator[bytes]:
        yield HEADER + b"\n"
        for _ in range(blocks):
            yield block

    status, answer = post_chunked(api_url, body())
    assert status == 413, answer
    assert answer["error"]["code"] == "too_large"
    assert "104857600 bytes" in answer["error"]["message"]
    assert stored_keys(Redis.from_url(API_REDIS_URL)) == []


def test_a_chunked_body_under_the_limit_is_read_whole(api_url: str) -> None:
    text = labelled_csv(3_000)  # 4.7 MB in 64 KiB pieces
    status, answer = post_chunked(
        api_url, (text[i : i + 65536] for i in range(0, len(text), 65536))
    )
    assert status == 202, answer
    assert answer["rows"] == 3_000


def raw_exchange(url: str, request: bytes) -> tuple[int, dict]:
    """Send `request` as is, close the sending side, and return the status and JSON answer."""
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(request)
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while data := connection.recv(1 << 16):
            answer += data
    head, _, payload = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), orjson.loads(payload[: _length(answer) - len(head) - 4])


def test_a_body_shorter_than_its_content_length_is_400_and_nothing_is_stored(api_url: str) -> None:
    connection = Redis.from_url(API_REDIS_URL)
    before = stored_keys(connection)
    body = labelled_csv(10)
    head = b"POST /v1/batches HTTP/1.1\r\nHost: test\r\nContent-Type: text/csv\r\n"
    head += b"Content-Length: %d\r\n\r\n" % (len(body) * 4)  # the client stops after a quarter
    status, answer = raw_exchange(api_url, head + body)
    assert status == 400, answer
    assert answer["error"]["code"] == "incomplete_body"
    assert f"after {len(body):,} of the {len(body) * 4:,} bytes" in answer["error"]["message"]
    assert stored_keys(connection) == before


@pytest.mark.parametrize(
    ("route", "content_type"),
    [
        ("/v1/batches", "text/csv"),
        ("/v1/predict", "application/json"),
        ("/v1/predict/image", "image/png"),
    ],
)
def test_a_malformed_chunked_body_is_400_json(api_url: str, route: str, content_type: str) -> None:
    request = b"POST %s HTTP/1.1\r\nHost: test\r\nContent-Type: %s\r\n" % (
        route.encode(),
        content_type.encode(),
    )
    status, answer = raw_exchange(api_url, request + b"Transfer-Encoding: chunked\r\n\r\nZZ\r\n")
    assert status == 400, answer
    assert answer["error"]["code"] == "malformed_body", answer


# Compressed uploads (Flask test client, a worker in the test)


def test_gzip_content_encoding(client: FlaskClient, service, published: dict) -> None:
    body = gzip.compress(labelled_csv(50))
    headers = {"Content-Encoding": "gzip"}
    accepted = client.post("/v1/batches", data=body, content_type="text/csv", headers=headers)
    assert accepted.status_code == 202, accepted.json
    assert (accepted.json["rows"], accepted.json["has_labels"]) == (50, True)


@pytest.mark.parametrize("content_type", ["application/gzip", "application/zip", "multipart"])
def test_csv_gz_and_kaggle_zip_as_uploaded(
    client: FlaskClient, service, published: dict, pixels: np.ndarray, content_type: str
) -> None:
    test_csv = b"ImageId," + HEADER[6:] + b"\n"
    test_csv += b"".join(b"%d,%s\n" % (1000 + i, ZERO_ROW[2:]) for i in range(30))
    if content_type == "application/gzip":
        data, name = gzip.compress(test_csv), "test.csv.gz"
    else:
        train = labelled_csv(40)
        data, name = zip_bytes({"train.csv": train, "test.csv": test_csv}), "digit-recognizer.zip"
    if content_type == "multipart":
        upload = {"file": (io.BytesIO(data), name)}
        accepted = client.post("/v1/batches", data=upload, content_type="multipart/form-data")
    else:
        accepted = client.post("/v1/batches", data=data, content_type=content_type)
    assert accepted.status_code == 202, accepted.json
    assert (accepted.json["rows"], accepted.json["has_labels"]) == (30, False)
    service.work()
    lines = client.get(accepted.json["submission_url"]).data.decode().splitlines()
    assert lines[0] == "ImageId,Label"
    assert [int(line.split(",")[0]) for line in lines[1:]] == list(range(1000, 1030))


def test_excel_empty_rows_are_counted_in_the_answer(client: FlaskClient, service) -> None:
    body = labelled_csv(3) + (b"," * 784 + b"\r\n") * 4
    accepted = client.post("/v1/batches", data=body, content_type="text/csv")
    assert accepted.status_code == 202, accepted.json
    assert (accepted.json["rows"], accepted.json["skipped_rows"]) == (3, 4)


@pytest.mark.parametrize("encoding", ["gzip-header", "gzip-file", "zip-file"])
def test_compression_bombs_are_413_by_their_uncompressed_size(
    app: Flask, service, redis_conn: Redis, encoding: str
) -> None:
    app.config["DIGITS_MAX_ROWS"] = 5
    bomb = labelled_csv(2) + b"0" * text_limit(5)  # zeros compress ~1,000:1
    headers = {"Content-Encoding": "gzip"} if encoding == "gzip-header" else {}
    data = zip_bytes({"test.csv": bomb}) if encoding == "zip-file" else gzip.compress(bomb)
    assert len(data) < text_limit(5) // 20  # small on the wire, too large unpacked
    response = app.test_client().post(
        "/v1/batches", data=data, content_type="text/csv", headers=headers
    )
    assert response.status_code == 413, response.json
    assert response.json["error"]["code"] == "too_large"
    assert f"{text_limit(5):,} bytes uncompressed" in response.json["error"]["message"]
    assert service.queued() == 0 and stored_keys(redis_conn) == []


@pytest.mark.parametrize(
    ("headers", "body", "status", "code", "message"),
    [
        ({"Content-Encoding": "br"}, b"x", 415, "unsupported_encoding", "'br' is not supported"),
        ({"Content-Encoding": "gzip"}, b"plain", 400, "bad_archive", "gzip data is corrupt"),
        (
            {"Content-Encoding": "gzip"},
            gzip.compress(labelled_csv(3))[:-20],
            400,
            "bad_archive",
            "ends early",
        ),
    ],
)
def test_bad_encodings_are_named(
    client: FlaskClient, service, headers: dict, body: bytes, status: int, code: str, message: str
) -> None:
    response = client.post("/v1/batches", data=body, content_type="text/csv", headers=headers)
    assert response.status_code == status, response.json
    assert response.json["error"]["code"] == code
    assert message in response.json["error"]["message"]
    assert service.queued() == 0


# Multipart bodies that used to get "no field named 'file'"


def multipart(disposition: bytes, content: bytes) -> bytes:
    return (
        b"--B\r\nContent-Disposition: form-data; " + disposition + b"\r\n"
        b"Content-Type: text/csv\r\n\r\n" + content + b"\r\n--B--\r\n"
    )


def test_a_non_utf8_file_name_is_named(client: FlaskClient, service) -> None:
    body = multipart(b'name="file"; filename="caf\xe9.csv"', labelled_csv(2))
    response = client.post("/v1/batches", data=body, content_type="multipart/form-data; boundary=B")
    assert response.status_code == 400
    assert response.json["error"]["code"] == "bad_multipart"
    message = response.json["error"]["message"]
    assert "headers are not UTF-8 (byte 0xe9" in message and "rename the file" in message
    assert service.queued() == 0


def test_a_file_sent_as_a_plain_field_is_named(client: FlaskClient, service) -> None:
    # curl -F 'file=<x.csv' sends the content as a field without a filename.
    body = multipart(b'name="file"', labelled_csv(2))
    response = client.post("/v1/batches", data=body, content_type="multipart/form-data; boundary=B")
    assert response.status_code == 400
    assert response.json["error"] == {
        "code": "not_a_file",
        "message": "the field 'file' came as a plain form field, not a file: with curl, "
        "use -F 'file=@path' (with @, not <)",
    }


def test_a_large_plain_field_gets_the_same_answer_not_413(client: FlaskClient, service) -> None:
    body = multipart(b'name="file"', labelled_csv(2_000))  # 3 MB: over werkzeug's 500 kB
    response = client.post("/v1/batches", data=body, content_type="multipart/form-data; boundary=B")
    assert (response.status_code, response.json["error"]["code"]) == (400, "not_a_file")


def test_a_truncated_multipart_body_is_named(client: FlaskClient, service) -> None:
    body = multipart(b'name="file"; filename="x.csv"', labelled_csv(2))[:-12]
    response = client.post("/v1/batches", data=body, content_type="multipart/form-data; boundary=B")
    assert response.status_code == 400
    assert response.json["error"]["code"] == "bad_multipart"
    assert response.json["error"]["message"].startswith("the multipart body is malformed")


def test_a_compressed_csv_saved_by_pandas_with_quoted_floats_fits_its_row_limit(
    app: Flask, client: FlaskClient
) -> None:
    import csv

    import pandas as pd

    rows = 20
    app.config["DIGITS_MAX_ROWS"] = rows
    frame = pd.DataFrame(np.full((rows, 784), 255), columns=PIXEL_NAMES).astype(float)
    text = frame.to_csv(quoting=csv.QUOTE_ALL).encode()  # the longest rows the reader accepts
    assert len(text) > rows * 6_000
    accepted = client.post(
        "/v1/batches?encoding=as-is",  # all 255 would be refused as an inverted picture
        data=gzip.compress(text),
        content_type="text/csv",
        headers={"Content-Encoding": "gzip"},
    )
    assert accepted.status_code == 202, accepted.json
    assert accepted.json["rows"] == rows
