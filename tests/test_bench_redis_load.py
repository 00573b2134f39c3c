"""`digits bench redis`: counters read from a real server, the idle rate taken out per unit."""

from __future__ import annotations

import pytest
from redis import Redis

from scripts.bench.redis_load import Cost, Counters


def test_cost_is_the_growth_per_unit_less_the_idle_rate() -> None:
    before = Counters(at=10.0, calls={"set": 100, "get": 5}, bytes_in=1000, bytes_out=500, cpu=1.0)
    after = Counters(at=12.0, calls={"set": 320, "get": 5, "blpop": 10}, bytes_in=5000,
                     bytes_out=900, cpu=1.5)  # fmt: skip
    idle = Cost(calls={"set": 10.0}, bytes_in=100.0, bytes_out=0.0, cpu_us=50_000.0)  # per second
    cost = Cost.between(before, after, idle, units=100)
    assert cost.calls == {"set": 2.0, "get": 0.0, "blpop": 0.1}  # (220 - 10 * 2 s) / 100
    assert (cost.bytes_in, cost.bytes_out) == (38.0, 4.0)
    assert cost.cpu_us == 4_000.0  # (0.5 s - 0.05 s/s * 2 s) / 100, in µs
    assert cost.commands == pytest.approx(2.1)


def test_counters_see_the_commands_a_client_sends(redis_conn: Redis) -> None:
    before = Counters.read(redis_conn)
    for n in range(50):
        redis_conn.set(f"digits:test:{n}", n)
    cost = Cost.between(before, Counters.read(redis_conn), None, units=50)
    assert cost.calls["set"] == 1.0
    assert cost.bytes_in > 20 and cost.bytes_out >= 5  # "SET key n" in, "+OK" out
