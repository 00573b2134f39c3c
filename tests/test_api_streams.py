"""Streams over HTTP: create, add NDJSON or CSV, follow answers as NDJSON or SSE."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

from api import create_app, stream_input
from formats.kaggle_csv import PIXEL_NAMES
from store import keys
from worker import streams as consumer
from worker.streams import Settings


def ndjson(pixels: np.ndarray, ids: bool = True) -> bytes:
    return b"".join(
        json.dumps({"pixels": row.tolist(), **({"id": f"n{n}"} if ids else {})}).encode() + b"\n"
        for n, row in enumerate(pixels)
    )


def kaggle_csv(pixels: np.ndarray) -> bytes:
    rows = [",".join(PIXEL_NAMES)] + [",".join(map(str, row)) for row in pixels.tolist()]
    return "\n".join(rows).encode() + b"\n"


def lines(body: bytes) -> list[dict]:
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def sse_events(body: bytes) -> list[tuple[str, dict]]:
    events = []
    for block in body.decode().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
        )
        if "data" in fields:
            events.append((fields["id"], json.loads(fields["data"])))
    return events


def test_maxlen_may_be_a_whole_float_as_json_schema_counts_integers(client: FlaskClient) -> None:
    assert client.post("/v1/streams/whole", json={"maxlen": 5.0}).status_code == 201
    refused = client.post("/v1/streams/half", json={"maxlen": 2.5})
    assert refused.status_code == 400 and "maxlen" in refused.json["error"]["message"]


@pytest.fixture
def scanner(client: FlaskClient) -> str:
    assert client.post("/v1/streams/scanner").status_code == 201
    return "scanner"


def test_create_is_idempotent_and_names_are_checked(client: FlaskClient) -> None:
    created = client.post("/v1/streams/forms", json={"maxlen": 500})
    assert created.status_code == 201 and created.json["name"] == "forms"
    assert created.headers["Location"].endswith("/v1/streams/forms")
    again = client.post("/v1/streams/forms")
    assert again.status_code == 200 and again.json["answers"] == 0
    assert client.post("/v1/streams/a:b").json["error"]["code"] == "invalid_stream_name"
    assert client.post("/v1/streams/x", json={"maxlen": 0}).status_code == 400
    for url in ("/v1/streams/nope", "/v1/streams/nope/out?wait=0"):
        missing = client.get(url)
        assert (
            missing.status_code == 404
            and "POST /v1/streams/nope" in missing.json["error"]["message"]
        )
    assert (
        client.post(
            "/v1/streams/nope/in", data=b"{}", content_type="application/x-ndjson"
        ).status_code
        == 404
    )


def test_creating_a_stream_needs_an_admin_key_when_keys_are_on(
    redis_conn: Redis, redis_url: str
) -> None:
    app = create_app(
        {"REDIS_URL": redis_url, "DIGITS_API_KEYS": "user", "DIGITS_ADMIN_KEYS": "boss"}
    )
    client = app.test_client()
    assert client.post("/v1/streams/s").status_code == 401
    user = client.post("/v1/streams/s", headers={"Authorization": "Bearer user"})
    assert user.status_code == 403 and "creating a stream" in user.json["error"]["message"]
    assert client.post("/v1/streams/s", headers={"Authorization": "Bearer boss"}).status_code == 201
    body = ndjson(np.zeros((1, 784), np.uint8))
    added = client.post(
        "/v1/streams/s/in", data=body, content_type="application/x-ndjson",
        headers={"Authorization": "Bearer user"},
    )  # fmt: skip
    assert added.status_code == 202


def test_ndjson_in_answers_out_in_order(
    client: FlaskClient,
    scanner: str,
    redis_conn: Redis,
    service,
    published: dict,
    pixels: np.ndarray,
) -> None:
    added = client.post(
        "/v1/streams/scanner/in", data=ndjson(pixels), content_type="application/x-ndjson"
    )
    assert added.status_code == 202 and added.json["count"] == len(pixels)
    in_ids = [i.decode() for i, _ in redis_conn.xrange(keys.stream_in("scanner"))]
    assert (added.json["first_id"], added.json["last_id"]) == (in_ids[0], in_ids[-1])
    consumer.drain(redis_conn, "w", Settings())

    out = client.get("/v1/streams/scanner/out?count=100&wait=5")
    assert out.mimetype == "application/x-ndjson"
    answers = lines(out.data)
    assert [a["in_id"] for a in answers] == in_ids
    assert [a["id"] for a in answers] == [f"n{n}" for n in range(len(pixels))]
    assert [a["label"] for a in answers] == service.labels("a", pixels)
    assert all(a["model_version"] == published["a"] for a in answers)
    later = client.get(f"/v1/streams/scanner/out?after={answers[49]['out_id']}&count=50&wait=5")
    assert [a["in_id"] for a in lines(later.data)] == in_ids[50:]


def test_a_kaggle_csv_body_is_one_input_per_row(
    client: FlaskClient,
    scanner: str,
    redis_conn: Redis,
    service,
    published: dict,
    pixels: np.ndarray,
) -> None:
    body = kaggle_csv(pixels[:30])
    added = client.post("/v1/streams/scanner/in", data=body, content_type="text/csv")
    assert added.status_code == 202 and added.json["count"] == 30
    consumer.drain(redis_conn, "w", Settings())
    answers = lines(client.get("/v1/streams/scanner/out?count=30&wait=5").data)
    assert [a["label"] for a in answers] == service.labels("a", pixels[:30])
    assert all("id" not in a for a in answers)


def test_a_bad_line_says_where_and_what_was_added_before_it(
    client: FlaskClient,
    scanner: str,
    redis_conn: Redis,
    pixels: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stream_input, "BLOCK_LINES", 2)
    rows = ndjson(pixels[:5]).splitlines(keepends=True)
    rows[2] = b'{"pixels": [1, 2, 3]}\n'
    bad = client.post(
        "/v1/streams/scanner/in", data=b"".join(rows), content_type="application/x-ndjson"
    )
    assert bad.status_code == 422 and bad.json["error"]["code"] == "invalid_line"
    message = bad.json["error"]["message"]
    assert message.startswith("line 3: pixels has 3 values, expected 784")
    assert "the 2 inputs before line 3 were added" in message
    assert message.endswith("send the body again from line 3")
    assert redis_conn.xlen(keys.stream_in("scanner")) == 2

    rows = kaggle_csv(pixels[:5]).splitlines(keepends=True)
    rows[4] = b"1,2\n"  # the fourth data row
    csv = b"".join(rows)
    bad_csv = client.post("/v1/streams/scanner/in", data=csv, content_type="text/csv")
    assert bad_csv.status_code == 422 and "row 4" in bad_csv.json["error"]["message"]
    for body, kind in ((b"", "application/x-ndjson"), (b"not json\n", "application/x-ndjson")):
        assert (
            client.post("/v1/streams/scanner/in", data=body, content_type=kind).status_code == 422
        )
    assert (
        client.post("/v1/streams/scanner/in", data=b"x", content_type="text/plain").status_code
        == 415
    )


def test_sse_resumes_from_last_event_id(
    client: FlaskClient, scanner: str, redis_conn: Redis, published: dict, pixels: np.ndarray
) -> None:
    client.post(
        "/v1/streams/scanner/in", data=ndjson(pixels[:6]), content_type="application/x-ndjson"
    )
    consumer.drain(redis_conn, "w", Settings())
    sse = {"Accept": "text/event-stream"}
    first = client.get("/v1/streams/scanner/out?count=2&wait=5", headers=sse)
    assert first.mimetype == "text/event-stream"
    events = sse_events(first.data)
    assert [data["id"] for _, data in events] == ["n0", "n1"]
    rest = client.get(
        "/v1/streams/scanner/out?wait=0.3", headers=sse | {"Last-Event-ID": events[-1][0]}
    )
    assert [data["id"] for _, data in sse_events(rest.data)] == ["n2", "n3", "n4", "n5"]


def test_following_ends_after_wait_idle_seconds(client: FlaskClient, scanner: str) -> None:
    quiet = client.get("/v1/streams/scanner/out?wait=0.2")
    assert quiet.status_code == 200 and lines(quiet.data) == []
    for query in ("after=yesterday", "count=0", "wait=-1"):
        assert client.get(f"/v1/streams/scanner/out?{query}").status_code == 400


def test_listed_streams_exist_without_creation(redis_conn: Redis, redis_url: str) -> None:
    client = create_app({"REDIS_URL": redis_url, "DIGITS_STREAMS": "camera,forms"}).test_client()
    assert client.get("/v1/streams/forms").status_code == 200
    assert client.get("/v1/streams/other").status_code == 404


def test_a_chunked_body_longer_than_the_upload_limit_is_taken_whole(
    app: Flask, url: str, redis_conn: Redis, pixels: np.ndarray
) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 10_000
    base = f"{url}/v1/streams/big"
    assert requests.post(base).status_code == 201
    body = ndjson(pixels)  # ~290 KB, sent in pieces without a Content-Length
    pieces = (body[start : start + 4096] for start in range(0, len(body), 4096))
    added = requests.post(
        f"{base}/in", data=pieces, headers={"Content-Type": "application/x-ndjson"}
    )
    assert added.status_code == 202 and added.json()["count"] == len(pixels)
    assert redis_conn.xlen(keys.stream_in("big")) == len(pixels)
    too_big = requests.post(
        f"{url}/v1/jobs", data=body, headers={"Content-Type": "application/json"}
    )
    assert too_big.status_code == 413  # the limit still holds everywhere else


def test_more_followers_than_redis_pys_default_pool_are_served(
    client: FlaskClient, scanner: str
) -> None:
    """Each follower holds a Redis connection while it waits; redis-py's pool stops at 100."""

    def follow(_: int) -> tuple[int, bytes]:
        response = client.get("/v1/streams/scanner/out?wait=2")
        return response.status_code, response.data  # reading the body runs the XREADs

    with ThreadPoolExecutor(150) as pool:
        answers = list(pool.map(follow, range(150)))
    assert [status for status, _ in answers] == [200] * 150
    assert all(b"redis_unavailable" not in body for _, body in answers)


