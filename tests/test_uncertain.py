"""The `uncertain` flag and `confidence`: input tests, the model's threshold, every answer."""

from __future__ import annotations

import numpy as np
import pytest
from flask.testing import FlaskClient
from PIL import Image, ImageDraw
from processes import ROOT
from redis import Redis

import model
from pictures.preprocess import place, scale
from store import registry
from worker import jobs, nondigit, uncertainty


def filled(*boxes: tuple[slice, slice], value: int = 255) -> np.ndarray:
    """A 28x28 field with the given boxes of ink, flattened to 784 pixels."""
    field = np.zeros((28, 28), np.uint8)
    for box in boxes:
        field[box] = value
    return field.reshape(784)


def drawn(points: list[tuple[int, int]]) -> np.ndarray:
    """A pen line through `points` on a 112 px pad, through the image endpoint's MNIST steps."""
    pad = Image.new("L", (112, 112))
    ImageDraw.Draw(pad).line(points, fill=255, width=10, joint="curve")
    ink = np.asarray(pad) > 127
    rows, cols = np.nonzero(ink.any(axis=1))[0], np.nonzero(ink.any(axis=0))[0]
    return place(scale(ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])).reshape(784)


def one_stroke() -> np.ndarray:
    """A plain "1": one slightly slanted stroke."""
    return drawn([(60, 15), (52, 100)])


def seven() -> np.ndarray:
    """A "7": a bar and a slanted stroke in one go."""
    return drawn([(30, 20), (85, 20), (50, 100)])


def blank() -> np.ndarray:
    field = np.zeros(784, np.uint8)
    field[[5, 300, 700]] = 60  # specks fainter than ink
    return field


def noise() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, 784, dtype=np.uint8)


def block() -> np.ndarray:
    return filled(np.s_[6:22, 8:20], value=200)


def two_strokes() -> np.ndarray:
    """ "11" scaled the MNIST way: two strokes side by side, wider than tall."""
    return filled(np.s_[9:19, 4:7], np.s_[9:19, 21:24])


def test_drawn_digits_pass_the_shipped_detector() -> None:
    # the API tests below rely on it: these two are flagged only when a test says so
    assert not nondigit.shipped().flags(np.stack([one_stroke(), seven()])).any()


def test_not_one_digit_flags_each_kind_and_keeps_digit_shapes() -> None:
    images = np.stack([one_stroke(), seven(), blank(), noise(), block(), two_strokes()])
    assert uncertainty.not_one_digit(images).tolist() == [False, False, True, True, True, True]


def test_pieces_counts_components_with_a_tenth_of_the_ink() -> None:
    ink = np.stack([two_strokes(), one_stroke(), np.zeros(784, np.uint8)]) >= 128
    ink = ink.reshape(3, 28, 28)
    ink[1, 0, 0] = True  # a speck: 1 of the stroke's ~60 ink pixels, not a piece
    assert uncertainty.pieces(ink, ink.sum(axis=(1, 2))).tolist() == [2, 1, 0]


def test_flags_low_confidence_and_not_a_digit() -> None:
    images = np.stack([one_stroke(), one_stroke(), blank()])
    probabilities = np.array([[0.9] + [0.1 / 9] * 9, [0.3] * 2 + [0.4 / 8] * 8, [0.9] + [0.0] * 9])
    assert uncertainty.flags(images, probabilities, 0.5).tolist() == [False, True, True]


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"calibration": {"confidence_threshold": 0.8, "temperature": 0.5}}, 0.8),
        ({"calibration": {"temperature": 1.5}}, uncertainty.FALLBACK_THRESHOLD),
        ({}, uncertainty.FALLBACK_THRESHOLD),
    ],
)
def test_threshold_comes_from_the_metadata(metadata: dict, expected: float) -> None:
    assert uncertainty.threshold(metadata) == expected


def publish_with_threshold(connection: Redis, below: float) -> str:
    net = model.build("mlp", seed=0)
    net.metadata["calibration"] = {"temperature": 1.0, "confidence_threshold": below}
    data = model.dumps(net)
    version = registry.publish(connection, data, model.loads(data).metadata)[0]
    registry.activate(connection, version)
    return version


