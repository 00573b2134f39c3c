"""Bad weights: refused at publish, never loaded by a worker; rollback works under load."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from processes import wait_for, workers
from redis import Redis

from formats.weights import version as file_version
from scripts.cli import main
from store import keys, registry
from worker import jobs
from worker.cache import ModelCache


def members(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def npz(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # pickles object arrays: exactly what must be refused
    return buffer.getvalue()


def bad_files(good: bytes) -> dict[str, bytes]:
    arrays = members(good)
    return {
        "truncated": good[: len(good) // 2],
        "random bytes": np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes(),
        "not a zip": b"weights",
        "wrong shape": npz(arrays | {"0.W": arrays["0.W"][:, :100]}),
        "missing array": npz({name: array for name, array in arrays.items() if name != "8.b"}),
        "float64": npz(arrays | {"8.W": arrays["8.W"].astype(np.float64)}),
        "object array": npz(arrays | {"8.b": np.array([{"payload": 1}] * 10, dtype=object)}),
        "NaN": npz(arrays | {"4.W": np.full_like(arrays["4.W"], np.nan)}),
    }


@pytest.fixture(scope="module")
def bad(networks: dict[str, bytes]) -> dict[str, bytes]:
    return bad_files(networks["a"])


CASES = ["truncated", "random bytes", "not a zip", "wrong shape", "missing array", "float64",
         "object array", "NaN"]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_publish_refuses_weights_that_do_not_load(
    case: str,
    bad: dict[str, bytes],
    redis_conn: Redis,
    redis_url: str,
    published: dict,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = sorted(redis_conn.scan_iter())
    with pytest.raises(registry.BadWeights):
        registry.publish(redis_conn, bad[case], {"architecture": "forged"})
    path = tmp_path / "bad.npz"
    path.write_bytes(bad[case])
    assert main(["publish", str(path), "--activate", "--redis-url", redis_url]) == 1
    assert "does not load" in capsys.readouterr().err
    assert sorted(redis_conn.scan_iter()) == before
    assert registry.current(redis_conn) == published["a"]


def inject(redis_conn: Redis, data: bytes) -> str:
    """Store weights behind the registry's back (right hash, no check) and make them current."""
    version = file_version(data)
    redis_conn.set(keys.model_weights(version), data)
    redis_conn.set(keys.MODELS_CURRENT, version)
    return version


def test_a_worker_keeps_its_model_when_the_current_one_does_not_load(
    client: FlaskClient,
    service,
    published: dict,
    networks: dict[str, bytes],
    bad: dict[str, bytes],
    pixels: np.ndarray,
    redis_conn: Redis,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def predict() -> dict:
        response = service.while_working(
            lambda: client.post("/v1/predict", json={"images": pixels[:5].tolist()})
        )
        assert response.status_code == 200
        return response.json

    assert predict()["model_version"] == published["a"]
    for case in ("wrong shape", "object array", "NaN"):
        version = inject(redis_conn, bad[case])
        body = predict()
        assert body["model_version"] == published["a"]
        assert body["labels"] == service.labels("a", pixels[:5])
        assert f"model {version} refused, still serving model {published['a']}" in caplog.text
    tampered = bytearray(networks["b"])  # good weights, changed after their hash was taken
    tampered[-1] ^= 0xFF
    redis_conn.set(keys.model_weights(published["b"]), bytes(tampered))
    redis_conn.set(keys.MODELS_CURRENT, published["b"])
    assert predict()["model_version"] == published["a"]
    assert published["b"] in jobs.CACHE.refused
    listed = {model["version"]: model for model in client.get("/v1/models").json["models"]}
    assert listed[published["a"]]["refused"] is None
    refusal = listed[published["b"]]["refused"]
    assert refusal["error"] == (
        f"still serving model {published['a']}: "
        f"stored weights of model {published['b']} do not match their hash"
    )
    assert refusal["at"].endswith("+00:00")
    capsys.readouterr()
    assert main(["models", "--redis-url", redis_url]) == 0
    lines = {line[2:].split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines[published["b"]].endswith(f"REFUSED by a worker at {refusal['at']}")
    assert "REFUSED" not in lines[published["a"]]


def test_a_new_worker_with_no_loadable_model_answers_503_until_one_is_activated(
    client: FlaskClient,
    service,
    published: dict,
    bad: dict[str, bytes],
    pixels: np.ndarray,
    redis_conn: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inject(redis_conn, bad["truncated"])
    monkeypatch.setattr(jobs, "CACHE", ModelCache())
    response = service.while_working(
        lambda: client.post("/v1/predict", json={"pixels": pixels[0].tolist()})
    )
    assert response.status_code == 503
    assert response.json["error"]["code"] == "no_model"
    assert int(response.headers["Retry-After"]) > 0
    assert client.post(f"/v1/models/{published['b']}/activate").status_code == 200
    response = service.while_working(
        lambda: client.post("/v1/predict", json={"pixels": pixels[0].tolist()})
    )
    assert (response.status_code, response.json["model_version"]) == (200, published["b"])


@pytest.mark.slow
def test_rollback_under_load(
    app: Flask, service, published: dict, pixels: np.ndarray, redis_url: str, tmp_path: Path
) -> None:
    expected = {published[name]: service.labels(name, pixels) for name in ("a", "b")}
    answers: list[tuple[int, str | None, bool]] = []
    stop = threading.Event()

    def load(offset: int) -> None:
        client = app.test_client()
        for n in range(400):
            if stop.is_set():
                return
            index = (offset + n) % len(pixels)
            response = client.post("/v1/predict", json={"pixels": pixels[index].tolist()})
            version = response.json.get("model_version")
            right = version in expected and response.json["labels"] == [expected[version][index]]
            answers.append((response.status_code, version, right))

    admin = app.test_client()
    with workers(redis_url, 2, tmp_path):
        wait_for(lambda: admin.get("/readyz").status_code == 200, 60, "/readyz to be green")
        threads = [threading.Thread(target=load, args=(n * 25,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for version in ("b", "a", "b", "a"):  # switch, roll back, twice
            time.sleep(0.6)
            switched = admin.post(f"/v1/models/{published[version]}/activate")
            assert switched.status_code == 200
        time.sleep(0.6)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        after = admin.post("/v1/predict", json={"pixels": pixels[0].tolist()}).json

    assert len(answers) > 40
    assert {status for status, _, _ in answers} == {200}
    assert all(right for _, _, right in answers)
    assert {version for _, version, _ in answers} == set(expected)
    assert after["model_version"] == published["a"]