# The same pixel checks as POST /v1/predict and CSV batches, with the same ?encoding=


def digit(seed: int) -> np.ndarray:
    """A (784,) uint8 stroke on a black field, as MNIST encodes digits (its frame is black)."""
    field = np.zeros((28, 28), np.uint8)
    field[6:22, 12:16] = np.random.default_rng(seed).integers(128, 256, (16, 4))
    return field.reshape(784)


def digits(count: int, inverted: int | None = None) -> np.ndarray:
    """`count` such images, `(count, 784)`, the one at index `inverted` inverted (255 - x)."""
    images = np.stack([digit(seed) for seed in range(count)])
    if inverted is not None:
        images[inverted] = 255 - images[inverted]
    return images


DIGIT = digit(0).tolist()
LINE_VALUES = {  # what a `pixels` value may be, and what it may not
    "integers": DIGIT,
    "whole floats": [float(v) for v in DIGIT],
    "28 rows of 28": np.reshape(DIGIT, (28, 28)).tolist(),
    "one list of 784": [DIGIT],
    "a 0-1 float": DIGIT[:-1] + [0.5],
    "a boolean": DIGIT[:-1] + [True],
    "256": DIGIT[:-1] + [256],
    "783 values": DIGIT[:-1],
    "two images": [DIGIT, DIGIT],
    "a data URL": "data:image/png;base64,iVBORw0KGgo=",
    "a string": "0" * 784,
    "inverted": [255 - v for v in DIGIT],
    "binary": [min(v, 1) for v in DIGIT],
}