def test_every_answer_carries_confidence_and_flags(
    client: FlaskClient, service, redis_conn: Redis
) -> None:
    publish_with_threshold(redis_conn, 0.0)  # only the input tests can flag
    images = np.stack([one_stroke(), blank(), noise(), seven()])
    body = service.while_working(
        lambda: client.post("/v1/predict", json={"images": images.tolist()})
    ).json
    assert body["uncertain"] == [False, True, True, False]
    # float32 probabilities through JSON: the maximum itself, within float32 rounding
    np.testing.assert_allclose(body["confidence"], np.max(body["probabilities"], axis=1), rtol=1e-6)
    polled = client.get(f"/v1/jobs/{body['job_id']}").json
    assert (polled["uncertain"], polled["confidence"]) == (body["uncertain"], body["confidence"])
    accepted = client.post("/v1/jobs", json={"pixels": blank().tolist()}).json
    service.work()
    assert client.get(accepted["status_url"]).json["uncertain"] == [True]


def test_the_models_threshold_flags_every_unsure_answer(
    client: FlaskClient, service, redis_conn: Redis
) -> None:
    publish_with_threshold(redis_conn, 1.01)  # no answer reaches it
    images = np.stack([one_stroke(), seven()])
    body = service.while_working(
        lambda: client.post("/v1/predict", json={"images": images.tolist()})
    ).json
    assert body["uncertain"] == [True, True]
    assert all(0.1 <= value <= 1 for value in body["confidence"])


def test_batch_counts_uncertain_rows_and_serves_results_csv(
    client: FlaskClient, service, redis_conn: Redis
) -> None:
    publish_with_threshold(redis_conn, 0.0)
    images = np.stack([one_stroke(), blank(), noise(), seven()])
    lines = ["pixel" + ",pixel".join(map(str, range(784)))]
    lines += [",".join(map(str, image)) for image in images]
    body = client.post("/v1/batches", data="\n".join(lines), content_type="text/csv").json
    assert client.get(body["status_url"]).json["uncertain_rows"] == 0
    early = client.get(f"/v1/batches/{body['batch_id']}/results.csv")
    assert (early.status_code, early.json["error"]["code"]) == (409, "not_finished")
    service.work()
    status = client.get(body["status_url"]).json
    assert (status["status"], status["uncertain_rows"]) == ("finished", 2)
    results = client.get(status["results_url"])
    assert results.mimetype == "text/csv"
    assert "results.csv" in results.headers["Content-Disposition"]
    header, *rows = results.data.decode().splitlines()
    assert header == "ImageId,Label,Confidence,Uncertain"
    fields = [row.split(",") for row in rows]
    labels = service.labels("a", images)  # "a" is model.build("mlp", seed=0), as published
    assert [(int(i), int(label)) for i, label, _, _ in fields] == list(enumerate(labels, 1))
    assert [flag for *_, flag in fields] == ["0", "1", "1", "0"]
    assert all(0.1 <= float(confidence) <= 1 for _, _, confidence, _ in fields)
    submission = client.get(body["submission_url"]).data.decode().splitlines()
    assert submission == ["ImageId,Label"] + [f"{i},{label}" for i, label in enumerate(labels, 1)]


def test_results_csv_keeps_the_uploads_image_ids(
    client: FlaskClient, service, redis_conn: Redis
) -> None:
    publish_with_threshold(redis_conn, 0.0)
    lines = ["ImageId," + ",".join(f"pixel{i}" for i in range(784))]
    lines += [f"{i}," + ",".join(map(str, image)) for i, image in [(7, blank()), (42, seven())]]
    body = client.post("/v1/batches", data="\n".join(lines), content_type="text/csv").json
    service.work()
    rows = client.get(f"/v1/batches/{body['batch_id']}/results.csv").data.decode().splitlines()
    assert [(row.split(",")[0], row.split(",")[3]) for row in rows[1:]] == [("7", "1"), ("42", "0")]


def test_the_shipped_cnn_flags_blank_and_uniform_noise_of_any_density() -> None:
    # ../shared/cases: an all-zero vector was "1" at 0.87 and uniform random pixels got a 0.99
    # top probability, unflagged; noise of 30-50% density slipped past the input statistics.
    network = model.load(ROOT / "model" / "weights" / "cnn.npz")
    rng = np.random.default_rng(5)
    noise = [rng.integers(0, 256, (50, 784), dtype=np.uint8)]  # uniform, as the case
    for density in (0.1, 0.2, 0.3, 0.45, 0.6):
        lit = rng.random((50, 784)) < density
        noise += [
            (lit * 255).astype(np.uint8),
            (lit * rng.integers(1, 256, (50, 784))).astype(np.uint8),
        ]
    images = np.concatenate([np.zeros((1, 784), np.uint8), *noise])
    _, uncertain = jobs.answer(network, images)
    assert uncertain.all(), f"{int((~uncertain).sum())} of {len(images)} not flagged"
