"""Slow and abusive clients against `digits api` under gunicorn: still answering, JSON errors."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import orjson
import pytest
import requests
from processes import digits_api, up_redis_url
from redis import Redis

TRICKLERS = 120  # half send their headers a line at a time, half their body a byte at a time
TRICKLE_EVERY = 0.5  # seconds between a trickler's sends
TRICKLE_FOR = 10.0  # seconds the flood lasts
ANSWER_WITHIN = 1.0  # seconds /healthz may take meanwhile


@pytest.fixture
def api(up_redis: Redis) -> Iterator[str]:
    """`digits api` as shipped (gunicorn, its default worker class) on a free port."""
    with digits_api(up_redis_url()) as (base, _):
        yield base


def answers(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


HEADERS_START = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n"
BODY_START = (
    b"POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\n"
    b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
)


class Flood:
    """Connections that each send a request a little at a time and never finish it.

    Half send header lines, half body bytes. One the server drops (gevent gives a request's
    head the keep-alive time to arrive) is opened again at once, as an attacker would.
    """

    def __init__(self, base: str, count: int) -> None:
        self.port = int(base.rsplit(":", 1)[1])
        self.sockets = [self._open(n) for n in range(count)]
        self.reopened = {"headers": 0, "body": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, n: int) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port))
        sock.sendall(HEADERS_START if n % 2 else BODY_START)
        return sock

    def _run(self) -> None:
        while not self._stop.wait(TRICKLE_EVERY):
            for n, sock in enumerate(self.sockets):
                try:
                    sock.sendall(b"X-Slow: 1\r\n" if n % 2 else b" ")
                except OSError:
                    sock.close()
                    self.reopened["headers" if n % 2 else "body"] += 1
                    self.sockets[n] = self._open(n)

    def __enter__(self) -> Flood:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for sock in self.sockets:
            sock.close()


def test_healthz_answers_within_a_second_while_120_connections_trickle(api: str) -> None:
    latencies = []
    with Flood(api, TRICKLERS) as flood:
        deadline = time.monotonic() + TRICKLE_FOR
        while time.monotonic() < deadline:
            started = time.monotonic()
            response = requests.get(f"{api}/healthz", timeout=5)
            latencies.append(time.monotonic() - started)
            assert response.status_code == 200
            time.sleep(0.2)
        assert len(flood.sockets) == TRICKLERS
        assert flood.reopened["body"] == 0  # a slow body is waited for, in a greenlet
    assert len(latencies) >= 20
    assert max(latencies) < ANSWER_WITHIN, f"slowest /healthz: {max(latencies):.2f} s"


def raw_request(base: str, request: bytes) -> tuple[int, str, dict]:
    """Send bytes as they are; return the status, the Content-Type and the JSON body."""
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers["Content-Type"], orjson.loads(body)


def test_http_layer_errors_have_the_json_shape(api: str) -> None:
    long_url = b"GET /" + b"a" * 6000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n"
    status, content_type, body = raw_request(api, long_url)
    assert (status, content_type, body["error"]["code"]) == (
        414,
        "application/json",
        "uri_too_long",
    )
    assert "send parameters in the body" in body["error"]["message"]

    big_header = (
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"b" * 10_000 + b"\r\n\r\n"
    )
    status, content_type, body = raw_request(api, big_header)
    assert (status, content_type) == (431, "application/json")
    assert body["error"]["code"] == "request_header_fields_too_large"

    status, content_type, body = raw_request(api, b"NOT A REQUEST\r\n\r\n")
    assert (status, content_type, body["error"]["code"]) == (400, "application/json", "bad_request")
    assert body["error"]["message"]
