"""Ensembles: averaged logits, one weights file, the same interface as a network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from redis import Redis

import model
from model import calibration, data
from scripts import cli
from store import registry


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (40, 784), dtype=np.uint8)


def _members() -> list[model.Network]:
    return [model.build("mlp", seed=1), model.build("cnn", seed=2), model.build("mlp", seed=3)]


def test_logits_are_the_members_mean(pixels: np.ndarray) -> None:
    members = _members()
    ensemble = model.Ensemble(members)
    expected = np.mean([member.logits(pixels) for member in members], axis=0)
    # float32 sums of three logits: a few ulps of values of order 10
    np.testing.assert_allclose(ensemble.logits(pixels), expected, rtol=1e-5, atol=1e-5)
    ensemble.metadata["calibration"] = {"temperature": 0.5}
    np.testing.assert_allclose(
        ensemble.predict_proba(pixels), calibration.softmax(expected, 0.5), atol=1e-5
    )
    np.testing.assert_array_equal(ensemble.predict(pixels), expected.argmax(axis=1))


def test_an_ensemble_file_round_trips(pixels: np.ndarray, tmp_path: Path) -> None:
    ensemble = model.Ensemble(_members(), {"seed": 0})
    ensemble.metadata["calibration"] = {"temperature": 0.7, "confidence_threshold": 0.95}
    version = model.save(ensemble, tmp_path / "ensemble.npz")
    loaded = model.load(tmp_path / "ensemble.npz")
    assert isinstance(loaded, model.Ensemble) and loaded.version == version
    assert [m.metadata["seed"] for m in loaded.members] == [1, 2, 3]
    assert loaded.confidence_threshold == 0.95
    np.testing.assert_array_equal(loaded.predict_proba(pixels), ensemble.predict_proba(pixels))
    assert model.file_version(model.dumps(loaded)) == version  # same bytes when saved again


def test_a_member_with_missing_arrays_is_refused(tmp_path: Path) -> None:
    ensemble = model.Ensemble(_members())
    data = model.dumps(ensemble)
    broken = model.Ensemble(_members()[:2], ensemble.metadata | {})
    broken.metadata["architecture"] = ensemble.metadata["architecture"]  # claims 3 members
    with pytest.raises(model.WeightsError, match="missing arrays"):
        model.loads(model.dumps(broken))
    assert isinstance(model.loads(data), model.Ensemble)


def test_an_empty_ensemble_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one member"):
        model.Ensemble([])


def _member(path: Path, seed: int, splits: tuple[np.ndarray, ...], split_seed: int = 0) -> Path:
    """Save an untrained network that says it was trained on `splits` with this split."""
    net = model.build("mlp", seed=seed)
    net.metadata |= {
        "training": {"val_size": 300, "split_seed": split_seed, "seed": seed},
        "data_checksum": data.checksum(splits[0], splits[1]),
        "metrics": {"train_seconds": 1.0},
    }
    model.save(net, path)
    return path


def _small_mnist() -> tuple[np.ndarray, ...]:
    x_train, y_train, x_test, y_test = data.load_mnist()
    return x_train[:1500], y_train[:1500], x_test[:300], y_test[:300]


def test_digits_ensemble_calibrates_on_the_members_validation_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    splits = _small_mnist()
    paths = [_member(tmp_path / f"m{seed}.npz", seed, splits) for seed in (1, 2)]
    monkeypatch.setattr(data, "load_mnist", lambda _path=None: splits)
    out = tmp_path / "ensemble.npz"
    assert cli.main(["ensemble", *map(str, paths), "--out", str(out)]) == 0
    ensemble = model.load(out)
    assert isinstance(ensemble, model.Ensemble) and len(ensemble.members) == 2
    assert ensemble.metadata["training"]["split_seed"] == 0
    assert ensemble.temperature > 0 and ensemble.confidence_threshold is not None
    metrics = json.loads(out.with_suffix(".metrics.json").read_text())
    assert metrics["version"] == ensemble.version and metrics["arch"] == "ensemble"
    assert metrics["member_train_seconds"] == [1.0, 1.0]
    assert out.with_suffix(".reliability.png").read_bytes().startswith(b"\x89PNG")


def test_members_with_different_validation_splits_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    splits = _small_mnist()
    paths = [_member(tmp_path / f"m{s}.npz", 1, splits, split_seed=s) for s in (0, 1)]
    monkeypatch.setattr(data, "load_mnist", lambda _path=None: splits)
    with pytest.raises(SystemExit, match="no split is unseen by all of them"):
        cli.main(["ensemble", *map(str, paths), "--out", str(tmp_path / "e.npz")])


def test_a_worker_serves_a_published_ensemble(
    client: FlaskClient, service: Any, redis_conn: Redis, pixels: np.ndarray
) -> None:
    ensemble = model.Ensemble([model.build("mlp", seed=1), model.build("mlp", seed=2)])
    ensemble.metadata["calibration"] = {"temperature": 0.5, "confidence_threshold": 0.9}
    weights = model.dumps(ensemble)
    version, _ = registry.publish(redis_conn, weights, model.loads(weights).metadata)
    registry.activate(redis_conn, version)
    response = service.while_working(
        lambda: client.post("/v1/predict", json={"images": pixels.tolist()})
    )
    assert response.status_code == 200
    assert response.json["model_version"] == version
    assert response.json["labels"] == ensemble.predict(pixels).tolist()
    # float32 probabilities through the bytes codec and JSON: equal to a few ulps
    np.testing.assert_allclose(
        response.json["probabilities"], ensemble.predict_proba(pixels), atol=1e-6
    )
