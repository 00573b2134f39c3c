"""Weights files: round trip, stable versions, and rejection of bad files."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import model
from model.checkpoint import dumps


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (20, 784), dtype=np.uint8)


def _members(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def _npz(members: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **members)
    return buffer.getvalue()


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_round_trip_keeps_predictions_and_version(
    arch: str, pixels: np.ndarray, tmp_path: Path
) -> None:
    net = model.build(arch, seed=7)
    net.metadata["metrics"] = {"test_accuracy": 0.5}
    path = tmp_path / "net.npz"
    version = model.save(net, path)
    assert version == net.version == model.file_version(path.read_bytes())
    loaded = model.load(path)
    assert loaded.version == version
    assert loaded.metadata["metrics"] == {"test_accuracy": 0.5}
    np.testing.assert_array_equal(loaded.predict_proba(pixels), net.predict_proba(pixels))
    assert model.save(loaded, tmp_path / "again.npz") == version
    assert model.loads(path.read_bytes()).version == version


def test_version_changes_with_the_weights() -> None:
    assert model.file_version(dumps(model.build("mlp", 0))) != model.file_version(
        dumps(model.build("mlp", 1))
    )


def test_metadata_is_stored_as_uint8_json() -> None:
    members = _members(dumps(model.build("mlp")))
    assert members["metadata"].dtype == np.uint8
    assert json.loads(members["metadata"].tobytes())["architecture"]["name"] == "mlp"


def _with(data: bytes, **changes: np.ndarray | None) -> bytes:
    members = _members(data)
    for name, value in changes.items():
        if value is None:
            del members[name]
        else:
            members[name] = value
    return _npz(members)


def _metadata(text: str) -> np.ndarray:
    return np.frombuffer(text.encode(), np.uint8)


GOOD = dumps(model.build("mlp"))
GOOD_META = json.loads(_members(GOOD)["metadata"].tobytes())
BAD_FILES = {
    "empty": b"",
    "random bytes": bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)),
    "truncated": GOOD[: len(GOOD) // 2],
    "flipped bytes": GOOD[:2000] + bytes(b ^ 0xFF for b in GOOD[2000:2100]) + GOOD[2100:],
    "plain npy": (lambda b: (np.save(b, np.zeros(3)), b.getvalue())[1])(io.BytesIO()),
    "missing metadata": _with(GOOD, metadata=None),
    "missing array": _with(GOOD, **{"0.W": None}),
    "extra array": _with(GOOD, extra=np.zeros(2, np.float32)),
    "wrong shape": _with(GOOD, **{"0.W": np.zeros((784, 3), np.float32)}),
    "wrong dtype": _with(GOOD, **{"0.b": _members(GOOD)["0.b"].astype(np.float64)}),
    "nan weights": _with(GOOD, **{"0.b": np.full_like(_members(GOOD)["0.b"], np.nan)}),
    "object array": _with(GOOD, **{"0.b": np.array([1, "x"], dtype=object)}),
    "metadata not json": _with(GOOD, metadata=_metadata("{not json")),
    "metadata not object": _with(GOOD, metadata=_metadata("[1, 2]")),
    "metadata float array": _with(GOOD, metadata=np.zeros(3, np.float32)),
    "unknown format": _with(GOOD, metadata=_metadata(json.dumps(GOOD_META | {"format": 99}))),
    "unknown layer": _with(
        GOOD,
        metadata=_metadata(
            json.dumps(GOOD_META | {"architecture": {"input_shape": [784], "layers": [{}]}})
        ),
    ),
    "mismatched architecture": _with(
        GOOD,
        metadata=_metadata(
            json.dumps(
                GOOD_META
                | {
                    "architecture": GOOD_META["architecture"]
                    | {"layers": GOOD_META["architecture"]["layers"][:-1]}
                }
            )
        ),
    ),
    "huge layer": _with(
        GOOD,
        metadata=_metadata(
            json.dumps(
                GOOD_META
                | {
                    "architecture": GOOD_META["architecture"]
                    | {"layers": [{"type": "Dense", "n_in": 784, "n_out": 10**8}]}
                }
            )
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_raise_weights_error(case: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    path.write_bytes(BAD_FILES[case])
    with pytest.raises(model.WeightsError):
        model.load(path)
    with pytest.raises(ValueError):  # WeightsError is a ValueError for simple callers
        model.loads(BAD_FILES[case])


def test_refuses_archives_that_inflate_too_far(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("model.checkpoint.MAX_BYTES", 1000)
    with pytest.raises(model.WeightsError, match="inflates"):
        model.loads(GOOD)


def test_refuses_members_that_are_not_arrays() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(model.WeightsError, match="unexpected member"):
        model.loads(buffer.getvalue())
