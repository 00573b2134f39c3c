"""The API's gunicorn worker classes: gevent (default) and gthread, with JSON HTTP errors.

Why gevent by default: a gthread process reads each request in one of its threads, so 32
connections that send their headers or body a line every few seconds hold every thread of
`digits api` (2 processes x 16) and nothing else is answered, `/healthz` included. A
gevent process holds each connection in a greenlet of a few KB and reads it without a
thread, so slow clients cost memory, not service (measured: README, Operations). Redis
sockets, the micro-batch window and the blocking result read are cooperative under gevent's
monkey patching, which gunicorn applies in each worker process before the app is loaded.

Errors gunicorn answers itself, before Flask sees the request (400 malformed request line
or header, 414 request line too long, 431 header too large), come as HTML from
`gunicorn.util.write_error`. Each worker process replaces that one function with
`write_json_error`, so every error a client can get has the API's JSON shape. It is
gunicorn's internal helper: the version is pinned in pyproject.toml and
tests/test_slow_clients.py fails if the answer is not JSON.
"""

from __future__ import annotations

import re
import socket

import orjson
from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker
from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

HINTS = {
    414: "the request line is longer than 4094 bytes: send parameters in the body",
    431: "a header is longer than 8190 bytes, or there are more than 100 headers",
}


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """Send gunicorn's own HTTP error as `{"error": {"code", "message"}}` and close."""
    code = re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_")
    message = "; ".join(part for part in (HINTS.get(status_int), mesg) if part) or reason
    body = orjson.dumps({"error": {"code": code, "message": message}})
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


class JsonGeventWorker(GeventWorker):
    """gunicorn's gevent worker, its own HTTP errors in JSON."""

    def init_process(self) -> None:
        """Answer HTTP-layer errors in JSON, then run as gunicorn's gevent worker."""
        util.write_error = write_json_error
        super().init_process()


class JsonThreadWorker(ThreadWorker):
    """gunicorn's gthread worker, its own HTTP errors in JSON."""

    def init_process(self) -> None:
        """Answer HTTP-layer errors in JSON, then run as gunicorn's gthread worker."""
        util.write_error = write_json_error
        super().init_process()


class JsonSyncWorker(SyncWorker):
    """gunicorn's sync worker (one request per process), its own HTTP errors in JSON."""

    def init_process(self) -> None:
        """Answer HTTP-layer errors in JSON, then run as gunicorn's sync worker."""
        util.write_error = write_json_error
        super().init_process()
