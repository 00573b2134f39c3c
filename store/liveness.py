"""Worker liveness: each worker's beat on Redis's clock, and who has stopped beating.

Workers beat from a background thread (`worker.recovery.Lifeline`); the API reads the same
sorted set to tell whether any worker is alive. Redis's clock, not the machines': their
clocks may disagree.
"""

from __future__ import annotations

from typing import Any

from redis import Redis

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


def texts(members: Any) -> set[str]:
    """Decode a Redis reply of members to a set of str."""
    return {codec.text(member) for member in members}
