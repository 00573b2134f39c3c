"""The worker's stream consumer: a thread beside the RQ loop, in the same worker process.

`digits worker` so serves RQ queues and streams, and a deployment runs nothing new. The
thread reads up to BATCH entries per XREADGROUP from every stream at once and labels them in
one forward pass. It shares the model with the RQ jobs (`worker.jobs.CACHE`) and takes turns
with them through the cache's lock: a worker is one core's worth of work, so it runs one
forward pass at a time. Interactive requests keep priority: while the predict queue has jobs
waiting, the consumer reads nothing new. Batch chunks and streams take turns.

An entry may hold a picture (`image`: PNG, JPEG, ...) instead of pixels; it is read as
`POST /v1/predict/image` reads one (`pictures.preprocess`), outside the model's lock. A
12-megapixel photo takes about 0.1 s, so a read of BATCH photos can outlast the idle time
after which other workers reclaim entries: every TOUCH_INTERVAL while it reads, the entries
are claimed again by this consumer (their idle time restarts, their delivery count does not).

What happens to an entry is `store.streams`'s and `store.stream_answers`'s contract:
answered once, then acknowledged; reclaimed from a dead consumer; a dead letter after
MAX_DELIVERIES deliveries.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

from config import settings as config_settings
from store import codec, keys, stream_answers, streams
from store.stream_answers import Answer
from store.streams import Entry
from worker import jobs
from worker.cache import NoModel

BATCH = 128  # entries per read: one forward pass (a CNN pass on 128 images is ~0.1 s)
BLOCK_MS = 500  # longest wait for new entries; also how soon a new stream is noticed
RECLAIM_INTERVAL = 1.0  # seconds between looks for entries of dead consumers
FORGET_INTERVAL = 600.0  # seconds between clean-ups of consumers long gone
FORGET_IDLE_MS = 3_600_000  # a consumer idle this long and holding nothing is forgotten
YIELD_WAIT = 0.005  # seconds to step aside while interactive jobs are queued
TOUCH_INTERVAL = 1.0  # seconds between re-claims of entries still being read (RECLAIM_IDLE_MS: 6 s)
ERROR_WAITS = (0.5, 1.0, 2.0, 5.0)  # seconds between tries after an error, growing
PREDICT_QUEUE_KEY = Queue.redis_queue_namespace_prefix + keys.PREDICT_QUEUE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    """Which streams exist without being created, and how many answers each keeps."""

    listed: tuple[str, ...] = ()
    maxlen: int = streams.DEFAULT_MAXLEN

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None = None) -> Settings:
        """Take DIGITS_STREAMS (comma-separated names) and DIGITS_STREAM_MAXLEN from `config`.

        `config` is `config.settings.load()` (defaults, environment, overrides) unless given.
        Raises config.settings.SettingError for a value of the wrong type in the environment,
        store.streams.StreamNameError for a bad stream name.
        """
        found = config_settings.load() if config is None else config
        listed = tuple(streams.configured(found["DIGITS_STREAMS"]))
        return cls(listed, int(found["DIGITS_STREAM_MAXLEN"]))


class Consumer:
    """One worker's consumer in the group: read, label, answer, acknowledge."""

    def __init__(self, connection: Redis, name: str, settings: Settings) -> None:
        self.connection = connection
        self.name = name
        self.settings = settings
        self.maxlens: dict[str, int] = {}
        self.reclaim_idle_ms = streams.RECLAIM_IDLE_MS
        self._reclaimed_at = 0.0
        self._forgotten_at = time.monotonic()

    def step(self, block_ms: int | None = BLOCK_MS) -> int:
        """Answer one read's worth of entries (reclaimed first); return how many were read."""
        self.maxlens = streams.maxlens(self.connection, self.settings.listed, self.settings.maxlen)
        if self.connection.llen(PREDICT_QUEUE_KEY):
            time.sleep(YIELD_WAIT)
            return 0
        if not self.maxlens or not self._model_ready():
            time.sleep((block_ms or 0) / 1000)  # nothing to read from, or nothing to read with
            return 0
        entries = self._reclaim() or streams.read(
            self.connection, self.name, sorted(self.maxlens), BATCH, block_ms
        )
        self.answer(entries)
        return len(entries)

    def answer(self, entries: list[Entry]) -> int:
        """Label the entries in one forward pass and write their answers; return how many."""
        if not entries:
            return 0
        try:
            answers = self._label(entries)
        except Exception:
            if len(entries) == 1:
                raise  # left pending: retried after RECLAIM_IDLE_MS, then a dead letter
            log.exception("labelling %d stream entries failed; trying one by one", len(entries))
            return sum(self._answer_alone(entry) for entry in entries)
        return self._write(answers)

    def _answer_alone(self, entry: Entry) -> int:
        try:
            return self.answer([entry])
        except Exception:
            log.exception("stream %s entry %s failed", entry.stream, entry.entry_id)
            return 0

    def _label(self, entries: list[Entry]) -> list[Answer]:
        answers: dict[int, Answer] = {}
        inputs: list[tuple[int, Decoded]] = []
        touched = time.monotonic()
        for index, entry in enumerate(entries):
            if time.monotonic() - touched >= TOUCH_INTERVAL:
                streams.touch(self.connection, self.name, entries)  # all pending till written
                touched = time.monotonic()
            if entry.deliveries > streams.MAX_DELIVERIES:
                answers[index] = stream_answers.dead_letter(entry)
                continue
            found = decode(entry)
            if isinstance(found, str):
                answers[index] = Answer(entry, stream_answers.error_fields(entry, found))
            else:
                inputs.append((index, found))
        if inputs:
            with jobs.CACHE.lock:
                network, version = jobs.CACHE.get(self.connection, self._current())
                pixels = np.stack([found.pixels for _, found in inputs])
                probabilities, uncertain = jobs.answer(network, pixels)
            for (index, found), row, flag in zip(inputs, probabilities, uncertain, strict=True):
                fields = stream_answers.answer_fields(entries[index], row, bool(flag), version)
                answers[index] = Answer(entries[index], fields | found.fields)
        return [answers[index] for index in range(len(entries))]

    def _write(self, answers: list[Answer]) -> int:
        written = 0
        for name in sorted({answer.entry.stream for answer in answers}):
            mine = [answer for answer in answers if answer.entry.stream == name]
            maxlen = self.maxlens.get(name, self.settings.maxlen)
            written += stream_answers.write(self.connection, name, mine, maxlen)
        return written

    def _reclaim(self) -> list[Entry]:
        now = time.monotonic()
        if now - self._reclaimed_at < RECLAIM_INTERVAL:
            return []
        self._reclaimed_at = now
        if now - self._forgotten_at >= FORGET_INTERVAL:
            self._forgotten_at = now
            for name in self.maxlens:
                streams.forget_idle_consumers(self.connection, name, FORGET_IDLE_MS)
        return [
            entry
            for name in sorted(self.maxlens)
            for entry in streams.reclaim(
                self.connection, name, self.name, BATCH, self.reclaim_idle_ms
            )
        ]

    def _current(self) -> str | None:
        current = self.connection.get(keys.MODELS_CURRENT)
        return None if current is None else codec.text(current)

    def _model_ready(self) -> bool:
        """Say whether a model can answer: without one, entries wait unread (not dead letters)."""
        try:
            with jobs.CACHE.lock:
                jobs.CACHE.get(self.connection, self._current())
        except NoModel:
            return False
        return True