@pytest.mark.parametrize("encoding", [None, "mnist", "inverted", "binary", "as-is"])
def test_a_line_is_refused_exactly_when_post_v1_jobs_refuses_it(
    client: FlaskClient, scanner: str, redis_conn: Redis, encoding: str | None
) -> None:
    query = "" if encoding is None else f"?encoding={encoding}"
    expected = []
    for name, value in LINE_VALUES.items():
        job = client.post(f"/v1/jobs{query}", json={"pixels": value})  # /v1/predict's parser
        line = orjson_line({"pixels": value, "id": "true"})  # an id may say true
        added = client.post(
            f"/v1/streams/scanner/in{query}", data=line, content_type="application/x-ndjson"
        )
        assert (added.status_code == 202) == (job.status_code == 202), (name, job.json)
        if added.status_code == 202:
            expected.append(CONVERTED[encoding or "mnist"](np.asarray(value, np.uint8)))
        else:
            assert added.status_code == 422 and job.status_code == 422, name
            assert added.json["error"]["message"].startswith("line 1"), name
            assert job.json["error"]["code"] in {"invalid_pixels", "not_pixels", "wrong_encoding"}
    stored = [fields[b"pixels"] for _, fields in redis_conn.xrange(keys.stream_in("scanner"))]
    assert stored == [pixels.reshape(784).tobytes() for pixels in expected]


