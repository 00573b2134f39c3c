"""`digits submit`: upload, progress, submission.csv, accuracy — against a live HTTP server."""

from __future__ import annotations

import gzip
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from flask import Flask
from werkzeug.serving import make_server

from api import create_app
from formats.kaggle_csv import write_kaggle_csv
from scripts.cli import main


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


# Files as Kaggle ships them, and scores whenever labels are known


def mnist_like(rows: int, seed: int = 0) -> np.ndarray:
    """Mostly-zero pixels, like MNIST's: text that compresses as the real files do."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (rows, 784), dtype=np.uint8)
    pixels[rng.random((rows, 784)) < 0.8] = 0
    return pixels


def run_submit(service, url: str, path: Path, out: Path, jobs: int = 1) -> int:
    argv = ["submit", str(path), "--out", str(out), "--url", url, "--quiet"]
    return service.while_working(lambda: main(argv), jobs=jobs)


def test_a_csv_over_the_body_limit_is_sent_compressed(
    app: Flask, url: str, service, published: dict, tmp_path: Path, capsys
) -> None:
    pixels, truth = mnist_like(200), np.arange(200) % 10
    write_kaggle_csv(tmp_path / "train.csv", pixels, truth)
    app.config["MAX_CONTENT_LENGTH"] = (tmp_path / "train.csv").stat().st_size // 2
    out = tmp_path / "submission.csv"
    assert run_submit(service, url, tmp_path / "train.csv", out, jobs=5) == 0
    expected = service.labels("a", pixels)
    assert len(out.read_text().splitlines()) == 201
    accuracy = np.mean(np.asarray(expected) == truth)
    assert f"accuracy {accuracy:.4f}" in capsys.readouterr().out


def test_kaggle_zip_is_labelled_and_scored_against_test_labels(
    url: str, service, published: dict, tmp_path: Path, capsys
) -> None:
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    write_kaggle_csv(train, mnist_like(30, seed=1), np.arange(30) % 10)
    test_pixels = mnist_like(40, seed=2)
    write_kaggle_csv(test, test_pixels)
    archive = tmp_path / "digit-recognizer.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as stream:
        for member in (train, test):
            stream.write(member, member.name)
        stream.writestr("sample_submission.csv", "ImageId,Label\n1,0\n")
    expected = service.labels("a", test_pixels)
    key = ["ImageId,Label"] + [
        f"{i},{(label + (i % 4 == 0)) % 10}" for i, label in enumerate(expected, 1)
    ]
    (tmp_path / "test_labels.csv").write_text("\n".join(key) + "\n")
    out = tmp_path / "submission.csv"
    assert run_submit(service, url, archive, out) == 0
    lines = out.read_text().splitlines()
    assert lines[1:] == [f"{i},{label}" for i, label in enumerate(expected, start=1)]
    printed = capsys.readouterr().out
    assert f"accuracy {30 / 40:.4f} (against {tmp_path / 'test_labels.csv'})" in printed


def test_a_csv_gz_goes_as_it_is(url: str, service, published: dict, tmp_path: Path, capsys) -> None:
    pixels = mnist_like(20)
    write_kaggle_csv(tmp_path / "test.csv", pixels)
    packed = tmp_path / "test.csv.gz"
    packed.write_bytes(gzip.compress((tmp_path / "test.csv").read_bytes()))
    (tmp_path / "test.csv").unlink()
    out = tmp_path / "submission.csv"
    assert run_submit(service, url, packed, out) == 0
    assert len(out.read_text().splitlines()) == 21
    assert "accuracy" not in capsys.readouterr().out


def test_an_answer_key_for_other_images_is_not_used(
    url: str, service, published: dict, tmp_path: Path, capsys
) -> None:
    write_kaggle_csv(tmp_path / "test.csv", mnist_like(10))
    (tmp_path / "test_labels.csv").write_text("ImageId,Label\n1,3\n2,4\n")
    assert run_submit(service, url, tmp_path / "test.csv", tmp_path / "s.csv") == 0
    printed = capsys.readouterr().out
    assert "not scored:" in printed and "does not hold the same ImageIds" in printed
    assert "accuracy" not in printed


def test_test_csv_is_scored_against_test_labels_beside_it(
    url: str, service, published: dict, tmp_path: Path, capsys
) -> None:
    pixels = mnist_like(25, seed=3)
    write_kaggle_csv(tmp_path / "test.csv", pixels)  # as `digits fetch-data` writes it
    expected = service.labels("a", pixels)
    key = [f"{i},{label if i > 5 else (label + 1) % 10}" for i, label in enumerate(expected, 1)]
    (tmp_path / "test_labels.csv").write_text("ImageId,Label\n" + "\n".join(key) + "\n")
    assert run_submit(service, url, tmp_path / "test.csv", tmp_path / "submission.csv") == 0
    assert f"accuracy {20 / 25:.4f} (against" in capsys.readouterr().out


def test_submit_sends_the_api_key(
    redis_url: str, service, published: dict, pixels: np.ndarray, tmp_path: Path, capsys
) -> None:
    app = create_app({"REDIS_URL": redis_url, "TESTING": True, "DIGITS_API_KEYS": "k-123"})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        write_kaggle_csv(tmp_path / "test.csv", pixels[:5])
        argv = ["submit", str(tmp_path / "test.csv"), "--out", str(tmp_path / "s.csv")]
        argv += ["--url", f"http://127.0.0.1:{server.server_port}", "--quiet"]
        assert main(argv) == 1  # no key: the service's 401 is reported
        assert "401" in capsys.readouterr().err
        assert service.while_working(lambda: main([*argv, "--key", "k-123"])) == 0
        assert len((tmp_path / "s.csv").read_text().splitlines()) == 6
    finally:
        server.shutdown()
        thread.join()
