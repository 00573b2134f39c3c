"""GET / and POST /v1/predict/image: real Redis, a real worker, generated pictures."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from test_preprocess import WEIGHTS, encode, handwritten, png_header, redraw

import model
from model import data
from pictures.preprocess import preprocess
from store import registry

SAMPLE = 200  # MNIST test digits sent through the endpoint for the accuracy comparison


@pytest.fixture(scope="module")
def mnist_test() -> tuple[np.ndarray, np.ndarray]:
    _, _, x_test, y_test = data.load_mnist()
    return x_test, y_test


@pytest.fixture(scope="module")
def picture(mnist_test: tuple[np.ndarray, np.ndarray]) -> bytes:
    """A 4 written dark on white, as a PNG."""
    return encode(redraw(mnist_test[0][4].reshape(28, 28), np.random.default_rng(0)))


def test_page_and_its_assets_are_served(client: FlaskClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    for needed in ('id="pad"', 'id="bars"', 'id="seen"', 'id="csv-file"', 'id="api-key"'):
        assert needed in html
    for asset, mimetype in (("static/app.js", "text/javascript"), ("static/style.css", "text/css")):
        assert asset in html
        response = client.get(f"/{asset}")
        assert response.status_code == 200 and response.mimetype == mimetype


def test_multipart_upload_is_labelled(
    client: FlaskClient, service, published: dict, picture: bytes
) -> None:
    response = service.while_working(
        lambda: client.post("/v1/predict/image", data={"file": (io.BytesIO(picture), "four.png")})
    )
    assert response.status_code == 200
    body = response.json
    found = preprocess(picture)
    seen = found.pixels
    assert body["pixels"] == seen.tolist()
    assert body["box"] == found.box
    assert body["labels"] == service.labels("a", seen.reshape(1, -1))
    assert np.asarray(body["probabilities"]).shape == (1, 10)
    assert body["model_version"] == published["a"]
    assert client.get(f"/v1/jobs/{body['job_id']}").json["labels"] == body["labels"]


@pytest.mark.parametrize("content_type", ["image/jpeg", "application/octet-stream"])
def test_raw_body_is_labelled(
    client: FlaskClient,
    service,
    published: dict,
    mnist_test: tuple[np.ndarray, np.ndarray],
    content_type: str,
) -> None:
    jpeg = handwritten(mnist_test[0][5].reshape(28, 28), np.random.default_rng(1))
    response = service.while_working(
        lambda: client.post("/v1/predict/image", data=jpeg, content_type=content_type)
    )
    assert response.status_code == 200
    assert response.json["pixels"] == preprocess(jpeg).pixels.tolist()


def test_answers_202_with_the_pixels_when_the_wait_runs_out(
    client: FlaskClient, service, live_worker: None, published: dict, picture: bytes
) -> None:
    response = client.post("/v1/predict/image?wait=0", data=picture, content_type="image/png")
    assert response.status_code == 202
    assert response.json["pixels"] == preprocess(picture).pixels.tolist()
    assert response.headers["Location"] == response.json["status_url"]
    service.work()
    assert client.get(response.json["status_url"]).json["status"] == "finished"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (encode(np.full((120, 90), 255, np.uint8)), 422, "blank_image"),
        (b"GIF89a but not really", 422, "unreadable_image"),
        (b"", 422, "empty_image"),
        (png_header(30_000, 30_000), 413, "image_too_large"),
    ],
    ids=["blank", "garbage", "empty", "bomb"],
)
def test_bad_pictures_get_json_errors_and_nothing_is_queued(
    client: FlaskClient, service, body: bytes, status: int, code: str
) -> None:
    response = client.post("/v1/predict/image", data=body, content_type="image/png")
    assert response.status_code == status
    assert response.json["error"]["code"] == code
    assert response.json["error"]["message"]
    assert service.queued() == 0


def test_multipart_without_file_is_400(client: FlaskClient, service) -> None:
    response = client.post("/v1/predict/image", data={"image": (io.BytesIO(b"x"), "x.png")})
    assert response.status_code == 400
    assert response.json["error"]["code"] == "missing_file"
    assert service.queued() == 0


def test_wrong_content_type_is_415(client: FlaskClient, service, picture: bytes) -> None:
    response = client.post("/v1/predict/image", data=picture, content_type="text/plain")
    assert response.status_code == 415
    assert "multipart field 'file'" in response.json["error"]["message"]
    assert "data:image/png;base64" in response.json["error"]["message"]
    assert service.queued() == 0


def test_a_data_url_in_json_is_labelled(
    client: FlaskClient, service, published: dict, picture: bytes
) -> None:
    url = "data:image/png;base64," + base64.b64encode(picture).decode()
    response = service.while_working(lambda: client.post("/v1/predict/image", json={"image": url}))
    assert response.status_code == 200
    assert response.json["pixels"] == preprocess(picture).pixels.tolist()


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"pixels": [0] * 784}, "pixel vectors go to POST /v1/predict"),
        ({"image": "iVBORw0KGgo="}, "image must be a base64 data URL like data:image/png"),
        ({"image": "data:image/png;base64,***"}, "the data URL's base64 is broken"),
        ([1, 2], 'expected {"image": "data:image/png;base64,..."}'),
    ],
)
def test_bad_json_pictures_are_named(
    client: FlaskClient, service, document: object, message: str
) -> None:
    response = client.post("/v1/predict/image", json=document)
    assert (response.status_code, response.json["error"]["code"]) == (422, "invalid_image")
    assert message in response.json["error"]["message"]
    assert service.queued() == 0


def test_oversize_body_is_413(app: Flask, service, picture: bytes) -> None:
    app.config["MAX_CONTENT_LENGTH"] = len(picture) - 1
    response = app.test_client().post("/v1/predict/image", data=picture, content_type="image/png")
    assert response.status_code == 413
    assert response.json["error"]["code"] == "too_large"
    assert service.queued() == 0


def test_bad_wait_is_400(client: FlaskClient, service, picture: bytes) -> None:
    response = client.post("/v1/predict/image?wait=-1", data=picture, content_type="image/png")
    assert response.status_code == 400
    assert service.queued() == 0


@pytest.mark.slow
def test_accuracy_through_the_endpoint_matches_raw_pixels(
    client: FlaskClient,
    service,
    live_worker: None,
    redis_conn: Redis,
    mnist_test: tuple[np.ndarray, np.ndarray],
) -> None:
    weights = WEIGHTS.read_bytes()
    network = model.loads(weights)
    version, _ = registry.publish(redis_conn, weights, network.metadata)
    registry.activate(redis_conn, version)
    x_test, y_test = mnist_test
    rng = np.random.default_rng(2)
    chosen = rng.choice(len(x_test), SAMPLE, replace=False)
    status_urls = []
    for index in chosen:
        picture = handwritten(x_test[index].reshape(28, 28), rng)
        accepted = client.post("/v1/predict/image?wait=0", data=picture, content_type="image/jpeg")
        assert accepted.status_code == 202
        status_urls.append(accepted.json["status_url"])
    service.work()
    answers = [client.get(url).json for url in status_urls]
    assert {answer["model_version"] for answer in answers} == {version}
    labels = np.array([answer["labels"][0] for answer in answers])
    raw = float((network.predict(x_test[chosen]) == y_test[chosen]).mean())
    redrawn = float((labels == y_test[chosen]).mean())
    print(f"accuracy on {SAMPLE} digits via POST /v1/predict/image: {redrawn:.4f}, raw {raw:.4f}")
    assert redrawn >= raw - 0.01
