"""A worker's side of a batch chunk: claim it with the model to use, then count it once.

Two scripts, one round trip each. The claim reads the chunk's pixels and given labels and
the registry's current version, and marks the batch started. The count stores the chunk's
answers and adds them to the batch's progress only if the chunk number is new to the
batch's set of counted chunks, so a chunk that runs twice (its worker died after finishing)
is counted once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from redis import Redis

from store import batches, codec, keys, lua

# KEYS: done set, pixels, truth, record, the registry's current version. ARGV: chunk, now
_CLAIM = lua.script(
    """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return {1} end
local recorded = redis.call('EXISTS', KEYS[4])
local pixels = redis.call('GET', KEYS[2])
if recorded == 1 and pixels then redis.call('HSETNX', KEYS[4], 'started_at', ARGV[2]) end
return {0, recorded, pixels, redis.call('GET', KEYS[3]), redis.call('GET', KEYS[5])}
"""
)


# KEYS: record, done set, versions set, labels, pixels, truth, confidence
# ARGV: chunk, rows, correct, model version, label bytes, ttl, now, confidence bytes, uncertain
_COMPLETE = lua.script(
    """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('SET', KEYS[4], ARGV[5], 'EX', ARGV[6])
redis.call('SET', KEYS[7], ARGV[8], 'EX', ARGV[6])
redis.call('HINCRBY', KEYS[1], 'uncertain_rows', ARGV[9])
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('EXPIRE', KEYS[3], ARGV[6])
redis.call('DEL', KEYS[5], KEYS[6])
redis.call('HINCRBY', KEYS[1], 'correct', ARGV[3])
local done = redis.call('HINCRBY', KEYS[1], 'rows_done', ARGV[2])
if done == tonumber(redis.call('HGET', KEYS[1], 'rows')) then
  redis.call('HSET', KEYS[1], 'status', 'finished', 'finished_at', ARGV[7])
end
return 1
"""
)


@dataclass(frozen=True)
class ChunkInput:
    """What a worker needs to label one chunk, and the model to label it with."""

    pixels: NDArray[np.uint8]
    truth: NDArray[np.uint8] | None
    current_model: str | None


def claim(connection: Redis, batch_id: str, chunk: int) -> ChunkInput | None:
    """Return a chunk's input and the registry's current version; None when it was counted.

    One script: it also marks the batch started, the first time a chunk of it is claimed.
    """
    script_keys = [
        keys.batch_done(batch_id),
        keys.batch_pixels(batch_id, chunk),
        keys.batch_truth(batch_id, chunk),
        keys.batch(batch_id),
        keys.MODELS_CURRENT,
    ]
    reply = lua.run(connection, _CLAIM, script_keys, [str(chunk), batches.now()])
    if reply[0] == 1:
        return None
    _, recorded, pixels, truth, current = reply
    if not recorded:  # writing started_at would leave a record of that field alone
        raise batches.Incomplete(f"batch {batch_id} chunk {chunk}: the batch's record is gone")
    if pixels is None:
        raise LookupError(f"batch {batch_id} chunk {chunk}: its pixels expired or were deleted")
    return ChunkInput(
        pixels=codec.pixels_from_bytes(codec.raw(pixels)),
        truth=None if truth is None else codec.labels_from_bytes(codec.raw(truth)),
        current_model=None if current is None else codec.text(current),
    )


def complete(
    connection: Redis,
    batch_id: str,
    chunk: int,
    answers: batches.Answers,
    correct: int,
    model_version: str,
    ttl: int,
) -> bool:
    """Store a chunk's answers and count it, once; return False if it was already counted."""
    script_keys = [
        keys.batch(batch_id),
        keys.batch_done(batch_id),
        keys.batch_versions(batch_id),
        keys.batch_labels(batch_id, chunk),
        keys.batch_pixels(batch_id, chunk),
        keys.batch_truth(batch_id, chunk),
        keys.batch_confidence(batch_id, chunk),
    ]
    args: list[str | int | bytes] = [
        str(chunk),
        len(answers.labels),
        correct,
        model_version,
        codec.labels_to_bytes(answers.labels),
        ttl,
        batches.now(),
        codec.confidences_to_bytes(answers.confidence) + codec.flags_to_bytes(answers.uncertain),
        int(np.count_nonzero(answers.uncertain)),
    ]
    return bool(lua.run(connection, _COMPLETE, script_keys, args) == 1)
