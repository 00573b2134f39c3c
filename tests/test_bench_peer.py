"""`digits bench peer`: the in-process peer answers as the service does; the report's verdicts."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from flask.testing import FlaskClient

from scripts.bench import peer, peer_app
from scripts.bench.throughput import Load


@pytest.fixture
def plain(networks: dict[str, bytes], tmp_path) -> FlaskClient:
    """The peer serving network "a", the one `published` makes current in the service."""
    weights = tmp_path / "a.npz"
    weights.write_bytes(networks["a"])
    return peer_app.create_app(str(weights)).test_client()


def test_the_peer_answers_with_the_services_fields_and_values(
    plain: FlaskClient, client: FlaskClient, service, published: dict, pixels: np.ndarray
) -> None:
    body = {"images": pixels[:5].tolist()}
    served = service.while_working(lambda: client.post("/v1/predict", json=body))
    answered = plain.post("/v1/predict", json=body)

    assert answered.status_code == served.status_code == 200
    assert answered.json.keys() == served.json.keys()
    for field in ("status", "labels", "uncertain", "model_version"):
        assert answered.json[field] == served.json[field]
    for field in ("probabilities", "confidence"):
        np.testing.assert_allclose(answered.json[field], served.json[field], rtol=1e-6)


def test_the_peer_refuses_what_the_service_refuses(plain: FlaskClient) -> None:
    response = plain.post("/v1/predict", json={"pixels": [0] * 783})

    assert response.status_code == 422
    assert response.json["error"]["code"] == "invalid_pixels"


def _load(rate: float, api: float, worker: float = 0.0) -> Load:
    cpu = {"api": api, "worker": worker, "redis": 0.0}
    return Load(rate=rate, p50=10.0, p99=20.0, errors=0, cpu=cpu, per_job=0.0)


def _args() -> argparse.Namespace:
    return argparse.Namespace(workers=2, runs=1, connections=32, duration=20, requests=200)


def test_the_report_states_each_ratio_against_its_target() -> None:
    loads = {peer.PEER: [_load(1_000, 2.0)], peer.SERVICE: [_load(700, 1.5, 1.0)]}
    alone = {peer.PEER: [peer.Alone(1.0, 2.0)], peer.SERVICE: [peer.Alone(2.0, 4.0)]}

    text = peer.table(_args(), loads, alone)

    assert "**0.70x** the peer's predictions per second (target >= 0.8x: **MISSED**)" in text
    assert "1.25x its CPU per request" in text
    assert "p50 is **2.00x** the peer's (target <= 2.5x: **met**)" in text


def test_without_wrk_the_report_says_what_was_not_measured() -> None:
    loads: dict[str, list[Load]] = {peer.PEER: [], peer.SERVICE: []}
    alone = {peer.PEER: [peer.Alone(1.0, 2.0)], peer.SERVICE: [peer.Alone(3.0, 4.0)]}

    text = peer.table(_args(), loads, alone)

    assert "**32 connections: not measured**: `wrk` is not installed" in text
    assert "p50 is **3.00x** the peer's (target <= 2.5x: **MISSED**)" in text
