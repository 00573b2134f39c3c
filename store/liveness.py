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
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

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

# A Lua function that counts the live workers of a queue, on Redis's clock, for the scripts
# that need the count in the same round trip (`live_workers`, store.groups' job status).
# It reads the worker keys RQ lists in the queue's worker set, one EXISTS each: keys a script
# does not declare, which only a Redis Cluster would refuse (RQ supports none).
LIVE_FUNCTION = """
local function live_workers(workers, beats, prefix, dead_after)
  local now = redis.call('TIME')
  local cutoff = now[1] + now[2] / 1000000 - dead_after
  local count = 0
  for _, key in ipairs(redis.call('SMEMBERS', workers)) do
    if redis.call('EXISTS', key) == 1 then
      local last = redis.call('ZSCORE', beats, string.sub(key, #prefix + 1))
      if not last or tonumber(last) > cutoff then count = count + 1 end
    end
  end
  return count
end
"""

# KEYS: the queue's worker set, beats set. ARGV: worker key prefix, DEAD_AFTER.
_LIVE = lua.script(LIVE_FUNCTION + "return live_workers(KEYS[1], KEYS[2], ARGV[1], ARGV[2])")


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
    never beat (a plain `rq worker`) is counted while RQ's key is there. One round trip.
    """
    return int(lua.run(queue.connection, _LIVE, live_keys(queue), live_args()))


def live_keys(queue: Queue) -> list[str]:
    """Return the keys LIVE_FUNCTION reads: RQ's worker set of `queue`, then the beats."""
    return [WORKERS_BY_QUEUE_KEY % queue.name, keys.WORKER_BEATS]


def live_args() -> list[str | float]:
    """Return the arguments LIVE_FUNCTION takes after its keys."""
    return [BaseWorker.redis_worker_namespace_prefix, DEAD_AFTER]


def texts(members: Any) -> set[str]:
    """Decode a Redis reply of members to a set of str."""
    return {codec.text(member) for member in members}
