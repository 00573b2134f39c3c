"""Request budgets per API key (or client address), kept in Redis for every API process.

The budget follows GCRA, a token bucket stored as one timestamp: a caller may send
`requests` at once, then one more every `period / requests` seconds. The check is one
atomic script on Redis's clock, so API processes on several machines share the budget
and need no synchronised clocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis import Redis

from store import keys, lua

SECONDS_PER = {
    **dict.fromkeys(("s", "sec", "second"), 1),
    **dict.fromkeys(("m", "min", "minute"), 60),
    **dict.fromkeys(("h", "hour"), 3600),
}
OFF = {"", "0", "off", "none"}

# KEYS: the caller's budget. ARGV: microseconds between requests, microseconds of burst.
# Returns 0 when the request may go, else the microseconds until it may.
_SPEND = lua.script(
    """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allowed_at = tat + interval - tonumber(ARGV[2])
if now < allowed_at then return allowed_at - now end
tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000))
return 0
"""
)


@dataclass(frozen=True)
class Rate:
    """At most `requests` per `period` seconds, all of them at once if need be."""

    requests: int
    period: float

    def __str__(self) -> str:
        return f"{self.requests} per {self.period:g} s"


def parse(text: str) -> Rate | None:
    """Read a limit such as "100/s", "6000/min" or "10/hour"; None when it is off."""
    spec = text.strip().lower().replace(" ", "")
    if spec in OFF:
        return None
    count, _, unit = spec.partition("/")
    if unit not in SECONDS_PER and len(unit) > 3:
        unit = unit.removesuffix("s")  # plurals: secs, minutes, hours
    if not count.isdigit() or unit not in SECONDS_PER:
        raise ValueError(f"DIGITS_RATE_LIMIT={text!r}: expected requests per unit, e.g. 100/s")
    if int(count) == 0:
        return None
    return Rate(requests=int(count), period=float(SECONDS_PER[unit]))


def spend(connection: Redis, identity: str, rate: Rate) -> float:
    """Count one request of `identity`; return 0 if it may go, else seconds until it may."""
    interval = round(rate.period * 1e6 / rate.requests)
    burst = round(rate.period * 1e6)
    wait = lua.run(connection, _SPEND, [keys.rate_limit(identity)], [interval, burst])
    return int(wait) / 1e6


def retry_after(seconds: float) -> int:
    """Whole seconds for a Retry-After header: rounded up, at least 1."""
    return max(1, math.ceil(seconds))
