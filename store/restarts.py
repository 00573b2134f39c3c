"""Restarts of the service's processes by a supervisor (`digits up`), counted in Redis.

Every supervisor on every machine adds to one hash, so any API process serves the total at
/metrics as `digits_supervisor_restarts_total{role}`.
"""

from __future__ import annotations

from redis import Redis

from store import codec, keys


def count(connection: Redis, role: str) -> None:
    """Add one restart of a process of `role` ("api", "worker")."""
    connection.hincrby(keys.METRICS_RESTARTS, role, 1)


def read(connection: Redis) -> dict[str, int]:
    """Return the restarts counted so far, by role."""
    found = connection.hgetall(keys.METRICS_RESTARTS)
    return {codec.text(role): int(total) for role, total in found.items()}
