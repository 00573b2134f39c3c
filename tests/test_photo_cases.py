"""The photographed and scanned digits of tests/cases/photos, each through POST /v1/predict/image.

Each file stands for a kind (shadow, ruled paper, squared paper, vignetting, ink and paper of
the same brightness, a 12-bit scan in a 16-bit PNG) that the shipped CNN once got wrong or
refused; `digits bench images` measures the same kinds on thousands of generated pages.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from PIL import Image
from redis import Redis
from test_preprocess import WEIGHTS

import model
from store import registry

CASES = Path(__file__).resolve().parent / "cases" / "photos"
LABELS = json.loads((CASES / "labels.json").read_text())


@pytest.fixture
def shipped_cnn(redis_conn: Redis) -> str:
    """Publish and activate the shipped CNN; return its version."""
    weights = WEIGHTS.read_bytes()
    version, _ = registry.publish(redis_conn, weights, model.loads(weights).metadata)
    registry.activate(redis_conn, version)
    return version


@pytest.mark.parametrize("case", LABELS, ids=[case["file"] for case in LABELS])
def test_case_is_read(
    client: FlaskClient, service, live_worker: None, shipped_cnn: str, case: dict
) -> None:
    path = CASES / case["file"]
    kind = "image/png" if path.suffix == ".png" else "image/jpeg"
    accepted = client.post("/v1/predict/image?wait=0", data=path.read_bytes(), content_type=kind)
    assert accepted.status_code == 202, accepted.json
    service.work()
    answer = client.get(accepted.json["status_url"]).json
    assert (answer["model_version"], answer["labels"]) == (shipped_cnn, [case["label"]])
    width, height = Image.open(path).size
    left, top, right, bottom = accepted.json["box"]
    assert 0 <= left < right <= width and 0 <= top < bottom <= height
    # The digits are two fifths (the scan: seven tenths) of these pages tall; a crop that
    # spans lines or a shadowed edge would be larger, one piece of a stroke smaller.
    assert 0.3 * height <= max(bottom - top, right - left) <= 0.8 * height
