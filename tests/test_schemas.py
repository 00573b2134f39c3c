"""The declared shapes: answers drift from them loudly, /openapi.json is made from them."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import shapes
from flask import Flask
from flask.testing import FlaskClient
from pydantic import TypeAdapter, ValidationError

from api import create_app, health, inputs, openapi, payload, schemas
from api.errors import ApiError


def drifted(app: Flask, endpoint: str, view: object) -> None:
    """Serve `view` at `endpoint`, declaring what the real view declares."""
    declared = getattr(app.view_functions[endpoint], openapi.ATTRIBUTE)
    app.view_functions[endpoint] = declared(view)


def test_a_field_the_shape_does_not_declare_fails_the_answer(app: Flask) -> None:
    drifted(app, "health.healthz", lambda: {"status": "ok", "uptime": 3})
    with pytest.raises(AssertionError, match="uptime"):
        app.test_client().get("/healthz")


def test_a_value_outside_its_declared_range_fails_the_answer(app: Flask) -> None:
    drifted(app, "models.activate", lambda version: {"current": version, "previous": None})
    with pytest.raises(AssertionError, match="current"):
        app.test_client().post("/v1/models/not-a-version/activate")


def test_a_status_the_view_does_not_declare_fails_the_answer(app: Flask) -> None:
    def conflict() -> None:
        raise ApiError(409, "conflict", "never declared")

    drifted(app, "health.healthz", conflict)
    with pytest.raises(AssertionError, match="does not declare"):
        app.test_client().get("/healthz")


def test_the_real_answers_are_checked(
    app: Flask, client: FlaskClient, service, published: dict, pixels: np.ndarray
) -> None:
    one = {"pixels": pixels[0].tolist()}
    with service.alive():
        assert client.get("/readyz").status_code == 200
        accepted = client.post("/v1/jobs", json=one).json
        assert client.get(accepted["status_url"]).json["status"] == "queued"
    assert client.get("/readyz").status_code == 503  # no worker: the error shape, with checks
    finished = service.while_working(lambda: client.post("/v1/predict", json=one))
    assert client.get(f"/v1/jobs/{finished.json['job_id']}").json["status"] == "finished"
    csv = ",".join(f"pixel{i}" for i in range(784)) + "\n" + ",".join(["0"] * 784) + "\n"
    batch = client.post("/v1/batches", data=csv, content_type="text/csv").json
    assert client.get(batch["status_url"]).json["rows"] == 1
    assert client.get("/v1/models").json["current"] == published["a"]
    assert client.post(f"/v1/models/{published['b']}/activate").status_code == 200
    assert client.post("/v1/streams/forms", json={"maxlen": 10}).status_code == 201
    assert client.get("/v1/streams/forms").status_code == 200
    lines = io.BytesIO(json.dumps(one).encode() + b"\n")
    added = client.post("/v1/streams/forms/in", data=lines, content_type="application/x-ndjson")
    assert added.status_code == 202
    assert client.get("/healthz").status_code == 200
    assert client.get("/openapi.json").json["openapi"] == "3.1.0"
    assert client.get("/v1/jobs/" + "0" * 32).status_code == 404
    json_answers = {
        (rule.endpoint, status)
        for rule in app.url_map.iter_rules()
        if rule.endpoint not in {"static", "images.predict_image"}  # test_image_api's
        for status, (_, body) in openapi_of(app, rule.endpoint).responses.items()
        if not isinstance(body, dict)
    }
    unseen = json_answers - shapes.checked(app)
    assert unseen == {("jobs.predict", 202), ("streams.create_stream", 200)}
    answered = shapes.checked(app)
    assert {("health.readyz", 503), ("jobs.job_status", 404)} <= answered


def openapi_of(app: Flask, endpoint: str) -> openapi.Operation:
    operation: openapi.Operation = getattr(app.view_functions[endpoint], openapi.ATTRIBUTE)
    return operation


def test_every_route_declares_its_operation(app: Flask) -> None:
    undeclared = [
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        and not hasattr(app.view_functions[rule.endpoint], openapi.ATTRIBUTE)
    ]
    assert undeclared == []


def test_every_wait_states_its_configured_maximum(redis_conn) -> None:
    client = create_app({"DIGITS_MAX_WAIT": 7.5, "DIGITS_WAIT": 2.0}).test_client()
    paths = client.get("/openapi.json").json["paths"]
    for path in ("/v1/predict", "/v1/predict/image"):
        (wait,) = [p for p in paths[path]["post"]["parameters"] if p["name"] == "wait"]
        assert wait["schema"] == {"type": "number", "minimum": 0, "maximum": 7.5, "default": 2.0}


def test_no_setting_marker_is_left_in_the_document(client: FlaskClient) -> None:
    assert "x-setting" not in client.get("/openapi.json").get_data(as_text=True)


def test_the_document_is_built_once_per_app(app: Flask, client: FlaskClient) -> None:
    client.get("/openapi.json")
    assert openapi.document(app) is openapi.document(app)


IMAGE = [7] * 784
BODIES_BOTH_ACCEPT = [
    {"pixels": IMAGE},
    {"images": [IMAGE, [0] * 784]},
    {"pixels": [255] * 784},
]
BODIES_BOTH_REFUSE = [
    {"pixels": IMAGE[:-1]},
    {"pixels": [*IMAGE[:-1], 256]},
    {"pixels": [*IMAGE[:-1], -1]},
    {"pixels": [*IMAGE[:-1], "7"]},
    {"images": []},
    {"pixels": IMAGE, "images": [IMAGE]},
    {"pixels": IMAGE, "label": 3},
    {"image": IMAGE},
    [IMAGE],
]


@pytest.mark.parametrize("body", BODIES_BOTH_ACCEPT)
def test_the_pixel_parser_takes_what_images_body_declares(body: object) -> None:
    TypeAdapter(inputs.ImagesBody).validate_python(body, strict=True)
    assert payload.parse_images(json.dumps(body).encode(), 10).shape[1] == 784


@pytest.mark.parametrize("body", BODIES_BOTH_REFUSE)
def test_the_pixel_parser_refuses_what_images_body_refuses(body: object) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(inputs.ImagesBody).validate_python(body, strict=True)
    with pytest.raises(ApiError) as refused:
        payload.parse_images(json.dumps(body).encode(), 10)
    assert 400 <= refused.value.status < 500


def test_declaring_costs_nothing_per_request() -> None:
    """A declared view is the view itself, and an answer built as its shape is a plain dict."""
    assert openapi.Operation({200: ("up", schemas.Health)})(health.healthz) is health.healthz
    answer = schemas.JobAccepted(job_id="0" * 32, status="queued", status_url="/v1/jobs/0")
    assert type(answer) is dict


def test_every_example_in_the_document_is_its_shape(client: FlaskClient) -> None:
    shapes_with_examples = {"Error": schemas.Error, "JobAccepted": schemas.JobAccepted}
    shapes_with_examples["JobFinished"] = schemas.JobFinished
    components = client.get("/openapi.json").json["components"]["schemas"]
    shown = {name for name, schema in components.items() if "examples" in schema}
    assert shown == shapes_with_examples.keys()
    for name, shape in shapes_with_examples.items():
        for example in components[name]["examples"]:
            TypeAdapter(shape).validate_json(json.dumps(example), strict=True)