CONVERTED = {  # what ?encoding= makes of the pixels sent
    "mnist": lambda x: x,
    "as-is": lambda x: x,
    "inverted": lambda x: 255 - x,
    "binary": lambda x: x * np.uint8(255),
}


def orjson_line(document: dict) -> bytes:
    return json.dumps(document).encode() + b"\n"


def test_whole_floats_and_other_shapes_are_the_same_inputs_as_integers(
    client: FlaskClient, scanner: str, redis_conn: Redis
) -> None:
    shapes = ("integers", "whole floats", "28 rows of 28", "one list of 784")
    body = b"".join(orjson_line({"pixels": LINE_VALUES[name]}) for name in shapes)
    added = client.post("/v1/streams/scanner/in", data=body, content_type="application/x-ndjson")
    assert added.status_code == 202 and added.json["count"] == 4
    stored = [fields[b"pixels"] for _, fields in redis_conn.xrange(keys.stream_in("scanner"))]
    assert stored == [bytes(DIGIT)] * 4


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("a 0-1 float", "line 3: pixels[783] is 0.5, expected an integer 0-255 (pixels scaled"),
        ("a boolean", "line 3: pixels[783] is true, expected an integer 0-255"),
        ("two images", "line 3: pixels holds 2 images: send one image per line"),
        ("a data URL", "line 3: pixels is a data URL, not pixels"),
    ],
)
def test_a_bad_line_is_named_as_post_v1_predict_names_it(
    client: FlaskClient, scanner: str, redis_conn: Redis, name: str, said: str
) -> None:
    values = [LINE_VALUES["integers"]] * 2 + [LINE_VALUES[name]]
    body = b"".join(orjson_line({"pixels": value}) for value in values)
    bad = client.post("/v1/streams/scanner/in", data=body, content_type="application/x-ndjson")
    assert bad.status_code == 422 and bad.json["error"]["code"] == "invalid_line"
    assert bad.json["error"]["message"].startswith(said)
    assert redis_conn.xlen(keys.stream_in("scanner")) == 0  # the block is added whole or not