@dataclass(frozen=True)
class Decoded:
    """An entry's pixels `(784,)` uint8, and what its answer says besides the label."""

    pixels: NDArray[np.uint8]
    fields: dict[str, str]


def decode(entry: Entry) -> Decoded | str:
    """Return an entry's pixels, or a message saying what is wrong with it.

    `pixels` are 784 raw bytes; an `image` (PNG, JPEG, GIF, BMP or WebP bytes) is found,
    cropped and centred as POST /v1/predict/image does, and its answer gets the digit's
    `box` ([left, top, right, bottom] in the picture's pixels, JSON).
    """
    data, picture = entry.fields.get(b"pixels"), entry.fields.get(b"image")
    if data is not None and picture is not None:
        return "the entry has both 'pixels' and 'image': send one of them"
    if data is not None:
        if len(data) != codec.N_PIXELS:
            return (
                f"field 'pixels' has {len(data)} bytes, expected {codec.N_PIXELS}: "
                "one uint8 per pixel, row by row, white ink on black"
            )
        return Decoded(np.frombuffer(data, dtype=np.uint8), {})
    if picture is not None:
        # Loaded with the first picture: a worker that never sees one saves 0.7 s and 40 MB.
        from pictures.preprocess import ImageError, preprocess

        try:
            seen = preprocess(picture)
        except ImageError as error:  # undecodable, too large, or blank
            return f"field 'image': {error.message}"
        return Decoded(seen.pixels.reshape(codec.N_PIXELS), {"box": json.dumps(seen.box)})
    return (
        "the entry has no field 'pixels' (784 raw bytes, one uint8 per pixel) "
        "nor 'image' (the bytes of a PNG, JPEG, GIF, BMP or WebP picture)"
    )


def drain(connection: Redis, name: str, settings: Settings | None = None) -> int:
    """Answer every entry there is now, as consumer `name`; return how many were read."""
    consumer = Consumer(connection, name, settings or Settings.from_config())
    total = 0
    while read := consumer.step(block_ms=None):
        total += read
    return total


@contextmanager
def consuming(connection: Redis, name: str, settings: Settings | None = None) -> Iterator[None]:
    """Run a consumer named `name` in a background thread while in the block."""
    stop = threading.Event()
    consumer = Consumer(connection, name, settings or Settings.from_config())
    thread = threading.Thread(target=_loop, args=(consumer, stop), name="streams", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=BLOCK_MS / 1000 + 10)


def _loop(consumer: Consumer, stop: threading.Event) -> None:
    failures = 0
    while not stop.is_set():
        try:
            consumer.step()
            failures = 0
        except RedisError as error:
            log.warning("stream consumer %s: %s", consumer.name, error)
        except Exception:
            log.exception("stream consumer %s failed", consumer.name)
        else:
            continue
        stop.wait(ERROR_WAITS[min(failures, len(ERROR_WAITS) - 1)])
        failures += 1
