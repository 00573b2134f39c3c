"""Redis Streams of digits: inputs in, one answer per input out, at-least-once, answered once.

A stream NAME has three keys (`store.keys`): `:in`, where producers XADD `pixels` (784 raw
bytes) or `image` (PNG/JPEG bytes) and optionally `id`; `:out`, one answer per input,
trimmed with MAXLEN ~; `:dead`, inputs delivered MAX_DELIVERIES times without an answer.
A stream exists once created (`create`, POST /v1/streams/NAME) or listed in DIGITS_STREAMS.

Workers read `:in` through one consumer group (GROUP). An entry read stays in the group's
pending entries list (PEL) until acknowledged. The script that writes answers writes one only
while its input is still pending, and acknowledges (XACK) and deletes (XDEL) the input in the
same atomic step: an input that ran twice (a slow worker, and another that reclaimed it) is
answered once, by whichever finished first. Entries of a consumer that stopped are reclaimed
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

import numpy as np
from numpy.typing import NDArray
from redis import Redis
from redis.client import Pipeline
from redis.exceptions import ResponseError

from store import codec, keys, liveness, lua

NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")
GROUP = "workers"  # the one consumer group every worker reads through
DEFAULT_MAXLEN = 10_000  # answers kept per stream (approximately: MAXLEN ~)
DEAD_MAXLEN = 10_000  # dead letters kept per stream
MAX_DELIVERIES = 3  # deliveries without an answer after which an input is a dead letter
# A consumer's entries are reclaimed once idle this long: its worker is then dead by
# store.liveness's rule (DEAD_AFTER without a beat), plus one beat interval of margin.
RECLAIM_IDLE_MS = int((liveness.DEAD_AFTER + liveness.BEAT_INTERVAL) * 1000)

# KEYS: in, out, dead. ARGV: group, out MAXLEN, dead MAXLEN, then per input: its entry id,
# the number of answer fields, those fields, the number of dead-letter fields, those fields.
# Returns how many answers were written (inputs still pending, so never answered before).
_ANSWER = lua.script(
    """
local written, i = 0, 4
while i <= #ARGV do
  local in_id = ARGV[i]
  local out_first = i + 2
  local out_last = out_first + tonumber(ARGV[i + 1]) - 1
  local dead_first = out_last + 2
  local dead_last = dead_first + tonumber(ARGV[out_last + 1]) - 1
  if #redis.call('XPENDING', KEYS[1], ARGV[1], in_id, in_id, 1) > 0 then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, out_first, out_last))
    if dead_last >= dead_first then
      redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, dead_first, dead_last))
    end
    redis.call('XACK', KEYS[1], ARGV[1], in_id)
    redis.call('XDEL', KEYS[1], in_id)
    written = written + 1
  end
  i = dead_last + 1
end
return written
"""
)


class StreamNameError(ValueError):
    """A stream name outside letters, digits, `-` and `_` (1 to 100 of them)."""


@dataclass(frozen=True)
class Entry:
    """One input entry as a worker read it: stream name, entry id, fields, times delivered."""

    stream: str
    entry_id: str
    fields: dict[bytes, bytes]
    deliveries: int = 1


@dataclass(frozen=True)
class Answer:
    """What to write for one input: answer fields, and dead-letter fields when it is one."""

    entry: Entry
    fields: dict[str, str]
    dead: dict[str, str | bytes] | None = None


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


def answer_fields(
    entry: Entry, probabilities: NDArray[np.floating], uncertain: bool, model_version: str
) -> dict[str, str]:
    """Return the answer to one input: label, confidence, uncertain, probabilities, version.

    `probabilities` is one image's `(10,)`; it travels as a JSON list, 6 significant digits.
    """
    return _echo(entry) | {
        "label": str(int(probabilities.argmax())),
        "confidence": f"{float(probabilities.max()):.6g}",
        "uncertain": "true" if uncertain else "false",
        "probabilities": json.dumps([float(f"{p:.6g}") for p in probabilities.tolist()]),
        "model_version": model_version,
    }


def error_fields(entry: Entry, message: str) -> dict[str, str]:
    """Return the answer to an input that cannot be labelled: `error` instead of a label."""
    return _echo(entry) | {"error": message}


def dead_letter(entry: Entry) -> Answer:
    """Return the answer for an input delivered too often, and its dead-letter entry."""
    reason = (
        f"no answer after {entry.deliveries - 1} deliveries: each worker that took it "
        "stopped before answering"
    )
    dead: dict[str, str | bytes] = {"in_id": entry.entry_id, "reason": reason}
    dead |= {codec.text(field): value for field, value in entry.fields.items()}
    message = f"{reason}; the input is kept in {keys.stream_dead(entry.stream)}"
    return Answer(entry, error_fields(entry, message), dead)


def write(connection: Redis, name: str, answers: Sequence[Answer], maxlen: int) -> int:
    """Write the answers of stream `name` whose inputs are still pending; acknowledge them.

    Returns how many were written: an input answered before (it ran twice) is skipped.
    """
    if not answers:
        return 0
    args: list[Any] = [GROUP, maxlen, DEAD_MAXLEN]
    for answer in answers:
        dead = answer.dead or {}
        args += [answer.entry.entry_id, 2 * len(answer.fields)]
        args += [item for pair in answer.fields.items() for item in pair]
        args += [2 * len(dead)] + [item for pair in dead.items() for item in pair]
    stream_keys = [keys.stream_in(name), keys.stream_out(name), keys.stream_dead(name)]
    return int(lua.run(connection, _ANSWER, stream_keys, args))


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


def _echo(entry: Entry) -> dict[str, str]:
    echoed = {"in_id": entry.entry_id}
    client_id = entry.fields.get(b"id")
    if client_id is not None:
        echoed["id"] = client_id.decode("utf-8", "replace")
    return echoed


def _stream_name(key: bytes | str) -> str:
    return codec.text(key)[len(keys.PREFIX + "stream:") : -len(":in")]