def test_an_inverted_line_says_where_and_what_to_resend(
    client: FlaskClient, scanner: str, redis_conn: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_input, "BLOCK_LINES", 2)
    sent = digits(5, inverted=2)
    bad = client.post(
        "/v1/streams/scanner/in", data=ndjson(sent), content_type="application/x-ndjson"
    )
    assert bad.status_code == 422 and bad.json["error"]["code"] == "wrong_encoding"
    message = bad.json["error"]["message"]
    assert message.startswith("line 3 looks inverted") and "?encoding=inverted" in message
    in_ids = [i.decode() for i, _ in redis_conn.xrange(keys.stream_in("scanner"))]
    added = f"the 2 inputs before line 3 were added (entry ids {in_ids[0]} to {in_ids[1]})"
    assert added in message
    assert message.endswith("send the body again from line 3")

    binary = client.post(
        "/v1/streams/scanner/in",
        data=ndjson(np.minimum(sent[:1], 1)),
        content_type="application/x-ndjson",
    )
    assert binary.status_code == 422
    assert binary.json["error"]["message"].startswith("line 1 has only the values 0 and 1")
    unknown = client.post(
        "/v1/streams/scanner/in?encoding=latin-1",
        data=ndjson(sent[:1]),
        content_type="application/x-ndjson",
    )
    assert unknown.status_code == 400 and unknown.json["error"]["code"] == "invalid_parameter"
    assert redis_conn.xlen(keys.stream_in("scanner")) == 2


@pytest.mark.parametrize("kind", ["ndjson", "csv"])
@pytest.mark.parametrize(
    ("encoding", "sent", "stored"),
    [
        ("inverted", lambda x: 255 - x, lambda x: x),
        ("binary", lambda x: (x > 0).astype(np.uint8), lambda x: (x > 0) * np.uint8(255)),
        ("as-is", lambda x: 255 - x, lambda x: 255 - x),
    ],
)
def test_the_encoding_parameter_converts_as_post_v1_predict_does(
    client: FlaskClient, scanner: str, redis_conn: Redis, kind: str, encoding: str, sent, stored
) -> None:
    images = digits(3)
    body, content_type = (
        (ndjson(sent(images)), "application/x-ndjson")
        if kind == "ndjson"
        else (kaggle_csv(sent(images)), "text/csv")
    )
    refused = client.post("/v1/streams/scanner/in", data=body, content_type=content_type)
    assert refused.status_code == 422 and refused.json["error"]["code"] == "wrong_encoding"
    added = client.post(
        f"/v1/streams/scanner/in?encoding={encoding}", data=body, content_type=content_type
    )
    assert added.status_code == 202 and added.json["count"] == 3
    kept = [fields[b"pixels"] for _, fields in redis_conn.xrange(keys.stream_in("scanner"))]
    assert kept == [row.tobytes() for row in stored(images)]


def test_a_wrongly_encoded_csv_row_is_named_by_its_row_and_image_id(
    client: FlaskClient, scanner: str, redis_conn: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_input, "BLOCK_LINES", 3)
    sent = digits(6, inverted=4)
    rows = kaggle_csv(sent).splitlines(keepends=True)
    rows.insert(2, b",,,\n")  # an all-empty row is skipped, but counted: the bad one is row 6
    bad = client.post("/v1/streams/scanner/in", data=b"".join(rows), content_type="text/csv")
    message = bad.json["error"]["message"]
    assert bad.status_code == 422 and message.startswith("row 6 looks inverted")
    assert "the 4 inputs before row 6 were added" in message  # rows 1, 2, 4, 5
    assert message.endswith("send the body again from row 6")
    assert redis_conn.xlen(keys.stream_in("scanner")) == 4

    header = "ImageId," + ",".join(PIXEL_NAMES)
    numbered = [f"{100 + n}," + ",".join(map(str, row)) for n, row in enumerate(sent.tolist())]
    body = "\n".join([header, *numbered]).encode() + b"\n"
    bad = client.post("/v1/streams/scanner/in", data=body, content_type="text/csv")
    assert bad.json["error"]["message"].startswith("row 5 (ImageId 104) looks inverted")
