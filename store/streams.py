"""Redis Streams of digits: inputs in, one answer per input out, at-least-once, answered once.

A stream NAME has three keys (`store.keys`): `:in`, where producers XADD `pixels` (784 raw
bytes) or `image` (PNG/JPEG bytes) and optionally `id`; `:out`, one answer per input,
trimmed with MAXLEN ~; `:dead`, inputs delivered MAX_DELIVERIES times without an answer.
A stream exists once created (`create`, POST /v1/streams/NAME) or listed in DIGITS_STREAMS.

Workers read `:in` through one consumer group (GROUP). An entry read stays in the group's
pending entries list (PEL) until its answer is written (`store.stream_answers`), which
acknowledges it in the same atomic step. Entries of a consumer that stopped are reclaimed
(XAUTOCLAIM) once idle for RECLAIM_IDLE_MS, just past the time after which store.liveness
calls a silent worker dead. Why not RQ: RQ has no Streams (rq#1144), and an RQ job per image
costs a job record and several round trips where one XREADGROUP takes hundreds of images.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import ResponseError

from store import codec, keys, liveness

NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")
GROUP = "workers"  # the one consumer group every worker reads through
DEFAULT_MAXLEN = 10_000  # answers kept per stream (approximately: MAXLEN ~)
MAX_DELIVERIES = 3  # deliveries without an answer after which an input is a dead letter
# A consumer's entries are reclaimed once idle this long: its worker is then dead by
# store.liveness's rule (DEAD_AFTER without a beat), plus one beat interval of margin.
RECLAIM_IDLE_MS = int((liveness.DEAD_AFTER + liveness.BEAT_INTERVAL) * 1000)


class StreamNameError(ValueError):
    """A stream name outside letters, digits, `-` and `_` (1 to 100 of them)."""


@dataclass(frozen=True)
class Entry:
    """One input entry as a worker read it: stream name, entry id, fields, times delivered."""

    stream: str
    entry_id: str
    fields: dict[bytes, bytes]
    deliveries: int = 1


def check_name(name: str) -> str:
    """Return `name` if it can name a stream; raise StreamNameError saying why not."""
    if NAME.fullmatch(name) is None:
        raise StreamNameError(f"stream name {name!r}: use 1 to 100 letters, digits, '-' or '_'")
    return name


def configured(text: str) -> list[str]:
    """Parse DIGITS_STREAMS (comma-separated names); raise StreamNameError on a bad one."""
    return [check_name(name.strip()) for name in text.split(",") if name.strip()]


def create(connection: Redis, name: str, maxlen: int = DEFAULT_MAXLEN) -> bool:
    """Make stream `name` (idempotent); return whether it is new."""
    created = connection.hsetnx(keys.STREAMS, name, json.dumps({"maxlen": maxlen}))
    ensure_group(connection, name)
    return bool(created)


def ensure_group(connection: Redis, name: str) -> None:
    """Create the consumer group of `name` from the first entry on, unless it exists."""
    try:
        connection.xgroup_create(keys.stream_in(name), GROUP, id="0", mkstream=True)
    except ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise


def exists(connection: Redis, name: str, listed: Sequence[str]) -> bool:
    """Say whether stream `name` was created or is in the `listed` (DIGITS_STREAMS) names."""
    return name in listed or bool(connection.hexists(keys.STREAMS, name))


def maxlens(connection: Redis, listed: Iterable[str], default: int) -> dict[str, int]:
    """Return every stream's name -> the number of answers it keeps."""
    found = dict.fromkeys(listed, default)
    for name, settings in connection.hgetall(keys.STREAMS).items():
        found[codec.text(name)] = int(json.loads(settings).get("maxlen", default))
    return found


def add(pipe: Pipeline | Redis, name: str, fields: dict[str, bytes | str]) -> None:
    """Queue on `pipe` the XADD of one input entry (its reply is the entry id)."""
    pipe.xadd(keys.stream_in(name), fields)  # type: ignore[arg-type]


def read(
    connection: Redis, consumer: str, names: Sequence[str], count: int, block_ms: int | None
) -> list[Entry]:
    """Read up to `count` new entries per stream as `consumer`, waiting up to `block_ms`.

    `block_ms` None does not wait.
    """
    if not names:
        return []
    wanted: dict[Any, Any] = {keys.stream_in(name): ">" for name in names}
    try:
        reply: Any = connection.xreadgroup(GROUP, consumer, wanted, count=count, block=block_ms)
    except ResponseError as error:
        _make_missing_groups(connection, names, error)
        return []
    return [
        Entry(_stream_name(key), codec.text(entry_id), fields)
        for key, entries in reply or []
        for entry_id, fields in entries
    ]


