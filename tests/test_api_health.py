"""/healthz, /readyz, /openapi.json, and the one error shape for every failure."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from redis import Redis

from api import create_app
from worker import runner

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def test_healthz(client: FlaskClient) -> None:
    assert client.get("/healthz").json == {"status": "ok"}


def test_readyz_needs_a_model_and_a_live_worker(
    client: FlaskClient, redis_conn: Redis, published: dict
) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["error"] == {
        "code": "not_ready",
        "message": "no worker is alive (digits worker)",
    }
    assert response.json["checks"] == {
        "redis": True,
        "model_version": published["a"],
        "workers": 0,
        "maxmemory_policy": "noeviction",
    }
    worker = runner.build(redis_conn)
    worker.register_birth()
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json == {
        "status": "ready",
        "checks": {
            "redis": True,
            "model_version": published["a"],
            "workers": 1,
            "maxmemory_policy": "noeviction",
        },
    }
    worker.register_death()
    assert client.get("/readyz").status_code == 503


def test_readyz_without_model(client: FlaskClient, redis_conn: Redis) -> None:
    message = client.get("/readyz").json["error"]["message"]
    assert message.startswith("no model is active")


def test_readyz_and_routes_when_redis_is_down() -> None:
    client = create_app({"REDIS_URL": DEAD_REDIS}).test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.headers["Retry-After"] == "5"
    assert ready.json["checks"]["redis"] is False
    assert client.get("/healthz").status_code == 200
    for response in (client.get("/v1/models"), client.post("/v1/jobs", json={"pixels": [0] * 784})):
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert response.json["error"]["code"] == "redis_unavailable"


def test_unknown_route_is_json_404(client: FlaskClient) -> None:
    response = client.get("/v2/nothing")
    assert response.status_code == 404
    assert response.json == {"error": {"code": "not_found", "message": "no route GET /v2/nothing"}}


def test_wrong_method_is_json_405(client: FlaskClient) -> None:
    response = client.delete("/v1/predict")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"OPTIONS", "POST"}
    assert response.json["error"]["code"] == "method_not_allowed"
    assert response.json["error"]["message"].startswith("DELETE is not allowed on /v1/predict")


def test_unexpected_exception_is_json_500(app, client: FlaskClient, monkeypatch) -> None:
    def broken() -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setitem(app.view_functions, "health.healthz", broken)
    response = client.get("/healthz")
    assert response.status_code == 500
    assert response.json == {
        "error": {"code": "internal_error", "message": "internal server error"}
    }


def test_openapi_covers_every_route(app, client: FlaskClient) -> None:
    document = client.get("/openapi.json").json
    assert document["openapi"].startswith("3.")
    documented = {
        (path, method.upper()) for path, item in document["paths"].items() for method in item
    }
    routes = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert documented == routes


def test_openapi_references_resolve(client: FlaskClient) -> None:
    document = client.get("/openapi.json").json
    text = str(document)
    for ref in set(re.findall(r"#/components/(\w+)/(\w+)", text)):
        assert ref[1] in document["components"][ref[0]], ref


@pytest.mark.parametrize("limit", [3, 7])
def test_openapi_states_the_configured_limit(limit: int, redis_conn: Redis) -> None:
    client = create_app({"DIGITS_MAX_IMAGES": limit}).test_client()
    schemas = client.get("/openapi.json").json["components"]["schemas"]
    several = schemas["ImagesBody"]["anyOf"][1]["$ref"].rsplit("/", 1)[1]
    assert schemas[several]["properties"]["images"]["maxItems"] == limit
