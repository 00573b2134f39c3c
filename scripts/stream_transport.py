"""How `digits stream` reaches a stream: Redis directly, or the service's HTTP routes.

Both add inputs with an `id` the command chose and follow the answers written after it
started, so one command's answers are told apart from other producers' on the same stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
import orjson
import requests
from numpy.typing import NDArray
from redis import Redis

from store import connection, streams

FOLLOW_WAIT = 3_600  # seconds of quiet after which the service ends a GET .../out (reopened)
READ_COUNT = 500  # answers per read


class StreamError(RuntimeError):
    """The stream cannot be used: unknown and not creatable, or the service refused input."""


class Transport(Protocol):
    """Add inputs to a stream and follow its answers."""

    def start(self) -> None:
        """Make sure the stream exists; answers followed are those written from now on."""

    def add(self, inputs: list[tuple[str, NDArray[np.uint8]]]) -> None:
        """Add (id, 784 pixels) inputs, in order."""

    def answers(self) -> Iterator[dict[str, Any] | None]:
        """Yield answers as they are written, None after a quiet while (forever)."""


class RedisTransport:
    """XADD to `digits:stream:NAME:in`, XREAD `digits:stream:NAME:out`."""

    def __init__(self, url: str, name: str) -> None:
        self.redis: Redis = connection.connect(url)
        self.name = name
        self.after = "0-0"

    def start(self) -> None:
        """Create the stream (idempotent) and note its last answer."""
        streams.create(self.redis, self.name)
        self.after = streams.info(self.redis, self.name)["last_answer_id"]

    def add(self, inputs: list[tuple[str, NDArray[np.uint8]]]) -> None:
        """XADD the inputs in one pipeline."""
        pipe = self.redis.pipeline(transaction=False)
        for client_id, pixels in inputs:
            streams.add(pipe, self.name, {"pixels": pixels.tobytes(), "id": client_id})
        pipe.execute()

    def answers(self) -> Iterator[dict[str, Any] | None]:
        """XREAD the answers after the last one seen; None after a second without one."""
        while True:
            found = streams.answers(self.redis, self.name, self.after, READ_COUNT, 1_000)
            for entry_id, answer in found:
                self.after = entry_id
                yield answer
            if not found:
                yield None


class HttpTransport:
    """POST NDJSON to /v1/streams/NAME/in, follow GET /v1/streams/NAME/out."""

    def __init__(self, url: str, name: str, key: str | None = None) -> None:
        self.base = f"{url.rstrip('/')}/v1/streams/{name}"
        self.session = requests.Session()
        if key:
            self.session.headers["Authorization"] = f"Bearer {key}"
        self.after = "0-0"

    def start(self) -> None:
        """Use the stream, creating it when it does not exist yet; note its last answer."""
        found = self.session.get(self.base)
        if found.status_code == 404:
            found = self.session.post(self.base)
        self.after = _json(found, {200, 201})["last_answer_id"]

    def add(self, inputs: list[tuple[str, NDArray[np.uint8]]]) -> None:
        """POST the inputs as one NDJSON body."""
        body = b"".join(
            orjson.dumps({"pixels": pixels.tolist(), "id": client_id}) + b"\n"
            for client_id, pixels in inputs
        )
        headers = {"Content-Type": "application/x-ndjson"}
        _json(self.session.post(f"{self.base}/in", data=body, headers=headers), {202})

    def answers(self) -> Iterator[dict[str, Any] | None]:
        """Follow the NDJSON answers (None for a heartbeat), reopening after the idle limit."""
        while True:
            params = {"after": self.after, "wait": str(FOLLOW_WAIT)}
            with self.session.get(f"{self.base}/out", params=params, stream=True) as response:
                if response.status_code != 200:
                    _json(response, {200})
                for line in response.iter_lines():
                    if not line.strip():  # a heartbeat
                        yield None
                        continue
                    answer = orjson.loads(line)
                    self.after = answer["out_id"]
                    yield answer


def _json(response: requests.Response, expected: set[int]) -> Any:
    if response.status_code in expected:
        return response.json()
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:200]
    raise StreamError(f"{response.request.method} {response.url}: {response.status_code} {message}")