def reclaim(
    connection: Redis, name: str, consumer: str, count: int, idle_ms: int = RECLAIM_IDLE_MS
) -> list[Entry]:
    """Take over up to `count` entries left idle `idle_ms` or longer (XAUTOCLAIM).

    Each entry comes with its delivery count, this one included.
    """
    key = keys.stream_in(name)
    try:
        reply: Any = connection.xautoclaim(key, GROUP, consumer, idle_ms, "0-0", count=count)
    except ResponseError as error:
        _make_missing_groups(connection, [name], error)
        return []
    claimed = [(codec.text(entry_id), fields) for entry_id, fields in reply[1] if fields]
    if not claimed:
        return []
    pipe = connection.pipeline(transaction=False)
    for entry_id, _ in claimed:
        pipe.xpending_range(key, GROUP, entry_id, entry_id, 1)
    counts = [found[0]["times_delivered"] if found else 1 for found in pipe.execute()]
    return [
        Entry(name, entry_id, fields, deliveries)
        for (entry_id, fields), deliveries in zip(claimed, counts, strict=True)
    ]


def touch(connection: Redis, consumer: str, entries: Sequence[Entry]) -> None:
    """Claim `consumer`'s pending `entries` again so their idle time restarts (XCLAIM JUSTID).

    A consumer still working on entries so keeps others from reclaiming them; JUSTID leaves
    their delivery count as it is.
    """
    pipe = connection.pipeline(transaction=False)
    for name in sorted({entry.stream for entry in entries}):
        ids: list[Any] = [entry.entry_id for entry in entries if entry.stream == name]
        pipe.xclaim(keys.stream_in(name), GROUP, consumer, 0, ids, justid=True)
    pipe.execute()


def answers(
    connection: Redis, name: str, after: str, count: int, block_ms: int | None
) -> list[tuple[str, dict[str, Any]]]:
    """Return up to `count` answers after entry id `after`, waiting up to `block_ms` for one."""
    reply: Any = connection.xread({keys.stream_out(name): after}, count=count, block=block_ms)
    return [
        (codec.text(entry_id), decode_answer(fields))
        for _, entries in reply or []
        for entry_id, fields in entries
    ]


def decode_answer(fields: dict[bytes, bytes]) -> dict[str, Any]:
    """Turn an answer entry's fields into JSON-ready values (label int, probabilities list)."""
    found: dict[str, Any] = {codec.text(k): codec.text(v) for k, v in fields.items()}
    if "label" in found:
        found["label"] = int(found["label"])
        found["confidence"] = float(found["confidence"])
        found["uncertain"] = found.get("uncertain") == "true"
        found["probabilities"] = json.loads(found["probabilities"])
    if "box" in found:
        found["box"] = json.loads(found["box"])
    return found


def info(connection: Redis, name: str) -> dict[str, Any]:
    """Return a stream's counts: inputs waiting or running, answers and dead letters kept."""
    pipe = connection.pipeline(transaction=False)
    pipe.xlen(keys.stream_in(name))
    pipe.xlen(keys.stream_out(name))
    pipe.xlen(keys.stream_dead(name))
    pipe.xrevrange(keys.stream_out(name), count=1)
    inputs, kept, dead, last = pipe.execute()
    return {
        "name": name,
        "inputs": inputs,
        "answers": kept,
        "dead": dead,
        "last_answer_id": codec.text(last[0][0]) if last else "0-0",
    }


def forget_idle_consumers(connection: Redis, name: str, idle_ms: int) -> int:
    """Delete the group's consumers holding no entries and idle `idle_ms`; return how many.

    Each worker process is a consumer: without this a restarted fleet leaves names behind.
    A consumer with pending entries is kept (deleting it would drop them from the PEL).
    """
    forgotten = 0
    for consumer in connection.xinfo_consumers(keys.stream_in(name), GROUP):
        if consumer["pending"] == 0 and consumer["idle"] >= idle_ms:
            connection.xgroup_delconsumer(keys.stream_in(name), GROUP, consumer["name"])
            forgotten += 1
    return forgotten


def _make_missing_groups(connection: Redis, names: Sequence[str], error: ResponseError) -> None:
    """Create the groups of `names` after a NOGROUP error (re-raise any other error).

    A group is missing when a listed stream's first reader comes, or its key was deleted.
    """
    if "NOGROUP" not in str(error):
        raise error
    for name in names:
        ensure_group(connection, name)


def _stream_name(key: bytes | str) -> str:
    return codec.text(key)[len(keys.PREFIX + "stream:") : -len(":in")]
