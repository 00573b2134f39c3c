"""`digits submit`: upload, progress, submission.csv, accuracy — against a live HTTP server."""

from __future__ import annotations

import contextlib
import gzip
import socket
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from processes import wait_for
from redis import Redis
from werkzeug.serving import make_server

from api import create_app
from formats.kaggle_csv import write_kaggle_csv
from scripts import submit
from scripts.cli import main
from worker import runner


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


# Following the batch: its events, not its status


class Bar:
    """Stands in for tqdm: keeps every position the progress bar is moved to."""

    def __init__(self, total: int, **options: object) -> None:
        self.total, self.n, self.positions = total, 0, [0]
        BARS.append(self)

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, step: int) -> None:
        self.n += step
        if step:
            self.positions.append(self.n)


BARS: list[Bar] = []


def test_the_progress_bar_moves_with_each_progress_event(
    redis_conn: Redis,
    url: str,
    service,
    published: dict,
    pixels: np.ndarray,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(submit, "tqdm", Bar)
    BARS.clear()
    write_kaggle_csv(tmp_path / "test.csv", pixels)  # 100 rows: chunks of 40, 40 and 20
    argv = ["submit", str(tmp_path / "test.csv"), "--out", str(tmp_path / "s.csv"), "--url", url]
    with ThreadPoolExecutor(1) as pool:
        done = pool.submit(main, argv)
        wait_for(lambda: service.queued() == 3 and BARS, 30, "the batch's three chunk jobs")
        for rows_done in (40, 80, 100):  # one chunk job at a time, as a slow worker would
            runner.build(redis_conn).work(burst=True, max_jobs=1)
            wait_for(lambda rows=rows_done: BARS[0].n == rows, 10, f"the bar at {rows_done}")
        assert done.result(timeout=30) == 0
    assert BARS[0].positions == [0, 40, 80, 100]


class DroppingProxy:
    """A TCP proxy to the service that cuts the first batch events connection mid-stream.

    It lets the first `event` (`chunk`) through whole (the service sends each event as one
    HTTP chunk) and a few bytes of what follows, then closes both sides, as a lost network
    would; `every`: each events connection, not only the first. It keeps every request's head.
    """

    def __init__(self, upstream: str, event: bytes = b"chunk", every: bool = False) -> None:
        self.event, self.every = b"event: " + event, every
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.heads: list[str] = []
        self.cut = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            events = threading.Event()  # this connection carries an events request
            threading.Thread(target=self._requests, args=(client, server, events)).start()
            threading.Thread(target=self._answers, args=(server, client, events)).start()

    def _requests(
        self, client: socket.socket, server: socket.socket, events: threading.Event
    ) -> None:
        while data := _receive(client):
            if data[:4] in (b"GET ", b"POST"):
                self.heads.append(data.split(b"\r\n\r\n")[0].decode("latin-1"))
                if b"/events " in data.split(b"\r\n")[0]:
                    events.set()
            server.sendall(data)
        server.close()

    def _answers(
        self, server: socket.socket, client: socket.socket, events: threading.Event
    ) -> None:
        seen, sent = b"", 0
        while data := _receive(server):
            if not events.is_set() or (self.cut.is_set() and not self.every):
                client.sendall(data)
                continue
            seen += data
            start = seen.find(self.event)
            # The event's end, and its HTTP chunk's: the client has the event only then.
            end = seen.find(b"\n\n\r\n", start) if start >= 0 else -1
            if end < 0:
                client.sendall(seen[sent:])
                sent = len(seen)
                continue
            client.sendall(seen[sent : end + 4 + 8])  # the event whole, then 8 bytes if any
            self.cut.set()
            break
        for end in (client, server):
            with contextlib.suppress(OSError):  # wakes the other direction's recv, sends FIN
                end.shutdown(socket.SHUT_RDWR)
            end.close()


def _receive(sock: socket.socket) -> bytes:
    try:
        return sock.recv(1 << 16)
    except OSError:
        return b""


def test_a_dropped_events_connection_resumes_from_the_last_event(
    url: str, service, published: dict, pixels: np.ndarray, tmp_path: Path
) -> None:
    proxy = DroppingProxy(url)
    try:
        write_kaggle_csv(tmp_path / "test.csv", pixels)
        out = tmp_path / "submission.csv"
        argv = ["submit", str(tmp_path / "test.csv"), "--out", str(out), "--url", proxy.url]
        assert service.while_working(lambda: main([*argv, "--quiet"]), jobs=3) == 0
    finally:
        proxy.close()
    assert proxy.cut.is_set()
    expected = service.labels("a", pixels)
    assert out.read_text().splitlines()[1:] == [f"{i},{n}" for i, n in enumerate(expected, 1)]
    requests = [head.splitlines()[0].rsplit(" ", 1)[0] for head in proxy.heads]
    batch_id = requests[1].split("/")[3]
    assert [line.replace(batch_id, "ID") for line in requests] == [
        "POST /v1/batches",
        "GET /v1/batches/ID/events",
        "GET /v1/batches/ID/events",  # again, after the cut
        "GET /v1/batches/ID",  # the status, once, when the events said finished
        "GET /v1/batches/ID/submission.csv",
    ]
    assert "last-event-id" not in proxy.heads[1].lower()
    assert "\r\nlast-event-id: 1\r\n" in proxy.heads[2].lower() + "\r\n"  # chunk 0 came


def test_following_gives_up_when_the_events_keep_dropping_without_progress(
    client: FlaskClient, url: str, service, published: dict, pixels: np.ndarray, tmp_path: Path
) -> None:
    write_kaggle_csv(tmp_path / "test.csv", pixels[:10])
    accepted = client.post(
        "/v1/batches", data=(tmp_path / "test.csv").read_bytes(), content_type="text/csv"
    ).json
    service.work()  # the batch is finished: every connection sees the same events
    proxy = DroppingProxy(url, event=b"progress", every=True)
    try:
        events = proxy.url + accepted["status_url"] + "/events"
        with pytest.raises(submit.SubmitError, match=f"{submit.RECONNECTS} times in a row"):
            submit._follow(requests.Session(), events, 10, progress=False)
    finally:
        proxy.close()
    follows = [head for head in proxy.heads if "/events " in head.splitlines()[0]]
    assert len(follows) == submit.RECONNECTS + 1
