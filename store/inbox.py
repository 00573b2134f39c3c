"""One list of answers per API process, and one reader of it: callers wait without a round trip.

Callers waiting on `POST /v1/predict` all belong to the process that queued their group, so
the group's job names that process's inbox (a Redis list) and the worker pushes each member's
answer there, prefixed by its job id. One reader per process takes everything pushed since
its last read in one round trip (a blocking pop, then the rest) and wakes each caller.
A blocking read per caller cost each request a round trip and a Redis connection of its own:
13% of the API's CPU under 32 connections (py-spy).

An answer nobody waits for any more (the caller answered 202) is dropped by the reader after
ANSWER_TTL; the result itself stays under its result key. When Redis fails under the reader,
every caller waiting is woken with the error, as its own blocking read would have failed.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from redis import Redis
from redis.exceptions import RedisError

from store import codec, keys
from store.results import ANSWER_TTL, Result, answered, decode

log = logging.getLogger(__name__)

READ_WAIT = 1  # seconds one blocking pop waits before the reader looks whether it is needed
IDLE_STOP = 5.0  # seconds without a caller after which the reader ends (it starts again)
BATCH = 256  # answers taken in the round trip that a first one wakes


class Inbox:
    """This process's answers list and the callers waiting on it."""

    def __init__(self, connection: Redis) -> None:
        self.connection = connection
        self.key = keys.api_inbox(uuid.uuid4().hex)
        self._lock = threading.Lock()
        self._waiting: dict[str, threading.Event] = {}
        self._arrived: dict[str, tuple[float, bytes]] = {}  # job id -> (when, payload)
        self._failure: RedisError | None = None
        self._reader: threading.Thread | None = None
        self._last_caller = time.monotonic()

    def wait(self, job_id: str, timeout: float) -> Result | None:
        """Block until the job's answer arrives (its result) or `timeout` seconds pass (None).

        Raises the RedisError that stopped the reader meanwhile.
        """
        if timeout <= 0:
            return None
        arrived = threading.Event()
        with self._lock:
            self._waiting[job_id] = arrived
            self._last_caller = time.monotonic()
            if job_id in self._arrived:
                arrived.set()
            if self._reader is None:
                self._failure = None
                self._reader = threading.Thread(target=self._read, name="inbox", daemon=True)
                self._reader.start()
        arrived.wait(timeout)
        with self._lock:
            self._waiting.pop(job_id, None)
            found = self._arrived.pop(job_id, None)
            failure = self._failure
        if found is not None:
            return decode(found[1])
        if failure is not None:
            raise failure
        return None

    def _read(self) -> None:
        try:
            while self._needed():
                self._deliver(self._take())
        except RedisError as error:
            log.warning("inbox %s: reading answers failed: %s", self.key, error)
            with self._lock:
                self._failure = error
                for arrived in self._waiting.values():
                    arrived.set()
        finally:
            with self._lock:
                self._reader = None

    def _needed(self) -> bool:
        with self._lock:
            return bool(self._waiting) or time.monotonic() - self._last_caller < IDLE_STOP

    def _take(self) -> list[bytes]:
        """Wait up to READ_WAIT for an answer, and take every other one with it."""
        pipe = self.connection.pipeline(transaction=False)
        pipe.blpop([self.key], timeout=READ_WAIT)
        pipe.lpop(self.key, BATCH)
        first, rest = pipe.execute()
        return [] if first is None else [codec.raw(first[1]), *map(codec.raw, rest or [])]

    def _deliver(self, entries: list[bytes]) -> None:
        now = time.monotonic()
        with self._lock:
            for entry in entries:
                job_id, payload = answered(entry)
                self._arrived[job_id] = (now, payload)
                arrived = self._waiting.get(job_id)
                if arrived is not None:
                    arrived.set()
            stale = [
                job_id for job_id, (when, _) in self._arrived.items() if now - when > ANSWER_TTL
            ]
            for job_id in stale:
                del self._arrived[job_id]
