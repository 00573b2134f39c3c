"""Redis's eviction policy: the service needs `maxmemory-policy noeviction`.

Queued jobs, batch records and results are keys like any other: a Redis that evicts under
memory pressure (`allkeys-lru`, a common default of hosted Redis) drops some of them, and
work is lost or half-recorded without an error. With `noeviction` a full Redis refuses writes
(the API answers 503 `redis_full`) and keeps what it holds. The policy is read from
`INFO memory`, which needs no CONFIG permission.
"""

from __future__ import annotations

from redis import Redis

SAFE_POLICY = "noeviction"
OVERRIDE = "DIGITS_ALLOW_EVICTION"  # environment variable: 1 runs on an evicting Redis anyway


class EvictionError(RuntimeError):
    """Redis may evict the service's keys, and no override was given."""


def policy(connection: Redis) -> str:
    """Return Redis's maxmemory-policy, e.g. "noeviction" or "allkeys-lru"."""
    return str(connection.info("memory").get("maxmemory_policy", SAFE_POLICY))


def problem(found: str) -> str | None:
    """Say what is wrong with the policy `found` and how to fix it; None for noeviction."""
    if found == SAFE_POLICY:
        return None
    return (
        f"Redis has maxmemory-policy {found}: under memory pressure it deletes keys, and queued "
        f"jobs, batches and results would vanish or be left half-written. Run "
        f"`redis-cli CONFIG SET maxmemory-policy {SAFE_POLICY}` and put "
        f"`maxmemory-policy {SAFE_POLICY}` in redis.conf (or your provider's settings); to run "
        f"anyway, pass --allow-eviction or set {OVERRIDE}=1"
    )


def check(connection: Redis, allow: bool) -> str:
    """Return the policy; raise EvictionError when it evicts and `allow` is false."""
    found = policy(connection)
    message = problem(found)
    if message is not None and not allow:
        raise EvictionError(message)
    return found
