"""Micro-batch groups in Redis: sync requests that share one job, and join it while it waits.

The API creates a group with the requests it has at hand and enqueues one job for it.
While that job waits in the queue, later requests of the same API process join it (one
atomic script: their pixels appended, their ids listed), so under load a job grows to what
arrived while the workers were busy, and a lone request never waits for company. A worker
claims the group when its job starts: from then on nobody joins, and the worker answers
every member under its own job id. Claiming again (a re-run job) reads the same group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from redis import Redis
from redis.client import Pipeline

from store import codec, keys, lua

# (job id, (n, 784) uint8 pixels) of each member, in arrival order.
Members = Sequence[tuple[str, NDArray[np.uint8]]]

# KEYS: open flag, pixels, members, then one alias key per joining member
# ARGV: pixels, ttl, group id, then one "job_id:images" entry per joining member
_JOIN = lua.script(
    """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('APPEND', KEYS[2], ARGV[1])
for i = 4, #ARGV do
  redis.call('RPUSH', KEYS[3], ARGV[i])
  redis.call('SET', KEYS[i], ARGV[3], 'EX', ARGV[2])
end
return 1
"""
)

# KEYS: open flag, pixels, members, the current model version (read in the same trip)
_CLAIM = lua.script(
    """
redis.call('DEL', KEYS[1])
local current = redis.call('GET', KEYS[4])
return {redis.call('GET', KEYS[2]), redis.call('LRANGE', KEYS[3], 0, -1), current}
"""
)


@dataclass(frozen=True)
class Claimed:
    """A group as its worker sees it: all pixels, who sent how many, the model to use."""

    pixels: NDArray[np.uint8]
    members: list[tuple[str, int]]  # (job id, images)
    current_model: str | None


def create(pipe: Pipeline, group_id: str, members: Members, ttl: int, open_for: int) -> None:
    """Queue on `pipe` a new group of `members`, open to more for `open_for` seconds.

    The first member's id names it; its data lives `ttl` seconds.
    """
    pipe.set(keys.group_open(group_id), 1, ex=open_for)
    pipe.set(keys.job_pixels(group_id), _pixels(members), ex=ttl)
    pipe.rpush(keys.group_members(group_id), *_entries(members))
    pipe.expire(keys.group_members(group_id), ttl)
    for job_id, _ in members[1:]:
        pipe.set(keys.job_group(job_id), group_id, ex=ttl)


def join(connection: Redis, group_id: str, members: Members, ttl: int) -> bool:
    """Add `members` to a group still waiting for a worker; False when it was claimed."""
    script_keys = [
        keys.group_open(group_id),
        keys.job_pixels(group_id),
        keys.group_members(group_id),
        *(keys.job_group(job_id) for job_id, _ in members),
    ]
    args: list[bytes | str | int] = [_pixels(members), ttl, group_id, *_entries(members)]
    return bool(lua.run(connection, _JOIN, script_keys, args) == 1)


def claim(connection: Redis, group_id: str) -> Claimed:
    """Close the group to newcomers and return it, with the registry's current version."""
    script_keys = [
        keys.group_open(group_id),
        keys.job_pixels(group_id),
        keys.group_members(group_id),
        keys.MODELS_CURRENT,
    ]
    pixels, entries, current = lua.run(connection, _CLAIM, script_keys)
    if pixels is None or not entries:
        raise LookupError(f"job {group_id}: its pixels expired or were deleted")
    members = [_member(codec.text(entry)) for entry in entries]
    claimed = Claimed(
        pixels=codec.pixels_from_bytes(codec.raw(pixels)),
        members=members,
        current_model=None if current is None else codec.text(current),
    )
    if len(claimed.pixels) != sum(images for _, images in members):
        raise ValueError(f"job {group_id}: {len(claimed.pixels)} images stored, members differ")
    return claimed


def member_ids(connection: Redis, group_id: str) -> list[str]:
    """Return the job ids of a group's members (its first member's alone once it is gone)."""
    entries = connection.lrange(keys.group_members(group_id), 0, -1)
    return [_member(codec.text(entry))[0] for entry in entries] or [group_id]


def delete(pipe: Pipeline, group_id: str) -> None:
    """Queue on `pipe` the removal of a group's input, once every member has its answer."""
    pipe.delete(keys.job_pixels(group_id), keys.group_members(group_id))


def _pixels(members: Members) -> bytes:
    return b"".join(codec.pixels_to_bytes(pixels) for _, pixels in members)


def _entries(members: Members) -> list[str]:
    return [f"{job_id}:{len(pixels)}" for job_id, pixels in members]


def _member(entry: str) -> tuple[str, int]:
    job_id, _, images = entry.partition(":")
    return job_id, int(images)
