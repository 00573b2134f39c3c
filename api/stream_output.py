"""Following a stream's answers over HTTP: NDJSON lines or Server-Sent Events, as written.

The response is a generator around blocking XREADs: it ends after `count` answers, after
`wait` seconds without one, or when the client goes (its next write fails; a heartbeat every
HEARTBEAT seconds makes sure one comes). A heartbeat is an empty line in NDJSON and a comment
in SSE, which clients skip; it also keeps proxies from closing an idle connection.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from flask import Response
from redis import Redis

from store import streams

HEARTBEAT = 15.0  # seconds between heartbeats on a quiet stream
READ_COUNT = 500  # answers per XREAD
ENTRY_ID = re.compile(r"\d{1,19}(-\d{1,19})?")  # 19 digits always fit Redis's 64 bits


@dataclass(frozen=True)
class Follow:
    """What a client asked to follow: stream, after which answer, how many, how long idle."""

    name: str
    after: str
    count: int
    wait: float
    sse: bool


def response(connection: Redis, follow: Follow) -> Response:
    """Return the streaming response that follows `follow`'s answers."""
    mimetype = "text/event-stream" if follow.sse else "application/x-ndjson"
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return Response(_events(connection, follow), mimetype=mimetype, headers=headers)


def _events(connection: Redis, follow: Follow) -> Iterator[bytes]:
    after, sent = follow.after, 0
    last_answer = last_write = time.monotonic()
    yield b": following\n\n" if follow.sse else b"\n"  # headers out now, not at the first answer
    while sent < follow.count:
        now = time.monotonic()
        idle_left = follow.wait - (now - last_answer)
        if idle_left <= 0:
            return
        block = min(idle_left, HEARTBEAT - (now - last_write))
        found = streams.answers(
            connection, follow.name, after, min(READ_COUNT, follow.count - sent), _ms(block)
        )
        for entry_id, answer in found:
            yield _format(entry_id, answer, follow.sse)
        if found:
            after, sent = found[-1][0], sent + len(found)
            last_answer = last_write = time.monotonic()
        elif time.monotonic() - last_write >= HEARTBEAT:
            yield b": heartbeat\n\n" if follow.sse else b"\n"
            last_write = time.monotonic()


def _format(entry_id: str, answer: dict[str, Any], sse: bool) -> bytes:
    data = orjson.dumps({"out_id": entry_id, **answer})
    if sse:
        return b"id: " + entry_id.encode() + b"\nevent: answer\ndata: " + data + b"\n\n"
    return data + b"\n"


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
