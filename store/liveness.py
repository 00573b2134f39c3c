"""Worker liveness: each worker's beat on Redis's clock, and who has stopped beating.

Workers beat from a background thread (`worker.recovery.Lifeline`); the API reads the same
sorted set to tell whether any worker is alive. Redis's clock, not the machines': their
clocks may disagree.
"""

from __future__ import annotations

from typing import Any

from redis import Redis
from rq import Queue
from rq.worker import BaseWorker
from rq.worker_registration import get_keys

from store import codec, keys, lua

BEAT_INTERVAL = 1.0  # seconds between beats
DEAD_AFTER = 5.0  # seconds without a beat after which a worker is dead
BEATS_TTL = 86_400  # the beats set goes when no worker has beaten for this long

# KEYS: beats set. ARGV: worker name, set TTL.
_BEAT = lua.script(
    """
local now = redis.call('TIME')
redis.call('ZADD', KEYS[1], now[1] + now[2] / 1000000, ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return now[1]
"""
)


def beat(connection: Redis, worker_name: str) -> None:
    """Record that the worker is alive now."""
    lua.run(connection, _BEAT, [keys.WORKER_BEATS], [worker_name, BEATS_TTL])


def dead_workers(connection: Redis, now: float) -> set[str]:
    """Return the names of beating workers that have not beaten for DEAD_AFTER seconds."""
    return texts(connection.zrangebyscore(keys.WORKER_BEATS, 0, now - DEAD_AFTER))


def live_workers(queue: Queue) -> int:
    """Count the workers on `queue` that are alive: RQ's key is there and they beat.

    RQ keeps a killed or stopped worker's key for a minute or more; its beat stops at once,
    so a worker that has not beaten for DEAD_AFTER seconds is not counted. A worker that
    never beat (a plain `rq worker`) is counted while RQ's key is there.
    """
    worker_keys = sorted(get_keys(queue=queue))
    if not worker_keys:
        return 0
    names = [key.removeprefix(BaseWorker.redis_worker_namespace_prefix) for key in worker_keys]
    pipe = queue.connection.pipeline(transaction=False)
    pipe.time()
    pipe.zmscore(keys.WORKER_BEATS, names)
    for key in worker_keys:
        pipe.exists(key)
    (seconds, microseconds), beats, *present = pipe.execute()
    cutoff = seconds + microseconds / 1e6 - DEAD_AFTER
    beating = [beat is None or beat > cutoff for beat in beats]
    return sum(bool(found) and fresh for found, fresh in zip(present, beating, strict=True))


def texts(members: Any) -> set[str]:
    """Decode a Redis reply of members to a set of str."""
    return {codec.text(member) for member in members}
