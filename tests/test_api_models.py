"""GET /v1/models, POST /v1/models/<version>/activate, and workers following the switch."""

from __future__ import annotations

import numpy as np
from flask.testing import FlaskClient
from redis import Redis

from store import keys
from worker import jobs


def test_models_lists_versions_and_the_current_one(
    client: FlaskClient, published: dict, networks: dict
) -> None:
    body = client.get("/v1/models").json
    assert body["current"] == published["a"]
    listed = {model["version"]: model for model in body["models"]}
    assert set(listed) == set(published.values())
    assert listed[published["a"]]["current"] is True
    assert listed[published["b"]]["current"] is False
    assert listed[published["a"]]["size"] == len(networks["a"])
    assert listed[published["a"]]["metadata"]["architecture"]["name"] == "mlp"


def test_activate_switches_later_jobs_without_restarting_the_worker(
    client: FlaskClient, service, published: dict, pixels: np.ndarray
) -> None:
    def job() -> str:
        return client.post("/v1/jobs", json={"images": pixels[:4].tolist()}).json["job_id"]

    first = job()
    service.work()
    cache = jobs.CACHE
    switched = client.post(f"/v1/models/{published['b']}/activate")
    assert switched.status_code == 200
    assert switched.json == {"current": published["b"], "previous": published["a"]}
    second = job()
    service.work()
    assert jobs.CACHE is cache and cache.version == published["b"]
    one, two = (client.get(f"/v1/jobs/{job_id}").json for job_id in (first, second))
    assert one["model_version"] == published["a"]
    assert one["labels"] == service.labels("a", pixels[:4])
    assert two["model_version"] == published["b"]
    assert two["labels"] == service.labels("b", pixels[:4])
    rolled_back = client.post(f"/v1/models/{published['a']}/activate").json
    assert rolled_back == {"current": published["a"], "previous": published["b"]}


def test_activate_unknown_version_is_404(client: FlaskClient, published: dict) -> None:
    response = client.post("/v1/models/0123456789abcdef/activate")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
    assert client.get("/v1/models").json["current"] == published["a"]


def test_activate_corrupted_weights_is_409(
    client: FlaskClient, redis_conn: Redis, published: dict
) -> None:
    redis_conn.append(keys.model_weights(published["b"]), b"tampered")
    response = client.post(f"/v1/models/{published['b']}/activate")
    assert response.status_code == 409
    assert response.json["error"]["code"] == "corrupt_model"
    assert client.get("/v1/models").json["current"] == published["a"]


def test_empty_registry(client: FlaskClient, service) -> None:
    assert client.get("/v1/models").json == {"current": None, "models": []}
