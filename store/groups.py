"""Image jobs in Redis: every one is a group of requests that one RQ job answers.

A `POST /v1/jobs` request is a group of one, closed. Sync requests (`/v1/predict`) of one
API process share a group: the API creates it with the requests it has at hand and enqueues
one job for it; while that job waits in the queue, later requests of the same process join
it (one atomic script: their pixels appended, their ids listed), so under load a job grows
to what arrived while the workers were busy, and a lone request never waits for company. A
worker claims the group when its job starts: from then on nobody joins, and the worker
answers every member under its own job id. Claiming again (a re-run job) reads the same group.

A member's status is at most two reads: its result and the pointer to its group (`find`),
then, while it has no result, one script for the rest (`waiting`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from redis import Redis
from redis.client import Pipeline
from rq import Queue
from rq.job import Job
from rq.results import Result as RQResult
from rq.serializers import JSONSerializer

from store import codec, keys, liveness, lua, results

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

# KEYS: RQ's record of the group's job, RQ's results of it, the group's pixels, then the keys
# of liveness.LIVE_FUNCTION. ARGV: liveness.LIVE_FUNCTION's arguments.
_WAITING = lua.script(
    liveness.LIVE_FUNCTION
    + """
local status = redis.call('HGET', KEYS[1], 'status')
local latest = false
if status == 'failed' then latest = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1] end
local live = live_workers(KEYS[4], KEYS[5], ARGV[1], ARGV[2])
return {status, redis.call('EXISTS', KEYS[3]), live, latest or false}
"""
)


@dataclass(frozen=True)
class Claimed:
    """A group as its worker sees it: all pixels, who sent how many, the model to use."""

    pixels: NDArray[np.uint8]
    members: list[tuple[str, int]]  # (job id, images)
    current_model: str | None


@dataclass(frozen=True)
class Waiting:
    """A group's job that has not answered, as Redis sees it in one round trip."""

    rq_status: str | None  # RQ's status of the job; None once RQ's record is gone
    input_kept: bool  # the group's pixels are still stored (kept as long as its results)
    live_workers: int  # workers alive on the queue
    failure: str | None  # RQ's last exception line when RQ records the job failed


def create(pipe: Pipeline, group_id: str, members: Members, ttl: int, open_for: int = 0) -> None:
    """Queue on `pipe` a new group of `members`, open to more for `open_for` seconds (0: closed).

    The first member's id names it; its data lives `ttl` seconds.
    """
    if open_for > 0:
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


def find(connection: Redis, job_id: str) -> tuple[results.Result | None, str]:
    """Return a request's result (None while it has none) and the id of its group's job."""
    payload, group_id = connection.mget([keys.job_result(job_id), keys.job_group(job_id)])
    result = None if payload is None else results.decode(codec.raw(payload))
    return result, job_id if group_id is None else codec.text(group_id)


def waiting(connection: Redis, group_id: str, queue: Queue) -> Waiting:
    """Read what RQ records of the group's job, whether its input is kept, and live workers.

    RQ's records are read by the key names RQ's own classes give (RQ is pinned).
    """
    script_keys = [
        Job.key_for(group_id),
        RQResult.get_key(group_id),
        keys.job_pixels(group_id),
        *liveness.live_keys(queue),
    ]
    status, kept, live, latest = lua.run(connection, _WAITING, script_keys, liveness.live_args())
    failure = None
    if latest:
        entry_id, fields = latest
        pairs = dict(zip(fields[::2], fields[1::2], strict=True))
        restored = RQResult.restore(
            group_id, codec.text(entry_id), pairs, connection, serializer=JSONSerializer
        )
        lines = (restored.exc_string or "").strip().splitlines()
        failure = lines[-1] if lines else None
    return Waiting(
        rq_status=None if status is None else codec.text(status),
        input_kept=bool(kept),
        live_workers=int(live),
        failure=failure,
    )


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
