"""Inverted and thresholded pixels are refused on /v1/predict, /v1/jobs and CSV batches.

The thresholds were chosen on the MNIST training split (`api.pixel_encoding`); here every one
of the 70,000 MNIST digits is counted: none may be refused, and every inverted or thresholded
test digit must be.
"""

from __future__ import annotations

import numpy as np
import pytest
from flask.testing import FlaskClient
from test_api_batches import csv_bytes

from api import pixel_encoding
from model import data


@pytest.fixture(scope="module")
def mnist() -> data.Splits:
    return data.load_mnist()


def test_no_mnist_digit_is_refused(mnist: data.Splits) -> None:
    x_train, _, x_test, _ = mnist
    for split in (x_train, x_test):
        binary, inverted = pixel_encoding.problems(split)
        assert (int(binary.sum()), int(inverted.sum())) == (0, 0)


def test_every_inverted_or_thresholded_test_digit_is_refused(mnist: data.Splits) -> None:
    x_test = mnist[2]
    assert pixel_encoding.problems(255 - x_test)[1].all()
    assert pixel_encoding.problems((x_test > 127).astype(np.uint8))[0].all()


@pytest.fixture
def digits(mnist: data.Splits) -> np.ndarray:
    """Five MNIST test digits."""
    return mnist[2][:5]


@pytest.mark.parametrize("route", ["/v1/predict", "/v1/jobs"])
@pytest.mark.parametrize(
    ("wrong", "said"),
    [(lambda x: 255 - x, "looks inverted"), (lambda x: (x > 127).astype(np.uint8), "0 and 1")],
    ids=["inverted", "binary"],
)
def test_json_images_are_refused_by_index(
    client: FlaskClient, service, digits: np.ndarray, route: str, wrong, said: str
) -> None:
    images = digits.copy()
    images[3] = wrong(images[3])
    response = client.post(route, json={"images": images.tolist()})
    assert response.status_code == 422
    error = response.json["error"]
    assert error["code"] == "wrong_encoding"
    assert error["message"].startswith("images[3] ") and said in error["message"]
    assert "?encoding=" in error["message"] and "/v1/predict/image" in error["message"]
    assert service.queued() == 0


def test_a_single_image_is_named(client: FlaskClient, service, digits: np.ndarray) -> None:
    response = client.post("/v1/predict", json={"pixels": (255 - digits[0]).tolist()})
    assert response.status_code == 422
    assert response.json["error"]["message"].startswith("the image looks inverted")


@pytest.mark.parametrize(
    ("encoding", "sent", "seen"),
    [
        ("inverted", lambda x: 255 - x, lambda x: x),
        ("binary", lambda x: (x > 127).astype(np.uint8), lambda x: (x > 127) * np.uint8(255)),
        ("as-is", lambda x: 255 - x, lambda x: 255 - x),
        ("mnist", lambda x: x, lambda x: x),
    ],
)
def test_the_encoding_parameter_accepts_and_converts(
    client: FlaskClient, service, published: dict, digits: np.ndarray, encoding: str, sent, seen
) -> None:
    response = service.while_working(
        lambda: client.post(
            f"/v1/predict?encoding={encoding}", json={"images": sent(digits).tolist()}
        )
    )
    assert response.status_code == 200
    assert response.json["labels"] == service.labels("a", seen(digits))


def test_binary_encoding_with_other_values_is_refused(
    client: FlaskClient, service, digits: np.ndarray
) -> None:
    response = client.post("/v1/jobs?encoding=binary", json={"images": digits.tolist()})
    assert response.status_code == 422
    assert response.json["error"]["message"].startswith("images[0] has values above 1")
    assert service.queued() == 0


def test_unknown_encoding_is_400(client: FlaskClient, service, digits: np.ndarray) -> None:
    response = client.post("/v1/predict?encoding=utf-8", json={"pixels": digits[0].tolist()})
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_parameter"
    assert "inverted" in response.json["error"]["message"]
    assert service.queued() == 0


def test_csv_rows_are_refused_by_row(
    client: FlaskClient, service, digits: np.ndarray, tmp_path
) -> None:
    rows = digits.copy()
    rows[2] = 255 - rows[2]
    response = client.post("/v1/batches", data=csv_bytes(tmp_path, rows), content_type="text/csv")
    assert response.status_code == 422
    assert response.json["error"]["code"] == "wrong_encoding"
    assert response.json["error"]["message"].startswith("row 3 looks inverted")
    assert service.queued() == 0


def test_inverted_csv_is_accepted_when_said(
    client: FlaskClient, service, published: dict, digits: np.ndarray, tmp_path
) -> None:
    body = csv_bytes(tmp_path, 255 - digits)
    accepted = client.post("/v1/batches?encoding=inverted", data=body, content_type="text/csv")
    assert accepted.status_code == 202
    service.work()
    submission = client.get(accepted.json["submission_url"]).data.decode().splitlines()[1:]
    assert [int(line.split(",")[1]) for line in submission] == service.labels("a", digits)
