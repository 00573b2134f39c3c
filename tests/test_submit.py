"""`digits submit`: upload, progress, submission.csv, accuracy — against a live HTTP server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from flask import Flask
from werkzeug.serving import make_server

from formats.kaggle_csv import write_kaggle_csv
from scripts.cli import main


@pytest.fixture
def url(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def test_submit_writes_the_submission_and_prints_accuracy(
    url: str,
    service,
    published: dict,
    pixels: np.ndarray,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    truth = np.arange(len(pixels)) % 10
    write_kaggle_csv(tmp_path / "test.csv", pixels, truth)
    out = tmp_path / "submission.csv"
    argv = ["submit", str(tmp_path / "test.csv"), "--out", str(out), "--url", url, "--quiet"]
    assert service.while_working(lambda: main(argv), jobs=3) == 0
    expected = service.labels("a", pixels)
    lines = out.read_text().splitlines()
    assert lines[0] == "ImageId,Label"
    assert lines[1:] == [f"{i},{label}" for i, label in enumerate(expected, start=1)]
    accuracy = np.mean(np.asarray(expected) == truth)
    printed = capsys.readouterr().out
    assert f"wrote {out} (100 rows, model {published['a']})" in printed
    assert f"accuracy {accuracy:.4f}" in printed


def test_submit_without_labels_prints_no_accuracy(
    url: str, service, published: dict, pixels: np.ndarray, tmp_path: Path, capsys
) -> None:
    write_kaggle_csv(tmp_path / "test.csv", pixels[:10])
    out = tmp_path / "submission.csv"
    argv = ["submit", str(tmp_path / "test.csv"), "--out", str(out), "--url", url, "--quiet"]
    assert service.while_working(lambda: main(argv)) == 0
    assert len(out.read_text().splitlines()) == 11
    assert "accuracy" not in capsys.readouterr().out


def test_submit_reports_the_service_error(url: str, service, tmp_path: Path, capsys) -> None:
    (tmp_path / "bad.csv").write_text("pixel0,pixel1\n1,2\n")
    out = tmp_path / "submission.csv"
    argv = ["submit", str(tmp_path / "bad.csv"), "--out", str(out), "--url", url, "--quiet"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "422" in err and "header" in err
    assert not out.exists()


def test_submit_reports_a_failed_batch(
    url: str, service, pixels: np.ndarray, tmp_path: Path, capsys
) -> None:
    write_kaggle_csv(tmp_path / "test.csv", pixels[:5])
    argv = ["submit", str(tmp_path / "test.csv"), "--out", str(tmp_path / "s.csv"), "--url", url]
    argv.append("--quiet")
    assert service.while_working(lambda: main(argv)) == 1  # no model is active
    assert "the batch failed: NoModel" in capsys.readouterr().err
